"""Which array module an input belongs to, and which kernels serve it.

The backend is chosen from the arrays of a call: NumPy arrays (and anything
``numpy.asarray`` accepts) go to the Numba CPU kernels, CuPy arrays to the
Numba-CUDA kernels.  CuPy is never imported here until a CuPy array arrives.
The one exception is the testing hook :func:`arrayreg.testing.simulated_gpu`,
under which NumPy inputs take the CUDA launch path on Numba's simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ._kernels.device import SIMULATED_GPU, is_device_array


@dataclass(frozen=True)
class Backend:
    """Where a call runs: ``name`` is "cpu" or "cuda", ``xp`` its array module."""

    name: str
    xp: ModuleType

    @property
    def on_cpu(self) -> bool:
        """The Numba CPU kernels serve this call."""
        return self.name == "cpu"

    @property
    def on_device(self) -> bool:
        """The arrays live on a GPU (CuPy); False on the CPU and under the simulator, where NumPy stands in."""
        return self.xp is not np

    @property
    def kernels(self) -> ModuleType:
        """The kernel module with the launch functions of this backend (imported on first use)."""
        if self.name == "cpu":
            from ._kernels import cpu

            return cpu
        from ._kernels import cuda

        return cuda


def backend_of(**arrays) -> Backend:
    """The backend for the named arrays of one call (``None`` values are ignored).

    Mixing host and device arrays raises a ``TypeError`` that says which
    argument lives where.
    """
    on_device = [name for name, a in arrays.items() if a is not None and is_device_array(a)]
    on_host = [name for name, a in arrays.items() if a is not None and not is_device_array(a)]
    if on_device and on_host:
        raise TypeError(
            "arguments must all be NumPy arrays or all be CuPy arrays; "
            f"got CuPy (GPU) for {', '.join(on_device)} and NumPy/host for {', '.join(on_host)}"
        )
    if on_device:
        import cupy

        return Backend("cuda", cupy)
    if SIMULATED_GPU.get() is not None:
        return Backend("cuda", np)
    return Backend("cpu", np)


def array_module(device: str) -> ModuleType:
    """The array module for a device: NumPy for ``"cpu"``, CuPy for ``"gpu"``, and for ``"auto"`` CuPy when
    it imports and sees a CUDA device, else NumPy.

    Raises ``ValueError`` for ``"gpu"`` without CuPy or a device (naming what failed).
    """
    if device == "cpu":
        return np
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception as error:  # noqa: BLE001 - any failure means: no usable GPU
        if device == "gpu":
            raise ValueError(f"device 'gpu' needs CuPy and a CUDA device ({error.__class__.__name__})") from error
        return np


def to_host(array):
    """A NumPy array: CuPy arrays are copied to the host, anything else is returned as it is."""
    return array.get() if is_device_array(array) else array
