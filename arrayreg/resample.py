"""Linear and nearest interpolation of a batched volume at arbitrary locations."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import _validation as v
from ._backend import Backend, backend_of
from ._normalise import kernel_array, outside_value, top_of, value_dtype
from .grid import get_n_bits_combinations


def pyramid_combination(values, weights):
    """Weighted sum over the ``2**n`` corners of a hypercube (n-linear interpolation).

    ``values[r]`` is the value at the corner whose bits are
    ``get_n_bits_combinations(n)[r]`` (bit ``d`` = 0: floor along axis ``d``;
    1: ceil).  ``weights[d]`` is the weight of the *floor* corner along axis
    ``d``.  The combination runs from the last axis outwards, exactly as
    DeepReg does::

        n == 1:  values[0] * weights[0] + values[1] * (1 - weights[0])
        n > 1:   pyramid(values[::2], weights[:-1]) * weights[-1]
                 + pyramid(values[1::2], weights[:-1]) * (1 - weights[-1])

    Works on any array type with arithmetic (NumPy, CuPy); broadcasting
    follows the array library.

    Raises
    ------
    ValueError
        if the elements of ``values`` and ``weights`` have different ranks, or
        if ``len(values) != 2 ** len(weights)`` (DeepReg's messages).
    """
    values = _operands(values, "values")
    weights = _operands(weights, "weights")
    if not values or not weights:
        raise ValueError(
            f"In pyramid_combination, values and weights must be non-empty lists; "
            f"got len(values) = {len(values)}, len(weights) = {len(weights)}"
        )
    if np.ndim(values[0]) != np.ndim(weights[0]):
        raise ValueError(
            "In pyramid_combination, elements of values and weights should have same dimension. "
            f"value shape = {np.shape(values[0])}, weight = {np.shape(weights[0])}"
        )
    if 2 ** len(weights) != len(values):
        raise ValueError(
            "In pyramid_combination, num_dim = len(weights), len(values) must be 2 ** num_dim, "
            f"But len(weights) = {len(weights)}, len(values) = {len(values)}"
        )
    return _combine(values, weights)


def _operands(items, name: str) -> list:
    """``items`` as a list whose nested lists and numbers became NumPy arrays (arrays are kept as they are)."""
    if items is None or not hasattr(items, "__len__"):
        raise TypeError(f"{name} must be a list of arrays (or numbers); got {type(items).__name__}")
    return [np.asarray(item) if isinstance(item, (list, tuple, numbers.Real)) else item for item in items]


def _combine(values, weights):
    if len(weights) == 1:
        return values[0] * weights[0] + values[1] * (1 - weights[0])
    floor = _combine(values[::2], weights[:-1]) * weights[-1]
    ceil = _combine(values[1::2], weights[:-1]) * (1 - weights[-1])
    return floor + ceil


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
    v.check_choice(interpolation, "interpolation", v.INTERPOLATIONS)
    v.check_choice(boundary, "boundary", v.BOUNDARIES)
    nearest = interpolation == "nearest"
    spatial = vol.shape[1 : n_dims + 1]
    v.check_spatial_nonempty(spatial, vol_name)
    compute = v.compute_dtype(vol, *coords)
    read = value_dtype(vol, compute, nearest)
    fill = v.check_fill_value(fill_value, read)
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


def resample(vol, loc, interpolation: str = "linear", *, boundary: str = "clamp", fill_value=0.0):
    r"""Sample a batched volume at the given voxel coordinates.

    ``out[b, l] = vol[b]`` interpolated at ``loc[b, l, :]`` (coordinates in
    voxels, ``ij`` order, ``loc[..., d]`` indexes ``vol`` axis ``d + 1``).

    Linear interpolation (DeepReg v0.1.1): along each axis the coordinate
    ``c`` is clipped to ``[0, dim - 1]``; the corners are ``hi = ceil(c)`` and
    ``lo = max(hi - 1, 0)`` with floor weight ``w = hi - c``, and the ``2**n``
    corner values are combined with :func:`pyramid_combination`.

    Parameters
    ----------
    vol : array ``(batch, *vol_shape)`` or ``(batch, *vol_shape, ch)``.
    loc : array ``(batch, *loc_shape, n)`` with ``n = len(vol_shape)``; any
        ``n >= 1`` (fast kernels for ``n`` = 2 and 3).
    interpolation : ``"linear"`` (default) or ``"nearest"``. Nearest rounds
        half up, ``floor(c + 1/2)``, after clipping, and returns ``vol``'s dtype
        unchanged (integer label maps stay integer).
    boundary : ``"clamp"`` (default, DeepReg) or ``"constant"``: each corner
        outside the volume contributes ``fill_value`` (``grid_sample``'s
        ``padding_mode="zeros"`` with ``align_corners=True`` when 0).
    fill_value : number used by ``boundary="constant"``; for integer images it
        must be an integer of the image's range.

    Returns
    -------
    array ``(batch, *loc_shape)`` or ``(batch, *loc_shape, ch)``.  Linear:
    float64 when ``vol`` or ``loc`` is float64, else float32 (float16 and
    integer images compute in float32).  Nearest: ``vol``'s dtype (float16
    becomes float32).

    Non-finite coordinates never read out of bounds: with ``clamp`` a NaN
    coordinate gives NaN (0 for integer images with nearest) and ``±inf`` is
    clipped to the edge; with ``constant`` they give ``fill_value``.  On an
    axis longer than 2**24 with float32 coordinates, where ``dim - 1`` is not
    a float32, the clip limit is the largest float32 below it.
    """
    v.check_interpolation(interpolation, "resample")
    backend = backend_of(vol=vol, loc=loc)
    vol = v.as_array(vol, "vol", backend.xp)
    loc = v.as_coordinates(loc, "loc", backend.xp)
    if loc.ndim < 2 or loc.shape[-1] < 1:
        raise ValueError(f"loc must have shape (batch, *loc_shape, n) with n >= 1; got {loc.shape}")
    n_dims = loc.shape[-1]
    if n_dims == vol.ndim - 1:
        has_channel = False
    elif n_dims == vol.ndim - 2:
        has_channel = True
    else:
        raise ValueError(
            f"vol shape inconsistent with loc vol.shape = {vol.shape}, loc.shape = {loc.shape}; "
            f"expected vol of rank {n_dims + 1} (batch, *vol_shape) or {n_dims + 2} (batch, *vol_shape, ch)"
        )
    if vol.shape[0] != loc.shape[0]:
        raise ValueError(f"vol and loc must have the same batch size; got vol.shape = {vol.shape}, loc.shape = {loc.shape}")
    plan = plan_sampling(backend, vol, "vol", n_dims, has_channel, (loc,), interpolation, boundary, fill_value)
    batch = loc.shape[0]
    out, out_view = plan.empty_output(batch, loc.shape[1:-1])
    if out.size == 0:
        return out
    flat_loc = kernel_array(loc, plan.coord_dtype, backend.xp).reshape(batch, -1, n_dims)
    if n_dims in (2, 3):
        kernels = backend.kernels
        kernel = kernels.resample3d if n_dims == 3 else kernels.resample2d
        kernel(plan.vol, flat_loc, plan.top, plan.nearest, plan.constant, plan.one, plan.outside, out_view)
    else:
        out_view[...] = _resample_generic(plan, flat_loc)
    return out


def _resample_generic(plan: SamplingPlan, loc):
    """Any number of dimensions: per-axis corners from the shared formulas, array-module gathers."""
    xp, kernels = plan.backend.xp, plan.backend.kernels
    batch, n_points, n_dims = loc.shape
    batch_index = xp.arange(batch)[:, None]
    axes = [xp.ascontiguousarray(loc[..., d]).reshape(-1) for d in range(n_dims)]
    if plan.nearest:
        index = [xp.empty((batch, n_points), dtype=np.int64) for _ in range(n_dims)]
        for d in range(n_dims):
            kernels.nearest_axis_table(axes[d], plan.top[d], plan.constant, index[d].reshape(-1))
        return _gather(xp, plan.vol, batch_index, index, plan.outside)
    corners = []
    weights = []
    for d in range(n_dims):
        lo, hi = xp.empty((2, batch, n_points), dtype=np.int64)
        w_lo = xp.empty((batch, n_points), dtype=plan.coord_dtype)
        kernels.linear_axis_table(axes[d], plan.top[d], plan.one, plan.constant,
                                  lo.reshape(-1), hi.reshape(-1), w_lo.reshape(-1))
        corners.append((lo, hi))
        weights.append(w_lo[..., None])
    values = [
        _gather(xp, plan.vol, batch_index, [corners[d][bit] for d, bit in enumerate(bits)], plan.outside)
        for bits in get_n_bits_combinations(n_dims)
    ]
    return pyramid_combination(values, weights).astype(plan.out_dtype, copy=False)


def _gather(xp, vol, batch_index, index, outside):
    """``vol[b, index...]`` with ``outside`` where any index is -1; returns ``(batch, points, ch)``."""
    inside = index[0] >= 0
    for i in index[1:]:
        inside = inside & (i >= 0)
    safe = [xp.where(inside, i, 0) for i in index]
    values = vol[(batch_index, *safe)]
    return xp.where(inside[..., None], values, outside)
