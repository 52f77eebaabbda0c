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
    assert backend_of(a=np.zeros(2), b=None) == "cpu"
    assert backend_of(a=FakeCupyArray(), b=None) == "cuda"


def test_mixing_host_and_device_arrays_names_the_arguments():
    with pytest.raises(TypeError, match="CuPy \\(GPU\\) for ddf and NumPy/host for image"):
        arrayreg.warp_image_ddf(np.zeros((1, 2, 2, 2)), FakeCupyArray())


def test_device_arrays_get_a_clear_error_until_the_cuda_backend_lands():
    with pytest.raises(TypeError, match="CUDA backend is not available"):
        arrayreg.resample(FakeCupyArray(), FakeCupyArray())


def test_import_does_not_import_cupy_or_compile():
    code = "import sys, arrayreg; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
