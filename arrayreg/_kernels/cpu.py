"""Numba CPU kernels: parallel loops (``prange`` over an outer axis) around ``formulas``.

Array layouts are normalised by the callers: volumes carry an explicit channel
axis, outputs are ``(batch, points, ch)`` views, every array is C-contiguous
and native-endian.  Index arithmetic is int64 throughout.
"""

import numpy as np
from numba import njit, prange

from . import formulas

_F = formulas.build(njit(inline="always"))
linear_axis = _F.linear_axis
nearest_axis = _F.nearest_axis
sample_point2 = _F.sample_point2
sample_point3 = _F.sample_point3
tf_lerp = _F.tf_lerp
warp_grid_point = _F.warp_grid_point

_JIT = dict(parallel=True, cache=True, nogil=True, error_model="numpy")
_CHUNK = 4096  # points per parallel task in the resample kernels


@njit(inline="always")
def point_chunk(task, n_chunks, n_points):
    """Batch element and flat point range ``[first, last)`` of one parallel task."""
    b = task // n_chunks
    first = b * n_points + (task - b * n_chunks) * _CHUNK
    return b, first, min(first + _CHUNK, (b + 1) * n_points)


# Every kernel calls its loop body twice: once with the options of DeepReg's
# default (linear, clamp) spelled as constants, so that the compiler drops the
# other branches and vectorises the loop, and once with the options as given.


@njit(inline="always")
def resample3d_points(src, dims, loc, b, n_points, top, nearest, constant, one, outside, dst, first, last):
    for t in range(first, last):
        p = t - b * n_points
        sample_point3(src, dims, b * dims[0] * dims[1] * dims[2] * dims[3], loc[b, p, 0], loc[b, p, 1],
                      loc[b, p, 2], top, nearest, constant, one, outside, dst, t * dims[3])


@njit(**_JIT)
def resample3d(vol, loc, top, nearest, constant, one, outside, out):
    """``out[b, p, :] = vol[b]`` sampled at ``loc[b, p, :]`` (3 coordinates), in chunks of points."""
    n_batch, d1, d2, d3, n_ch = vol.shape
    src, dst = vol.reshape(-1), out.reshape(-1)
    n_points = loc.shape[1]
    n_chunks = (n_points + _CHUNK - 1) // _CHUNK
    fast = not nearest and not constant
    for task in prange(n_batch * n_chunks):
        b, first, last = point_chunk(task, n_chunks, n_points)
        if fast:
            resample3d_points(src, (d1, d2, d3, n_ch), loc, b, n_points, top, False, False, one, outside, dst, first, last)
        else:
            resample3d_points(src, (d1, d2, d3, n_ch), loc, b, n_points, top, nearest, constant, one, outside, dst,
                              first, last)


@njit(inline="always")
def resample2d_points(src, dims, loc, b, n_points, top, nearest, constant, one, outside, dst, first, last):
    for t in range(first, last):
        p = t - b * n_points
        sample_point2(src, dims, b * dims[0] * dims[1] * dims[2], loc[b, p, 0], loc[b, p, 1],
                      top, nearest, constant, one, outside, dst, t * dims[2])


@njit(**_JIT)
def resample2d(vol, loc, top, nearest, constant, one, outside, out):
    """``out[b, p, :] = vol[b]`` sampled at ``loc[b, p, :]`` (2 coordinates)."""
    n_batch, d1, d2, n_ch = vol.shape
    src, dst = vol.reshape(-1), out.reshape(-1)
    n_points = loc.shape[1]
    n_chunks = (n_points + _CHUNK - 1) // _CHUNK
    fast = not nearest and not constant
    for task in prange(n_batch * n_chunks):
        b, first, last = point_chunk(task, n_chunks, n_points)
        if fast:
            resample2d_points(src, (d1, d2, n_ch), loc, b, n_points, top, False, False, one, outside, dst, first, last)
        else:
            resample2d_points(src, (d1, d2, n_ch), loc, b, n_points, top, nearest, constant, one, outside, dst,
                              first, last)


