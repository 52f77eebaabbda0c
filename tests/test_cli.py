import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import arrayreg
from arrayreg import cli

AFFINE = np.array([[1.5, 0, 0, -20], [0, 0, 2.0, 5], [0, -1.0, 0, 3], [0, 0, 0, 1]])


@pytest.fixture
def files(tmp_path, rng):
    image = rng.standard_normal((6, 7, 8)).astype(np.float32)
    labels = rng.integers(0, 4, (6, 7, 8)).astype(np.int16)
    ddf = rng.uniform(-2, 2, (5, 6, 7, 3)).astype(np.float32)
    ddf_image = nib.Nifti1Image(ddf, AFFINE)
    ddf_image.header["descrip"] = b"predicted ddf"
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("image", "labels", "ddf", "ddf5", "zero")}
    nib.save(nib.Nifti1Image(image, np.eye(4)), paths["image"])
    nib.save(nib.Nifti1Image(labels, np.eye(4)), paths["labels"])
    nib.save(ddf_image, paths["ddf"])
    nib.save(nib.Nifti1Image(ddf[:, :, :, None, :], AFFINE), paths["ddf5"])
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 8, 3), np.float32), AFFINE), paths["zero"])
    return dict(paths=paths, image=image, labels=labels, ddf=ddf, tmp=tmp_path)


def run(*args):
    return cli.main([str(a) for a in args])


def test_warp_equals_the_library_call_and_keeps_the_ddf_affine_and_header(files):
    out = files["tmp"] / "warped.nii.gz"
    assert run("warp", "-i", files["paths"]["image"], "-d", files["paths"]["ddf"], "-o", out) == 0
    written = nib.load(out)
    want = arrayreg.warp_image_ddf(files["image"][None], files["ddf"][None])[0]
    np.testing.assert_array_equal(written.get_fdata(dtype=np.float32), want)
    np.testing.assert_allclose(written.affine, AFFINE)
    assert written.header["descrip"] == b"predicted ddf"


def test_warp_reads_the_five_dimensional_ddf_layout(files):
    out = files["tmp"] / "w5.nii.gz"
    assert run("warp", "-i", files["paths"]["image"], "-d", files["paths"]["ddf5"], "-o", out) == 0
    want = arrayreg.warp_image_ddf(files["image"][None], files["ddf"][None])[0]
    np.testing.assert_array_equal(nib.load(out).get_fdata(dtype=np.float32), want)


def test_label_map_keeps_its_dtype_with_nearest(files):
    out = files["tmp"] / "labels_warped.nii.gz"
    assert run("warp", "--image", files["paths"]["labels"], "--ddf", files["paths"]["ddf"], "--out", out,
               "--interpolation", "nearest", "--boundary", "constant", "--fill-value", "3") == 0
    written = nib.load(out)
    assert np.asanyarray(written.dataobj).dtype == np.int16
    want = arrayreg.warp_image_ddf(files["labels"][None], files["ddf"][None], interpolation="nearest",
                                   boundary="constant", fill_value=3)[0]
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), want)


def test_identity_ddf_returns_the_image_and_several_images_go_to_a_folder(files):
    folder = files["tmp"] / "many"
    assert run("warp", "-i", files["paths"]["image"], "-i", files["paths"]["labels"], "-d", files["paths"]["zero"],
               "-o", folder, "--interpolation", "nearest") == 0
    np.testing.assert_array_equal(nib.load(folder / "warped_image.nii.gz").get_fdata(dtype=np.float32), files["image"])
    np.testing.assert_array_equal(np.asanyarray(nib.load(folder / "warped_labels.nii.gz").dataobj), files["labels"])


def test_integrate_and_resize(files):
    ddf_out = files["tmp"] / "int.nii.gz"
    assert run("integrate", "-i", files["paths"]["ddf"], "-o", ddf_out, "--num-steps", "4") == 0
    np.testing.assert_array_equal(nib.load(ddf_out).get_fdata(dtype=np.float32),
                                  arrayreg.integrate_dvf(files["ddf"][None], 4)[0])
    small = files["tmp"] / "small.nii.gz"
    assert run("resize", "-i", files["paths"]["labels"], "-o", small, "--size", "3", "4", "5",
               "--method", "nearest") == 0
    np.testing.assert_array_equal(np.asanyarray(nib.load(small).dataobj),
                                  arrayreg.resize3d(files["labels"], (3, 4, 5), "nearest"))


