"""World-space chains against SimpleITK's own resampling, on oblique, anisotropic grids that differ."""

import nibabel as nib
import numpy as np
import pytest

import arrayreg
from arrayreg import io

sitk = pytest.importorskip("SimpleITK")


def rotation(a, b, c):
    """A rotation matrix from three angles in degrees (about x, then y, then z)."""
    a, b, c = np.radians([a, b, c])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def sitk_image(values, spacing, origin, angles):
    """A SimpleITK image of ``values`` given in arrayreg's (x, y, z[, 3]) order."""
    vector = values.ndim == 4
    image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose((2, 1, 0, 3) if vector else (2, 1, 0))),
                                   isVector=vector)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(rotation(*angles).reshape(-1).tolist())
    return image


def nifti_affine(image):
    """The NIfTI vox-to-RAS affine of a SimpleITK image (LPS geometry flipped to RAS)."""
    lps = np.eye(4)
    lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1, 1, 1]) @ lps


@pytest.fixture(scope="module")
def scene():
    """Reference, moving and field grids, each oblique and anisotropic, with a smooth moving image and field."""
    rng = np.random.default_rng(0)
    moving_shape = (22, 20, 18)
    g = np.indices(moving_shape)
    moving = (np.sin(g[0] / 3) + np.cos(g[1] / 4) * g[2] / 10 + 0.01 * rng.standard_normal(moving_shape))
    f = np.indices((12, 11, 10))
    field = np.stack([np.sin(f[0] / 3) * 1.5, np.cos(f[1] / 4), np.sin(f[2] / 2) * 0.8], -1)
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.02, 0.05, 0, -0.03, 0.97, 0.04, 0.02, 0, 1.01))
    affine.SetTranslation((1.0, -0.5, 0.7))
    affine.SetCenter((8, 4, 12))
    return dict(
        reference=sitk_image(np.zeros((20, 18, 16), np.float32), (0.8, 1.1, 1.7), (3.0, -4.0, 5.0), (10, -5, 20)),
        moving=sitk_image(moving.astype(np.float32), (1.0, 0.9, 1.3), (0.0, -2.0, 4.0), (-8, 12, 3)),
        field=sitk_image(field, (1.8, 2.0, 2.2), (-1.0, -6.0, 2.0), (5, 5, -10)),
        affine=affine,
    )


def ours(scene):
    """The scene's field and affine as arrayreg transforms (made from the SimpleITK objects' geometry)."""
    field = scene["field"]
    values = sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3)
    affine = scene["affine"]
    return (io.FieldTransform(np.ascontiguousarray(values), nifti_affine(field)),
            io.AffineTransform.from_itk(affine.GetParameters(), affine.GetFixedParameters()))


CHAINS = {
    # name: (the -t list as indices into (field, affine, inverse affine), SimpleITK's composite list)
    "warp then affine": ([0, 1], lambda f, a: [a, f]),
    "affine then warp": ([1, 0], lambda f, a: [f, a]),
    "warp then inverse affine": ([0, 2], lambda f, a: [a.GetInverse(), f]),
}


def sitk_chain(scene, name):
    field = sitk.DisplacementFieldTransform(sitk.Cast(scene["field"], sitk.sitkVectorFloat64))
    return sitk.CompositeTransform(CHAINS[name][1](field, sitk.AffineTransform(scene["affine"])))


def our_chain(scene, name):
    field, affine = ours(scene)
    return [(field, affine, affine.inverse())[n] for n in CHAINS[name][0]]


def moving_points(ddf, shape, margin):
    """Reference voxels whose moving point lies at least ``margin`` voxels inside the moving grid."""
    points = ddf[0] + np.moveaxis(np.indices(ddf.shape[1:4]), 0, -1)
    return np.all((points >= margin) & (points <= np.array(shape) - 1 - margin), axis=-1), points


@pytest.mark.parametrize("name", list(CHAINS))
def test_linear_resampling_matches_simpleitk(scene, name):
    reference, moving = scene["reference"], scene["moving"]
    expected = sitk.GetArrayFromImage(sitk.Resample(moving, reference, sitk_chain(scene, name), sitk.sitkLinear,
                                                    0.0)).transpose(2, 1, 0)
    moving_values = sitk.GetArrayFromImage(moving).transpose(2, 1, 0)
    ddf = io.transforms_to_ddf(our_chain(scene, name), reference.GetSize(), nifti_affine(reference),
                               nifti_affine(moving))
    warped = arrayreg.warp_image_ddf(moving_values[None], ddf, boundary="constant")[0]
    inside, _ = moving_points(ddf, moving_values.shape, 1)
    assert inside.sum() > 1000
    value_range = np.ptp(moving_values)
    assert np.abs(warped - expected)[inside].max() <= 1e-4 * value_range


