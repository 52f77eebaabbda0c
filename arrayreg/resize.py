"""3-D resize with TensorFlow 2's ``tf.image.resize`` numbers, applied the DeepReg way."""

from __future__ import annotations

import numpy as np

from . import _validation as validate
from ._backend import backend_of
from ._plan import compute_dtype, kernel_array, value_dtype

METHODS = ("bilinear", "nearest")


def _source_positions(in_size: int, out_size: int, dtype, xp):
    """Half-pixel output centres ``o + 0.5`` (an ``xp`` array) and the scale ``in/out``, in ``dtype``.

    In float32 these are TensorFlow's numbers, operation for operation.
    """
    real = np.dtype(dtype).type
    return xp.arange(out_size, dtype=dtype) + real(0.5), real(in_size) / real(out_size)


def linear_table(in_size: int, out_size: int, dtype, xp=np):
    """Per-axis corners and weights: ``src = (o + 0.5) * in/out - 0.5``, ``lo = max(floor(src), 0)``,
    ``hi = min(ceil(src), in - 1)``, ``t = src - floor(src)`` (the weight of ``hi``).

    Built with ``xp`` where the kernel runs (elementwise IEEE operations, one rounding each, so CuPy and
    NumPy give the same numbers): no table is copied from the host.
    """
    centres, scale = _source_positions(in_size, out_size, dtype, xp)
    src = centres * scale - np.dtype(dtype).type(0.5)
    floor = xp.floor(src)
    lo = xp.maximum(floor, 0).astype(np.int64)
    hi = xp.minimum(xp.ceil(src), in_size - 1).astype(np.int64)
    return lo, hi, src - floor


def nearest_table(in_size: int, out_size: int, xp=np):
    """Per-axis source index ``min(floor((o + 0.5) * in/out), in - 1)``, computed in float32 as TensorFlow."""
    centres, scale = _source_positions(in_size, out_size, np.float32, xp)
    return xp.minimum(xp.floor(centres * scale), in_size - 1).astype(np.int64)


def resize3d(image, size, method: str = "bilinear"):
    """Resize the three spatial axes of a volume (DeepReg's ``resize3d``).

    DeepReg resizes with two ``tf.image.resize`` passes; the result equals a
    separable resize with TensorFlow 2's half-pixel centres and no
    antialiasing (also when shrinking).  Along each axis, for output index
    ``o`` and scale ``in/out`` computed in float32:

    - ``"bilinear"``: ``src = (o + 0.5) * in/out - 0.5``; the value is
      ``v[lo] + (v[hi] - v[lo]) * (src - floor(src))`` with
      ``lo = max(floor(src), 0)`` and ``hi = min(ceil(src), in - 1)``,
      applied to axis 3, then 2, then 1 (TensorFlow's order and rounding).
    - ``"nearest"``: ``v[min(floor((o + 0.5) * in/out), in - 1)]``.

    Positions are computed in float32 (TensorFlow's numbers) except for
    bilinear on float64 images, which computes them in float64.

    Parameters
    ----------
    image : array, shape (d1, d2, d3), (batch, d1, d2, d3) or (batch, d1, d2, d3, ch)
    size : tuple of 3 positive ints
        ``(out1, out2, out3)``.
    method : {"bilinear", "nearest"}, default "bilinear"

    Returns
    -------
    array, shape (out1, out2, out3), (batch, out1, out2, out3) or (batch, out1, out2, out3, ch)
        An image that already has ``size`` is returned as it is (the same
        object).  Bilinear returns float64 for float64 input and float32
        otherwise; nearest keeps the image dtype (float16 becomes float32).

    References
    ----------
    .. [1] TensorFlow, ``tf.image.resize`` (TF 2: ``half_pixel_centers=True``,
       no antialiasing), https://www.tensorflow.org/api_docs/python/tf/image/resize

    Examples
    --------
    Doubling a 2-voxel axis: the half-pixel centres fall at 0.25 and 0.75 of a voxel.

    >>> import numpy as np
    >>> from arrayreg import resize3d
    >>> image = np.array([0.0, 4.0], np.float32).reshape(1, 1, 2)
    >>> resize3d(image, (1, 1, 4))[0, 0]
    array([0., 1., 3., 4.], dtype=float32)
    """
    backend = backend_of(image=image)
    xp = backend.xp
    image = validate.as_array(image, "image", xp)
    if image.ndim not in (3, 4, 5):
        raise ValueError(
            "resize3d takes input image of dimension 3 or 4 or 5, corresponding to (dim1, dim2, dim3) "
            f"or (batch, dim1, dim2, dim3) or (batch, dim1, dim2, dim3, channels), got image shape {image.shape}"
        )
    size = validate.check_size3(size, "size", "resize3d takes size of type tuple/list and of length 3")
    validate.check_choice(method, "method", METHODS)
    spatial = image.shape[:3] if image.ndim == 3 else image.shape[1:4]
    if spatial == size:
        return image
    validate.check_spatial_nonempty(spatial, "image")
    out_dtype = value_dtype(image, compute_dtype(image), nearest=method == "nearest")
    tables = [axis_tables(n_in, n_out, method, out_dtype, xp) for n_in, n_out in zip(spatial, size)]
    return resize_with_tables(image, tables, method, out_dtype)


def axis_tables(in_size: int, out_size: int, method: str, dtype, xp=np) -> tuple:
    """One axis's table: ``(index,)`` for nearest, ``(lo, hi, t)`` for bilinear (weights in ``dtype``)."""
    if method == "nearest":
        return (nearest_table(in_size, out_size, xp),)
    return linear_table(in_size, out_size, dtype, xp)


def shifted_tables(table: tuple, start: int, stop: int) -> tuple:
    """Outputs ``start:stop`` of an axis table, read from a box of the input: ``(box_start, box_stop,
    table)`` with the indices of the table relative to ``box_start`` (a block of a chunked resize)."""
    part = [t[start:stop] for t in table]
    indices = part[:2] if len(part) == 3 else part
    first, last = int(min(i.min() for i in indices)), int(max(i.max() for i in indices))
    return first, last + 1, tuple(t - first for t in indices) + tuple(part[2:])


def resize_with_tables(image, tables, method: str, out_dtype):
    """The resize kernel with explicit per-axis tables (:func:`axis_tables`), on ``image``'s backend.

    ``image`` is ``(d1, d2, d3)``, ``(batch, d1, d2, d3)`` or ``(batch, d1, d2, d3, ch)``; the output has
    the tables' lengths as its spatial size.
    """
    backend = backend_of(image=image)
    xp = backend.xp
    tables = [tuple(xp.asarray(t) for t in table) for table in tables]
    size = tuple(len(table[0]) for table in tables)
    volume = image.reshape((1,) * (image.ndim == 3) + image.shape + (1,) * (image.ndim != 5))
    out = xp.empty(volume.shape[:1] + size + volume.shape[-1:], dtype=out_dtype)
    if out.size:
        source = kernel_array(volume, out.dtype, xp)
        if method == "nearest":
            backend.kernels.resize3d_nearest(source, *(t for table in tables for t in table), out)
        else:
            backend.kernels.resize3d_linear(source, *(t for table in tables for t in table), out)
    return out.reshape(size if image.ndim == 3 else image.shape[:1] + size + image.shape[4:])
