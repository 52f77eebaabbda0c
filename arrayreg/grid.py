"""Reference grids, hypercube corners and affine warping of a grid."""

from __future__ import annotations

import itertools

import numpy as np

from . import _validation as validate
from ._backend import backend_of
from ._plan import compute_dtype, kernel_array


def get_n_bits_combinations(num_bits: int) -> list:
    """All ``2**num_bits`` combinations of ``num_bits`` bits, in lexicographic order.

    ``get_n_bits_combinations(2) == [[0, 0], [0, 1], [1, 0], [1, 1]]``: entry
    ``r`` is the binary representation of ``r``, most significant bit first.
    This is the corner order of :func:`arrayreg.pyramid_combination`.

    Raises
    ------
    ValueError
        if ``num_bits`` is not an int >= 1.

    Examples
    --------
    >>> from arrayreg import get_n_bits_combinations
    >>> get_n_bits_combinations(2)
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    num_bits = validate.check_int(num_bits, "num_bits", 1)
    return [list(bits) for bits in itertools.product([0, 1], repeat=num_bits)]


def get_reference_grid(grid_size) -> np.ndarray:
    """The voxel-index grid ``grid[i, j, k] = [i, j, k]`` (DeepReg's ``get_reference_grid``).

    Parameters
    ----------
    grid_size : tuple of 3 positive ints
        ``(d1, d2, d3)``.

    Returns
    -------
    numpy.ndarray, shape (d1, d2, d3, 3), float32

    Examples
    --------
    >>> from arrayreg import get_reference_grid
    >>> get_reference_grid((1, 2, 2))[0].tolist()
    [[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]]
    """
    d1, d2, d3 = validate.check_size3(grid_size, "grid_size")
    grid = np.empty((d1, d2, d3, 3), dtype=np.float32)
    grid[..., 0] = np.arange(d1, dtype=np.float32)[:, None, None]
    grid[..., 1] = np.arange(d2, dtype=np.float32)[None, :, None]
    grid[..., 2] = np.arange(d3, dtype=np.float32)[None, None, :]
    return grid


def warp_grid(grid, theta, *, out=None) -> np.ndarray:
    """Apply a batch of affine transforms to a grid of points.

    ``out[b, i, j, k, p] = sum_q [grid[i, j, k, 0], grid[i, j, k, 1], grid[i, j, k, 2], 1][q] * theta[b, q, p]``

    The homogeneous coordinate is never materialised; the sum is accumulated in
    float64 and rounded once to the output dtype.

    Parameters
    ----------
    grid : array, shape (d1, d2, d3, 3)
        Usually :func:`get_reference_grid`.
    theta : array, shape (batch, 4, 3)
        E.g. :func:`random_transform_generator`.
    out : array, shape (batch, d1, d2, d3, 3), optional (beyond DeepReg)
        Where to write the result, as NumPy's ``out=``: a C-contiguous array of
        the result's shape and dtype, of the same kind (NumPy or CuPy) as the
        inputs and not overlapping them.  Reusing one buffer across calls saves
        the page faults of a fresh allocation, which on a large grid cost as
        much as the arithmetic.

    Returns
    -------
    array, shape (batch, d1, d2, d3, 3)
        float64 when ``grid`` or ``theta`` is float64, otherwise float32
        (``out`` itself when given).

    Examples
    --------
    A translation by ``(1, 2, 3)``:

    >>> import numpy as np
    >>> from arrayreg import get_reference_grid, warp_grid
    >>> theta = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 2, 3]]], np.float32)
    >>> warp_grid(get_reference_grid((2, 1, 1)), theta)[0, :, 0, 0].tolist()
    [[1.0, 2.0, 3.0], [2.0, 2.0, 3.0]]
    """
    backend = backend_of(grid=grid, theta=theta, out=out)
    xp = backend.xp
    grid = validate.as_coordinates(grid, "grid", xp)
    theta = validate.as_coordinates(theta, "theta", xp)
    if grid.ndim != 4 or grid.shape[-1] != 3:
        raise ValueError(f"grid must have shape (dim1, dim2, dim3, 3); got {grid.shape}")
    if theta.ndim != 3 or theta.shape[1:] != (4, 3):
        raise ValueError(f"theta must have shape (batch, 4, 3); got {theta.shape}")
    dtype = compute_dtype(grid, theta)
    shape = (theta.shape[0],) + grid.shape
    if out is None:
        out = xp.empty(shape, dtype=dtype)
    else:
        validate.check_out(out, shape, dtype, xp, grid=grid, theta=theta)
    if out.size:
        backend.kernels.warp_grid3d(kernel_array(grid, dtype, xp), kernel_array(theta, dtype, xp), out)
    return out
