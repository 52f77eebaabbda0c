import numpy as np
import pytest

import arrayreg
from arrayreg import affine_to_ddf, compose_ddf, ddf_to_affine, folding_report, invert_ddf, jacobian_determinant


def smooth_field(shape, amplitude, seed=0, batch=1):
    """A smooth analytic field (sums of sines), float64."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(0, np.pi, n) for n in shape], indexing="ij")
    field = np.empty((batch, *shape, 3))
    for b in range(batch):
        for c in range(3):
            phase = rng.uniform(0, np.pi, 3)
            field[b, ..., c] = amplitude * np.sin(axes[0] + phase[0]) * np.cos(axes[1] + phase[1]) * np.sin(
                axes[2] + phase[2])
    return field


def jacobian_by_numpy_gradient(ddf, spacing):
    """det(I + du/dx) with numpy.gradient (central inside, one-sided at the borders), float64."""
    out = np.empty(ddf.shape[:4])
    for b in range(ddf.shape[0]):
        grads = [np.gradient(ddf[b, ..., c].astype(np.float64), *spacing) for c in range(3)]
        matrix = np.stack([np.stack(g, axis=-1) for g in grads], axis=-2) + np.eye(3)  # (..., c, a)
        out[b] = np.linalg.det(matrix)
    return out


@pytest.mark.parametrize("spacing", [(1, 1, 1), (0.5, 1.5, 2.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jacobian_matches_numpy_gradient(spacing, dtype):
    ddf = smooth_field((7, 8, 9), 2.0, batch=2).astype(dtype)
    got = jacobian_determinant(ddf, spacing)
    assert got.shape == (2, 7, 8, 9) and got.dtype == np.dtype(dtype)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, jacobian_by_numpy_gradient(ddf, spacing), rtol=tolerance, atol=tolerance)


def test_jacobian_of_an_affine_ddf_is_the_matrix_determinant():
    matrix = np.array([[1.1, 0.1, 0.0, 2.0], [0.0, 0.9, 0.05, -1.0], [0.02, 0.0, 1.2, 0.5], [0, 0, 0, 1]])
    ddf = affine_to_ddf(matrix.astype(np.float64), (6, 7, 8))
    np.testing.assert_allclose(jacobian_determinant(ddf), np.linalg.det(matrix[:3, :3]), rtol=1e-12)


def test_jacobian_on_a_one_voxel_axis_ignores_that_axis():
    ddf = np.zeros((1, 4, 1, 3, 3), np.float32)
    ddf[..., 0] = np.arange(4, dtype=np.float32)[:, None, None] * 0.5
    np.testing.assert_allclose(jacobian_determinant(ddf), 1.5)


def test_jacobian_matches_simpleitk_in_the_interior():
    sitk = pytest.importorskip("SimpleITK")
    spacing = (0.8, 1.0, 1.7)
    ddf = smooth_field((10, 11, 12), 3.0, seed=4)
    image = sitk.GetImageFromArray(ddf[0][..., ::-1].copy(), isVector=True)  # ITK: x is the last axis
    image.SetSpacing(spacing[::-1])
    jacobian = sitk.DisplacementFieldJacobianDeterminantFilter()
    jacobian.SetUseImageSpacing(True)
    want = sitk.GetArrayFromImage(jacobian.Execute(image))
    got = jacobian_determinant(ddf, spacing)[0]
    np.testing.assert_allclose(got[1:-1, 1:-1, 1:-1], want[1:-1, 1:-1, 1:-1], rtol=1e-6, atol=1e-6)


def test_folding_report_counts_folds():
    ddf = np.zeros((1, 8, 4, 4, 3), np.float32)
    ddf[0, 4:6, ..., 0] = -3.0  # voxels 4 and 5 jump back past 3: the map folds around them
    report = folding_report(ddf)
    det = jacobian_by_numpy_gradient(ddf, (1, 1, 1))
    assert report.n_voxels == det.size and report.n_folded == int((det <= 0).sum()) > 0
    assert report.percent_folded == pytest.approx(100 * (det <= 0).mean())
    assert report.det_min == pytest.approx(det.min()) and report.max_displacement == pytest.approx(3.0)
    assert "folded" in str(report) and "\n" not in str(report)
    mask = np.zeros((8, 4, 4), bool)
    mask[:2] = True
    clean = folding_report(ddf, mask=mask)
    assert clean.n_folded == 0 and clean.n_voxels == 32 and clean.log_det_std == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="mask must be a bool array"):
        folding_report(ddf, mask=np.ones((8, 4), bool))


@pytest.mark.parametrize("batch", [1, 3])
def test_affine_to_ddf_and_back(batch, rng):
    matrices = np.tile(np.eye(4), (batch, 1, 1))
    matrices[:, :3, :] += rng.uniform(-0.2, 0.2, (batch, 3, 4)) * np.array([1, 1, 1, 10])
    ddf = affine_to_ddf(matrices.astype(np.float32), (9, 8, 7))
    grid = np.indices((9, 8, 7)).transpose(1, 2, 3, 0).astype(np.float64)
    want = np.einsum("bpq,ijkq->bijkp", matrices[:, :3, :3], grid) + matrices[:, None, None, None, :3, 3] - grid
    np.testing.assert_allclose(ddf, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ddf_to_affine(ddf), matrices, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ddf_to_affine(want), matrices, rtol=0, atol=1e-12)


def test_affine_errors():
    with pytest.raises(ValueError, match="matrix must have shape \\(4, 4\\) or \\(batch, 4, 4\\)"):
        affine_to_ddf(np.eye(3), (2, 2, 2))
    with pytest.raises(ValueError, match="last row \\(0, 0, 0, 1\\)"):
        affine_to_ddf(np.ones((4, 4)), (2, 2, 2))
    with pytest.raises(ValueError, match="spacing must be 3 finite numbers > 0"):
        jacobian_determinant(np.zeros((1, 2, 2, 2, 3)), (1, 0, 1))
    with pytest.raises(ValueError, match="ddf shape must be \\(batch, f_dim1, f_dim2, f_dim3, 3\\)"):
        ddf_to_affine(np.zeros((2, 2, 2, 3)))


def test_fields_are_exported():
    for name in ("jacobian_determinant", "folding_report", "affine_to_ddf", "ddf_to_affine"):
        assert name in arrayreg.__all__


def random_matrices(rng, batch=1, scale=0.1):
    matrices = np.tile(np.eye(4), (batch, 1, 1))
    matrices[:, :3, :] += rng.uniform(-scale, scale, (batch, 3, 4)) * np.array([1, 1, 1, 5])
    return matrices


def test_composing_affine_ddfs_is_the_matrix_product(rng):
    outer, inner = random_matrices(rng, 2), random_matrices(rng, 2)
    shape = (9, 10, 11)
    got = compose_ddf(affine_to_ddf(outer, shape), affine_to_ddf(inner, shape), boundary="clamp")
    want = affine_to_ddf(outer @ inner, shape)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    target = grid[None] + affine_to_ddf(inner, shape)
    inside = ((target >= 0) & (target <= np.array(shape) - 1)).all(-1)  # outer's grid holds the whole affine
    np.testing.assert_allclose(got[inside], want[inside], rtol=0, atol=1e-10)


def test_compose_equals_warping_the_outer_field_then_adding(rng):
    outer = smooth_field((8, 9, 10), 2.0, seed=1).astype(np.float32)
    inner = smooth_field((6, 7, 8), 1.5, seed=2).astype(np.float32)
    for boundary in ("constant", "clamp"):
        got = compose_ddf(outer, inner, boundary=boundary)
        want = inner + arrayreg.warp_image_ddf(outer, inner, boundary=boundary)
        np.testing.assert_array_equal(got, want)


def test_compose_matches_simpleitk_composite_transform():
    sitk = pytest.importorskip("SimpleITK")
    shape = (12, 11, 10)
    outer, inner = smooth_field(shape, 2.0, seed=3), smooth_field(shape, 2.0, seed=5)

    def transform(field):
        image = sitk.GetImageFromArray(field[0][..., ::-1].copy(), isVector=True)
        return sitk.DisplacementFieldTransform(image)  # zero displacement outside the field's grid

    composite = sitk.CompositeTransform([transform(outer), transform(inner)])  # applies inner, then outer
    reference = sitk.Image([n for n in shape[::-1]], sitk.sitkFloat64)
    converter = sitk.TransformToDisplacementFieldFilter()
    converter.SetReferenceImage(reference)
    want = sitk.GetArrayFromImage(converter.Execute(composite))[..., ::-1]
    # Where x + inner(x) lies inside outer's grid both interpolate linearly; within half a voxel outside ITK
    # still takes the edge value, and beyond that zero, where "constant" blends in zeros corner by corner.
    target = np.indices(shape).transpose(1, 2, 3, 0) + inner[0]
    inside = ((target >= 0) & (target <= np.array(shape) - 1)).all(-1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(compose_ddf(outer, inner)[0][inside], want[inside], rtol=0, atol=1e-9)


def test_invert_ddf_is_inverse_consistent_in_the_interior():
    ddf = smooth_field((32, 32, 32), 4.0, seed=7)
    assert np.abs(ddf).max() > 3.0 and jacobian_determinant(ddf).min() > 0
    inverse, error = invert_ddf(ddf, return_error=True)
    interior = (slice(None), slice(6, -6), slice(6, -6), slice(6, -6))
    both = [compose_ddf(ddf, inverse, boundary="clamp"), compose_ddf(inverse, ddf, boundary="clamp")]
    for residual in both:
        assert np.linalg.norm(residual[interior], axis=-1).max() < 0.05
    assert error < 0.05


def test_invert_ddf_stops_early_and_validates():
    shift = np.full((1, 5, 5, 5, 3), 0.5)
    np.testing.assert_allclose(invert_ddf(shift, iterations=3)[0, 2, 2, 2], -0.5)
    with pytest.raises(ValueError, match="iterations must be an int >= 0"):
        invert_ddf(shift, iterations=-1)
    with pytest.raises(ValueError, match="outer and inner must have the same batch size"):
        compose_ddf(np.zeros((2, 3, 3, 3, 3)), np.zeros((1, 3, 3, 3, 3)))
