"""Numba CPU kernels: parallel loops (``prange`` over an outer axis) around ``formulas``.

Array layouts are normalised by the callers: volumes carry an explicit channel
axis, outputs are ``(batch, points, ch)`` views, every array is C-contiguous
and native-endian.  Index arithmetic is int64 throughout.
"""

import numpy as np
from numba import njit, prange

from .formulas import (
    linear_axis,
    nearest_axis,
    resize_point_linear,
    sample_point2,
    sample_point3,
    warp_grid_point,
)

_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")


@njit(**_JIT)
def resample3d(vol, loc, top, nearest, constant, one, outside, out):
    """``out[b, p, :] = vol[b]`` sampled at ``loc[b, p, :]`` (3 coordinates)."""
    n_points = loc.shape[1]
    for t in prange(loc.shape[0] * n_points):
        b = t // n_points
        p = t - b * n_points
        sample_point3(vol, b, loc[b, p, 0], loc[b, p, 1], loc[b, p, 2], top, nearest, constant, one, outside, out, b, p)


@njit(**_JIT)
def resample2d(vol, loc, top, nearest, constant, one, outside, out):
    """``out[b, p, :] = vol[b]`` sampled at ``loc[b, p, :]`` (2 coordinates)."""
    n_points = loc.shape[1]
    for t in prange(loc.shape[0] * n_points):
        b = t // n_points
        p = t - b * n_points
        sample_point2(vol, b, loc[b, p, 0], loc[b, p, 1], top, nearest, constant, one, outside, out, b, p)


@njit(**_JIT)
def warp3d(image, ddf, grid, use_grid, coords, top, nearest, constant, one, outside, out):
    """Fused ``resample(image, grid + ddf)``: the location of each voxel is built in registers.

    With ``use_grid`` False the grid is the reference grid, read from the
    float table ``coords`` (``coords[i] == i``); otherwise ``grid[0]``.
    """
    n_batch, f1, f2, f3 = ddf.shape[0], ddf.shape[1], ddf.shape[2], ddf.shape[3]
    for t in prange(n_batch * f1):
        b = t // f1
        i = t - b * f1
        for j in range(f2):
            row = (i * f2 + j) * f3
            for k in range(f3):
                if use_grid:
                    x = grid[0, i, j, k, 0] + ddf[b, i, j, k, 0]
                    y = grid[0, i, j, k, 1] + ddf[b, i, j, k, 1]
                    z = grid[0, i, j, k, 2] + ddf[b, i, j, k, 2]
                else:
                    x = coords[i] + ddf[b, i, j, k, 0]
                    y = coords[j] + ddf[b, i, j, k, 1]
                    z = coords[k] + ddf[b, i, j, k, 2]
                sample_point3(image, b, x, y, z, top, nearest, constant, one, outside, out, b, row + k)


@njit(**_JIT)
def squaring_step(src, coords, top, one, dst):
    """One scaling-and-squaring step: ``dst = src + warp(src, src)`` (linear, clamp).

    ``src`` is ``(batch, f1, f2, f3, 3)``; ``dst`` is the same buffer viewed
    as ``(batch, f1 * f2 * f3, 3)``.
    """
    n_batch, f1, f2, f3 = src.shape[0], src.shape[1], src.shape[2], src.shape[3]
    for t in prange(n_batch * f1):
        b = t // f1
        i = t - b * f1
        for j in range(f2):
            row = (i * f2 + j) * f3
            for k in range(f3):
                x = coords[i] + src[b, i, j, k, 0]
                y = coords[j] + src[b, i, j, k, 1]
                z = coords[k] + src[b, i, j, k, 2]
                sample_point3(src, b, x, y, z, top, False, False, one, one, dst, b, row + k)
                for c in range(3):
                    dst[b, row + k, c] = src[b, i, j, k, c] + dst[b, row + k, c]


@njit(**_JIT)
def warp_grid3d(grid, theta, out):
    """``out[b, i, j, k, p] = [grid[i, j, k], 1] @ theta[b, :, p]``."""
    d1, d2, d3 = grid.shape[0], grid.shape[1], grid.shape[2]
    for t in prange(theta.shape[0] * d1):
        b = t // d1
        i = t - b * d1
        for j in range(d2):
            for k in range(d3):
                g0, g1, g2 = grid[i, j, k, 0], grid[i, j, k, 1], grid[i, j, k, 2]
                for p in range(3):
                    out[b, i, j, k, p] = warp_grid_point(g0, g1, g2, theta, b, p)


@njit(**_JIT)
def resize3d_linear(image, lo1, hi1, t1, lo2, hi2, t2, lo3, hi3, t3, out):
    """Separable half-pixel linear resize; the tables give the corners and weights per axis."""
    n_batch, o1, o2, o3, n_ch = out.shape
    for t in prange(n_batch * o1):
        b = t // o1
        a = t - b * o1
        for j in range(o2):
            for k in range(o3):
                for ch in range(n_ch):
                    out[b, a, j, k, ch] = resize_point_linear(
                        image, b, lo1[a], hi1[a], t1[a], lo2[j], hi2[j], t2[j], lo3[k], hi3[k], t3[k], ch
                    )


@njit(**_JIT)
def resize3d_nearest(image, n1, n2, n3, out):
    """``out[b, a, j, k] = image[b, n1[a], n2[j], n3[k]]``."""
    n_batch, o1, o2, o3, n_ch = out.shape
    for t in prange(n_batch * o1):
        b = t // o1
        a = t - b * o1
        for j in range(o2):
            for k in range(o3):
                for ch in range(n_ch):
                    out[b, a, j, k, ch] = image[b, n1[a], n2[j], n3[k], ch]


@njit(**_JIT)
def linear_axis_table(coords, top, one, constant, lo, hi, w_lo):
    """``linear_axis`` applied to every coordinate of a flat array (the generic n-D path)."""
    for t in prange(coords.shape[0]):
        lo[t], hi[t], w_lo[t] = linear_axis(coords[t], top, one, constant)


@njit(**_JIT)
def nearest_axis_table(coords, top, constant, index):
    """``nearest_axis`` applied to every coordinate of a flat array (the generic n-D path)."""
    for t in prange(coords.shape[0]):
        index[t] = nearest_axis(coords[t], top, constant)
