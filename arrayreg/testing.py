"""Test helpers: run the CUDA launch path without a GPU."""

from __future__ import annotations

from contextlib import contextmanager

from ._kernels.device import LAUNCH_LOG, SIMULATED_GPU
from ._validation import check_int


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
        if ``threads_per_block`` or ``max_blocks`` is not an int >= 1.
    """
    from numba import config

    if not config.ENABLE_CUDASIM:
        raise RuntimeError("simulated_gpu() needs a process started with NUMBA_ENABLE_CUDASIM=1")
    launch = (check_int(threads_per_block, "threads_per_block", 1), check_int(max_blocks, "max_blocks", 1))
    token = SIMULATED_GPU.set(launch)
    try:
        yield
    finally:
        SIMULATED_GPU.reset(token)


@contextmanager
def record_launches():
    """Collect the signature of every CUDA kernel launch made inside the block.

    Yields a set of ``(kernel_name, argument_descriptions)`` (see
    ``arrayreg._kernels.device.describe_argument``): the Numba types each
    kernel of ``arrayreg._kernels.cuda`` was launched with, which CI compiles
    to PTX with NVIDIA's compiler.  Like :func:`simulated_gpu`, it applies to
    the current thread/context only.
    """
    log: set = set()
    token = LAUNCH_LOG.set(log)
    try:
        yield log
    finally:
        LAUNCH_LOG.reset(token)
