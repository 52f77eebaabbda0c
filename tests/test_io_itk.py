"""ITK/ANTs transform files: read what SimpleITK writes, write what SimpleITK reads back as the same transform."""

import nibabel as nib
import numpy as np
import pytest

from arrayreg import io

sitk = pytest.importorskip("SimpleITK")


def sitk_affine():
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.1, 0.1, 0, 0, 0.9, 0.2, 0.05, 0, 1))
    affine.SetTranslation((1, 2, 3))
    affine.SetCenter((4, 5, 6))
    return affine


def sitk_field(rng):
    values = rng.uniform(-2, 2, (5, 6, 7, 3))  # SimpleITK's (z, y, x, 3)
    image = sitk.GetImageFromArray(values, isVector=True)
    image.SetSpacing((0.8, 1.1, 1.7))
    image.SetOrigin((10.0, -5.0, 3.0))
    image.SetDirection((0, -1, 0, 1, 0, 0, 0, 0, 1))
    return image


def points(rng, n=50):
    return rng.uniform(-10, 20, (n, 3))


def apply_chain(chain, xyz):
    """Our chain applied to LPS points, through transforms_to_field on a grid that holds the points as voxels."""
    out = []
    for point in xyz:
        grid = np.eye(4)
        grid[:3, 3] = np.diag([-1, -1, 1]) @ point  # voxel 0 sits at the point
        out.append(np.asarray(point) + io.transforms_to_field(chain, (1, 1, 1), grid, dtype=np.float64).field[0, 0, 0])
    return np.array(out)


def sitk_points(transform, xyz):
    return np.array([transform.TransformPoint(tuple(p)) for p in xyz])


@pytest.mark.parametrize("suffix", [".mat", ".txt", ".tfm", ".h5"])
def test_an_affine_written_by_simpleitk_reads_as_the_same_map(tmp_path, rng, suffix):
    affine = sitk_affine()
    sitk.WriteTransform(affine, str(tmp_path / f"a{suffix}"))
    chain = io.read_transform(tmp_path / f"a{suffix}")
    xyz = points(rng)
    assert len(chain) == 1 and isinstance(chain[0], io.AffineTransform)
    np.testing.assert_allclose(apply_chain(chain, xyz), sitk_points(affine, xyz), atol=1e-9)


@pytest.mark.parametrize("suffix", [".mat", ".txt", ".h5"])
def test_an_affine_we_write_reads_back_in_simpleitk_and_here(tmp_path, rng, suffix):
    ours = io.read_transform(_written_by_sitk(tmp_path, sitk_affine(), ".txt"))[0]
    io.write_transform(tmp_path / f"ours{suffix}", ours)
    xyz = points(rng)
    np.testing.assert_allclose(sitk_points(sitk.ReadTransform(str(tmp_path / f"ours{suffix}")), xyz),
                               sitk_points(sitk_affine(), xyz), atol=1e-9)
    np.testing.assert_array_equal(io.read_transform(tmp_path / f"ours{suffix}")[0].matrix, ours.matrix)


def _written_by_sitk(tmp_path, transform, suffix):
    path = tmp_path / f"sitk{suffix}"
    sitk.WriteTransform(transform, str(path))
    return path


def test_a_field_written_by_simpleitk_reads_as_the_same_map(tmp_path, rng):
    image = sitk_field(rng)
    sitk.WriteImage(image, str(tmp_path / "field.nii.gz"))
    header = nib.load(tmp_path / "field.nii.gz").header
    assert int(header["intent_code"]) == 1007
    chain = io.read_transform(tmp_path / "field.nii.gz")
    transform = sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))
    xyz = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(p))
                    for p in rng.uniform(-0.4, [6.4, 5.4, 4.4], (40, 3))])
    # NIfTI stores the grid's geometry in float32, so the points agree to float32 rounding of millimetres
    np.testing.assert_allclose(apply_chain(chain, xyz), sitk_points(transform, xyz), atol=1e-5)


