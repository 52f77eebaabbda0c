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
from ._kernels.formulas import CUBIC, CUBIC_MARGIN, LABEL, LINEAR, NEAREST

METHODS = {"linear": LINEAR, "nearest": NEAREST, "label": LABEL, "cubic": CUBIC}


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 when any input is float64 (either byte order), otherwise float32 (float16 computes in float32)."""
    if any(a is not None and a.dtype.kind == "f" and a.dtype.itemsize == 8 for a in arrays):
        return np.dtype(np.float64)
    return np.dtype(np.float32)



def kernel_array(array, dtype=None, xp=np):
    """``array`` as a C-contiguous, native-endian ``dtype`` array of ``xp`` (no copy when it already is)."""
    dtype = np.dtype(array.dtype if dtype is None else dtype).newbyteorder("=")
    return xp.ascontiguousarray(array, dtype=dtype)


def coordinate_table(shape, dtype, xp):
    """``table[i] == i`` in ``dtype``, long enough for every axis of ``shape`` (the reference grid's
    coordinates, which the row kernels read instead of a grid array)."""
    return xp.arange(max(shape), dtype=dtype)


def value_dtype(image: np.ndarray, compute: np.dtype, nearest: bool) -> np.dtype:
    """dtype the kernel reads the image in.

    Nearest (and label) keeps the image dtype (integer and bool label maps stay
    as they are; float16 is read as float32); linear and cubic read the image in
    ``compute``.
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
    method: int  # formulas.LINEAR, NEAREST, LABEL or CUBIC
    constant: bool
    one: np.generic
    outside: np.generic
    spline: tuple  # (z, fold_a, fold_b, margin) of coord_dtype: the cubic taps beyond the grid

    @property
    def mode(self) -> tuple:
        """``(top, method, constant, one, outside, spline)``: the sampling mode, one kernel argument.

        A tuple travels by value (to CUDA in the launch parameters), and the
        kernels unpack it before their loops, so a literal flag still
        specialises an inlined body.
        """
        return (self.top, self.method, self.constant, self.one, self.outside, self.spline)

    def empty_output(self, batch: int, loc_shape: tuple) -> np.ndarray:
        """Output ``(batch, *loc_shape[, ch])`` and its ``(batch, points, ch)`` kernel view."""
        channels = self.vol.shape[-1]
        shape = (batch,) + tuple(loc_shape) + ((channels,) if self.has_channel else ())
        out = self.backend.xp.empty(shape, dtype=self.out_dtype)
        return out, out.reshape(batch, int(np.prod(loc_shape, dtype=np.int64)), channels)


def spline_constants(dtype) -> tuple:
    """The cubic B-spline's scalars in ``dtype``: ``(spline, prefilter)``.

    ``spline = (z, fold_a, fold_b, margin)`` for the taps beyond the grid, with the pole
    ``z = sqrt(3) - 2``, ``fold_a = (4 + z) / (5 + z)`` and ``fold_b = 1 / (5 + z)`` (the
    edge sample in terms of the two edge coefficients); ``prefilter = (z, z / (1 - z),
    -6 z / (1 - z**2), 6)``, the recursive filter's gains (``formulas.spline_line``).
    """
    real = np.dtype(dtype).type
    z = np.sqrt(3.0) - 2.0
    spline = (real(z), real((4 + z) / (5 + z)), real(1 / (5 + z)), real(CUBIC_MARGIN))
    prefilter = (real(z), real(z / (1 - z)), real(-6 * z / (1 - z * z)), real(6))
    return spline, prefilter


def spline_coefficients(backend, vol, n_dims, dtype, constant, fill):
    """The cubic B-spline coefficients of ``vol`` ``(batch, *spatial, ch)``: a new C-contiguous ``dtype``
    array (the one temporary), filtered in place along each of the ``n_dims`` spatial axes."""
    coefficients = backend.xp.array(vol, dtype=dtype, order="C", copy=True)
    _, prefilter = spline_constants(dtype)
    shape = coefficients.shape
    for axis in range(1, n_dims + 1):
        lines = coefficients.reshape(int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:])))
        backend.kernels.spline_prefilter(lines, prefilter, constant, fill)
    return coefficients


def plan_sampling(backend, vol, vol_name, n_dims, has_channel, coords, interpolation, boundary,
                  fill_value) -> SamplingPlan:
    """Validate the options and normalise ``vol`` for sampling ``n_dims``-D locations.

    ``coords`` are the coordinate arrays of the call (for the compute dtype).
    For ``"cubic"`` the plan's volume is the B-spline coefficients.
    """
    validate.check_choice(interpolation, "interpolation", validate.INTERPOLATIONS)
    validate.check_choice(boundary, "boundary", validate.BOUNDARIES)
    method = METHODS[interpolation]
    if method == LABEL and vol.dtype.kind not in "biu":
        raise TypeError(f"interpolation='label' needs an integer or bool label map; {vol_name} has dtype "
                        f"{vol.dtype} (cast it, e.g. {vol_name}.astype(np.int32), or use 'nearest')")
    spatial = vol.shape[1 : n_dims + 1]
    validate.check_spatial_nonempty(spatial, vol_name)
    compute = compute_dtype(vol, *coords)
    read = value_dtype(vol, compute, method in (NEAREST, LABEL))
    fill = validate.check_fill_value(fill_value, read)
    constant = boundary == "constant"
    outside = outside_value(read, boundary, fill)
    if not has_channel:
        vol = vol[..., None]
    if method == CUBIC:
        kernel_vol = spline_coefficients(backend, vol, n_dims, compute, constant, outside)
    else:
        kernel_vol = kernel_array(vol, read, backend.xp)
    return SamplingPlan(
        backend=backend,
        vol=kernel_vol,
        has_channel=has_channel,
        coord_dtype=compute,
        out_dtype=read,
        top=top_of(spatial, compute),
        method=method,
        constant=constant,
        one=compute.type(1),
        outside=outside,
        spline=spline_constants(compute)[0],
    )
