"""Numba-CUDA kernels (grid-stride, one thread per output point) and their launch code.

The kernels call the same formulas as the CPU loops, compiled with
``cuda.jit(device=True)`` (and ``math.ceil``, the CUDA spelling of the float
ceiling).  The launch functions mirror ``cpu``'s kernels argument for
argument, so the public functions call either module the same way.

Arrays are CuPy arrays, handed to Numba with ``as_cuda_array(sync=False)``:
the kernel is launched on CuPy's current stream, the stream that produced
them, so Numba's default host synchronisation on the exported stream would
only stall the host.  Small per-call values (``top``, the fill value) are
scalars or tuples passed by value; nothing is copied from the host per call.
Under ``arrayreg.testing.simulated_gpu`` (a process started with
``NUMBA_ENABLE_CUDASIM=1``) the arrays are NumPy arrays and the block size can
be made small so that grid-stride loops span several blocks.  Every launch
signature can be recorded (``arrayreg.testing.record_launches``), which is how
CI compiles exactly what the dispatch code launches to PTX.  This module is
imported only when a CUDA call happens.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from . import formulas
from .device import SIMULATED_GPU, is_device_array, record_launch
from .formulas import LINEAR, NEAREST

_F = formulas.build(cuda.jit(device=True), math.ceil)
linear_axis = _F.linear_axis
nearest_axis = _F.nearest_axis
resize_point_linear = _F.resize_point_linear
sample_point2 = _F.sample_point2
sample_point3 = _F.sample_point3
spline_line = _F.spline_line
warp_grid_point = _F.warp_grid_point
jacobian_point = _F.jacobian_point
chain_point = _F.chain_point
stencil = _F.stencil

THREADS_PER_BLOCK = 256
MAX_BLOCKS = 65535


def _launch(kernel, n_threads, *args):
    """Launch ``kernel`` over ``n_threads`` grid-stride threads on CuPy's current stream.

    Device arrays go to Numba without a host synchronisation (same stream);
    the launch signature is recorded when a launch log is active.
    """
    record_launch(kernel.py_func.__name__, args)
    settings = SIMULATED_GPU.get()
    threads, max_blocks = (THREADS_PER_BLOCK, MAX_BLOCKS) if settings is None else settings
    blocks = max(1, min((n_threads + threads - 1) // threads, max_blocks))
    if any(is_device_array(a) for a in args):
        import cupy

        stream = cuda.external_stream(cupy.cuda.get_current_stream().ptr)
        args = [cuda.as_cuda_array(a, sync=False) if is_device_array(a) else a for a in args]
        kernel[blocks, threads, stream](*args)
    else:
        kernel[blocks, threads](*args)


# ----------------------------------------------------------------- kernels
@cuda.jit
def _resample3d(src, d1, d2, d3, n_ch, loc, top, method, constant, one, outside, spline, dst):
    n_points = loc.shape[1]
    for t in range(cuda.grid(1), loc.shape[0] * n_points, cuda.gridsize(1)):
        b = t // n_points
        p = t - b * n_points
        sample_point3(src, (d1, d2, d3, n_ch), b * d1 * d2 * d3 * n_ch, loc[b, p, 0], loc[b, p, 1], loc[b, p, 2],
                      top, method, constant, one, outside, spline, dst, t * n_ch)


@cuda.jit
def _resample2d(src, d1, d2, n_ch, loc, top, nearest, constant, one, outside, dst):
    n_points = loc.shape[1]
    for t in range(cuda.grid(1), loc.shape[0] * n_points, cuda.gridsize(1)):
        b = t // n_points
        p = t - b * n_points
        sample_point2(src, (d1, d2, n_ch), b * d1 * d2 * n_ch, loc[b, p, 0], loc[b, p, 1],
                      top, nearest, constant, one, outside, dst, t * n_ch)


@cuda.jit
def _warp3d(src, d1, d2, d3, n_ch, ddf, f1, f2, f3, grid, use_grid, coords, top, method, constant, one, outside,
            spline, dst):
    n_points = f1 * f2 * f3
    for t in range(cuda.grid(1), ddf.shape[0] // 3, cuda.gridsize(1)):
        b = t // n_points
        r = t - b * n_points
        i = r // (f2 * f3)
        j = (r // f3) % f2
        k = r % f3
        if use_grid:
            x = grid[3 * r] + ddf[3 * t]
            y = grid[3 * r + 1] + ddf[3 * t + 1]
            z = grid[3 * r + 2] + ddf[3 * t + 2]
        else:
            x = coords[i] + ddf[3 * t]
            y = coords[j] + ddf[3 * t + 1]
            z = coords[k] + ddf[3 * t + 2]
        sample_point3(src, (d1, d2, d3, n_ch), b * d1 * d2 * d3 * n_ch, x, y, z, top, method, constant, one,
                      outside, spline, dst, t * n_ch)


@cuda.jit
def _compose3d(outer, d1, d2, d3, inner, f1, f2, f3, coords, top, constant, one, outside, spline, w_inner, w_outer,
               change, dst):
    n_points = f1 * f2 * f3
    for t in range(cuda.grid(1), inner.shape[0] // 3, cuda.gridsize(1)):
        b = t // n_points
        r = t - b * n_points
        x = coords[r // (f2 * f3)] + inner[3 * t]
        y = coords[(r // f3) % f2] + inner[3 * t + 1]
        z = coords[r % f3] + inner[3 * t + 2]
        sample_point3(outer, (d1, d2, d3, 3), b * d1 * d2 * d3 * 3, x, y, z, top, LINEAR, constant, one, outside,
                      spline, dst, 3 * t)
        largest = one - one
        for c in range(3):
            value = w_inner * inner[3 * t + c] + w_outer * dst[3 * t + c]
            step = abs(value - inner[3 * t + c])
            if step > largest:
                largest = step
            dst[3 * t + c] = value
        plane = t // (f2 * f3)
        if change.shape[0] > 0 and largest > change[plane]:  # a plain read first: most threads skip the atomic
            cuda.atomic.max(change, plane, largest)


@cuda.jit
def _spline_prefilter(lines, n_outer, n, n_inner, prefilter, constant, fill):
    for t in range(cuda.grid(1), n_outer * n_inner, cuda.gridsize(1)):
        o = t // n_inner
        spline_line(lines, o * n * n_inner + (t - o * n_inner), n, n_inner, 1, constant, fill, prefilter)


@cuda.jit
def _warp_grid3d(points, theta, n_points, dst):
    for t in range(cuda.grid(1), theta.shape[0] * n_points, cuda.gridsize(1)):
        b = t // n_points
        n = t - b * n_points
        g0, g1, g2 = points[3 * n], points[3 * n + 1], points[3 * n + 2]
        for p in range(3):
            dst[3 * t + p] = warp_grid_point(g0, g1, g2, theta[b, 0, p], theta[b, 1, p], theta[b, 2, p],
                                             theta[b, 3, p])


@cuda.jit
def _jacobian3d(src, f1, f2, f3, n_voxels, inv_steps, half, one, dst):
    for v in range(cuda.grid(1), n_voxels, cuda.gridsize(1)):
        k = v % f3
        j = (v // f3) % f2
        i = (v // (f3 * f2)) % f1
        pi, mi, hi = stencil(i, f1, 3 * f3 * f2, inv_steps[0], half)
        pj, mj, hj = stencil(j, f2, 3 * f3, inv_steps[1], half)
        pk, mk, hk = stencil(k, f3, 3, inv_steps[2], half)
        dst[v] = jacobian_point(src, 3 * v, pi, mi, hi, pj, mj, hj, pk, mk, hk, one)


@cuda.jit
def _chain3d(start, kinds, matrices, fields, tables, finish, subtract, f1, f2, f3, n_voxels, dst):
    for v in range(cuda.grid(1), n_voxels, cuda.gridsize(1)):
        k = v % f3
        j = (v // f3) % f2
        i = (v // (f3 * f2)) % f1
        d0, d1, d2 = chain_point(i, j, k, start, kinds, matrices, fields, tables, finish, subtract)
        dst[3 * v] = d0
        dst[3 * v + 1] = d1
        dst[3 * v + 2] = d2


@cuda.jit(device=True)
def _voxel_of(t, o1, o2, o3):
    """``(b, a, j, k)`` of flat voxel ``t`` in a ``(batch, o1, o2, o3)`` volume."""
    return t // (o3 * o2 * o1), (t // (o3 * o2)) % o1, (t // o3) % o2, t % o3


@cuda.jit
def _resize3d_linear(image, lo1, hi1, t1, lo2, hi2, t2, lo3, hi3, t3, out):
    n_batch, o1, o2, o3, n_ch = out.shape
    for t in range(cuda.grid(1), n_batch * o1 * o2 * o3, cuda.gridsize(1)):
        b, a, j, k = _voxel_of(t, o1, o2, o3)
        for ch in range(n_ch):
            out[b, a, j, k, ch] = resize_point_linear(image, b, lo1[a], hi1[a], t1[a], lo2[j], hi2[j], t2[j],
                                                      lo3[k], hi3[k], t3[k], ch)


@cuda.jit
def _resize3d_nearest(image, n1, n2, n3, out):
    n_batch, o1, o2, o3, n_ch = out.shape
    for t in range(cuda.grid(1), n_batch * o1 * o2 * o3, cuda.gridsize(1)):
        b, a, j, k = _voxel_of(t, o1, o2, o3)
        for ch in range(n_ch):
            out[b, a, j, k, ch] = image[b, n1[a], n2[j], n3[k], ch]


@cuda.jit
def _linear_axis_table(coords, top, one, constant, lo, hi, w_lo):
    for t in range(cuda.grid(1), coords.shape[0], cuda.gridsize(1)):
        lo[t], hi[t], w_lo[t] = linear_axis(coords[t], top, one, constant)


@cuda.jit
def _nearest_axis_table(coords, top, constant, index):
    for t in range(cuda.grid(1), coords.shape[0], cuda.gridsize(1)):
        index[t] = nearest_axis(coords[t], top, constant)


# ------------------------------------------------- launchers (cpu signatures)
def resample3d(vol, loc, mode, out):
    """Sample ``vol`` ``(batch, d1, d2, d3, ch)`` at ``loc`` ``(batch, points, 3)`` into ``out``."""
    top, method, constant, one, outside, spline = mode
    _, d1, d2, d3, n_ch = vol.shape
    _launch(_resample3d, loc.shape[0] * loc.shape[1], vol.reshape(-1), d1, d2, d3, n_ch, loc, top, method,
            constant, one, outside, spline, out.reshape(-1))


def resample2d(vol, loc, mode, out):
    """Sample ``vol`` ``(batch, d1, d2, ch)`` at ``loc`` ``(batch, points, 2)`` into ``out`` ``(batch, points, ch)``
    (linear or nearest)."""
    top, method, constant, one, outside, _ = mode
    nearest = method == NEAREST
    _, d1, d2, n_ch = vol.shape
    _launch(_resample2d, loc.shape[0] * loc.shape[1], vol.reshape(-1), d1, d2, n_ch, loc, top, nearest, constant,
            one, outside, out.reshape(-1))


def warp3d(image, ddf, grid, use_grid, coords, mode, out):
    """Warp ``image`` by ``ddf`` (plus ``grid`` when ``use_grid``, else the voxel ``coords`` tables) into ``out``."""
    top, method, constant, one, outside, spline = mode
    _, d1, d2, d3, n_ch = image.shape
    _, f1, f2, f3, _ = ddf.shape
    _launch(_warp3d, ddf.size // 3, image.reshape(-1), d1, d2, d3, n_ch, ddf.reshape(-1), f1, f2, f3,
            grid.reshape(-1), use_grid, coords, top, method, constant, one, outside, spline, out.reshape(-1))


def compose3d(outer, inner, coords, mode, weights, change, out):
    """``out = w_inner * inner + w_outer * outer`` sampled (linear, fill 0) at ``x + inner(x)``; ``weights`` is
    the pair; ``change[plane]`` receives the plane's largest ``|out - inner|`` (an atomic max: zero it first);
    an empty ``change`` skips that."""
    top, _, constant, one, _, spline = mode
    _, d1, d2, d3, _ = outer.shape
    _, f1, f2, f3, _ = inner.shape
    change[...] = 0
    _launch(_compose3d, inner.size // 3, outer.reshape(-1), d1, d2, d3, inner.reshape(-1), f1, f2, f3, coords, top,
            constant, one, one - one, spline, weights[0], weights[1], change, out.reshape(-1))


def spline_prefilter(lines, prefilter, constant, fill):
    """Cubic B-spline coefficients along the middle axis of ``lines`` ``(outer, n, inner)``, in place, one
    thread per line (``formulas.spline_line``)."""
    n_outer, n, n_inner = lines.shape
    _launch(_spline_prefilter, n_outer * n_inner, lines.reshape(-1), n_outer, n, n_inner, prefilter, constant, fill)


def chain3d(start, kinds, matrices, fields, tables, finish, subtract, out):
    """A chain of world transforms collapsed into ``out`` ``(batch, f1, f2, f3, 3)``, one thread per voxel
    (``formulas.chain_point``)."""
    _, f1, f2, f3, _ = out.shape
    _launch(_chain3d, out.size // 3, start, kinds, matrices, fields, tables, finish, subtract, f1, f2, f3,
            out.size // 3, out.reshape(-1))


def apply3d(image, chain, coords, mode, disp_type, out):
    """``warp3d(image, ddf)``, ``ddf`` the field :func:`chain3d` makes of ``chain`` (its arguments before
    ``out``) in ``disp_type``'s dtype on the grid of ``out`` ``(batch, f1, f2, f3[, ch])``: two launches,
    the field into a scratch array of ``out``'s array module, then the warp."""
    n_batch, grid_shape, n_ch = out.shape[0], out.shape[1:4], image.shape[-1]
    ddf = _empty_like(out, (n_batch,) + grid_shape + (3,), disp_type.dtype)
    chain3d(*chain, ddf)
    grid = _empty_like(out, (1, 1, 1, 1, 3), coords.dtype)
    warp3d(image, ddf.astype(coords.dtype, copy=False), grid, False, coords, mode, out.reshape(n_batch, -1, n_ch))


