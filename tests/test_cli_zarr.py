"""``arrayreg warp`` and ``arrayreg apply`` with zarr stores (the dask.distributed path of the CLI)."""

import nibabel as nib
import numpy as np
import pytest

import arrayreg
from arrayreg import cli
from arrayreg.io import AffineTransform, write_transform

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler():
    """An in-process cluster for --scheduler (the first test starts the default LocalCluster itself)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c.scheduler_address


def store(path, array, chunks, affine=None, zarr_format=3):
    z = zarr.create_array(str(path), shape=array.shape, chunks=chunks, dtype=array.dtype, zarr_format=zarr_format)
    z[...] = array
    if affine is not None:
        z.attrs["affine"] = np.asarray(affine).tolist()
    return path


def run(*args):
    return cli.main([str(a) for a in args] + ["--memory-limit", "1GiB"])


def test_warp_zarr_to_zarr_equals_the_in_memory_warp(tmp_path, rng):
    image = rng.standard_normal((20, 18, 16, 2)).astype(np.float32)
    ddf = rng.uniform(-3, 3, (12, 14, 10, 3)).astype(np.float32)
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    image_path = store(tmp_path / "image.zarr", image, (8, 8, 8, 2), zarr_format=2)  # v2 is read too
    ddf_path = store(tmp_path / "ddf.zarr", ddf, (5, 6, 4, 3), affine)
    assert run("warp", "-i", image_path, "-d", ddf_path, "-o", tmp_path / "out.zarr", "--boundary", "constant") == 0
    written = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    want = arrayreg.warp_image_ddf(image[None], ddf[None], boundary="constant")[0]
    np.testing.assert_array_equal(written[...], want)
    assert written.metadata.zarr_format == 3
    np.testing.assert_array_equal(written.attrs["affine"], affine)


def test_warp_nifti_image_with_zarr_ddf_to_nifti(tmp_path, rng, scheduler):
    labels = rng.integers(0, 5, (9, 8, 7)).astype(np.int16)
    ddf = rng.uniform(-2, 2, (6, 5, 4, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "labels.nii.gz")
    ddf_path = store(tmp_path / "ddf.zarr", ddf, (3, 3, 3, 3))
    out = tmp_path / "warped.nii.gz"
    assert run("warp", "-i", tmp_path / "labels.nii.gz", "-d", ddf_path, "-o", out, "--interpolation", "label",
               "--scheduler", scheduler) == 0
    want = arrayreg.warp_image_ddf(labels[None], ddf[None], interpolation="label")[0]
    written = nib.load(out)
    assert written.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), want)


def test_apply_zarr_moving_equals_the_nifti_path(tmp_path, rng, scheduler):
    moving = rng.standard_normal((14, 12, 10)).astype(np.float32)
    moving_affine = np.array([[1.2, 0.1, 0, -5], [0, 0.9, 0, 3], [0.05, 0, 1.7, 1], [0, 0, 0, 1]])
    reference_affine = np.diag([1.1, 1.0, 1.5, 1.0])
    nib.save(nib.Nifti1Image(moving, moving_affine), tmp_path / "moving.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((11, 10, 9), np.float32), reference_affine), tmp_path / "fixed.nii.gz")
    write_transform(tmp_path / "affine.mat",
                    AffineTransform(np.array([[1, 0.05, 0, 1.5], [0, 1, 0, -2], [0, 0, 1, 0.5], [0, 0, 0, 1]])))
    moving_store = store(tmp_path / "moving.zarr", moving, (5, 5, 5), moving_affine)
    common = ["-r", tmp_path / "fixed.nii.gz", "-t", tmp_path / "affine.mat", "--scheduler", scheduler]
    assert cli.main([str(a) for a in ["apply", "-i", tmp_path / "moving.nii.gz", "-o", tmp_path / "w.nii.gz"]
                     + common]) == 0
    assert run("apply", "-i", moving_store, "-o", tmp_path / "w.zarr", *common) == 0
    written = zarr.open_array(str(tmp_path / "w.zarr"), mode="r")
    np.testing.assert_allclose(written[...], nib.load(tmp_path / "w.nii.gz").get_fdata(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(written.attrs["affine"], nib.load(tmp_path / "fixed.nii.gz").affine)


def test_a_store_without_an_affine_is_refused_by_apply(tmp_path, rng, capsys, scheduler):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / "fixed.nii.gz")
    write_transform(tmp_path / "a.mat", AffineTransform(np.eye(4)))
    moving = store(tmp_path / "m.zarr", np.zeros((4, 4, 4), np.float32), (2, 2, 2))
    assert run("apply", "-i", moving, "-r", tmp_path / "fixed.nii.gz", "-t", tmp_path / "a.mat",
               "-o", tmp_path / "o.zarr", "--scheduler", scheduler) == 2
    assert "'affine' attribute" in capsys.readouterr().err
