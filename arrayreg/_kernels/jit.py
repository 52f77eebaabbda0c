"""Numba's CPU ``njit`` with a disk cache that never breaks a call.

**Cache.**  ``cached_njit(**options)`` is ``numba.njit(cache=True, **options)``
except that the on-disk cache can only ever cost a compilation, never a call:

- where no writable cache folder exists (a read-only or site-wide install, a
  container running as another user, ``NUMBA_CACHE_DIR`` unwritable or
  uncreatable), the kernel compiles in memory on first use;
- a cache file that cannot be read (a truncated or corrupt ``.nbi``/``.nbc``)
  is ignored, the kernel recompiles, and the file is written afresh;
- an entry is stale when a module compiled into the kernels changed
  (``COMPILED_IN``: the formulas and the intrinsics), not only the kernel's
  own file: Numba stamps an entry with its own source file alone.

Either case issues one ``RuntimeWarning`` per process.

The threading layer is set up by :mod:`arrayreg._kernels.threads`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from numba import njit
from numba.core.caching import FunctionCache

_warned = False


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


COMPILED_IN = tuple(Path(__file__).with_name(name) for name in ("formulas.py", "cache.py", "stack.py", "window.py",
                                                                     "microkernel.py"))


class TolerantCache(FunctionCache):
    """Numba's per-function cache, with unreadable entries recompiled and unwritable ones skipped, stamped
    with the modules of ``COMPILED_IN`` as well as the kernel's own file."""

    def __init__(self, py_func):
        super().__init__(py_func)
        stamps = tuple((status.st_mtime, status.st_size) for status in map(os.stat, COMPILED_IN))
        self._cache_file._source_stamp = (self._cache_file._source_stamp,) + stamps

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as error:  # noqa: BLE001 - any unreadable cache file: recompile
            _warn_once(f"arrayreg: ignoring an unreadable Numba cache file in {self.cache_path} "
                       f"({type(error).__name__}: {error}); the kernels recompile and the cache is rewritten")
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception:  # noqa: BLE001 - a corrupt index also breaks saving: start the index afresh
            try:
                self.flush()
                super().save_overload(sig, data)
            except Exception as error:  # noqa: BLE001 - the cache is a convenience, never a failure
                _warn_once(f"arrayreg: cannot write the Numba cache in {self.cache_path} "
                           f"({type(error).__name__}: {error}); kernels compile on first use in each process")


def cached_njit(**options):
    """``numba.njit(**options)`` with a :class:`TolerantCache`, or with no cache where none can be written."""
    def decorate(function):
        dispatcher = njit(**options)(function)
        try:
            dispatcher._cache = TolerantCache(function)
        except RuntimeError as error:  # "cannot cache function ...: no locator available"
            _warn_once(f"arrayreg: no writable Numba cache folder ({error}); kernels compile on first use in "
                       "each process (set NUMBA_CACHE_DIR to a writable folder to keep them)")
        return dispatcher

    return decorate
