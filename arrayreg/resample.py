"""Linear and nearest interpolation of a batched volume at arbitrary locations."""

from __future__ import annotations

import numbers

import numpy as np

from . import _validation as validate
from ._backend import backend_of
from ._docstrings import fill
from ._kernels.formulas import LABEL, NEAREST
from ._plan import SamplingPlan, kernel_array, plan_sampling
from .grid import get_n_bits_combinations


def pyramid_combination(values, weights):
    r"""Weighted sum over the ``2**n`` corners of a hypercube (n-linear interpolation).

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

    Parameters
    ----------
    values : list of 2**n arrays (or numbers), each of shape (\*loc_shape) or (batch, \*loc_shape[, ch])
    weights : list of n arrays (or numbers), of the same rank as ``values[0]``

    Returns
    -------
    array
        Of the broadcast shape of the operands.

    Raises
    ------
    ValueError
        if the elements of ``values`` and ``weights`` have different ranks, or
        if ``len(values) != 2 ** len(weights)`` (DeepReg's messages).

    Examples
    --------
    DeepReg's unit-test case: ``1 * 0.2 * 0.3 + 2 * 0.2 * 0.7 + 3 * 0.8 * 0.3 + 4 * 0.8 * 0.7``.

    >>> import numpy as np
    >>> from arrayreg import pyramid_combination
    >>> got = pyramid_combination([np.array([1.0]), np.array([2.0]), np.array([3.0]), np.array([4.0])],
    ...                           [np.array([0.2]), np.array([0.3])])
    >>> got.round(12).tolist()
    [3.3]
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


@fill
def resample(vol, loc, interpolation: str = "linear", *, boundary: str = "clamp", fill_value=0.0):
    r"""Sample a batched volume at the given voxel coordinates (DeepReg's ``layer_util.resample``).

    ``out[b, l] = vol[b]`` interpolated at ``loc[b, l, :]``, with ``loc[..., d]``
    the coordinate along axis ``d + 1`` of ``vol``, in voxels.

    Parameters
    ----------
    vol : array, shape (batch, \*vol_shape) or (batch, \*vol_shape, ch)
        The volume, ``n = len(vol_shape)`` spatial axes.
    loc : array, shape (batch, \*loc_shape, n)
        Where to sample; any ``n >= 1`` (fused kernels for ``n`` = 3, and for
        ``n`` = 2 with linear and nearest); cubic needs ``n == 3``.
    {{interpolation}}
    {{boundary}}
    {{fill_value}}

    Returns
    -------
    array, shape (batch, \*loc_shape) or (batch, \*loc_shape, ch)
        In the dtype of the rule below.

    Raises
    ------
    ValueError
        DeepReg's messages for an unsupported interpolation (then what arrayreg
        accepts) and for a ``vol`` rank that does not fit ``loc``; differing
        batch sizes; a volume with an empty spatial axis.
    TypeError
        Non-numeric, complex or masked input; NumPy and CuPy arrays mixed.

    Notes
    -----
    {{dtype_rule}}

    {{batch_layout}}

    Non-finite coordinates never read out of bounds: with ``clamp`` a NaN
    coordinate gives NaN (0 for integer images with nearest) and ``±inf`` the
    edge; with ``constant`` they give ``fill_value``.  On an axis longer than
    2**24 with float32 coordinates, where ``dim - 1`` is not a float32, the
    clip limit is the largest float32 below it.

    Equivalents elsewhere, for linear interpolation (the numbers agree to
    rounding):

    ======================  ======================================  ==========================================
    arrayreg                SciPy ``map_coordinates(order=1)``      torch ``grid_sample(align_corners=True)``
    ======================  ======================================  ==========================================
    ``boundary="clamp"``    ``mode="nearest"``                      ``padding_mode="border"``
    ``"constant"``, fill    ``mode="grid-constant", cval=fill``     ``padding_mode="zeros"`` (fill 0 only)
    ======================  ======================================  ==========================================

    SciPy takes one unbatched channel and coordinates first (``(n, *loc_shape)``);
    torch takes channels first and coordinates normalised to ``[-1, 1]`` in
    ``(x, y, z) = (k, j, i)`` order.

    References
    ----------
    .. [1] Y. Fu, N. Montaña Brown, S. U. Saeed, A. Casamitjana, Z. M. C. Baum,
       R. Delaunay, Q. Yang, A. Grimwood, Z. Min, S. B. Blumberg, J. E. Iglesias,
       D. C. Barratt, E. Bonmati, D. C. Alexander, M. J. Clarkson, T. Vercauteren,
       Y. Hu, "DeepReg: a deep learning toolkit for medical image registration",
       Journal of Open Source Software 5(55), 2648, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg import resample
    >>> vol = np.array([[[0, 1, 2], [3, 4, 5]]], np.float32)   # (1, 2, 3): vol[i, j] = 3 i + j
    >>> resample(vol, np.array([[[0.5, 1.0], [0.25, 0.5]]], np.float32))
    array([[2.5 , 1.25]], dtype=float32)
    >>> resample(vol, np.array([[[0.0, 3.0]]], np.float32), boundary="constant", fill_value=-1)
    array([[-1.]], dtype=float32)
    """
    validate.check_interpolation(interpolation, "resample")
    backend = backend_of(vol=vol, loc=loc)
    vol = validate.as_array(vol, "vol", backend.xp)
    loc = validate.as_coordinates(loc, "loc", backend.xp)
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
        raise ValueError(f"vol and loc must have the same batch size; "
                         f"got vol.shape = {vol.shape}, loc.shape = {loc.shape}")
    if interpolation == "cubic" and n_dims != 3:
        raise ValueError(f"interpolation='cubic' needs 3 spatial axes (loc.shape[-1] == 3); got {n_dims}")
    plan = plan_sampling(backend, vol, "vol", n_dims, has_channel, (loc,), interpolation, boundary, fill_value)
    batch = loc.shape[0]
    out, out_view = plan.empty_output(batch, loc.shape[1:-1])
    if out.size == 0:
        return out
    flat_loc = kernel_array(loc, plan.coord_dtype, backend.xp).reshape(batch, -1, n_dims)
    if n_dims == 3 or (n_dims == 2 and plan.method != LABEL):
        kernels = backend.kernels
        kernel = kernels.resample3d if n_dims == 3 else kernels.resample2d
        kernel(plan.vol, flat_loc, plan.mode, out_view)
    else:
        out_view[...] = _resample_generic(plan, flat_loc)
    return out


def _resample_generic(plan: SamplingPlan, loc):
    """Any number of dimensions: per-axis corners from the shared formulas, array-module gathers."""
    xp, kernels = plan.backend.xp, plan.backend.kernels
    batch, n_points, n_dims = loc.shape
    batch_index = xp.arange(batch)[:, None]
    axes = [xp.ascontiguousarray(loc[..., d]).reshape(-1) for d in range(n_dims)]
    if plan.method == NEAREST:
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
    if plan.method == LABEL:
        return _label_vote(xp, values, weights, plan)
    return pyramid_combination(values, weights).astype(plan.out_dtype, copy=False)


def _label_vote(xp, values, weights, plan):
    """Each corner's label scores ``pyramid_combination`` of its indicator; the best score wins, ties to the
    smallest label; a NaN weight (clamp, NaN coordinate) gives ``plan.outside``."""
    one, zero = plan.one, plan.one - plan.one
    scores = xp.stack([pyramid_combination([xp.where(v == label, one, zero) for v in values], weights)
                       for label in values])
    labels = xp.stack(values)
    best = scores.max(axis=0)
    wide = labels.astype(np.int64) if labels.dtype != np.uint64 else labels
    highest = np.iinfo(wide.dtype).max
    winner = xp.where(scores == best, wide, highest).min(axis=0).astype(plan.out_dtype)
    nan_weight = xp.zeros(best.shape, dtype=bool)
    for w in weights:
        nan_weight = nan_weight | xp.isnan(w)
    return xp.where(nan_weight, plan.out_dtype.type(plan.outside), winner)


def _gather(xp, vol, batch_index, index, outside):
    """``vol[b, index...]`` with ``outside`` where any index is -1; returns ``(batch, points, ch)``."""
    inside = index[0] >= 0
    for i in index[1:]:
        inside = inside & (i >= 0)
    safe = [xp.where(inside, i, 0) for i in index]
    values = vol[(batch_index, *safe)]
    return xp.where(inside[..., None], values, outside)