def _empty_like(array, shape, dtype):
    """An empty array of ``array``'s module (CuPy on a GPU, NumPy under the simulator)."""
    if is_device_array(array):
        import cupy

        return cupy.empty(shape, dtype)
    return np.empty(shape, dtype)


def scale(src, factor, out):
    """``out = src * factor`` elementwise: one array expression of the array's module (CuPy, or NumPy under
    the simulator)."""
    out[...] = src * factor


def warp_grid3d(grid, theta, out):
    """``out[b, x] = [grid[x], 1] @ theta[b]`` for every point, accumulated in float64."""
    n_points = grid.size // 3
    _launch(_warp_grid3d, theta.shape[0] * n_points, grid.reshape(-1), theta, n_points, out.reshape(-1))


def resize3d_linear(image, lo1, hi1, t1, lo2, hi2, t2, lo3, hi3, t3, out):
    """Separable half-pixel linear resize with per-axis corner and weight tables (axis 3, then 2, then 1)."""
    _launch(_resize3d_linear, out.size // out.shape[-1], image, lo1, hi1, t1, lo2, hi2, t2, lo3, hi3, t3, out)


def resize3d_nearest(image, n1, n2, n3, out):
    """Nearest resize with the per-axis source index tables ``n1``, ``n2``, ``n3``."""
    _launch(_resize3d_nearest, out.size // out.shape[-1], image, n1, n2, n3, out)


def linear_axis_table(coords, top, one, constant, lo, hi, w_lo):
    """The corners and floor weight of each coordinate along one axis (``formulas.linear_axis``)."""
    _launch(_linear_axis_table, coords.shape[0], coords, top, one, constant, lo, hi, w_lo)


def jacobian3d(ddf, inv_steps, half, one, out):
    """``out[b, i, j, k] = det(I + du/dx)`` of ``ddf`` ``(batch, f1, f2, f3, 3)`` (``formulas.jacobian_point``)."""
    _, f1, f2, f3 = out.shape
    _launch(_jacobian3d, out.size, ddf.reshape(-1), f1, f2, f3, out.size, inv_steps, half, one, out.reshape(-1))


def nearest_axis_table(coords, top, constant, index):
    """The nearest index of each coordinate along one axis (``formulas.nearest_axis``; -1 outside)."""
    _launch(_nearest_axis_table, coords.shape[0], coords, top, constant, index)
