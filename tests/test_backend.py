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
