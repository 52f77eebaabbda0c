"""`arrayreg apply` against ANTs itself (antspyx's apply_transforms), with files arrayreg wrote.

Every call passes ``whichtoinvert``: without it antspyx silently inverts a ``.mat``.
"""

import nibabel as nib
import numpy as np
import pytest

import arrayreg
from arrayreg import cli, io

ants = pytest.importorskip("ants")


def oblique(spacing, angle, origin):
    """A vox-to-RAS affine: a rotation by ``angle`` radians about the second axis, then anisotropic voxels."""
    c, s = np.cos(angle), np.sin(angle)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) * np.array(spacing)
    affine[:3, 3] = origin
    return affine


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ants")
    rng = np.random.default_rng(3)
    g = np.indices((18, 16, 14))
    moving = (np.sin(g[0] / 3) + np.cos(g[1] / 4) * g[2] / 8 + 0.01 * rng.standard_normal(g.shape[1:]))
    reference_affine = oblique((0.8, 1.1, 1.7), 0.2, (-6.0, -8.0, -9.0))
    moving_affine = oblique((1.0, 1.2, 1.3), -0.15, (-7.0, -9.0, -8.0))
    f = np.indices((10, 11, 9))
    field = np.stack([np.sin(f[0] / 3) * 1.5, np.cos(f[1] / 4), np.sin(f[2] / 2) * 0.8], -1).astype(np.float32)
    affine = np.eye(4)
    affine[:3, :3] = [[1.02, 0.05, 0], [-0.03, 0.97, 0.04], [0.02, 0, 1.01]]
    affine[:3, 3] = [1.0, -0.5, 0.7]
    paths = {name: folder / name for name in ("reference.nii.gz", "moving.nii.gz", "warp.nii.gz", "affine.mat")}
    nib.save(nib.Nifti1Image(np.zeros((16, 15, 12), np.float32), reference_affine), paths["reference.nii.gz"])
    nib.save(nib.Nifti1Image(moving.astype(np.float32), moving_affine), paths["moving.nii.gz"])
    io.write_transform(paths["warp.nii.gz"], io.FieldTransform(field, oblique((1.8, 2.0, 2.2), 0.1, (-9, -10, -9))))
    io.write_transform(paths["affine.mat"], io.AffineTransform(affine))
    return {name: str(path) for name, path in paths.items()}


CHAINS = {  # -t list and ANTs' whichtoinvert
    "warp then affine": (["warp.nii.gz", "affine.mat"], [False, False]),
    "affine then warp": (["affine.mat", "warp.nii.gz"], [False, False]),
    "warp then inverse affine": (["warp.nii.gz", "affine.mat"], [False, True]),
}


def ours(files, name, interpolation, tmp_path):
    names, invert = CHAINS[name]
    options = []
    for item, flag in zip(names, invert):
        options += ["-t", f"[{files[item]},1]" if flag else files[item]]
    out = tmp_path / "warped.nii.gz"
    assert cli.main(["apply", "-i", files["moving.nii.gz"], "-r", files["reference.nii.gz"], *options, "-o", str(out),
                     "--interpolation", interpolation]) == 0
    return np.asanyarray(nib.load(out).dataobj)


def theirs(files, name, interpolator):
    names, invert = CHAINS[name]
    return ants.apply_transforms(ants.image_read(files["reference.nii.gz"]), ants.image_read(files["moving.nii.gz"]),
                                 [files[n] for n in names], interpolator=interpolator, whichtoinvert=invert).numpy()


def moving_points(files, name):
    """Each reference voxel's point in the moving grid, through arrayreg's own chain."""
    names, invert = CHAINS[name]
    chain = [io.read_transform(files[n])[0] for n in names]
    chain = [t.inverse() if flag else t for t, flag in zip(chain, invert)]
    reference, moving = nib.load(files["reference.nii.gz"]), nib.load(files["moving.nii.gz"])
    ddf = arrayreg.transforms_to_ddf(chain, reference.shape, reference.affine, moving.affine, dtype=np.float64)
    return ddf[0] + np.moveaxis(np.indices(reference.shape), 0, -1), np.array(moving.shape)


@pytest.mark.parametrize("name", list(CHAINS))
def test_linear_matches_ants(files, name, tmp_path):
    got, want = ours(files, name, "linear", tmp_path), theirs(files, name, "linear")
    points, shape = moving_points(files, name)
    inside = np.all((points >= 1) & (points <= shape - 2), axis=-1)
    assert inside.sum() > 500
    assert np.abs(got - want)[inside].max() <= 1e-4 * np.ptp(want)


@pytest.mark.parametrize("name", list(CHAINS))
def test_nearest_matches_ants_away_from_ties(files, name, tmp_path):
    got, want = ours(files, name, "nearest", tmp_path), theirs(files, name, "nearestNeighbor")
    points, shape = moving_points(files, name)
    away = np.all((points >= 0) & (points <= shape - 1), axis=-1)
    away &= np.all(np.abs(points - np.floor(points) - 0.5) > 1e-3, axis=-1)
    assert away.sum() > 500
    np.testing.assert_array_equal(got[away], want[away])
