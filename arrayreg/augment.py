"""Random spatial augmentation: an affine plus a smooth diffeomorphic deformation, as one DDF.

The affine acts on coordinates normalised to ``[-1, 1]`` about the volume
centre (DeepReg's ``random_transform_generator`` convention), so the same
``theta`` means the same relative deformation at any volume size.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_size3
from .affine import random_transform_generator
from .ddf import integrate_dvf, random_ddf, warp_image_ddf
from .grid import get_reference_grid, warp_grid


def centred_affine(shape, theta) -> np.ndarray:
    r"""The voxel-space matrix of ``theta`` acting on centred, normalised coordinates, minus the identity.

    With centre ``c = (shape - 1) / 2`` and half-width ``h = max(c, 1)`` per
    axis, ``n_q = (x_q - c_q) / h_q`` is moved to ``n'_p = sum_q n_q T[q, p] + T[3, p]``
    and back to ``x'_p = h_p n'_p + c_p``.  Expanding gives one affine map of
    ``x``; the identity is subtracted so that :func:`arrayreg.warp_grid` of the
    reference grid with the result is the displacement ``x' - x``:

    .. math::

        A[q, p] = h_p T[q, p] / h_q - \delta_{qp}, \qquad
        A[3, p] = h_p \Big(T[3, p] - \sum_q c_q T[q, p] / h_q\Big) + c_p

    Computed in float64; returns ``(batch, 4, 3)`` float64.
    """
    theta = np.asarray(theta, np.float64)
    centre = (np.asarray(shape, np.float64) - 1) / 2
    half = np.maximum(centre, 1.0)
    linear = theta[:, :3, :] * half[None, None, :] / half[None, :, None] - np.eye(3)
    offset = half * (theta[:, 3, :] - np.einsum("q,bqp->bp", centre / half, theta[:, :3, :])) + centre
    return np.concatenate([linear, offset[:, None, :]], axis=1)


def affine_ddf(shape, theta, xp=np):
    """The DDF ``(batch, *shape, 3)`` float32 of the affines ``theta`` ``(batch, 4, 3)`` on normalised coordinates.

    ``ddf[b, x] = x'(x) - x`` with ``x'`` as in :func:`centred_affine`.  The
    centring is folded into one matrix (rounded to float32, about 1e-5 voxel on
    a 512-voxel axis), so the only temporary is the float32 reference grid:
    memory stays near the output's size.  ``xp`` is NumPy or CuPy.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg.augment import affine_ddf
    >>> identity = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]], np.float32)
    >>> float(np.abs(affine_ddf((4, 5, 6), identity)).max())
    0.0
    """
    shape = check_size3(shape, "shape")
    matrix = centred_affine(shape, theta).astype(np.float32)
    return warp_grid(xp.asarray(get_reference_grid(shape)), xp.asarray(matrix))


def random_deformation(shape, seed=None, scale: float = 0.1, max_velocity: float = 4.0, smoothness=None, xp=np):
    """A random affine followed by a random diffeomorphic deformation, composed into one DDF ``(1, *shape, 3)``.

    The velocity field is :func:`arrayreg.random_ddf` (``max_velocity`` voxels,
    control points every ``smoothness`` voxels, default ``max(shape) / 4``),
    integrated by scaling and squaring (7 steps) into ``d``; the affine is
    :func:`arrayreg.random_transform_generator` with ``scale``.  The point
    ``x`` moves to ``x + d(x)`` and then by the affine, so the total field is
    ``d(x) + a(x + d(x))``.  ``seed`` is an int or a ``numpy.random.Generator``;
    ``xp`` is NumPy or CuPy (where the fields are made).
    """
    shape = check_size3(shape, "shape")
    rng = np.random.default_rng(seed)
    theta = random_transform_generator(1, scale, seed=rng)
    affine = affine_ddf(shape, theta, xp)
    velocity = random_ddf(shape, max_velocity, smoothness or max(shape) / 4, seed=rng,
                          xp=None if xp is np else xp)
    deformation = integrate_dvf(velocity, 7)
    return deformation + warp_image_ddf(affine, deformation)
