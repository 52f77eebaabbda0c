"""Numba's fork-safe threading layer, TBB, made loadable (no Numba import here).

Numba picks its threading layer at the first parallel launch: TBB if it can
load ``libtbb``, else OpenMP, else its own workqueue.  GNU OpenMP aborts or
hangs a child that a process forks after using it (the default
``multiprocessing`` start method on Linux before Python 3.14, and PyTorch's
``DataLoader`` workers); TBB is fork-safe and thread-safe.  The pip wheel of
``tbb`` (a dependency on x86-64 Linux) puts ``libtbb.so.12`` in the
environment's ``lib`` folder, which the dynamic loader does not search, so
:func:`load_tbb` loads it by path when ``arrayreg`` is imported.  A layer
chosen with ``NUMBA_THREADING_LAYER`` still wins: loading the library only
makes TBB available.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import sys


def load_tbb() -> str | None:
    """Load the ``tbb`` wheel's ``libtbb.so.12`` with global symbols; its path, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        files = importlib.metadata.files("tbb") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == "libtbb.so.12":
            path = str(file.locate())
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                return None
            return path
    return None