def test_a_field_we_write_is_the_same_transform_in_simpleitk_and_bit_for_bit_here(tmp_path, rng):
    image = sitk_field(rng)
    sitk.WriteImage(image, str(tmp_path / "field.nii.gz"))
    field = io.read_transform(tmp_path / "field.nii.gz")[0]
    io.write_transform(tmp_path / "ours.nii.gz", field)
    back = io.read_transform(tmp_path / "ours.nii.gz")[0]
    np.testing.assert_array_equal(back.field, field.field)
    np.testing.assert_array_equal(back.affine, field.affine)
    read = sitk.ReadImage(str(tmp_path / "ours.nii.gz"))
    assert read.GetNumberOfComponentsPerPixel() == 3
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(read.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(read.GetSpacing(), image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(read.GetDirection(), image.GetDirection(), atol=1e-6)


def test_a_composite_h5_from_simpleitk_reads_in_t_order(tmp_path, rng):
    image = sitk_field(rng)
    field = sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))
    composite = sitk.CompositeTransform([sitk_affine(), field])  # ITK's list: the field acts first on a point
    sitk.WriteTransform(composite, str(tmp_path / "chain.h5"))
    chain = io.read_transform(tmp_path / "chain.h5")
    assert [type(t) for t in chain] == [io.FieldTransform, io.AffineTransform]
    xyz = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(p))
                    for p in rng.uniform(0, [6, 5, 4], (40, 3))])
    np.testing.assert_allclose(apply_chain(chain, xyz), sitk_points(composite, xyz), atol=1e-9)
    io.write_transform(tmp_path / "ours.h5", chain)
    np.testing.assert_allclose(sitk_points(sitk.ReadTransform(str(tmp_path / "ours.h5")), xyz),
                               sitk_points(composite, xyz), atol=1e-9)


def test_a_1006_field_holds_ras_millimetres(tmp_path, rng):
    lps = rng.standard_normal((3, 4, 5, 1, 3)).astype(np.float32)
    affine = np.diag([1.5, 1.0, 2.0, 1.0])
    image = nib.Nifti1Image(lps * np.array([-1, -1, 1], np.float32), affine)
    image.header.set_intent(1006)
    nib.save(image, tmp_path / "ras.nii.gz")
    field = io.read_transform(tmp_path / "ras.nii.gz")[0]
    np.testing.assert_array_equal(field.field, lps[:, :, :, 0])


def test_a_voxel_ddf_is_read_only_when_asked(tmp_path, rng):
    ddf = rng.standard_normal((3, 4, 5, 3)).astype(np.float32)
    affine = np.diag([2.0, 1.0, 1.5, 1.0])
    nib.save(nib.Nifti1Image(ddf, affine), tmp_path / "ddf.nii.gz")
    with pytest.raises(io.TransformFileError, match="voxel_ddf=True"):
        io.read_transform(tmp_path / "ddf.nii.gz")
    field = io.read_transform(tmp_path / "ddf.nii.gz", voxel_ddf=True)[0]
    back = io.transforms_to_ddf([field], ddf.shape[:3], affine, affine)
    np.testing.assert_allclose(back[0], ddf, atol=1e-5)


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_text("nothing"), "unknown transform file type"),
    (lambda p: nib.save(_with_intent(2006), p), "FSL FNIRT"),
    (lambda p: nib.save(_with_intent(1002), p), "not a displacement field"),
    (lambda p: p.write_text("#Insight Transform File V1.0\nTransform: Euler3DTransform_double_3_3\nParameters: "
                            "0 0 0 0 0 0\nFixedParameters: 0 0 0\n"), "Euler3DTransform_double_3_3 is not supported"),
])
def test_files_of_an_unknown_kind_are_refused_in_one_line(tmp_path, make, match):
    name = {"unknown transform file type": "x.xfm", "Euler3DTransform_double_3_3 is not supported": "e.txt"}.get(
        match, "f.nii.gz")
    make(tmp_path / name)
    with pytest.raises(io.TransformFileError, match=match):
        io.read_transform(tmp_path / name)


def _with_intent(code):
    image = nib.Nifti1Image(np.zeros((2, 2, 2, 1, 3), np.float32), np.eye(4))
    image.header.set_intent(code)
    return image


def test_writing_refuses_what_the_format_cannot_hold(tmp_path):
    field = io.FieldTransform(np.zeros((2, 2, 2, 3), np.float32), np.eye(4))
    affine = io.AffineTransform(np.eye(4))
    with pytest.raises(ValueError, match="holds one FieldTransform"):
        io.write_transform(tmp_path / "a.nii.gz", affine)
    with pytest.raises(ValueError, match="hold affines"):
        io.write_transform(tmp_path / "f.mat", field)
    assert list(tmp_path.iterdir()) == []


def test_a_chain_of_affines_written_as_text_is_simpleitks_composite(tmp_path, rng):
    first = io.read_transform(_written_by_sitk(tmp_path, sitk_affine(), ".mat"))[0]
    second = io.AffineTransform(np.array([[0, -1.0, 0, 2], [1, 0, 0, -3], [0, 0, 1, 0.5], [0, 0, 0, 1]]))
    io.write_transform(tmp_path / "chain.txt", [first, second])
    xyz = points(rng)
    np.testing.assert_allclose(sitk_points(sitk.ReadTransform(str(tmp_path / "chain.txt")), xyz),
                               apply_chain([first, second], xyz), atol=1e-9)
    assert [t.matrix.tolist() for t in io.read_transform(tmp_path / "chain.txt")] == [first.matrix.tolist(),
                                                                                      second.matrix.tolist()]
