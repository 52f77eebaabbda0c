"""Field algebra on dense displacement fields: Jacobians, folding, affine <-> DDF.

A DDF is ``(batch, f1, f2, f3, 3)`` in voxels (``ij`` order): voxel ``x`` maps
to ``x + ddf[b, x]``.  NumPy goes to the Numba CPU kernels, CuPy to the CUDA
kernels, both built on ``_kernels/formulas.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validation as validate
from ._backend import backend_of, to_host
from ._plan import compute_dtype, kernel_array, plan_sampling
from .grid import get_reference_grid, warp_grid


def _check_spacing(spacing) -> tuple:
    try:
        values = tuple(spacing)
    except TypeError as error:
        raise TypeError(f"spacing must be 3 positive numbers; got {spacing!r}") from error
    if len(values) != 3:
        raise ValueError(f"spacing must be 3 positive numbers; got {spacing!r}")
    return tuple(validate.check_real(h, "spacing", "3 finite numbers > 0", lambda x: 0 < x < np.inf)
                 for h in values)


def _combine(outer, inner, boundary, weights, xp, backend, out=None):
    """``w_inner * inner + w_outer * outer(x + inner(x))`` in one fused pass (``kernels.compose3d``).

    Returns the result (in ``out`` when given, a buffer of the compute dtype that
    is not ``inner``) and the largest ``|result - inner|`` (0.0 when empty).
    """
    plan = plan_sampling(backend, outer, "outer", 3, True, (inner,), "linear", boundary, 0.0)
    dtype = plan.coord_dtype
    out = xp.empty(inner.shape, dtype=dtype) if out is None else out
    if not out.size:
        return out, 0.0
    coords = xp.arange(max(inner.shape[1:4]), dtype=dtype)
    weight = (dtype.type(weights[0]), dtype.type(weights[1]))
    change = xp.zeros(inner.shape[0] * inner.shape[1], dtype=dtype)
    backend.kernels.compose3d(plan.vol, kernel_array(inner, dtype, xp), coords, plan.mode, weight, change, out)
    return out, float(change.max())


def _pair(outer, inner):
    backend = backend_of(outer=outer, inner=inner)
    xp = backend.xp
    outer, inner = validate.as_field(outer, "outer", xp), validate.as_field(inner, "inner", xp)
    if outer.shape[0] != inner.shape[0]:
        raise ValueError(f"outer and inner must have the same batch size; got {outer.shape} and {inner.shape}")
    validate.check_spatial_nonempty(outer.shape[1:4], "outer")
    return backend, xp, outer, inner


def compose_ddf(outer, inner, *, boundary: str = "constant"):
    """The DDF of ``phi_outer(phi_inner(x))``, where ``phi(x) = x + ddf(x)``.

    ``out(x) = inner(x) + outer(x + inner(x))``, with ``outer`` sampled linearly
    at the displaced points in one fused pass.  ``warp_image_ddf(image, out)``
    then equals, up to interpolation, ``warp_image_ddf(warp_image_ddf(image, outer), inner)``.

    Parameters
    ----------
    outer, inner : array, shape (batch, d1, d2, d3, 3) and (batch, f1, f2, f3, 3)
        ``inner`` defines the output grid; ``outer``'s grid may differ.
    boundary : {"constant", "clamp"}, default "constant"
        ``"constant"``: no displacement outside ``outer``'s grid (each corner
        outside contributes 0; ITK also gives 0 beyond half a voxel outside,
        but the edge value within that half voxel); ``"clamp"``: DeepReg's
        edge rule (points outside take the edge displacement).

    Returns
    -------
    array, shape (batch, f1, f2, f3, 3)
        float64 when either field is float64, float32 otherwise.

    Examples
    --------
    Two shifts add up:

    >>> import numpy as np
    >>> from arrayreg import compose_ddf
    >>> a = np.full((1, 4, 4, 4, 3), 0.5, np.float32)
    >>> float(compose_ddf(a, a, boundary="clamp").max())
    1.0
    """
    validate.check_choice(boundary, "boundary", validate.BOUNDARIES)
    backend, xp, outer, inner = _pair(outer, inner)
    return _combine(outer, inner, boundary, (1, 1), xp, backend)[0]


def invert_ddf(ddf, *, iterations: int = 20, tolerance: float = 1e-3, return_error: bool = False):
    """The inverse DDF by fixed-point iteration: ``v <- -ddf(x + v(x))``, starting from ``v = -ddf``.

    Each iteration is one fused pass (``ddf`` sampled linearly, edges clamped);
    the loop stops after ``iterations`` or once the largest change of ``v`` is
    below ``tolerance`` voxels.  It converges where the map does not fold and
    ``|du/dx| < 1``; near the edges, where ``x + v(x)`` leaves the grid, the
    inverse is only an extrapolation.

    Parameters
    ----------
    ddf : array, shape (batch, f1, f2, f3, 3)
    iterations : int >= 0, default 20
    tolerance : float >= 0, default 1e-3
    return_error : bool, default False
        Also return the largest inverse-consistency error
        ``|compose_ddf(ddf, inverse)|`` over the voxels whose image
        ``x + inverse(x)`` lies inside the grid.

    Returns
    -------
    inverse : array, shape (batch, f1, f2, f3, 3)
    error : float
        Only with ``return_error``.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg import compose_ddf, invert_ddf
    >>> shift = np.full((1, 6, 6, 6, 3), 0.75, np.float32)
    >>> float(invert_ddf(shift)[0, 2, 2, 2, 0])
    -0.75
    """
    iterations = validate.check_int(iterations, "iterations", 0)
    tolerance = validate.check_real(tolerance, "tolerance", "a number >= 0", lambda x: x >= 0)
    backend = backend_of(ddf=ddf)
    xp = backend.xp
    ddf = validate.as_field(ddf, "ddf", xp)
    validate.check_spatial_nonempty(ddf.shape[1:4], "ddf")
    ddf = kernel_array(ddf, compute_dtype(ddf), xp)
    inverse = -ddf
    spare = xp.empty_like(inverse) if iterations else None
    for _ in range(iterations):
        updated, change = _combine(ddf, inverse, "clamp", (0, -1), xp, backend, out=spare)
        inverse, spare = updated, inverse
        if change < tolerance:
            break
    if not return_error:
        return inverse
    residual, _ = _combine(ddf, inverse, "clamp", (1, 1), xp, backend, out=spare)
    image = xp.asarray(get_reference_grid(ddf.shape[1:4]), dtype=inverse.dtype) + inverse
    top = xp.asarray(np.array(ddf.shape[1:4]) - 1, dtype=inverse.dtype)
    inside = ((image >= 0) & (image <= top)).all(axis=-1)
    lengths = xp.sqrt((residual ** 2).sum(axis=-1))
    error = float(lengths[inside].max()) if bool(inside.any()) else float("nan")
    return inverse, error


def jacobian_determinant(ddf, spacing=(1, 1, 1)):
    r"""The Jacobian determinant of the map ``x -> x + ddf(x)``, voxel by voxel.

    .. math:: J(x) = \det\left(I + \frac{\partial u}{\partial x}\right), \qquad
              \frac{\partial u_c}{\partial x_a} \approx
              \frac{u_c(x + e_a) - u_c(x - e_a)}{2 h_a}

    with central differences inside and one-sided differences
    ``(u(x + e_a) - u(x)) / h_a``, ``(u(x) - u(x - e_a)) / h_a`` on the border
    voxels (NumPy's ``gradient``); an axis of one voxel contributes no derivative.

    Parameters
    ----------
    ddf : array, shape (batch, f1, f2, f3, 3)
    spacing : 3 positive numbers, default (1, 1, 1)
        The voxel size ``h_a`` in the units of the DDF: 1 for a DDF in voxels,
        the voxel size in mm for a DDF in mm.

    Returns
    -------
    array, shape (batch, f1, f2, f3)
        float64 for a float64 DDF, float32 otherwise.  ``J <= 0`` marks folding.

    Examples
    --------
    A uniform 10 % stretch along the first axis:

    >>> import numpy as np
    >>> from arrayreg import get_reference_grid, jacobian_determinant
    >>> ddf = np.zeros((1, 5, 4, 3, 3), np.float32)
    >>> ddf[..., 0] = 0.1 * get_reference_grid((5, 4, 3))[..., 0]
    >>> np.allclose(jacobian_determinant(ddf), 1.1)
    True
    """
    backend = backend_of(ddf=ddf)
    xp = backend.xp
    ddf = validate.as_field(ddf, "ddf", xp)
    steps = _check_spacing(spacing)
    dtype = compute_dtype(ddf)
    out = xp.empty(ddf.shape[:4], dtype=dtype)
    if out.size:
        inverse = tuple(dtype.type(1.0 / h) for h in steps)
        backend.kernels.jacobian3d(kernel_array(ddf, dtype, xp), inverse, dtype.type(0.5), dtype.type(1), out)
    return out


@dataclass(frozen=True)
class FoldingReport:
    """Summary of a field's Jacobian determinant ``J`` (see :func:`folding_report`)."""

    n_voxels: int
    n_folded: int
    percent_folded: float
    det_min: float
    det_max: float
    det_mean: float
    log_det_std: float
    max_displacement: float

    def __str__(self) -> str:
        return (f"{self.n_folded} of {self.n_voxels} voxels folded ({self.percent_folded:.3g} %), "
                f"det J in [{self.det_min:.4g}, {self.det_max:.4g}], mean {self.det_mean:.4g}, "
                f"std log det J {self.log_det_std:.4g}, max |u| {self.max_displacement:.4g}")


def folding_report(ddf, spacing=(1, 1, 1), mask=None) -> FoldingReport:
    """How much a field folds: counts and statistics of its Jacobian determinant ``J``.

    Parameters
    ----------
    ddf : array, shape (batch, f1, f2, f3, 3)
    spacing : 3 positive numbers, default (1, 1, 1)
        As :func:`jacobian_determinant`.
    mask : bool array, shape (batch, f1, f2, f3) or (f1, f2, f3), optional
        The voxels to count (all by default).

    Returns
    -------
    FoldingReport
        ``n_folded`` and ``percent_folded`` count ``J <= 0``; ``det_min``,
        ``det_max``, ``det_mean`` over the counted voxels; ``log_det_std`` the
        standard deviation of ``log J`` over those with ``J > 0``;
        ``max_displacement`` the largest ``|u|`` (Euclidean, in the DDF's units).
        Printing it gives one line.
    """
    xp = backend_of(ddf=ddf, mask=mask).xp
    det = jacobian_determinant(ddf, spacing)
    field = validate.as_field(ddf, "ddf", xp)
    norms = xp.sqrt((field.astype(det.dtype) ** 2).sum(axis=-1))
    if mask is not None:
        mask = validate.as_array(mask, "mask", xp)
        if mask.dtype != bool or mask.shape not in (det.shape, det.shape[1:]):
            raise ValueError(f"mask must be a bool array of shape {det.shape} or {det.shape[1:]}; "
                             f"got {mask.dtype} {mask.shape}")
        mask = xp.broadcast_to(mask, det.shape)
        det, norms = det[mask], norms[mask]
    det, norms = to_host(det).astype(np.float64).ravel(), to_host(norms).astype(np.float64).ravel()
    if det.size == 0:
        raise ValueError("folding_report needs at least one voxel (the field or the mask is empty)")
    positive = det[det > 0]
    folded = int(det.size - positive.size)
    return FoldingReport(
        n_voxels=int(det.size), n_folded=folded, percent_folded=100.0 * folded / det.size,
        det_min=float(det.min()), det_max=float(det.max()), det_mean=float(det.mean()),
        log_det_std=float(np.log(positive).std()) if positive.size else float("nan"),
        max_displacement=float(norms.max()),
    )


def _check_matrix(matrix, xp):
    matrix = validate.as_coordinates(matrix, "matrix", xp)
    if matrix.shape == (4, 4):
        matrix = matrix[None]
    if matrix.ndim != 3 or matrix.shape[1:] != (4, 4):
        raise ValueError(f"matrix must have shape (4, 4) or (batch, 4, 4); got {matrix.shape}")
    last = to_host(matrix[:, 3, :]).astype(np.float64)
    if not np.allclose(last, [0, 0, 0, 1], rtol=0, atol=1e-12):
        raise ValueError(f"matrix must be affine, with last row (0, 0, 0, 1); got {last.tolist()}")
    return matrix


def affine_to_ddf(matrix, shape):
    """The DDF of a voxel-to-voxel affine: ``ddf[b, x] = (M[b] @ [x, 1])[:3] - x``.

    ``matrix`` uses the column-vector convention of NIfTI and ITK, ``y = M @ [x, 1]``.
    DeepReg's ``theta`` ``(batch, 4, 3)`` (:func:`arrayreg.warp_grid`) is the row-vector
    form of the same map, ``y = [x, 1] @ theta``: ``theta[:3] = M[:3, :3].T`` and
    ``theta[3] = M[:3, 3]``.  Computed by :func:`arrayreg.warp_grid` on the reference
    grid with ``theta - [I; 0]``, accumulated in float64 per voxel.

    Parameters
    ----------
    matrix : array, shape (4, 4) or (batch, 4, 4)
    shape : 3 positive ints
        The grid ``(f1, f2, f3)``.

    Returns
    -------
    array, shape (batch, f1, f2, f3, 3)
        float64 for a float64 matrix, float32 otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg import affine_to_ddf
    >>> shift = np.eye(4)
    >>> shift[:3, 3] = (1, 2, 3)
    >>> affine_to_ddf(shift, (2, 2, 2))[0, 1, 1, 1].tolist()
    [1.0, 2.0, 3.0]
    """
    xp = backend_of(matrix=matrix).xp
    matrix = _check_matrix(matrix, xp)
    shape = validate.check_size3(shape, "shape")
    theta = xp.concatenate([xp.swapaxes(matrix[:, :3, :3], 1, 2), matrix[:, None, :3, 3]], axis=1)
    theta[:, :3, :] -= xp.eye(3, dtype=theta.dtype)
    grid = xp.asarray(get_reference_grid(shape))
    return warp_grid(grid, theta)


def _axis_moments(shape):
    """``X^T X`` of the homogeneous grid coordinates ``[i, j, k, 1]`` of ``shape``, in float64, exactly."""
    n = float(np.prod(shape))
    sums = [n * (s - 1) / 2 for s in shape]
    squares = [n * (s - 1) * (2 * s - 1) / 6 for s in shape]
    gram = np.empty((4, 4))
    for q in range(3):
        for p in range(3):
            gram[q, p] = squares[q] if q == p else sums[q] * sums[p] / n
        gram[q, 3] = gram[3, q] = sums[q]
    gram[3, 3] = n
    return gram


def ddf_to_affine(ddf):
    """The least-squares affine of a DDF: the ``(batch, 4, 4)`` float64 ``M`` minimising
    ``sum_x |M @ [x, 1] - [x + ddf(x), 1]|^2``, the inverse of :func:`affine_to_ddf`.

    The normal equations use the grid's exact moments and one float64 pass of
    sums over the DDF (no coordinate grid is built); an affine DDF gives back
    its matrix to about 1e-6 of its entries in float32.

    Parameters
    ----------
    ddf : array, shape (batch, f1, f2, f3, 3)

    Returns
    -------
    numpy.ndarray, shape (batch, 4, 4), float64

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg import affine_to_ddf, ddf_to_affine
    >>> m = np.array([[1.1, 0.1, 0, 2], [0, 0.9, 0, -1], [0, 0, 1, 0.5], [0, 0, 0, 1]])
    >>> bool(np.allclose(ddf_to_affine(affine_to_ddf(m, (6, 5, 4)))[0], m, atol=1e-5))
    True
    """
    xp = backend_of(ddf=ddf).xp
    ddf = validate.as_field(ddf, "ddf", xp)
    shape = ddf.shape[1:4]
    gram = _axis_moments(shape)
    cross = np.empty((ddf.shape[0], 4, 3))  # X^T D
    for axis in range(3):
        others = tuple(a for a in (1, 2, 3) if a != axis + 1)
        profile = to_host(ddf.sum(axis=others, dtype=xp.float64))  # (batch, f_axis, 3)
        cross[:, axis, :] = np.einsum("n,bnp->bp", np.arange(shape[axis], dtype=np.float64), profile)
    cross[:, 3, :] = to_host(ddf.sum(axis=(1, 2, 3), dtype=xp.float64))
    solution = np.linalg.pinv(gram) @ cross  # (batch, 4, 3) = theta - [I; 0]; pinv: a 1-voxel axis stays fixed
    solution[:, :3, :] += np.eye(3)
    matrix = np.zeros((ddf.shape[0], 4, 4))
    matrix[:, :3, :3] = np.swapaxes(solution[:, :3, :], 1, 2)
    matrix[:, :3, 3] = solution[:, 3, :]
    matrix[:, 3, 3] = 1.0
    return matrix
