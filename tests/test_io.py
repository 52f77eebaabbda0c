import nibabel as nib
import numpy as np
import pytest

from arrayreg import io


def test_round_trip_keeps_affine_header_and_dtype(tmp_path, rng):
    affine = np.array([[0.0, -1.5, 0, 10], [2.0, 0, 0, -3], [0, 0, 1.2, 7], [0, 0, 0, 1]])
    source = nib.Nifti1Image(rng.integers(0, 5, (4, 5, 6)).astype(np.int16), affine)
    source.header["descrip"] = b"arrayreg test"
    data = rng.standard_normal((4, 5, 6)).astype(np.float32)
    io.save_nifti(tmp_path / "out.nii.gz", data, like=source)
    loaded, image = io.load_nifti(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(loaded, data)
    np.testing.assert_allclose(image.affine, affine)
    assert image.header["descrip"] == b"arrayreg test"
    assert not list(tmp_path.glob(".out.nii.gz*")), "no temporary file is left behind"


def test_ddf_layouts(tmp_path, rng):
    ddf = rng.standard_normal((3, 4, 5, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(ddf, np.eye(4)), tmp_path / "a.nii.gz")
    nib.save(nib.Nifti1Image(ddf[:, :, :, None, :], np.eye(4)), tmp_path / "b.nii.gz")
    np.testing.assert_array_equal(io.load_ddf(tmp_path / "a.nii.gz")[0], ddf)
    np.testing.assert_array_equal(io.load_ddf(tmp_path / "b.nii.gz")[0], ddf)
    nib.save(nib.Nifti1Image(ddf[..., :2], np.eye(4)), tmp_path / "c.nii.gz")
    with pytest.raises(io.NiftiError, match="a DDF must have shape"):
        io.load_ddf(tmp_path / "c.nii.gz")


def test_missing_and_non_nifti_files(tmp_path):
    with pytest.raises(io.NiftiError, match="no such file"):
        io.load_nifti(tmp_path / "missing.nii.gz")
    (tmp_path / "text.nii.gz").write_text("not an image")
    with pytest.raises(io.NiftiError, match="not a readable NIfTI file"):
        io.load_nifti(tmp_path / "text.nii.gz")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def explode(image, filename):
        open(filename, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        io.save_nifti(tmp_path / "out.nii.gz", np.zeros((2, 2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []


# (37, 20, 35, 1, 3) spans several tiles of the reordering with remainders; 6 channels take its run-time count
@pytest.mark.parametrize("shape", [(7, 6, 5), (7, 6, 5, 2), (7, 6, 5, 1, 3), (4, 3, 2, 2, 2), (37, 20, 35, 1, 3),
                                   (18, 5, 17, 6)])
@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2", "u1"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_loaded_volumes_are_c_ordered_and_equal_to_nibabels_array(tmp_path, rng, shape, dtype, suffix):
    """NIfTI stores x fastest; the tiled reordering gives nibabel's values in C order, in native byte order."""
    values = rng.integers(0, 100, shape).astype(dtype)
    path = tmp_path / f"volume{suffix}"
    image = nib.Nifti1Image(values, np.eye(4))
    image.header.set_data_dtype(np.dtype(dtype))
    nib.save(image, path)
    data, _ = io.load_nifti(path)
    assert data.flags.c_contiguous and data.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(data, np.asarray(nib.load(path).dataobj))
