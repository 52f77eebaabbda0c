"""Random affine transforms in DeepReg's ``(batch, 4, 3)`` layout."""

from __future__ import annotations

import numpy as np

from ._validation import check_int, check_real, random_source

# Corners C, G, D, A of the cube [-1, 1]^3 with the homogeneous 1 appended.
_CUBE_CORNERS = np.array(
    [[-1, -1, -1, 1], [-1, -1, 1, 1], [-1, 1, -1, 1], [1, -1, -1, 1]], dtype=np.float64
)


def random_transform_generator(batch_size: int, scale: float, seed=None) -> np.ndarray:
    """Random affine transforms ``theta`` of shape ``(batch_size, 4, 3)``, float32.

    The corners C, G, D, A of the cube ``[-1, 1]^3`` (``old``, homogeneous) are
    moved to ``new = old[:, :3] * noise`` with ``noise ~ U(1 - scale, 1)`` of
    shape ``(batch_size, 4, 3)``; ``theta[b]`` solves ``old @ theta[b] = new[b]``
    by least squares in float64 and is rounded to float32.  A point ``[x, y, z]``
    maps to ``[x, y, z, 1] @ theta[b]`` (see :func:`arrayreg.warp_grid`).

    Parameters
    ----------
    batch_size : int >= 1
    scale : float in [0, 1]
    seed : None, int, numpy.random.Generator or numpy.random.RandomState
        An int (or None) draws ``RandomState(seed).uniform(1 - scale, 1, ...)``,
        the numbers of DeepReg's ``random_transform_generator``.  Unlike
        DeepReg, NumPy's global random state is never touched.

    Returns
    -------
    numpy.ndarray, shape (batch_size, 4, 3), float32

    Examples
    --------
    DeepReg's own unit-test case:

    >>> from arrayreg import random_transform_generator
    >>> [round(float(v), 6) for v in random_transform_generator(1, 0.1, seed=0)[0, 0]]
    [0.946613, -0.003827, 0.003693]
    """
    batch_size = check_int(batch_size, "batch_size", 1)
    scale = check_real(scale, "scale", "a number in [0, 1]", lambda x: 0 <= x <= 1)
    source = random_source(seed)
    noise = source.uniform(1 - scale, 1, (batch_size, 4, 3))
    new = _CUBE_CORNERS[None, :, :3] * noise
    theta = np.array([np.linalg.lstsq(_CUBE_CORNERS, new[b], rcond=None)[0] for b in range(batch_size)])
    return theta.astype(np.float32)
