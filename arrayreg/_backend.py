"""Which array module an input belongs to, and which kernels serve it.

The backend is chosen from the arrays of a call, never from a global flag:
NumPy arrays (and anything ``numpy.asarray`` accepts) go to the Numba CPU
kernels, CuPy arrays go to the Numba-CUDA kernels.  CuPy is never imported
here; a CuPy array is recognised by the module its type comes from.
"""

from __future__ import annotations

CPU = "cpu"
CUDA = "cuda"


def is_device_array(value) -> bool:
    """True for a CuPy (GPU) array, recognised without importing CuPy."""
    return type(value).__module__.split(".")[0] == "cupy"


def backend_of(**arrays) -> str:
    """Return ``"cpu"`` or ``"cuda"`` for the named arrays of one call.

    ``None`` values are ignored.  Mixing host and device arrays raises a
    ``TypeError`` that says which argument lives where.
    """
    on_device = [name for name, a in arrays.items() if a is not None and is_device_array(a)]
    on_host = [name for name, a in arrays.items() if a is not None and not is_device_array(a)]
    if on_device and on_host:
        raise TypeError(
            "arguments must all be NumPy arrays or all be CuPy arrays; "
            f"got CuPy (GPU) for {', '.join(on_device)} and NumPy/host for {', '.join(on_host)}"
        )
    return CUDA if on_device else CPU


def require_cpu(backend: str, function: str) -> None:
    """Refuse CuPy inputs for functions whose GPU path does not exist yet."""
    if backend != CPU:
        raise TypeError(
            f"{function} received CuPy arrays, but arrayreg's CUDA backend is not "
            "available in this version; pass NumPy arrays (cupy.asnumpy) instead"
        )