@pytest.mark.parametrize("name", list(CHAINS))
def test_nearest_resampling_matches_simpleitk_away_from_ties(scene, name):
    reference, moving = scene["reference"], scene["moving"]
    expected = sitk.GetArrayFromImage(sitk.Resample(moving, reference, sitk_chain(scene, name),
                                                    sitk.sitkNearestNeighbor, 0.0)).transpose(2, 1, 0)
    moving_values = sitk.GetArrayFromImage(moving).transpose(2, 1, 0)
    ddf = io.transforms_to_ddf(our_chain(scene, name), reference.GetSize(), nifti_affine(reference),
                               nifti_affine(moving))
    warped = arrayreg.warp_image_ddf(moving_values[None], ddf, interpolation="nearest", boundary="constant")[0]
    inside, points = moving_points(ddf, moving_values.shape, 0)
    away = inside & np.all(np.abs(points - np.floor(points) - 0.5) > 1e-3, axis=-1)
    assert away.sum() > 1000
    np.testing.assert_array_equal(warped[away], expected[away])


@pytest.fixture(scope="module")
def scene_on_reference_grid(scene):
    """The scene with its field on the reference grid itself (oblique, anisotropic): the usual ANTs output,
    read at the reference voxels without interpolation."""
    reference = scene["reference"]
    g = np.indices(reference.GetSize())
    field = np.stack([np.sin(g[0] / 3) * 1.5, np.cos(g[1] / 4), np.sin(g[2] / 2) * 0.8], -1)
    return dict(scene, field=sitk_image(field, reference.GetSpacing(), reference.GetOrigin(), (10, -5, 20)))


SCENES = {"its own grid": "scene", "the reference grid": "scene_on_reference_grid"}  # where the field lies


@pytest.mark.parametrize("grid", list(SCENES))
@pytest.mark.parametrize("name", list(CHAINS))
def test_the_collapsed_field_matches_simpleitk_transform_to_displacement_field(request, grid, name):
    """Everywhere on the reference grid, the field's half-voxel edge rule included."""
    scene = request.getfixturevalue(SCENES[grid])
    reference = scene["reference"]
    expected = sitk.GetArrayFromImage(sitk.TransformToDisplacementField(
        sitk_chain(scene, name), sitk.sitkVectorFloat64, reference.GetSize(), reference.GetOrigin(),
        reference.GetSpacing(), reference.GetDirection())).transpose(2, 1, 0, 3)
    field = io.transforms_to_field(our_chain(scene, name), reference.GetSize(), nifti_affine(reference),
                                   dtype=np.float64)
    np.testing.assert_allclose(field.field, expected, atol=1e-9)
    np.testing.assert_allclose(field.affine, nifti_affine(reference))


@pytest.mark.parametrize("grid", list(SCENES))
@pytest.mark.parametrize("name", list(CHAINS))
def test_apply_transforms_matches_simpleitk_resample(request, grid, name):
    scene = request.getfixturevalue(SCENES[grid])
    reference, moving = scene["reference"], scene["moving"]
    resampled = sitk.GetArrayFromImage(sitk.Resample(moving, reference, sitk_chain(scene, name), sitk.sitkLinear,
                                                     0.0)).transpose(2, 1, 0)
    moving_values = sitk.GetArrayFromImage(moving).transpose(2, 1, 0)
    warped = io.apply_transforms(moving_values[None], our_chain(scene, name), reference.GetSize(),
                                 nifti_affine(reference), nifti_affine(moving))[0]
    ddf = io.transforms_to_ddf(our_chain(scene, name), reference.GetSize(), nifti_affine(reference),
                               nifti_affine(moving))
    inside, _ = moving_points(ddf, moving_values.shape, 1)
    assert inside.sum() > 1000
    assert np.abs(warped - resampled)[inside].max() <= 1e-4 * np.ptp(moving_values)


