import json
import os

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session", autouse=True)
def launch_log():
    """In a simulator process with ``ARRAYREG_LAUNCH_LOG=PATH``, record every CUDA launch signature into PATH.

    The CUDA-simulator pass of the README's test command sets it; the compile
    gate (``tests/test_cuda_compile.py``, a process without the simulator)
    then reads PATH and compiles each recorded signature to PTX with NVIDIA's
    compiler.
    """
    from numba import config

    path = os.environ.get("ARRAYREG_LAUNCH_LOG")
    if not path or not config.ENABLE_CUDASIM:
        yield None
        return
    from arrayreg.testing import record_launches

    with record_launches() as log:
        yield log
    with open(path, "w") as file:
        json.dump(sorted(log), file, indent=1)
