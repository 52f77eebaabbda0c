"""Real-GPU tests (CuPy + a CUDA device); marked ``gpu`` and skipped cleanly without one."""

import numpy as np
import pytest

import arrayreg

from . import reference_cases as parity


def _cupy_with_device():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # noqa: BLE001 - no CuPy, no driver or no device: skip
        return None


cp = _cupy_with_device()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cp is None, reason="needs CuPy and a CUDA device")]


def test_cpu_equals_gpu_on_random_inputs(rng):
    image = rng.standard_normal((2, 20, 21, 22, 2)).astype(np.float32)
    ddf = rng.uniform(-4, 4, (2, 18, 19, 20, 3)).astype(np.float32)
    for mode in [{}, {"interpolation": "nearest"}, {"boundary": "constant", "fill_value": 1.0}]:
        cpu = arrayreg.warp_image_ddf(image, ddf, **mode)
        gpu = arrayreg.warp_image_ddf(cp.asarray(image), cp.asarray(ddf), **mode)
        assert isinstance(gpu, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-6, atol=1e-6)


def _to_device(value):
    return cp.asarray(value) if isinstance(value, np.ndarray) else value


@pytest.mark.parametrize("case", [c for c in sorted(parity.CASES) if c.split(".")[0] in (
    "resample", "warp_image_ddf", "warp_grid", "resize3d", "Warping", "IntDVF", "AdditiveUpSampling")])
def test_reference_file_on_cupy_arrays(case, monkeypatch):
    monkeypatch.setattr(parity, "field", lambda c, name: _to_device(parity.DATA[f"{c}.{name}"]))
    info = parity.CASES[case]
    runner = parity.run_function if info["function"].startswith("layer_util.") else parity.run_layer
    result = runner(case, info)
    assert isinstance(result, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(result), parity.DATA[f"{case}.out"], rtol=0, atol=1e-5)


def test_non_default_stream(rng):
    image = cp.asarray(rng.standard_normal((1, 16, 17, 18)).astype(np.float32))
    ddf = cp.asarray(rng.uniform(-2, 2, (1, 16, 17, 18, 3)).astype(np.float32))
    want = arrayreg.warp_image_ddf(image, ddf)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        got = arrayreg.warp_image_ddf(image, ddf)
    stream.synchronize()
    cp.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_float64_and_float16(rng, dtype):
    image = rng.standard_normal((1, 8, 9, 10)).astype(dtype)
    ddf = rng.uniform(-2, 2, (1, 8, 9, 10, 3)).astype(dtype)
    cpu = arrayreg.warp_image_ddf(image, ddf)
    gpu = arrayreg.warp_image_ddf(cp.asarray(image), cp.asarray(ddf))
    assert gpu.dtype == cpu.dtype
    np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-6, atol=1e-6)


def test_integer_labels_with_nearest(rng):
    labels = rng.integers(0, 9, (1, 8, 9, 10)).astype(np.int32)
    ddf = rng.uniform(-2, 2, (1, 8, 9, 10, 3)).astype(np.float32)
    cpu = arrayreg.warp_image_ddf(labels, ddf, interpolation="nearest")
    gpu = arrayreg.warp_image_ddf(cp.asarray(labels), cp.asarray(ddf), interpolation="nearest")
    assert gpu.dtype == np.int32
    np.testing.assert_array_equal(cp.asnumpy(gpu), cpu)


LAYER_CASES = sorted(c for c, info in parity.CASES.items() if not info["function"].startswith("layer_util."))


@pytest.mark.parametrize("case", LAYER_CASES)
def test_every_layer_case_on_cupy_arrays(case, monkeypatch):
    """The weights stay NumPy (as loaded); the layer copies them to the GPU for CuPy inputs."""
    monkeypatch.setattr(parity, "field", lambda c, name: _to_device(parity.DATA[f"{c}.{name}"]))
    info = parity.CASES[case]
    result = parity.run_layer(case, info)
    want = parity.expected(case, info)
    atol = 1e-4 if case.startswith(parity.DEEP_BLOCKS) else 1e-5
    results = result if isinstance(result, tuple) else (result,)
    wants = want if isinstance(want, tuple) else (want,)
    for got, ref in zip(results, wants):
        assert isinstance(got, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(got), cp.asnumpy(ref), rtol=0, atol=atol)


@pytest.mark.parametrize("strides", [1, 2])
def test_conv_primitives_cupy_equal_numpy(rng, strides):
    from arrayreg.nn import functional as F

    x = rng.standard_normal((2, 9, 10, 11, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 4, 6)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    for fn, k in ((F.conv3d, kernel), (F.conv3d_transpose, kernel.transpose(0, 1, 2, 4, 3).copy())):
        cpu = fn(x, k, bias, strides)
        gpu = fn(cp.asarray(x), cp.asarray(k), cp.asarray(bias), strides)
        assert isinstance(gpu, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(cp.asnumpy(F.max_pool3d(cp.asarray(x))), F.max_pool3d(x))
    for name in F.ACTIVATIONS:
        np.testing.assert_allclose(cp.asnumpy(F.activation(cp.asarray(x), name)), F.activation(x, name),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strides, padding, shape", [
    (1, "same", (2, 9, 10, 11, 4)), (2, "same", (1, 8, 10, 12, 4)), (2, "valid", (1, 9, 9, 10, 4)),
])
def test_cudnn_path_equals_the_cublas_path(rng, monkeypatch, strides, padding, shape):
    """With nvidia-cudnn-frontend importable, float32 conv3d runs on cuDNN (a fallback warning fails the test)."""
    import warnings

    from arrayreg.nn import _cudnn
    from arrayreg.nn import functional as F

    if _cudnn.binding() is None:
        pytest.skip("nvidia-cudnn-frontend is not importable")
    x = cp.asarray(rng.standard_normal(shape).astype(np.float32))
    kernel = cp.asarray(rng.standard_normal((3, 3, 3, 4, 5)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_cudnn = F.conv3d(x, kernel, None, strides, padding)
    monkeypatch.setattr(_cudnn, "binding", lambda: None)
    by_cublas = F.conv3d(x, kernel, None, strides, padding)
    np.testing.assert_allclose(cp.asnumpy(by_cudnn), cp.asnumpy(by_cublas), rtol=1e-5, atol=1e-5)
    on_host = F.conv3d(cp.asnumpy(x), cp.asnumpy(kernel), None, strides, padding)
    np.testing.assert_allclose(cp.asnumpy(by_cublas), on_host,
                               rtol=1e-5, atol=1e-4)