def test_augment_uses_one_deformation_for_image_and_labels(files):
    out = files["tmp"] / "aug"
    assert run("augment", "-i", files["paths"]["image"], "-l", files["paths"]["labels"], "-o", out, "--seed", "5") == 0
    ddf = nib.load(out / "ddf.nii.gz").get_fdata(dtype=np.float32)
    np.testing.assert_allclose(nib.load(out / "image.nii.gz").get_fdata(dtype=np.float32),
                               arrayreg.warp_image_ddf(files["image"][None], ddf[None])[0], rtol=1e-6, atol=1e-6)
    labels = np.asanyarray(nib.load(out / "label.nii.gz").dataobj)
    assert labels.dtype == np.int16
    want = arrayreg.warp_image_ddf(files["labels"][None], ddf[None], interpolation="nearest")[0]
    np.testing.assert_array_equal(labels, want)


@pytest.mark.parametrize(
    "args, message",
    [
        (["warp", "-i", "{tmp}/missing.nii.gz", "-d", "{ddf}"], "no such file"),
        (["warp", "-i", "{tmp}/notes.nii.gz", "-d", "{ddf}"], "not a readable NIfTI file"),
        (["warp", "-i", "{image}", "-d", "{image}"], "a DDF must have shape"),
        (["warp", "-i", "{ddf}", "-d", "{ddf}", "-o", "{tmp}/x.nii.gz", "--interpolation", "nearest"], None),
        (["augment", "-i", "{image}", "-l", "{ddf}", "-o", "{tmp}/bad"], "does not match"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(files, capsys, args, message):
    (files["tmp"] / "notes.nii.gz").write_text("hello")
    values = dict(tmp=files["tmp"], ddf=files["paths"]["ddf"], image=files["paths"]["image"])
    code = run(*[a.format(**values) for a in args])
    err = capsys.readouterr().err
    if message is None:  # a 4-D image is (m1, m2, m3, ch): this one is valid
        assert code == 0
        return
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list((files["tmp"]).glob("*.txt")) and not (files["tmp"] / "bad").exists()


def test_python_m_arrayreg_help_and_error_without_traceback(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "arrayreg", "warp", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "examples:" in help_text.stdout and "--fill-value" in help_text.stdout
    failed = subprocess.run([sys.executable, "-m", "arrayreg", "warp", "-i", str(tmp_path / "no.nii"), "-d",
                             str(tmp_path / "no.nii")], capture_output=True, text=True)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr and "no such file" in failed.stderr


def test_out_that_is_not_nifti_follows_deepreg(files, capsys, monkeypatch):
    # deepreg_warp writes dirname(out)/warped.nii.gz when --out is not a .nii/.nii.gz file
    out = files["tmp"] / "sub" / "x.txt"
    assert run("warp", "-i", files["paths"]["image"], "-d", files["paths"]["ddf"], "-o", out) == 0
    assert (files["tmp"] / "sub" / "warped.nii.gz").is_file()
    assert "should end with .nii" in capsys.readouterr().err
    monkeypatch.chdir(files["tmp"])
    assert run("warp", "-i", files["paths"]["image"], "-d", files["paths"]["ddf"]) == 0
    assert (files["tmp"] / "warped.nii.gz").is_file()


def test_top_level_help_has_examples():
    out = subprocess.run([sys.executable, "-m", "arrayreg", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "examples:" in out.stdout and "demo" in out.stdout


def test_a_complex_ddf_file_is_refused(files, capsys):
    path = files["tmp"] / "complex.nii.gz"
    nib.save(nib.Nifti1Image(files["ddf"].astype(np.complex64) + 1j, AFFINE), path)
    assert run("warp", "-i", files["paths"]["image"], "-d", path, "-o", files["tmp"] / "w.nii.gz") == 2
    err = capsys.readouterr().err
    assert "a DDF must hold real numbers; got complex values" in err and len(err.strip().splitlines()) == 1
    assert not (files["tmp"] / "w.nii.gz").exists()


def test_several_images_with_one_file_name_are_refused_before_any_work(files, capsys):
    for folder in ("s1", "s2"):
        (files["tmp"] / folder).mkdir()
        nib.save(nib.Nifti1Image(files["image"], np.eye(4)), files["tmp"] / folder / "scan.nii.gz")
    out = files["tmp"] / "out"
    code = run("warp", "-i", files["tmp"] / "s1/scan.nii.gz", "-i", files["tmp"] / "s2/scan.nii.gz",
               "-d", files["paths"]["ddf"], "-o", out)
    err = capsys.readouterr().err
    assert code == 2 and "would both be written to" in err and str(out / "warped_scan.nii.gz") in err
    assert not out.exists()


def test_out_dash_is_refused_rather_than_written_to_the_working_folder(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("warp", "-i", files["paths"]["image"], "-d", files["paths"]["ddf"], "-o", "-") == 2
    err = capsys.readouterr().err
    assert "--out - (standard output) is not supported" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "warped.nii.gz").exists()


@pytest.mark.parametrize("args, message", [
    (["warp", "-i", "x.nii.gz"], "the following arguments are required: --ddf/-d"),
    (["warp", "-i", "x.nii.gz", "-d", "y.nii.gz", "--bogus"], "unrecognized arguments: --bogus"),
    (["warp", "-i", "x.nii.gz", "-d", "y.nii.gz", "--interpolation", "quintic"], "invalid choice: 'quintic'"),
    (["resize", "-i", "x.nii.gz", "--size", "4", "4"], "expected 3 arguments"),
    (["integrate", "-i", "x.nii.gz", "--num-steps", "abc"], "invalid int value: 'abc'"),
])
def test_usage_errors_are_one_line(capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        run(*args)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"arrayreg {args[0]}: error: ") and message in err


def test_help_is_still_complete(capsys):
    with pytest.raises(SystemExit) as stop:
        run("warp", "--help")
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "usage: arrayreg warp" in out and "--fill-value" in out and "examples:" in out


def test_an_impossible_size_exits_2_with_the_size_needed(files, capsys):
    code = run("resize", "-i", files["paths"]["image"], "-o", files["tmp"] / "big.nii.gz",
               "--size", "100000", "100000", "100000")
    err = capsys.readouterr().err
    assert code == 2 and "Unable to allocate 3.55 PiB" in err and "100000, 100000, 100000" in err
    assert len(err.strip().splitlines()) == 1


def test_a_non_ascii_output_name_on_an_ascii_terminal_still_exits_0(files, tmp_path):
    out = tmp_path / "verzerrt_\u00e4.nii.gz"
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    done = subprocess.run([sys.executable, "-m", "arrayreg", "warp", "-i", str(files["paths"]["image"]),
                           "-d", str(files["paths"]["ddf"]), "-o", str(out)], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr
    assert out.is_file() and b"verzerrt_\\xe4" in done.stdout


INTERRUPTED_WRITE = """
import os, signal, sys
import nibabel
from arrayreg import cli

# A job started in the background by a non-interactive shell inherits SIGINT ignored; test Python's default.
signal.signal(signal.SIGINT, signal.default_int_handler)

def half_written_then_signalled(image, filename):
    with open(filename, "wb") as file:
        file.write(b"\\0" * 4096)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))

nibabel.save = half_written_then_signalled
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("signame, code, message",
                         [("SIGTERM", 143, ""), ("SIGINT", 130, "arrayreg warp: interrupted")])
def test_a_signal_during_the_write_leaves_no_temporary_file(files, signame, code, message):
    out = files["tmp"] / "out" / "warped.nii.gz"
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_WRITE, signame, "warp", "-i", str(files["paths"]["image"]),
                           "-d", str(files["paths"]["ddf"]), "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == code, done.stderr
    assert list(out.parent.iterdir()) == []
    assert done.stderr.strip() == message


# ------------------------------------------------------------------ apply (world-space transforms)
def _sitk_scene(sitk, tmp_path, rng):
    """Oblique, anisotropic reference, moving and field grids written by SimpleITK, and an affine .mat."""
    def image(values, spacing, origin, direction, vector=False):
        made = sitk.GetImageFromArray(values, isVector=vector)
        made.SetSpacing(spacing)
        made.SetOrigin(origin)
        made.SetDirection(direction)
        return made

    c, s, c2, s2 = np.cos(0.17), np.sin(0.17), np.cos(0.28), np.sin(0.28)
    tilt = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    g = np.indices((14, 16, 18))  # SimpleITK's (z, y, x)
    scene = dict(
        reference=image(np.zeros((12, 14, 16), np.float32), (1.1, 0.9, 1.6), (2.0, -3.0, 1.0), tilt),
        moving=image((np.sin(g[2] / 3) + np.cos(g[1] / 4) * g[0] / 8).astype(np.float32), (1.0, 1.2, 1.3),
                     (0.0, -2.0, 0.5), (1, 0, 0, 0, c2, -s2, 0, s2, c2)),
        field=image(rng.uniform(-1, 1, (8, 9, 10, 3)), (2.0, 1.8, 2.2), (-1.0, -5.0, 0.0), tilt, vector=True),
    )
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.03, 0.04, 0, -0.02, 0.98, 0.03, 0.01, 0, 1.02))
    affine.SetTranslation((0.8, -0.4, 0.6))
    affine.SetCenter((6, 3, 9))
    for name in ("reference", "moving", "field"):
        sitk.WriteImage(scene[name], str(tmp_path / f"{name}.nii.gz"))
    sitk.WriteTransform(affine, str(tmp_path / "affine.mat"))
    scene["affine"] = affine
    return scene


def test_apply_matches_simpleitk_for_a_warp_and_an_inverted_affine(tmp_path, rng):
    sitk = pytest.importorskip("SimpleITK")
    scene = _sitk_scene(sitk, tmp_path, rng)
    out, field_out = tmp_path / "warped.nii.gz", tmp_path / "chain_field.nii.gz"
    assert run("apply", "-i", tmp_path / "moving.nii.gz", "-r", tmp_path / "reference.nii.gz",
               "-t", tmp_path / "field.nii.gz", "-t", f"[{tmp_path / 'affine.mat'},1]", "-o", out,
               "--output-field", field_out) == 0
    field = sitk.DisplacementFieldTransform(sitk.Cast(scene["field"], sitk.sitkVectorFloat64))
    chain = sitk.CompositeTransform([scene["affine"].GetInverse(), field])  # ITK's list: the field acts first
    expected = sitk.Resample(scene["moving"], scene["reference"], chain, sitk.sitkLinear, 0.0)
    written = nib.load(out)
    assert int(written.header["intent_code"]) == 0 and written.shape == scene["reference"].GetSize()
    np.testing.assert_allclose(written.affine, nib.load(tmp_path / "reference.nii.gz").affine)
    got = np.asanyarray(written.dataobj).transpose(2, 1, 0)
    want = sitk.GetArrayFromImage(expected)
    # compare where the moving point is a voxel inside the moving grid (edges follow arrayreg's constant rule)
    mapped = sitk.TransformToDisplacementField(chain, sitk.sitkVectorFloat64, scene["reference"].GetSize(),
                                               scene["reference"].GetOrigin(), scene["reference"].GetSpacing(),
                                               scene["reference"].GetDirection())
    inside = _inside_moving(sitk, scene, mapped)
    assert inside.sum() > 500
    assert np.abs(got - want)[inside].max() <= 1e-4 * np.ptp(want)
    read_back = sitk.ReadImage(str(field_out))
    np.testing.assert_allclose(sitk.GetArrayFromImage(read_back), sitk.GetArrayFromImage(mapped), atol=1e-4)


def _inside_moving(sitk, scene, mapped):
    """Reference voxels (SimpleITK's z, y, x order) whose moving point lies a voxel inside the moving grid."""
    reference, moving = scene["reference"], scene["moving"]
    displacement = sitk.GetArrayFromImage(mapped)
    inside = np.zeros(displacement.shape[:3], bool)
    size = np.array(moving.GetSize())
    for index in np.ndindex(*displacement.shape[:3]):
        point = np.array(reference.TransformIndexToPhysicalPoint(tuple(int(v) for v in index[::-1])))
        voxel = np.array(moving.TransformPhysicalPointToContinuousIndex(tuple(point + displacement[index])))
        inside[index] = np.all((voxel >= 1) & (voxel <= size - 2))
    return inside


def test_apply_streams_several_images_with_the_reference_header(tmp_path, rng):
    sitk = pytest.importorskip("SimpleITK")
    _sitk_scene(sitk, tmp_path, rng)
    second = tmp_path / "second" / "moving.nii.gz"
    second.parent.mkdir()
    moving = nib.load(tmp_path / "moving.nii.gz")
    labels = rng.integers(0, 5, moving.shape).astype(np.int16)
    nib.save(nib.Nifti1Image(labels, moving.affine), tmp_path / "labels.nii.gz")
    assert run("apply", "-i", tmp_path / "moving.nii.gz", "-i", tmp_path / "labels.nii.gz", "-r",
               tmp_path / "reference.nii.gz", "-t", tmp_path / "affine.mat", "-o", tmp_path / "out",
               "--interpolation", "nearest") == 0
    warped_labels = nib.load(tmp_path / "out" / "warped_labels.nii.gz")
    assert np.asanyarray(warped_labels.dataobj).dtype == np.int16
    from arrayreg import io

    ddf = io.transforms_to_ddf(io.read_transform(tmp_path / "affine.mat"), warped_labels.shape,
                               nib.load(tmp_path / "reference.nii.gz").affine, moving.affine)
    want = arrayreg.warp_image_ddf(labels[None], ddf, interpolation="nearest", boundary="constant")[0]
    np.testing.assert_array_equal(np.asanyarray(warped_labels.dataobj), want)


def test_apply_refuses_to_invert_a_field_and_names_what_to_do(tmp_path, rng, capsys):
    sitk = pytest.importorskip("SimpleITK")
    _sitk_scene(sitk, tmp_path, rng)
    assert run("apply", "-i", tmp_path / "moving.nii.gz", "-r", tmp_path / "reference.nii.gz",
               "-t", f"[{tmp_path / 'field.nii.gz'},1]") == 2
    assert "only an affine has an exact inverse" in capsys.readouterr().err


def test_warp_refuses_an_itk_field_and_points_to_apply(files, capsys):
    field = nib.Nifti1Image(files["ddf"][:, :, :, None, :], AFFINE)
    field.header.set_intent("vector")
    nib.save(field, files["tmp"] / "itk_field.nii.gz")
    assert run("warp", "-i", files["paths"]["image"], "-d", files["tmp"] / "itk_field.nii.gz") == 2
    err = capsys.readouterr().err
    assert "arrayreg apply" in err and "intent_code 1007" in err and len(err.strip().splitlines()) == 1


def test_a_warped_image_never_inherits_a_vector_intent(files):
    ddf = nib.Nifti1Image(files["ddf"], AFFINE)
    ddf.header.set_intent("estimate")  # any intent of the DDF file: the warped image is plain data
    nib.save(ddf, files["tmp"] / "intent_ddf.nii.gz")
    out = files["tmp"] / "plain.nii.gz"
    assert run("warp", "-i", files["paths"]["image"], "-d", files["tmp"] / "intent_ddf.nii.gz", "-o", out) == 0
    assert int(nib.load(out).header["intent_code"]) == 0


def test_the_readme_example_for_ants_files_runs_and_equals_apply(tmp_path, rng, monkeypatch):
    """The Python block of README's "Using fields from ANTs, ITK and FSL", run on files named as there."""
    from pathlib import Path

    from arrayreg import io

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Using fields from ANTs, ITK and FSL", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    tilt = np.array([[0.9, 0.1, 0, -8], [-0.1, 1.2, 0.1, -9], [0, -0.1, 1.4, -7], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.zeros((12, 11, 10), np.float32), tilt), tmp_path / "fixed.nii.gz")
    nib.save(nib.Nifti1Image(rng.standard_normal((13, 12, 11)).astype(np.float32), AFFINE), tmp_path / "moving.nii.gz")
    field = io.FieldTransform(rng.uniform(-2, 2, (6, 6, 5, 3)), tilt @ np.diag([2.0, 2, 2, 1]))
    io.write_transform(tmp_path / "sub1Warp.nii.gz", field)
    io.write_transform(tmp_path / "sub0GenericAffine.mat", io.AffineTransform(np.diag([1.1, 0.9, 1.0, 1.0])))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert run("apply", "-i", "moving.nii.gz", "-r", "fixed.nii.gz", "-t", "sub1Warp.nii.gz", "-t",
               "sub0GenericAffine.mat", "-o", "cli.nii.gz", "--output-field", "cli_field.nii.gz") == 0
    np.testing.assert_array_equal(nib.load("warped.nii.gz").get_fdata(), nib.load("cli.nii.gz").get_fdata())
    np.testing.assert_array_equal(nib.load("chain.nii.gz").get_fdata(), nib.load("cli_field.nii.gz").get_fdata())
