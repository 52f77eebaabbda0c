import subprocess
import sys

import numpy as np
import pytest

import arrayreg
from arrayreg._backend import backend_of


class FakeCupyArray:
    """Stands in for a CuPy array: only its type's module matters to dispatch."""


FakeCupyArray.__module__ = "cupy._core.core"


def test_backend_of_numpy_is_cpu():
    backend = backend_of(a=np.zeros(2), b=None)
    assert backend.name == "cpu" and backend.xp is np


def test_mixing_host_and_device_arrays_names_the_arguments():
    with pytest.raises(TypeError, match="CuPy \\(GPU\\) for ddf and NumPy/host for image"):
        arrayreg.warp_image_ddf(np.zeros((1, 2, 2, 2)), FakeCupyArray())


def test_simulated_gpu_refuses_without_the_simulator(monkeypatch):
    from numba import config

    from arrayreg.testing import simulated_gpu

    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0)
    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM=1"):
        with simulated_gpu():
            pass


def test_import_does_not_import_cupy_or_compile():
    code = "import sys, arrayreg; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class DeviceArray(np.ndarray):
    """A NumPy array that dispatch takes for a CuPy array (its type's module is ``cupy``)."""


DeviceArray.__module__ = "cupy._core.core"


@pytest.fixture
def counting_cupy(monkeypatch):
    """A stand-in ``cupy`` whose arrays live "on the device" and that counts every host-to-device copy.

    The CUDA launcher is replaced by a recorder, so no simulator and no GPU
    is needed: what is checked is what the dispatch layer hands the kernels.
    """
    import sys
    import types

    from arrayreg._kernels import cuda

    module = types.ModuleType("cupy")
    module.ndarray = DeviceArray
    copies, launches = [], []

    def to_device(name):
        def convert(value, *args, **kwargs):
            if not isinstance(value, DeviceArray):
                copies.append((name, type(value).__name__, np.shape(value)))
            return getattr(np, name)(value, *args, **kwargs).view(DeviceArray)
        return convert

    def allocate(name):
        # ``empty`` gives zeros: the kernels do not run, and the n-D path indexes with the tables they would fill
        fill = {"empty": "zeros", "empty_like": "zeros_like"}.get(name, name)
        return lambda *args, **kwargs: getattr(np, fill)(*args, **kwargs).view(DeviceArray)

    for name in ("asarray", "ascontiguousarray", "array"):
        setattr(module, name, to_device(name))
    for name in ("empty", "zeros", "ones", "arange", "empty_like", "zeros_like", "full"):
        setattr(module, name, allocate(name))
    for name in ("floor", "ceil", "maximum", "minimum", "ldexp", "where", "shares_memory", "float32", "float64"):
        setattr(module, name, getattr(np, name))
    monkeypatch.setitem(sys.modules, "cupy", module)
    monkeypatch.setattr(cuda, "_launch", lambda kernel, n_threads, *args: launches.append((kernel, args)))
    return module, copies, launches


def test_one_call_copies_nothing_from_the_host_beyond_its_inputs(counting_cupy):
    cupy, copies, launches = counting_cupy
    rng = np.random.default_rng(0)
    image = cupy.asarray(rng.standard_normal((2, 6, 5, 4, 2)).astype(np.float32))
    labels = cupy.asarray(rng.integers(0, 4, (2, 6, 5, 4)).astype(np.uint8))
    ddf = cupy.asarray(rng.uniform(-2, 2, (2, 3, 4, 5, 3)).astype(np.float32))
    grid = cupy.asarray(arrayreg.get_reference_grid((3, 4, 5)))
    theta = cupy.asarray(arrayreg.random_transform_generator(2, 0.2, seed=1))
    copies.clear()
    calls = {
        "warp_image_ddf": lambda: arrayreg.warp_image_ddf(image, ddf),
        "warp_image_ddf nearest": lambda: arrayreg.warp_image_ddf(labels, ddf, interpolation="nearest"),
        "warp_image_ddf grid_ref": lambda: arrayreg.warp_image_ddf(image, ddf, grid[None]),
        "resample": lambda: arrayreg.resample(image, ddf, boundary="constant"),
        "resample 4-D": lambda: arrayreg.resample(image[..., 0][..., None], ddf[..., :1][..., None, :].repeat(4, -1)),
        "integrate_dvf": lambda: arrayreg.integrate_dvf(ddf, 3),
        "warp_grid": lambda: arrayreg.warp_grid(grid, theta),
        "resize3d": lambda: arrayreg.resize3d(image, (7, 3, 9)),
        "resize3d nearest": lambda: arrayreg.resize3d(labels, (7, 3, 9), "nearest"),
    }
    for name, call in calls.items():
        launches.clear()
        result = call()
        assert copies == [], f"{name} copied host data to the device: {copies}"
        assert launches, f"{name} launched no CUDA kernel"
        assert isinstance(result, DeviceArray), name
        for kernel, args in launches:
            on_host = [type(a).__name__ for a in args if isinstance(a, np.ndarray) and not isinstance(a, DeviceArray)]
            assert not on_host, f"{name}: {kernel.py_func.__name__} got host arrays (Numba would copy them): {on_host}"
