"""Concurrency, memory bounds and deployment: safe to embed in long unattended pipelines."""

import shutil
import subprocess
import sys
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

import arrayreg
from arrayreg.nn.functional import conv3d, conv3d_transpose

ROOT = Path(arrayreg.__file__).parent


def test_eight_threads_at_once_give_the_serial_results(rng):
    inputs = [
        (rng.standard_normal((1, 20, 21, 22, 2)).astype(np.float32),
         rng.uniform(-3, 3, (1, 18, 19, 20, 3)).astype(np.float32))
        for _ in range(8)
    ]
    calls = [
        lambda i, d: arrayreg.warp_image_ddf(i, d),
        lambda i, d: arrayreg.warp_image_ddf(i, d, interpolation="nearest", boundary="constant"),
        lambda i, d: arrayreg.integrate_dvf(d, 4),
        lambda i, d: arrayreg.resize3d(i, (11, 30, 9)),
        lambda i, d: arrayreg.resample(i, d[:, :5]),
        # the CPU convolutions call BLAS from inside Numba's parallel loops: Winograd, patches, transposed
        lambda i, d: conv3d(d, np.full((3, 3, 3, 3, 4), 0.1, np.float32)),
        lambda i, d: conv3d(d, np.full((3, 3, 3, 3, 4), 0.1, np.float32), strides=2),
        lambda i, d: conv3d_transpose(d, np.full((3, 3, 3, 4, 3), 0.1, np.float32), strides=2),
    ]
    want = [[call(*x) for call in calls] for x in inputs]
    got = [None] * 8
    errors = []

    def work(n):
        try:
            for _ in range(5):
                got[n] = [call(*inputs[n]) for call in calls]
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for results, expected in zip(got, want):
        for a, b in zip(results, expected):
            np.testing.assert_array_equal(a, b)


def traced_peak(call):
    call()  # compile first
    tracemalloc.start()
    result = call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, result


# Temporaries beyond the returned array, as documented in docs/robustness.md.
@pytest.mark.parametrize(
    "name, call, bound",
    [
        ("warp_image_ddf", lambda i, d: arrayreg.warp_image_ddf(i, d), lambda out: 0.10 * out.nbytes),
        ("resample", lambda i, d: arrayreg.resample(i, d), lambda out: 0.10 * out.nbytes),
        ("integrate_dvf", lambda i, d: arrayreg.integrate_dvf(d, 7), lambda out: 1.10 * out.nbytes),
        ("warp_grid", lambda i, d: arrayreg.warp_grid(d[0], np.tile(np.eye(4, 3, dtype=np.float32), (1, 1, 1))),
         lambda out: 0.10 * out.nbytes),
        ("resize3d", lambda i, d: arrayreg.resize3d(i, (80, 64, 48)), lambda out: 0.10 * out.nbytes),
    ],
)
def test_temporaries_stay_within_the_documented_bound(rng, name, call, bound):
    image = rng.standard_normal((1, 40, 48, 56)).astype(np.float32)
    ddf = rng.uniform(-3, 3, (1, 40, 48, 56, 3)).astype(np.float32)
    peak, out = traced_peak(lambda: call(image, ddf))
    assert peak - out.nbytes <= bound(out), name


def test_import_compiles_nothing_and_does_not_load_kernels():
    """Only the Numba-free ``_kernels.device`` (what a device array is), ``_kernels.threads`` (which loads
    libtbb) and ``_kernels.formulas`` (plain source until a target builds it; the plan reads its method
    constants) are loaded by ``import arrayreg``; Numba itself is not imported."""
    code = ("import sys, arrayreg; print(sorted(m for m in sys.modules if m.startswith('arrayreg._kernels.')), "
            "'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("['arrayreg._kernels.device', 'arrayreg._kernels.formulas', "
                                  "'arrayreg._kernels.threads'] False")


def test_numba_cache_dir_is_honoured_for_a_read_only_install(tmp_path):
    install = tmp_path / "site"
    shutil.copytree(ROOT, install / "arrayreg", ignore=shutil.ignore_patterns("__pycache__"))
    for path in install.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    cache = tmp_path / "cache"
    code = (
        "import numpy as np, arrayreg; "
        "print(arrayreg.warp_image_ddf(np.ones((1, 3, 3, 3), np.float32), np.zeros((1, 3, 3, 3, 3), np.float32)).sum())"
    )
    env = {"PYTHONPATH": str(install), "NUMBA_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 27.0
    assert list(cache.rglob("*.nbi")), "the kernels' cache index should be written under NUMBA_CACHE_DIR"
    assert not list(install.rglob("*.nbi"))


def test_normal_use_emits_no_warnings(rng):
    image = rng.standard_normal((1, 6, 7, 8)).astype(np.float32)
    ddf = rng.uniform(-2, 2, (1, 6, 7, 8, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arrayreg.warp_image_ddf(image, ddf)
        arrayreg.warp_image_ddf(image.astype(np.int32), ddf, interpolation="nearest")
        arrayreg.IntDVF((6, 7, 8))(ddf)
        arrayreg.resize3d(image, (3, 4, 5))
        arrayreg.warp_grid(arrayreg.get_reference_grid((6, 7, 8)), arrayreg.random_transform_generator(1, 0.1, 0))
        arrayreg.AdditiveUpSampling((12, 14, 16))(np.stack([image] * 2, -1))
