"""The plan of a call, the "normalise" step between validation and dispatch.

validate (``_validation``) -> **plan** (here) -> dispatch (``_backend``) -> kernel (``_kernels``).

A plan fixes what the kernels need and never check: the compute dtype (the
dtype rule), the dtype the image is read in, C-contiguous native-endian
arrays, and the per-axis clamp limits and boundary scalars passed by value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validation as validate
from ._backend import Backend


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 when any input is float64 (either byte order), otherwise float32 (float16 computes in float32)."""
    if any(a is not None and a.dtype.kind == "f" and a.dtype.itemsize == 8 for a in arrays):
        return np.dtype(np.float64)
    return np.dtype(np.float32)



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


@dataclass(frozen=True)
class SamplingPlan:
    """A volume prepared for the sampling kernels, with the scalars they need."""

    backend: Backend
    vol: object  # (batch, *spatial, ch), C-contiguous, kernel dtype, of backend.xp
    has_channel: bool
    coord_dtype: np.dtype  # dtype of locations and weights
    out_dtype: np.dtype
    top: tuple  # spatial dims - 1, scalars of coord_dtype (kernel arguments by value: no device table)
    nearest: bool
    constant: bool
    one: np.generic
    outside: np.generic

    @property
    def mode(self) -> tuple:
        """``(top, nearest, constant, one, outside)``: the sampling mode, one kernel argument.

        A tuple travels by value (to CUDA in the launch parameters), and the
        kernels unpack it before their loops, so a literal flag still
        specialises an inlined body.
        """
        return (self.top, self.nearest, self.constant, self.one, self.outside)

    def empty_output(self, batch: int, loc_shape: tuple) -> np.ndarray:
        """Output ``(batch, *loc_shape[, ch])`` and its ``(batch, points, ch)`` kernel view."""
        channels = self.vol.shape[-1]
        shape = (batch,) + tuple(loc_shape) + ((channels,) if self.has_channel else ())
        out = self.backend.xp.empty(shape, dtype=self.out_dtype)
        return out, out.reshape(batch, int(np.prod(loc_shape, dtype=np.int64)), channels)


def plan_sampling(backend, vol, vol_name, n_dims, has_channel, coords, interpolation, boundary,
                  fill_value) -> SamplingPlan:
    """Validate the options and normalise ``vol`` for sampling ``n_dims``-D locations.

    ``coords`` are the coordinate arrays of the call (for the compute dtype).
    """
    validate.check_choice(interpolation, "interpolation", validate.INTERPOLATIONS)
    validate.check_choice(boundary, "boundary", validate.BOUNDARIES)
    nearest = interpolation == "nearest"
    spatial = vol.shape[1 : n_dims + 1]
    validate.check_spatial_nonempty(spatial, vol_name)
    compute = compute_dtype(vol, *coords)
    read = value_dtype(vol, compute, nearest)
    fill = validate.check_fill_value(fill_value, read)
    kernel_vol = kernel_array(vol, read, backend.xp)
    if not has_channel:
        kernel_vol = kernel_vol[..., None]
    return SamplingPlan(
        backend=backend,
        vol=kernel_vol,
        has_channel=has_channel,
        coord_dtype=compute,
        out_dtype=read,
        top=top_of(spatial, compute),
        nearest=nearest,
        constant=boundary == "constant",
        one=compute.type(1),
        outside=outside_value(read, boundary, fill),
    )