@njit(inline="always")
def warp_plane(src, dims, ddf, grid, use_grid, coords, top, nearest, constant, one, outside, dst, b, i, t, f2, f3):
    """Warp the fixed-grid plane ``i`` of batch element ``b`` (``t = b * f1 + i``).

    ``ddf``, ``grid`` and ``dst`` are flat; each row is taken as a 1-D slice
    so that the compiler can vectorise the loop over ``k``.
    """
    n_ch = dims[3]
    base = b * dims[0] * dims[1] * dims[2] * n_ch
    xi = coords[i]
    for j in range(f2):
        row = (t * f2 + j) * f3
        disp = ddf[3 * row : 3 * (row + f3)]
        out = dst[row * n_ch : (row + f3) * n_ch]
        ref = grid[3 * (i * f2 + j) * f3 : 3 * (i * f2 + j + 1) * f3] if use_grid else grid[:0]
        yj = coords[j]
        for k in range(f3):
            if use_grid:
                x = ref[3 * k] + disp[3 * k]
                y = ref[3 * k + 1] + disp[3 * k + 1]
                z = ref[3 * k + 2] + disp[3 * k + 2]
            else:
                x = xi + disp[3 * k]
                y = yj + disp[3 * k + 1]
                z = coords[k] + disp[3 * k + 2]
            sample_point3(src, dims, base, x, y, z, top, nearest, constant, one, outside, out, k * n_ch)


@njit(**_JIT)
def warp3d(image, ddf, grid, use_grid, coords, top, nearest, constant, one, outside, out):
    """Fused ``resample(image, grid + ddf)``: the location of each voxel is built in registers.

    With ``use_grid`` False the grid is the reference grid, read from the
    float table ``coords`` (``coords[i] == i``); otherwise ``grid[0]``.
    """
    n_batch, d1, d2, d3, n_ch = image.shape
    f1, f2, f3 = ddf.shape[1], ddf.shape[2], ddf.shape[3]
    src, disp, ref, dst = image.reshape(-1), ddf.reshape(-1), grid.reshape(-1), out.reshape(-1)
    default = not nearest and not constant and not use_grid
    for t in prange(n_batch * f1):
        b = t // f1
        i = t - b * f1
        if default and n_ch == 1:
            warp_plane(src, (d1, d2, d3, 1), disp, ref, False, coords, top, False, False, one, outside, dst,
                       b, i, t, f2, f3)
        elif default:
            warp_plane(src, (d1, d2, d3, n_ch), disp, ref, False, coords, top, False, False, one, outside, dst,
                       b, i, t, f2, f3)
        else:
            warp_plane(src, (d1, d2, d3, n_ch), disp, ref, use_grid, coords, top, nearest, constant, one, outside,
                       dst, b, i, t, f2, f3)


@njit(**_JIT)
def squaring_step(src, coords, top, one, dst):
    """One scaling-and-squaring step: ``dst = src + warp(src, src)`` (linear, clamp).

    ``src`` and ``dst`` are distinct ``(batch, f1, f2, f3, 3)`` buffers; each
    task warps one plane and adds ``src`` to it while the plane is in cache.
    """
    n_batch, f1, f2, f3 = src.shape[0], src.shape[1], src.shape[2], src.shape[3]
    flat_src, flat_dst = src.reshape(-1), dst.reshape(-1)
    plane = f2 * f3 * 3
    for t in prange(n_batch * f1):
        b = t // f1
        warp_plane(flat_src, (f1, f2, f3, 3), flat_src, flat_src, False, coords, top, False, False, one, one,
                   flat_dst, b, t - b * f1, t, f2, f3)
        for m in range(t * plane, (t + 1) * plane):
            flat_dst[m] = flat_src[m] + flat_dst[m]


