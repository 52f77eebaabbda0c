"""What a device array is, and the switches of the CUDA launch path (no Numba, no CuPy imported here).

Both the dispatch layer (``_backend``) and the CUDA launchers (``cuda``) read
these; keeping them here lets the arrows point one way: ``_backend`` ->
``_kernels.device`` <- ``_kernels.cuda``.
"""

from __future__ import annotations

import contextvars

import numpy as np

# Set by arrayreg.testing.simulated_gpu(): (threads per block, max blocks) of the simulated device.
SIMULATED_GPU: contextvars.ContextVar = contextvars.ContextVar("arrayreg_simulated_gpu", default=None)

# Set by arrayreg.testing.record_launches(): a set that collects the signature of every CUDA launch.
LAUNCH_LOG: contextvars.ContextVar = contextvars.ContextVar("arrayreg_launch_log", default=None)


def is_device_array(value) -> bool:
    """True for a CuPy (GPU) array, recognised without importing CuPy."""
    return type(value).__module__.split(".")[0] == "cupy"


def describe_argument(value) -> tuple:
    """A JSON-friendly description of one kernel argument's Numba type.

    ``("array", dtype, ndim, layout)`` for arrays (host or device) and
    ``("scalar", dtype)`` for numbers and bools (Python ``bool``, ``int`` and
    ``float`` are what Numba makes of them: boolean, int64, float64).
    """
    if hasattr(value, "__cuda_array_interface__") or isinstance(value, np.ndarray):
        layout = "C" if value.flags.c_contiguous else ("F" if value.flags.f_contiguous else "A")
        return ("array", np.dtype(value.dtype).str, int(value.ndim), layout)
    if isinstance(value, (bool, np.bool_)):
        return ("scalar", "|b1")
    if isinstance(value, int):
        return ("scalar", "<i8")
    if isinstance(value, float):
        return ("scalar", "<f8")
    if isinstance(value, np.generic):
        return ("scalar", np.dtype(value.dtype).str)
    if isinstance(value, tuple):
        return ("tuple",) + tuple(describe_argument(item) for item in value)
    raise TypeError(f"no kernel-argument description for {type(value).__name__}")


def record_launch(kernel_name: str, args) -> None:
    """Add the launch signature ``(kernel_name, argument descriptions)`` to the active launch log, if any."""
    log = LAUNCH_LOG.get()
    if log is not None:
        log.add((kernel_name, tuple(describe_argument(a) for a in args)))