def test_a_field_on_a_grid_moved_by_whole_voxels_is_read_at_the_voxels(rng):
    """Against a brute-force NumPy read: the field's voxel ``p + (2, -1, 3)`` (zero beyond its grid)."""
    a = np.array([[0, -1.2, 0.1, 4], [0.9, 0, 0, -1], [0, 0.05, 1.3, 0.5], [0, 0, 0, 1]])
    shift = np.eye(4)
    shift[:3, 3] = [2, -1, 3]
    field = rng.uniform(-2, 2, (6, 7, 5, 3))
    ddf = io.transforms_to_ddf([io.FieldTransform(field, a @ np.linalg.inv(shift))], (5, 6, 7), a, a,
                               dtype=np.float64)[0]
    flip = np.diag([-1.0, -1, 1])
    to_voxels = np.linalg.inv(a[:3, :3]) @ flip  # LPS millimetres to reference voxels
    expected = np.zeros((5, 6, 7, 3))
    for p in np.ndindex(5, 6, 7):
        q = np.array(p) + [2, -1, 3]
        if np.all(q >= 0) and np.all(q < field.shape[:3]):
            expected[p] = to_voxels @ field[tuple(q)]
    np.testing.assert_allclose(ddf, expected, atol=1e-12)


APPLY_CASES = {
    "linear": dict(interpolation="linear"),
    "linear, fill 3": dict(interpolation="linear", fill_value=3.0),
    "linear, float64 steps": dict(interpolation="linear", dtype=np.float64),
    "nearest": dict(interpolation="nearest"),
    "cubic": dict(interpolation="cubic"),
}


@pytest.mark.parametrize("grid", list(SCENES))
@pytest.mark.parametrize("channels", [None, 2, 4])
@pytest.mark.parametrize("case", list(APPLY_CASES))
def test_apply_transforms_is_transforms_to_ddf_then_the_warp_bit_for_bit(request, grid, channels, case):
    scene = request.getfixturevalue(SCENES[grid])
    reference, moving = scene["reference"], scene["moving"]
    rng = np.random.default_rng(1)
    image = rng.standard_normal((2,) + moving.GetSize() + ((channels,) if channels else ())).astype(np.float32)
    chain = our_chain(scene, "warp then affine")
    keywords = dict(APPLY_CASES[case])
    dtype = keywords.pop("dtype", np.float32)
    got = io.apply_transforms(image, chain, reference.GetSize(), nifti_affine(reference), nifti_affine(moving),
                              dtype=dtype, **keywords)
    ddf = io.transforms_to_ddf(chain, reference.GetSize(), nifti_affine(reference), nifti_affine(moving),
                               dtype=dtype)
    want = arrayreg.warp_image_ddf(image, np.concatenate([ddf, ddf]), boundary="constant", **keywords)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("image_dtype", [np.int16, np.uint8])
def test_apply_transforms_of_a_label_map_is_the_label_warp(scene_on_reference_grid, image_dtype):
    scene = scene_on_reference_grid
    reference, moving = scene["reference"], scene["moving"]
    labels = np.random.default_rng(2).integers(0, 5, (1,) + moving.GetSize()).astype(image_dtype)
    chain = our_chain(scene, "affine then warp")
    got = io.apply_transforms(labels, chain, reference.GetSize(), nifti_affine(reference), nifti_affine(moving),
                              interpolation="label", fill_value=4)
    ddf = io.transforms_to_ddf(chain, reference.GetSize(), nifti_affine(reference), nifti_affine(moving))
    want = arrayreg.warp_image_ddf(labels, ddf, interpolation="label", boundary="constant", fill_value=4)
    assert got.dtype == image_dtype and (got == 4).any()
    np.testing.assert_array_equal(got, want)


def test_apply_transforms_of_a_float64_image_with_no_transforms_is_the_resampling_between_grids(rng):
    a = np.diag([2.0, 2.0, 2.0, 1.0])
    b = np.diag([1.0, 1.0, 1.0, 1.0])
    image = rng.standard_normal((1, 8, 8, 8))
    got = io.apply_transforms(image, [], (4, 4, 4), a, b)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, image[:, ::2, ::2, ::2])


def test_an_affine_chain_is_the_matrix_product_in_float64(rng):
    a = np.eye(4)
    a[:3] = rng.uniform(-1, 1, (3, 4)) + np.hstack([2 * np.eye(3), np.zeros((3, 1))])
    b = np.eye(4)
    b[:3] = rng.uniform(-1, 1, (3, 4)) + np.hstack([3 * np.eye(3), np.zeros((3, 1))])
    m1, m2 = np.eye(4), np.eye(4)
    m1[:3] = rng.uniform(-0.2, 0.2, (3, 4)) + np.hstack([np.eye(3), np.zeros((3, 1))])
    m2[:3, 3] = [1.5, -2, 0.25]
    shape = (4, 5, 6)
    ddf = io.transforms_to_ddf([io.AffineTransform(m1), io.AffineTransform(m2)], shape, a, b, dtype=np.float64)
    flip = np.diag([-1.0, -1, 1, 1])
    total = np.linalg.inv(b) @ flip @ m2 @ m1 @ flip @ a
    p = np.concatenate([np.indices(shape).reshape(3, -1), np.ones((1, np.prod(shape)))])
    expected = (total @ p)[:3] - p[:3]
    np.testing.assert_allclose(ddf[0].reshape(-1, 3).T, expected, atol=1e-12)