@njit(**_JIT)
def warp_grid3d(grid, theta, out):
    """``out[b, n, p] = [grid[n], 1] @ theta[b, :, p]`` over the flattened grid points ``n``.

    Each task takes a contiguous chunk of points as 1-D slices, which lets the
    compiler vectorise the stride-3 loop.
    """
    n_points = grid.shape[0] * grid.shape[1] * grid.shape[2]
    points, dst = grid.reshape(-1), out.reshape(-1)
    chunk = 16384
    n_chunks = (n_points + chunk - 1) // chunk
    for task in prange(theta.shape[0] * n_chunks):
        b = task // n_chunks
        first = (task - b * n_chunks) * chunk
        last = min(first + chunk, n_points)
        m = theta[b]
        t00, t01, t02, t10, t11, t12 = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]
        t20, t21, t22, t30, t31, t32 = m[2, 0], m[2, 1], m[2, 2], m[3, 0], m[3, 1], m[3, 2]
        src = points[3 * first : 3 * last]
        offset = 3 * (b * n_points + first)
        part = dst[offset : offset + 3 * (last - first)]
        for n in range(last - first):
            g0, g1, g2 = src[3 * n], src[3 * n + 1], src[3 * n + 2]
            part[3 * n] = warp_grid_point(g0, g1, g2, t00, t10, t20, t30)
            part[3 * n + 1] = warp_grid_point(g0, g1, g2, t01, t11, t21, t31)
            part[3 * n + 2] = warp_grid_point(g0, g1, g2, t02, t12, t22, t32)


@njit(inline="always")
def resize_plane_axes23(image, b, i, lo2, hi2, t2, lo3, hi3, t3, along3, plane):
    """Input plane ``i`` resized along axis 3 (into ``along3``), then along axis 2 (into ``plane``)."""
    n_ch = image.shape[4]
    for j in range(image.shape[2]):
        for k in range(lo3.shape[0]):
            for c in range(n_ch):
                along3[j, k * n_ch + c] = tf_lerp(image[b, i, j, lo3[k], c], image[b, i, j, hi3[k], c], t3[k])
    for jo in range(lo2.shape[0]):
        low, high, t = along3[lo2[jo]], along3[hi2[jo]], t2[jo]
        for m in range(plane.shape[1]):
            plane[jo, m] = tf_lerp(low[m], high[m], t)


@njit(**_JIT)
def resize3d_linear(image, lo1, hi1, t1, lo2, hi2, t2, lo3, hi3, t3, out):
    """Separable half-pixel linear resize in TensorFlow's order: axis 3, then 2, then 1.

    Each task makes one output plane ``out[b, a]`` from the two input planes
    ``lo1[a]`` and ``hi1[a]``, resized along axes 3 and 2 in per-task scratch
    (``3 * o2 * o3 * ch`` values); the result equals the per-voxel formula
    ``tf_lerp(tf_lerp(r00, r01, t2), tf_lerp(r10, r11, t2), t1)`` bit for bit.
    """
    n_batch, o1, o2, o3, n_ch = out.shape
    row = o3 * n_ch
    dst = out.reshape(-1)
    for task in prange(n_batch * o1):
        b = task // o1
        a = task - b * o1
        along3 = np.empty((image.shape[2], row), dtype=out.dtype)
        low = np.empty((o2, row), dtype=out.dtype)
        high = np.empty((o2, row), dtype=out.dtype)
        resize_plane_axes23(image, b, lo1[a], lo2, hi2, t2, lo3, hi3, t3, along3, low)
        resize_plane_axes23(image, b, hi1[a], lo2, hi2, t2, lo3, hi3, t3, along3, high)
        plane = dst[task * o2 * row : (task + 1) * o2 * row]
        t = t1[a]
        for jo in range(o2):
            for m in range(row):
                plane[jo * row + m] = tf_lerp(low[jo, m], high[jo, m], t)


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
