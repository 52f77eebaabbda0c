import nibabel as nib
import numpy as np
import pytest

from arrayreg import cli
from arrayreg.cli import demo


def test_demo_runs_end_to_end_on_the_phantom(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "load_default_volume", lambda: demo.phantom((20, 24, 22)) + ("phantom",))
    assert cli.main(["demo", "-o", str(tmp_path), "--size", "16"]) == 0
    picture = __import__("matplotlib.image", fromlist=["imread"]).imread(tmp_path / "demo.png")
    assert picture.shape[0] > 100 and picture[..., :3].std() > 0.05
    for name in ("image", "labels", "warped", "warped_labels", "ddf"):
        assert (tmp_path / f"{name}.nii.gz").is_file()
    assert np.asanyarray(nib.load(tmp_path / "warped_labels.nii.gz").dataobj).dtype == np.uint8


def test_default_volume_is_the_bundled_template_when_nilearn_is_installed():
    pytest.importorskip("nilearn")
    image, labels, affine, source = demo.load_default_volume()
    assert image.ndim == 3 and image.shape == labels.shape and "MNI152" in source
    assert set(np.unique(labels)) == {0, 1, 2} and affine.shape == (4, 4)
