"""Test helpers: run the CUDA launch path without a GPU."""

from __future__ import annotations

import numbers
from contextlib import contextmanager

from ._backend import SIMULATED_GPU


@contextmanager
def simulated_gpu(threads_per_block: int = 32, max_blocks: int = 4):
    """Make NumPy inputs take the CUDA path (allocation, launch configuration, kernels) on Numba's simulator.

    Only in a process started with ``NUMBA_ENABLE_CUDASIM=1`` (set before
    Numba is imported).  NumPy stands in for CuPy as the device array module.
    The small default launch (``max_blocks`` blocks of ``threads_per_block``
    threads) makes grid-stride loops span several blocks.  The setting is a
    context variable: it applies to the current thread/context only.

    Raises
    ------
    RuntimeError
        if the process was not started with ``NUMBA_ENABLE_CUDASIM=1``.
    ValueError
        if ``threads_per_block`` or ``max_blocks`` is not a positive int.
    """
    from numba import config

    if not config.ENABLE_CUDASIM:
        raise RuntimeError("simulated_gpu() needs a process started with NUMBA_ENABLE_CUDASIM=1")
    for name, value in (("threads_per_block", threads_per_block), ("max_blocks", max_blocks)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    token = SIMULATED_GPU.set((int(threads_per_block), int(max_blocks)))
    try:
        yield
    finally:
        SIMULATED_GPU.reset(token)