def test_a_voxel_ddf_round_trips_through_a_world_field(rng):
    a = np.diag([0.8, 1.1, 1.7, 1.0])
    a[:3, 3] = [5, -3, 2]
    b = np.array([[0, -1.2, 0, 4], [0.9, 0, 0, -1], [0, 0, 1.3, 0.5], [0, 0, 0, 1]])
    ddf = rng.uniform(-2, 2, (1, 5, 6, 7, 3)).astype(np.float32)
    world = io.ddf_to_world_field(ddf, a, b)
    np.testing.assert_allclose(world.affine, a)
    back = io.transforms_to_ddf([world], ddf.shape[1:4], a, b)
    np.testing.assert_allclose(back, ddf, atol=2e-5)


def test_wild_field_values_stay_in_bounds():
    field = np.full((3, 3, 3, 3), np.nan, np.float32)
    field[0, 0, 0] = [1e30, -1e30, np.inf]
    ddf = io.transforms_to_ddf([io.FieldTransform(field, np.eye(4)), io.FieldTransform(field, np.eye(4))],
                               (4, 4, 4), np.eye(4), np.eye(4))
    assert ddf.shape == (1, 4, 4, 4, 3)
    assert np.isnan(ddf[0, 1, 1, 1]).all() and np.array_equal(ddf[0, 3, 3, 3], [0, 0, 0])


@pytest.mark.parametrize("shift", [1e12, 1e20, -1e300])
def test_a_field_on_a_grid_moved_beyond_int64_voxels_reads_nothing(shift):
    """Whole-voxel offsets too large for the voxel read go through the general field step: zero displacement."""
    moved = np.eye(4)
    moved[0, 3] = shift
    field = io.FieldTransform(np.ones((3, 3, 3, 3), np.float32), moved)
    np.testing.assert_array_equal(io.transforms_to_ddf([field], (2, 2, 2), np.eye(4), np.eye(4)), 0)


@pytest.mark.parametrize("call, match", [
    (lambda: io.transforms_to_ddf(["x"], (2, 2, 2), np.eye(4), np.eye(4)), "transforms\\[0\\] must be"),
    (lambda: io.transforms_to_ddf([], (2, 2, 2), np.zeros((4, 4)), np.eye(4)), "reference_affine must be"),
    (lambda: io.transforms_to_ddf([], (2, 2), np.eye(4), np.eye(4)), "reference_shape"),
    (lambda: io.transforms_to_ddf([], (2, 2, 2), np.eye(4), np.eye(3)), "moving_affine must have shape"),
    (lambda: io.AffineTransform(np.ones((4, 4))), "last row"),
    (lambda: io.FieldTransform(np.zeros((2, 2, 2)), np.eye(4)), "field must have shape"),
    (lambda: io.FieldTransform(np.zeros((2, 2, 2, 3), np.int16), np.eye(4)), "float32 or float64"),
    (lambda: io.apply_transforms(np.zeros((2, 2, 2)), [], (2, 2, 2), np.eye(4), np.eye(4)), "image must have"),
    (lambda: io.apply_transforms(np.zeros((1, 2, 2, 2)), [], (2, 2, 2), np.eye(4), np.eye(4),
                                 interpolation="label"), "label"),
    (lambda: io.apply_transforms(np.zeros((1, 2, 2, 2)), [], (2, 2, 2), np.eye(4), np.eye(4), dtype=np.int32),
     "dtype must be"),
    (lambda: io.apply_transforms(np.zeros((1, 2, 2, 2)), [], (2, 0, 2), np.eye(4), np.eye(4)), "reference_shape"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_nibabel_and_simpleitk_agree_on_the_geometry(scene, tmp_path):
    """The affine this module derives from SimpleITK's geometry is the one nibabel reads from its file."""
    sitk.WriteImage(scene["reference"], str(tmp_path / "reference.nii.gz"))
    np.testing.assert_allclose(nib.load(tmp_path / "reference.nii.gz").affine, nifti_affine(scene["reference"]),
                               atol=1e-5)
