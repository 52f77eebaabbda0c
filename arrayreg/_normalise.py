"""Turning validated inputs into the layouts the kernels expect."""

from __future__ import annotations

import numpy as np


def kernel_array(array, dtype=None, xp=np):
    """``array`` as a C-contiguous, native-endian ``dtype`` array of ``xp`` (no copy when it already is)."""
    dtype = np.dtype(array.dtype if dtype is None else dtype).newbyteorder("=")
    return xp.ascontiguousarray(array, dtype=dtype)


def value_dtype(image: np.ndarray, compute: np.dtype, nearest: bool) -> np.dtype:
    """dtype the kernel reads the image in.

    Nearest keeps the image dtype (integer and bool label maps stay as they
    are; float16 is read as float32); linear reads the image in ``compute``.
    """
    if nearest and (image.dtype.kind in "biu" or image.dtype.itemsize >= 4):
        return image.dtype.newbyteorder("=")
    return compute


def outside_value(dtype: np.dtype, boundary: str, fill_value):
    """What a corner outside the volume (or a NaN coordinate in nearest mode) yields.

    ``constant``: ``fill_value``.  ``clamp``: corners never fall outside, so
    this only serves NaN coordinates with nearest interpolation: NaN for float
    images, 0 for integer and bool images.
    """
    if boundary == "constant":
        return dtype.type(fill_value)
    return dtype.type(np.nan) if dtype.kind == "f" else dtype.type(0)


def top_of(spatial, dtype) -> tuple:
    """``dim - 1`` for each spatial axis as scalars of ``dtype``: the kernels' clamp limits.

    Where ``dim - 1`` is not representable (float32 axes longer than 2**24),
    the nearest value *below* it is taken, so that a clamped coordinate's
    ``ceil`` never indexes past the axis.  A tuple of scalars travels to a
    CUDA kernel by value, in the launch parameters, so no per-call table is
    copied to the device.
    """
    real = np.dtype(dtype).type
    tops = []
    for n in spatial:
        top = real(n - 1)
        tops.append(top if int(top) <= n - 1 else np.nextafter(top, real(0)))
    return tuple(tops)
