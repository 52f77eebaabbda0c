"""Numba CPU kernels: parallel loops (``prange`` over an outer axis) around ``formulas``.

Array layouts are normalised by the callers: volumes carry an explicit channel
axis, outputs are ``(batch, points, ch)`` views, every array is C-contiguous
and native-endian.  Index arithmetic is int64 throughout.
"""

import numpy as np
from numba import njit, prange
from numba.extending import overload
from numba.np.numpy_support import carray

from . import formulas
from .cache import prefetch
from .formulas import CUBIC, LABEL, LINEAR, NEAREST
from .jit import cached_njit
from .stack import stack_pointer
from .window import SPAN, WIDTH, takes_windows, window_tile

_F = formulas.build(njit(inline="always"), np.ceil, njit(nogil=True, error_model="numpy"))
linear_axis = _F.linear_axis
nearest_axis = _F.nearest_axis
sample_point2 = _F.sample_point2
sample_point3 = _F.sample_point3
label_vote = _F.label_vote
cubic_axis = _F.cubic_axis
taps64 = _F.taps64
spline_rest = _F.spline_rest
spline_line = _F.spline_line
tf_lerp = _F.tf_lerp
jacobian_point = _F.jacobian_point
stencil = _F.stencil
trilinear = _F.trilinear
warp_grid_point = _F.warp_grid_point
affine_point = _F.affine_point
field_step = _F.field_step
linear_point3 = _F.linear_point3
chain_end = _F.chain_end

_JIT = dict(parallel=True, nogil=True, error_model="numpy")
# The row bodies of the warp kernels are called, not inlined into the prange loop: Numba's inlining and parfor
# passes copy a loop body's IR many times over, and inlined they tripled the compile time of each signature.
_ROW = dict(nogil=True, error_model="numpy")
_CHUNK = 4096  # points per parallel task in the resample kernels
_MAX_LANES = 4  # the largest channel count compiled as a constant (_lanes), and so the most linear_row takes
_TILE = 256  # points per stack tile of linear_row
_WIDTH = np.int64(WIDTH)  # as a run-time int64, so that both calls of general_tile share one signature
_WINDOW_MISSES = 8  # tiles that window_row leaves to linear_tile before it leaves it the rest of the row (2 before:
# 8 spares the last squaring step of W3 0.1-0.3 ms, and a random field costs the same)
_TILE_VALUES = _MAX_LANES * _TILE  # its values
_MASKED_CHANNELS = 2  # linear_row takes the constant boundary in its vectorised loop (masked gathers) up to this
# channel count; with more, its clamped loop and a fix-up of the points outside were faster (3 channels 11.7 against
# 16.5 ms, 4 channels 13.8 against 20.9; 2 channels 6.7 against 8.4, on a 2-core Zen 5)


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
def resample3d_points(src, dims, loc, b, n_points, top, method, constant, one, outside, spline, dst, first, last):
    for t in range(first, last):
        p = t - b * n_points
        sample_point3(src, dims, b * dims[0] * dims[1] * dims[2] * dims[3], loc[b, p, 0], loc[b, p, 1],
                      loc[b, p, 2], top, method, constant, one, outside, spline, dst, t * dims[3])


@cached_njit(**_JIT)
def resample3d(vol, loc, mode, out):
    """``out[b, p, :] = vol[b]`` sampled at ``loc[b, p, :]`` (3 coordinates), in chunks of points.

    ``mode`` is ``(top, method, constant, one, outside, spline)``, :attr:`arrayreg._plan.SamplingPlan.mode`.
    """
    top, method, constant, one, outside, spline = mode
    n_batch, d1, d2, d3, n_ch = vol.shape
    src, dst = vol.reshape(-1), out.reshape(-1)
    n_points = loc.shape[1]
    n_chunks = (n_points + _CHUNK - 1) // _CHUNK
    fast = method == LINEAR and not constant
    for task in prange(n_batch * n_chunks):
        b, first, last = point_chunk(task, n_chunks, n_points)
        if fast:
            resample3d_points(src, (d1, d2, d3, n_ch), loc, b, n_points, top, LINEAR, False, one, outside, spline,
                              dst, first, last)
        else:
            resample3d_points(src, (d1, d2, d3, n_ch), loc, b, n_points, top, method, constant, one, outside,
                              spline, dst, first, last)


@njit(inline="always")
def resample2d_points(src, dims, loc, b, n_points, top, nearest, constant, one, outside, dst, first, last):
    for t in range(first, last):
        p = t - b * n_points
        sample_point2(src, dims, b * dims[0] * dims[1] * dims[2], loc[b, p, 0], loc[b, p, 1],
                      top, nearest, constant, one, outside, dst, t * dims[2])


@cached_njit(**_JIT)
def resample2d(vol, loc, mode, out):
    """``out[b, p, :] = vol[b]`` sampled at ``loc[b, p, :]`` (2 coordinates); ``mode`` as :func:`resample3d`
    (linear or nearest)."""
    top, method, constant, one, outside, _ = mode
    nearest = method == NEAREST
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
def warp_plane(src, dims, ddf, grid, use_grid, coords, top, method, constant, one, outside, spline, dst, b, i, t,
               f2, f3):
    """Warp the fixed-grid plane ``i`` of batch element ``b`` (``t = b * f1 + i``) point by point.

    ``ddf``, ``grid`` and ``dst`` are flat; each row is taken as a 1-D slice.
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
            sample_point3(src, dims, base, x, y, z, top, method, constant, one, outside, spline, out, k * n_ch)


@cached_njit(**_JIT)
def _warp3d_points(image, ddf, grid, use_grid, coords, mode, out):
    """Fused ``resample(image, grid + ddf)`` for any mode, one point at a time (``sample_point3``).

    With ``use_grid`` False the grid is the reference grid, read from the
    float table ``coords`` (``coords[i] == i``); otherwise ``grid[0]``.
    """
    top, method, constant, one, outside, spline = mode
    n_batch, d1, d2, d3, n_ch = image.shape
    f1, f2, f3 = ddf.shape[1], ddf.shape[2], ddf.shape[3]
    src, disp, ref, dst = image.reshape(-1), ddf.reshape(-1), grid.reshape(-1), out.reshape(-1)
    for t in prange(n_batch * f1):
        b = t // f1
        warp_plane(src, (d1, d2, d3, n_ch), disp, ref, use_grid, coords, top, method, constant, one, outside,
                   spline, dst, b, t - b * f1, t, f2, f3)


def warp_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, vote, scratch, out):
    """One fixed-grid row of a linear (or, with ``vote``, label) warp on the reference grid; in kernels only.

    ``vote`` is ``(0,)`` for the label vote and ``()`` for a linear warp: a tuple, so that the choice is made
    from types when the kernel compiles and a signature compiles only the row kernel it runs.  A linear warp
    with a compile-time channel count (``channel_lanes`` 1 to 4 zeros) takes :func:`linear_row`; a label
    warp, or one with ``channel_lanes == ()`` (``dims[3]`` channels), takes :func:`gather_row` with the
    per-task ``scratch`` of :func:`row_scratch`.  ``dims`` is ``(d1, d2, d3, channels)`` and ``base`` the
    batch element's first element.
    """
    raise TypeError("warp_row is compiled into the CPU kernels; it has no Python implementation")


def row_scratch(f3, n_ch, channel_lanes, vote, offset_type, value_type, weight_type):
    """Per-task scratch of :func:`warp_row`; in kernels only.

    For :func:`gather_row`: offsets, weights (``weight_type``'s dtype, the coordinates'), the corner values,
    the vote's marks and the marks of the points outside; ``None`` for :func:`linear_row`, which needs none.
    """
    raise TypeError("row_scratch is compiled into the CPU kernels; it has no Python implementation")


def _takes_linear_row(channel_lanes, vote):
    """Whether :func:`warp_row` takes :func:`linear_row`, from the types of its arguments."""
    return len(vote) == 0 and len(channel_lanes) > 0


@overload(warp_row, inline="always")
def _select_warp_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, vote,
                     scratch, out):
    if _takes_linear_row(channel_lanes, vote):
        def linear(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, vote, scratch,
                   out):
            return linear_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, (),
                              out)
        return linear

    def gather(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, vote, scratch,
               out):
        offsets, weights, values, mixed, marks = scratch
        gather_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, len(vote) > 0,
                   offsets, weights, values, mixed, marks, out)
        return False
    return gather


@overload(row_scratch, inline="always")
def _select_row_scratch(f3, n_ch, channel_lanes, vote, offset_type, value_type, weight_type):
    if _takes_linear_row(channel_lanes, vote):
        return lambda f3, n_ch, channel_lanes, vote, offset_type, value_type, weight_type: None

    def gather_scratch(f3, n_ch, channel_lanes, vote, offset_type, value_type, weight_type):
        offsets = np.empty((8, f3), dtype=offset_type.dtype)
        weights = np.empty((3, f3), dtype=weight_type.dtype)
        values = np.empty((8, f3 * n_ch), dtype=value_type.dtype)
        mixed = np.empty(values.shape[1], dtype=np.bool_)
        marks = np.empty(f3, dtype=np.bool_)
        return offsets, weights, values, mixed, marks
    return gather_scratch


@njit(**_ROW)
def gather_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, vote, offsets,
               weights, values, mixed, marks, out):
    """:func:`warp_row` in three loops over heap scratch and a fix-up.

    1. per point, the clamped corners (``linear_axis``) as 8 flat offsets and the 3 weights;
    2. per corner, its channels copied into ``values`` (plain moves, no arithmetic);
    3. per point and channel, ``trilinear`` of the 8 values, or with ``vote`` the label vote
       (``formulas.label_vote``; 8 equal corners are copied without one);
    4. with ``constant``, the points outside ``(0, top]`` on some axis (or NaN) again, one by one
       (:func:`mark_outside`, :func:`constant_fixup`).  Inside it the constant boundary's corners and weights
       are exactly the clamped ones, so loops 1-3 serve every point and stay branch-free.

    Loops 1 and 3 vectorise; loop 2 is scalar loads, as LLVM cannot prove that its stores miss ``src``.
    ``offsets`` is int32 when every offset fits, which halves its traffic.
    """
    n_ch = len(channel_lanes) if len(channel_lanes) > 0 else dims[3]
    s2 = dims[2] * n_ch
    s1 = dims[1] * s2
    f3 = weights.shape[1]
    for k in range(f3):
        a0, a1, b0, b1, c0, c1, wi, wj, wk = clamped_corners(xi + disp[3 * k], yj + disp[3 * k + 1],
                                                             coords[k] + disp[3 * k + 2], top, one, base, s1, s2, n_ch)
        offsets[0, k] = a0 + b0 + c0
        offsets[1, k] = a1 + b0 + c0
        offsets[2, k] = a0 + b1 + c0
        offsets[3, k] = a1 + b1 + c0
        offsets[4, k] = a0 + b0 + c1
        offsets[5, k] = a1 + b0 + c1
        offsets[6, k] = a0 + b1 + c1
        offsets[7, k] = a1 + b1 + c1
        weights[0, k] = wi
        weights[1, k] = wj
        weights[2, k] = wk
    for m in range(8):
        corner_offsets, corner_values = offsets[m], values[m]
        for k in range(f3):
            offset = corner_offsets[k]
            for c in range(n_ch):
                corner_values[k * n_ch + c] = src[offset + c]
    if vote:
        vote_row(values, weights, n_ch, one, outside, mixed, out)
    else:
        for k in range(f3):
            wi, wj, wk = weights[0, k], weights[1, k], weights[2, k]
            for c in range(n_ch):
                q = k * n_ch + c
                out[q] = trilinear(values[0, q], values[1, q], values[2, q], values[3, q], values[4, q],
                                   values[5, q], values[6, q], values[7, q], wi, wj, wk, one)
    if constant and mark_outside(disp, xi, yj, coords, top, marks) > 0:
        constant_fixup(src, dims, base, disp, xi, yj, coords, top, one, outside, LABEL if vote else LINEAR, marks,
                       out)


def _linear_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, weights, out):
    """One fixed-grid row of a linear warp on the reference grid with 1 to 4 channels, fused per point.

    Where :func:`.window.takes_windows` (an AVX-512 CPU, float32), the row's whole tiles of 16 points go first
    through :func:`window_row` (corners from windows of the source rows, not gathers).  The rest, per tile of
    ``_TILE`` points, through :func:`general_tile`: :func:`linear_tile` into a stack buffer (so that its loop
    vectorises with hardware gathers: see :mod:`.stack`), then the buffer copied to ``out``.  With ``constant``
    and more than ``_MASKED_CHANNELS`` channels, the tile is the clamped one, and the points outside ``(0, top]``
    on some axis, or NaN (the only points where the two boundaries differ), are marked (:func:`mark_outside`)
    and sampled again (:func:`constant_fixup`).  ``channel_lanes`` is a tuple whose length is the channel count.
    The values are exactly those of ``formulas.linear_point3``, operation for operation; with ``weights``
    ``(w_inner, w_outer)`` (3 channels: a composition) ``out`` receives :func:`combined` of them and ``disp``.
    Returns whether the windows did the row's whole tiles (then the row prefetched the next one's lines
    itself, and the caller need not).
    """
    n_ch = len(channel_lanes)
    f3 = out.shape[0] // n_ch
    done = 0
    if takes_windows(src, channel_lanes, disp, coords, xi, top, out) and dims[2] >= SPAN and top[2] + one == dims[2]:
        done = window_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, weights,
                          out)
    for first in range(done, f3, _TILE):
        general_tile(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, weights,
                     first, min(_TILE, f3 - first), out)
    return done > 0 and done == f3 - f3 % WIDTH


linear_row = njit(**_ROW)(_linear_row)
# the same body inlined into a caller that loops over the rows of a plane itself (compose_plane): a call per row
# cost 30 ns, 7% of a 128-point row of a 3-channel composition
linear_row_inlined = njit(inline="always", **_ROW)(_linear_row)


@njit(**_ROW)
def general_tile(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, weights, first, n,
                 out):
    """Points ``first`` to ``first + n`` (at most ``_TILE``) of a :func:`linear_row` by :func:`linear_tile` into a
    stack buffer, copied to ``out``; with ``constant`` and more than ``_MASKED_CHANNELS`` channels, by the clamped
    tile and the fix-up of the points outside; then, with ``weights``, :func:`combined` with ``disp``."""
    n_ch = len(channel_lanes)
    s2 = dims[2] * n_ch
    s1 = dims[1] * s2
    values = carray(stack_pointer(_TILE_VALUES, src), _TILE_VALUES)
    marks = carray(stack_pointer(_TILE, np.bool_), _TILE)
    masked = n_ch <= _MASKED_CHANNELS
    if constant and masked:
        linear_tile(src, channel_lanes, s1, s2, base, disp, xi, yj, coords, top, one, True, outside, first, n,
                    values)
    else:
        linear_tile(src, channel_lanes, s1, s2, base, disp, xi, yj, coords, top, one, False, outside, first, n,
                    values)
    tile = out[first * n_ch : (first + n) * n_ch]
    for q in range(n * n_ch):
        tile[q] = values[q]
    if constant and not masked:
        tile_disp, tile_coords, tile_marks = disp[3 * first : 3 * (first + n)], coords[first : first + n], marks[:n]
        if mark_outside(tile_disp, xi, yj, tile_coords, top, tile_marks) > 0:
            constant_fixup(src, dims, base, tile_disp, xi, yj, tile_coords, top, one, outside, LINEAR, tile_marks,
                           tile)
    if len(weights) > 0:
        inner = disp[3 * first : 3 * (first + n)]
        for q in range(n * n_ch):
            tile[q] = combined(tile[q], inner[q], weights)


def combined(value, inner, weights):
    """``value`` as a row stores it: with ``weights == (w_inner, w_outer)``, a composition's
    ``w_inner * inner + w_outer * value``; with ``()``, ``value`` itself.  In kernels only."""
    raise TypeError("combined is compiled into the CPU kernels; it has no Python implementation")


@overload(combined, inline="always")
def _select_combined(value, inner, weights):
    if len(weights) == 0:
        return lambda value, inner, weights: value
    return lambda value, inner, weights: weights[0] * inner + weights[1] * value


@njit(inline="always")
def window_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, weights, out):
    """The tiles of 16 points of a :func:`linear_row` by :func:`.window.window_tile`; a tile it leaves is done
    by :func:`general_tile`, and at the ``_WINDOW_MISSES``-th such tile the row stops (a rough field: there
    the windows cost more than they save).  Returns how many points from the row's start are done."""
    n_ch = len(channel_lanes)
    s2 = dims[2] * n_ch
    s1 = dims[1] * s2
    f3 = out.shape[0] // n_ch
    end = f3 - f3 % WIDTH
    misses = 0
    for first in range(0, end, WIDTH):
        if window_tile(src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, dims[2], constant, weights,
                       out):
            continue
        misses += 1
        if misses == _WINDOW_MISSES:
            return first
        general_tile(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, weights, first,
                     _WIDTH, out)
    return end


@njit(inline="always")
def linear_tile(src, channel_lanes, s1, s2, base, disp, xi, yj, coords, top, one, constant, outside, first, n,
                values):
    """Points ``first`` to ``first + n`` of a :func:`linear_row` into ``values``, branch-free so that the loop
    vectorises: each point's corners and weights (``linear_axis``), its 8 corner values per channel read
    straight from ``src`` (with ``constant``, a corner outside the volume is ``outside``: a masked gather),
    combined by ``trilinear``.  ``constant`` is a literal at both call sites, so each compiles to one loop."""
    n_ch = len(channel_lanes)
    for t in range(n):
        # unsigned indices here and below: no negative-index wrap-around test per load, which would turn
        # the field's plain loads into gathers
        k = np.uint64(first + t)
        d = np.uint64(3) * k
        i0, i1, wi = linear_axis(xi + disp[d], top[0], one, constant)
        j0, j1, wj = linear_axis(yj + disp[d + np.uint64(1)], top[1], one, constant)
        k0, k1, wk = linear_axis(coords[k] + disp[d + np.uint64(2)], top[2], one, constant)
        a0, a1, b0, b1, c0, c1 = base + i0 * s1, base + i1 * s1, j0 * s2, j1 * s2, k0 * n_ch, k1 * n_ch
        # with constant, a corner index of -1 marks a corner outside; & (not and) keeps the loop branch-free
        in_i0, in_i1, in_j0, in_j1, in_k0, in_k1 = i0 >= 0, i1 >= 0, j0 >= 0, j1 >= 0, k0 >= 0, k1 >= 0
        for c in range(n_ch):
            values[t * n_ch + c] = trilinear(
                masked_corner(src, a0 + b0 + c0 + c, constant, in_i0 & in_j0 & in_k0, outside),
                masked_corner(src, a1 + b0 + c0 + c, constant, in_i1 & in_j0 & in_k0, outside),
                masked_corner(src, a0 + b1 + c0 + c, constant, in_i0 & in_j1 & in_k0, outside),
                masked_corner(src, a1 + b1 + c0 + c, constant, in_i1 & in_j1 & in_k0, outside),
                masked_corner(src, a0 + b0 + c1 + c, constant, in_i0 & in_j0 & in_k1, outside),
                masked_corner(src, a1 + b0 + c1 + c, constant, in_i1 & in_j0 & in_k1, outside),
                masked_corner(src, a0 + b1 + c1 + c, constant, in_i0 & in_j1 & in_k1, outside),
                masked_corner(src, a1 + b1 + c1 + c, constant, in_i1 & in_j1 & in_k1, outside), wi, wj, wk, one)


@njit(inline="always")
def masked_corner(src, offset, constant, inside, outside):
    """``src[offset]``; with ``constant``, ``outside`` for a corner that is not ``inside`` (its offset is
    then never read).  Clamped corners are always inside."""
    if constant and not inside:
        return outside
    return src[np.uint64(offset)]


@njit(inline="always")
def clamped_corners(x, y, z, top, one, base, s1, s2, n_ch):
    """The clamped corners of ``(x, y, z)`` (``linear_axis``) as the flat offset terms ``a0, a1`` (axis 1, with
    ``base``), ``b0, b1`` and ``c0, c1`` of strides ``s1``, ``s2`` and ``n_ch``, and the weights ``wi, wj, wk``."""
    i0, i1, wi = linear_axis(x, top[0], one, False)
    j0, j1, wj = linear_axis(y, top[1], one, False)
    k0, k1, wk = linear_axis(z, top[2], one, False)
    return base + i0 * s1, base + i1 * s1, j0 * s2, j1 * s2, k0 * n_ch, k1 * n_ch, wi, wj, wk


@njit(inline="always")
def prefetch_row(src, dims, base, disp, xi, yj, coords, top):
    """Prefetch the lines of ``src`` that a row of :func:`warp_row` will gather (see :mod:`.cache`).

    Every ``max(6, 32 // bytes per point)`` points (measured: denser prefetching of a 3-channel field
    costs more than it saves), the point ``(xi, yj, coords[k]) + disp[3k:3k+3]``
    clamped to ``[0, top]``, truncated to voxel ``(i, j, k)``: its line and the lines at ``(i + 1, j)``,
    ``(i, j + 1)`` and ``(i + 1, j + 1)``, each index clipped to ``top``.  NaN points are skipped.  Called
    for the next row while this one is warped, it turns the gathers' misses into cache hits.
    """
    _, d2, d3, n_ch = dims
    s2 = d3 * n_ch
    s1 = d2 * s2
    step = max(6, 32 // (src.itemsize * n_ch))
    zero = top[0] - top[0]
    for k in range(0, disp.shape[0] // 3, step):
        x, y, z = xi + disp[3 * k], yj + disp[3 * k + 1], coords[k] + disp[3 * k + 2]
        if x != x or y != y or z != z:
            continue
        i, j = np.int64(min(max(x, zero), top[0])), np.int64(min(max(y, zero), top[1]))
        corner = base + np.int64(min(max(z, zero), top[2])) * n_ch
        a0, a1 = corner + i * s1, corner + min(i + 1, np.int64(top[0])) * s1
        b0, b1 = j * s2, min(j + 1, np.int64(top[1])) * s2
        prefetch(src, a0 + b0)
        prefetch(src, a0 + b1)
        prefetch(src, a1 + b0)
        prefetch(src, a1 + b1)


@njit(inline="always")
def is_outside(x, y, z, top):
    """Whether ``(x, y, z)`` lies outside ``(0, top]`` on some axis (or is NaN): there the constant boundary's
    corners and weights differ from the clamped ones."""
    return not (x > 0 and x <= top[0] and y > 0 and y <= top[1] and z > 0 and z <= top[2])


@njit(inline="always")
def mark_outside(disp, xi, yj, coords, top, marks):
    """Mark the points ``(xi, yj, coords[k]) + disp[3k:3k+3]`` that are :func:`is_outside`; return how many."""
    n_outside = 0
    for k in range(marks.shape[0]):
        outside_point = is_outside(xi + disp[3 * k], yj + disp[3 * k + 1], coords[k] + disp[3 * k + 2], top)
        marks[k] = outside_point
        n_outside += outside_point
    return n_outside


@njit(inline="always")
def constant_fixup(src, dims, base, disp, xi, yj, coords, top, one, outside, method, marks, out):
    """The fix-up of :func:`linear_row` and :func:`gather_row`: the points marked in ``marks`` (outside
    ``(0, top]`` on some axis, or NaN) sampled with the constant boundary (``formulas.linear_point3``)."""
    n_ch = dims[3]
    for k in range(marks.shape[0]):
        if marks[k]:
            linear_point3(src, dims, base, xi + disp[3 * k], yj + disp[3 * k + 1], coords[k] + disp[3 * k + 2], top,
                          method, True, one, outside, out, k * n_ch)


@njit(inline="always")
def vote_row(values, weights, n_ch, one, outside, mixed, out):
    """Loop 3 of :func:`warp_row` for labels, in two passes.

    1. (vectorises) every point takes its first corner's label, and ``mixed`` marks the points whose 8
       corners differ or whose weights are NaN;
    2. the marked points get ``outside`` (a NaN weight, as ``formulas.store8``) or ``formulas.label_vote``.

    8 equal corners are exactly what the vote returns for them, so the result is the vote's everywhere.
    """
    f3 = weights.shape[1]
    for k in range(f3):
        total = weights[0, k] + weights[1, k] + weights[2, k]
        for c in range(n_ch):
            q = k * n_ch + c
            v0 = values[0, q]
            uniform = ((total == total) & (v0 == values[1, q]) & (v0 == values[2, q]) & (v0 == values[3, q])
                       & (v0 == values[4, q]) & (v0 == values[5, q]) & (v0 == values[6, q]) & (v0 == values[7, q]))
            out[q] = v0
            mixed[q] = not uniform
    for k in range(f3):
        wi, wj, wk = weights[0, k], weights[1, k], weights[2, k]
        for c in range(n_ch):
            q = k * n_ch + c
            if not mixed[q]:
                continue
            if wi != wi or wj != wj or wk != wk:
                out[q] = outside
            else:
                out[q] = label_vote(values[0, q], values[1, q], values[2, q], values[3, q], values[4, q],
                                    values[5, q], values[6, q], values[7, q], wi, wj, wk, one)


@cached_njit(**_JIT)
def _warp3d_rows(image, channel_lanes, ddf, axis_coords, shift, top, one, constant, outside, vote, offset_type, out):
    """The linear (or, with ``vote``, label) warp on the reference grid, row by row with :func:`warp_row`;
    a linear warp prefetches the next row's source lines (:func:`prefetch_row`) while it warps this one.

    Point ``(i, j, k)`` of ``ddf`` sits at ``(c1[i], c2[j], c3[k])``, ``axis_coords == (c1, c2, c3)``, and a
    voxel at flat offset ``o`` of a batch element of ``image`` is read at ``o - shift`` (see :func:`warp_box3d`).
    """
    n_batch, d1, d2, d3, n_ch = image.shape
    f1, f2, f3 = ddf.shape[1], ddf.shape[2], ddf.shape[3]
    src, disp, dst = image.reshape(-1), ddf.reshape(-1), out.reshape(-1)
    coords_i, coords_j, coords = axis_coords
    for t in prange(n_batch * f1):
        b = t // f1
        scratch = row_scratch(f3, n_ch, channel_lanes, vote, offset_type, image, coords)
        xi = coords_i[t - b * f1]
        dims, base = (d1, d2, d3, n_ch), b * d1 * d2 * d3 * n_ch - shift
        windowed = False
        for j in range(f2):
            row = (t * f2 + j) * f3
            # a label warp spends its time voting: there it did not pay; a windowed row prefetches its own
            if len(vote) == 0 and not windowed and j + 1 < f2:
                prefetch_row(src, dims, base, disp[3 * (row + f3) : 3 * (row + 2 * f3)], xi, coords_j[j + 1],
                             coords, top)
            windowed = warp_row(src, dims, channel_lanes, base, disp[3 * row : 3 * (row + f3)], xi, coords_j[j],
                                coords, top, one, constant, outside, vote, scratch,
                                dst[row * n_ch : (row + f3) * n_ch])


@cached_njit(**_JIT)
def _apply3d_rows(image, channel_lanes, chain, grid_shape, coords, top, one, constant, outside, vote, offset_type,
                  disp_type, out):
    """:func:`_warp3d_rows` with the DDF of a chain of world transforms (``chain`` the arguments of
    :func:`chain3d` before ``out``) on the grid ``grid_shape``, never stored: per row, :func:`chain_row`
    into a ``disp_type`` row (the values :func:`chain3d` stores), then :func:`warp_row` with it.  The rows
    are computed one ahead, so that a linear warp prefetches the next row's source lines while it warps this
    one."""
    start, kinds, matrices, fields, tables, finish, subtract = chain
    n_batch, d1, d2, d3, n_ch = image.shape
    f1, f2, f3 = grid_shape
    src, dst = image.reshape(-1), out.reshape(-1)
    dims = (d1, d2, d3, n_ch)
    for t in prange(n_batch * f1):
        b = t // f1
        i = t - b * f1
        base = b * d1 * d2 * d3 * n_ch
        scratch = row_scratch(f3, n_ch, channel_lanes, vote, offset_type, image, coords)
        points = np.empty((3, f3), np.float64)
        rows = np.empty((2, 3 * f3), disp_type.dtype)
        windowed = False
        for j in range(f2):
            if j == 0:
                chain_row(i, 0, start, kinds, matrices, fields, tables, finish, subtract, points, rows[0])
            if j + 1 < f2:
                ahead = rows[(j + 1) % 2]
                chain_row(i, j + 1, start, kinds, matrices, fields, tables, finish, subtract, points, ahead)
                if len(vote) == 0 and not windowed:  # as in _warp3d_rows
                    prefetch_row(src, dims, base, ahead, coords[i], coords[j + 1], coords, top)
            row = (t * f2 + j) * f3
            windowed = warp_row(src, dims, channel_lanes, base, rows[j % 2], coords[i], coords[j], coords, top, one,
                                constant, outside, vote, scratch, dst[row * n_ch : (row + f3) * n_ch])


@njit(inline="always")
def cubic_row(src, dims, channel_lanes, base, disp, xi, yj, coords, top, one, constant, outside, spline, starts,
              weights, out):
    """One fixed-grid row of a cubic warp on the reference grid (every axis of ``dims`` at least 4 voxels),
    in two loops: per point the 3 axes' taps (``formulas.cubic_axis``) as one flat start offset and 12
    weights, then per point and channel the 64 taps summed as ``formulas.cubic_point3`` does, operation
    for operation (a NaN coordinate gives ``outside``: start -1)."""
    d1, d2, d3, _ = dims
    n_ch = len(channel_lanes) if len(channel_lanes) > 0 else dims[3]
    s2 = d3 * n_ch
    s1 = d2 * s2
    for k in range(starts.shape[0]):
        x, y, z = xi + disp[3 * k], yj + disp[3 * k + 1], coords[k] + disp[3 * k + 2]
        if x != x or y != y or z != z:
            starts[k] = -1
            continue
        si, weights[0, k], weights[1, k], weights[2, k], weights[3, k] = cubic_axis(x, d1, top[0], spline, one,
                                                                                    constant)
        sj, weights[4, k], weights[5, k], weights[6, k], weights[7, k] = cubic_axis(y, d2, top[1], spline, one,
                                                                                    constant)
        sk, weights[8, k], weights[9, k], weights[10, k], weights[11, k] = cubic_axis(z, d3, top[2], spline, one,
                                                                                      constant)
        starts[k] = base + si * s1 + sj * s2 + sk * n_ch
    for k in range(starts.shape[0]):
        first = starts[k]
        if first < 0:
            for ch in range(n_ch):
                out[k * n_ch + ch] = outside
            continue
        wi = (weights[0, k], weights[1, k], weights[2, k], weights[3, k])
        wj = (weights[4, k], weights[5, k], weights[6, k], weights[7, k])
        wk = (weights[8, k], weights[9, k], weights[10, k], weights[11, k])
        rest = spline_rest(wi, wj, wk, one)
        for ch in range(n_ch):
            value = taps64(src, first + ch, s1, s2, n_ch, 4, 4, 4, wi, wj, wk)
            if constant:
                value += outside * rest
            out[k * n_ch + ch] = value


@cached_njit(**_JIT)
def _warp3d_cubic_rows(coefficients, channel_lanes, ddf, coords, top, one, constant, outside, spline, out):
    """The cubic warp on the reference grid, row by row with :func:`cubic_row`."""
    n_batch, d1, d2, d3, n_ch = coefficients.shape
    f1, f2, f3 = ddf.shape[1], ddf.shape[2], ddf.shape[3]
    src, disp, dst = coefficients.reshape(-1), ddf.reshape(-1), out.reshape(-1)
    for t in prange(n_batch * f1):
        b = t // f1
        starts = np.empty(f3, np.int64)
        weights = np.empty((12, f3), coefficients.dtype)
        xi = coords[t - b * f1]
        for j in range(f2):
            row = (t * f2 + j) * f3
            cubic_row(src, (d1, d2, d3, n_ch), channel_lanes, b * d1 * d2 * d3 * n_ch,
                      disp[3 * row : 3 * (row + f3)], xi, coords[j], coords, top, one, constant, outside, spline,
                      starts, weights, dst[row * n_ch : (row + f3) * n_ch])


def _lanes(count):
    """``count`` zeros as a tuple for 1 to ``_MAX_LANES`` (a compile-time count in the kernel), else ``()``."""
    return (0,) * count if count <= _MAX_LANES else ()


def _vote(method):
    """The ``vote`` tuple of :func:`warp_row`: ``(0,)`` for ``LABEL``, else ``()``."""
    return (0,) if method == LABEL else ()


def _offset_type(array):
    """An empty int32 array when every flat offset of ``array`` fits in int32, else int64 (a type witness)."""
    return np.empty(0, np.int32 if array.size < 2**31 else np.int64)


def warp3d(image, ddf, grid, use_grid, coords, mode, out):
    """Fused ``resample(image, grid + ddf)``: row kernels for linear, label and cubic warps on the reference
    grid, else point by point.

    ``mode`` as :func:`resample3d`.
    """
    top, method, constant, one, outside, spline = mode
    if method == CUBIC and not use_grid and image.dtype == out.dtype and min(image.shape[1:4]) >= 4:
        _warp3d_cubic_rows(image, _lanes(image.shape[-1]), ddf, coords, top, one, constant, outside, spline, out)
    elif method not in (LINEAR, LABEL) or use_grid or image.dtype != out.dtype:
        _warp3d_points(image, ddf, grid, use_grid, coords, mode, out)
    else:
        _warp3d_rows(image, _lanes(image.shape[-1]), ddf, (coords, coords, coords), 0, top, one, constant, outside,
                     _vote(method), _offset_type(image), out)


def warp_box3d(box, start, ddf, axis_coords, mode, out):
    """:func:`warp3d` on the reference grid of the part of an image that lies in ``box``
    ``(batch, d1, d2, d3, ch)``, the image's voxels from ``start`` (one index per axis) on.

    The image's own clamp limits are ``mode``'s ``top``; point ``(i, j, k)`` of ``ddf`` sits at
    ``(c1[i], c2[j], c3[k])`` of the image, ``axis_coords == (c1, c2, c3)``.  Every corner that the points
    reach, clamped to ``[0, top]``, must lie in the box (the caller's box is that bound); then the values are
    those of the whole image's warp, bit for bit.  Linear and label warps only, ``box`` in ``out``'s dtype.
    """
    top, method, constant, one, outside, _ = mode
    _, d1, d2, d3, n_ch = box.shape
    shift = ((start[0] * d2 + start[1]) * d3 + start[2]) * n_ch
    _warp3d_rows(box, _lanes(n_ch), ddf, axis_coords, np.int64(shift), top, one, constant, outside, _vote(method),
                 _offset_type(box), out)


def apply3d(image, chain, coords, mode, disp_type, out):
    """``warp3d(image, ddf)``, ``ddf`` the field :func:`chain3d` makes of ``chain`` (its arguments before
    ``out``) in ``disp_type``'s dtype on the grid of ``out`` ``(batch, f1, f2, f3[, ch])``: one fused pass
    for linear and label warps (:func:`_apply3d_rows`), else the field, then :func:`warp3d`."""
    top, method, constant, one, outside, _ = mode
    n_batch, grid_shape, n_ch = out.shape[0], out.shape[1:4], image.shape[-1]
    view = out.reshape(n_batch, -1, n_ch)
    if method in (LINEAR, LABEL) and image.dtype == out.dtype:
        _apply3d_rows(image, _lanes(n_ch), chain, grid_shape, coords, top, one, constant, outside, _vote(method),
                      _offset_type(image), disp_type, view)
        return
    ddf = np.empty((n_batch,) + grid_shape + (3,), disp_type.dtype)
    chain3d(*chain, ddf)
    warp3d(image, ddf.astype(coords.dtype, copy=False), np.zeros((1, 1, 1, 1, 3), coords.dtype), False, coords,
           mode, view)


@njit(inline="always")
def largest_change(here, combined_row, largest):
    """``max(largest, max |combined_row - here|)``, NaN ignored."""
    for m in range(here.shape[0]):
        step = abs(combined_row[m] - here[m])
        if step > largest:
            largest = step
    return largest


@cached_njit(**_JIT)
def _compose3d_rows(outer, inner, coords, top, one, constant, weights, change, out):
    n_batch, d1, d2, d3, _ = outer.shape
    f1, f2, f3 = inner.shape[1], inner.shape[2], inner.shape[3]
    src, disp, dst = outer.reshape(-1), inner.reshape(-1), out.reshape(-1)
    track = change.shape[0] > 0
    for t in prange(n_batch * f1):
        b = t // f1
        xi = coords[t - b * f1]
        dims, base = (d1, d2, d3, 3), b * d1 * d2 * d3 * 3
        plane = 3 * t * f2 * f3
        largest = compose_plane(src, dims, base, disp[plane : plane + 3 * f2 * f3], xi, coords, top, one, constant,
                                weights, track, f3, dst[plane : plane + 3 * f2 * f3])
        if track:
            change[t] = largest


@njit(**_ROW)
def compose_plane(src, dims, base, disp, xi, coords, top, one, constant, weights, track, f3, out):
    """The rows of one plane of :func:`compose3d` (``f3`` points each) by :func:`linear_row` inlined; a linear
    row not done by windows prefetches the next row's source lines.  Returns the plane's largest change with
    ``track``, else 0."""
    f2 = disp.shape[0] // (3 * f3)
    zero = one - one
    largest = zero
    windowed = False
    for j in range(f2):
        row = 3 * j * f3
        here, warped = disp[row : row + 3 * f3], out[row : row + 3 * f3]
        if j + 1 < f2 and not windowed:  # as in _warp3d_rows
            prefetch_row(src, dims, base, disp[row + 3 * f3 : row + 6 * f3], xi, coords[j + 1], coords, top)
        windowed = linear_row_inlined(src, dims, (0, 0, 0), base, here, xi, coords[j], coords, top, one, constant,
                                      zero, weights, warped)
        if track:
            largest = largest_change(here, warped, largest)
    return largest


def compose3d(outer, inner, coords, mode, weights, change, out):
    """``out[b, x] = w_inner * inner[b, x] + w_outer * outer[b]`` sampled (linear) at ``x + inner[b, x]``.

    ``outer`` ``(batch, d1, d2, d3, 3)`` and ``inner``/``out`` ``(batch, f1, f2, f3, 3)``; ``mode`` as
    :func:`resample3d` (its ``method`` is ignored: linear; the fill value is 0); ``weights = (w_inner,
    w_outer)``.  With ``(1, 1)`` this is the composition of two DDFs, with ``(0, -1)`` one fixed-point step of
    inversion.  ``change[b * f1 + i]`` receives the largest ``|out - inner|`` of plane ``i`` (NaN ignored);
    an empty ``change`` skips that.
    A plane at a time (:func:`compose_plane`), and in it a row at a time: :func:`linear_row` with the weights,
    which sums as it stores (in registers in the window tiles), then, when tracked, the row's change while it
    is in cache.
    """
    top, _, constant, one, _, _ = mode
    _compose3d_rows(outer, inner, coords, top, one, constant, weights, change, out)


@cached_njit(**_JIT)
def scale(src, factor, out):
    """``out = src * factor`` elementwise over C-contiguous arrays of one size, in parallel chunks."""
    flat_src, flat_out = src.reshape(-1), out.reshape(-1)
    chunk = 1 << 16
    for task in prange((flat_out.size + chunk - 1) // chunk):
        part = flat_out[task * chunk : (task + 1) * chunk]
        values = flat_src[task * chunk : (task + 1) * chunk]
        for e in range(part.size):
            part[e] = values[e] * factor


@cached_njit(**_JIT)
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


@cached_njit(**_JIT)
def jacobian3d(ddf, inv_steps, half, one, out):
    """``out[b, i, j, k] = det(I + du/dx)`` of ``ddf`` ``(batch, f1, f2, f3, 3)`` (``formulas.jacobian_point``).

    ``inv_steps`` holds ``1 / spacing`` per axis; ``half`` and ``one`` are scalars of the compute dtype.  The
    stencils of axes 1 and 2 are fixed per row; inside a row only the two end voxels differ along axis 3.
    """
    n_batch, f1, f2, f3 = out.shape
    src, dst = ddf.reshape(-1), out.reshape(-1)
    central_k = inv_steps[2] * half
    for t in prange(n_batch * f1):
        pi, mi, hi = stencil(t - (t // f1) * f1, f1, 3 * f3 * f2, inv_steps[0], half)
        for j in range(f2):
            pj, mj, hj = stencil(j, f2, 3 * f3, inv_steps[1], half)
            first = (t * f2 + j) * f3
            for k in range(f3):
                if k == 0 or k == f3 - 1:
                    pk, mk, hk = stencil(k, f3, 3, inv_steps[2], half)
                else:
                    pk, mk, hk = 3, 3, central_k
                dst[first + k] = jacobian_point(src, 3 * (first + k), pi, mi, hi, pj, mj, hj, pk, mk, hk, one)


@cached_njit(**_JIT)
def location_bounds(ddf, origin, planes):
    """``planes[t] = [min_a, max_a]`` (``a`` = 0, 1, 2, then the maxima) of ``p_a + ddf[..., a]`` in float64 over
    the points ``p = origin + (i, j, k)`` of plane ``t`` (batch-major planes of axis 1) of ``ddf``
    ``(batch, f1, f2, f3, 3)``; ``origin`` is float64.

    A NaN coordinate counts as 0: the clamped corners of a NaN coordinate are voxel 0 (``linear_axis``), which
    the kernels read (with a NaN weight), so a box must hold it.
    """
    f1, f2, f3 = ddf.shape[1], ddf.shape[2], ddf.shape[3]
    for t in prange(planes.shape[0]):
        b, i = t // f1, t - (t // f1) * f1
        x_index = origin[0] + i
        low0, low1, low2 = np.inf, np.inf, np.inf
        high0, high1, high2 = -np.inf, -np.inf, -np.inf
        for j in range(f2):
            row, y_index = ddf[b, i, j], origin[1] + j
            for k in range(f3):
                x = _nan_as_zero(np.float64(row[k, 0]) + x_index)
                y = _nan_as_zero(np.float64(row[k, 1]) + y_index)
                z = _nan_as_zero(np.float64(row[k, 2]) + (origin[2] + k))
                low0, low1, low2 = min(low0, x), min(low1, y), min(low2, z)
                high0, high1, high2 = max(high0, x), max(high1, y), max(high2, z)
        planes[t, 0], planes[t, 1], planes[t, 2] = low0, low1, low2
        planes[t, 3], planes[t, 4], planes[t, 5] = high0, high1, high2


@njit(inline="always")
def _nan_as_zero(value):
    """``value``, or 0 for NaN."""
    return value if value == value else 0.0


@njit(inline="always")
def field_at_voxel_row(fields, table, m, i, j, points):
    """``formulas.field_at_voxel`` for the voxels ``(i, j, k)`` of one row, in place on ``points``: the row's
    bounds along the first two axes once, and the range of ``k`` inside along the third, so that the loop
    over it is a plain read and add."""
    q0, q1, o2 = i + np.int64(m[0, 3]), j + np.int64(m[1, 3]), np.int64(m[2, 3])
    n1, n2, n3 = table[1], table[2], table[3]
    if not (q0 >= 0 and q0 < n1 and q1 >= 0 and q1 < n2):
        return
    first, last = max(0, -o2), min(points.shape[1], n3 - o2)
    if first >= last:
        return
    start = table[0] + 3 * ((q0 * n2 + q1) * n3 + o2 + first)
    row = fields[start : start + 3 * (last - first)]
    for k in range(last - first):
        points[0, first + k] = points[0, first + k] + row[3 * k]
        points[1, first + k] = points[1, first + k] + row[3 * k + 1]
        points[2, first + k] = points[2, first + k] + row[3 * k + 2]


@njit(inline="always")
def chain_row(i, j, start, kinds, matrices, fields, tables, finish, subtract, points, out):
    """``formulas.chain_point`` for the voxels ``(i, j, k)`` of one row, one step at a time over the whole
    row (the affine passes vectorise); ``points`` is ``(3, f3)`` float64 scratch, ``out`` the row's flat
    ``3 * f3`` values."""
    fi, fj = np.float64(i), np.float64(j)
    for k in range(points.shape[1]):
        points[0, k], points[1, k], points[2, k] = affine_point(start, fi, fj, np.float64(k))
    for s in range(kinds.shape[0]):
        m, table = matrices[s], tables[s]
        if kinds[s] == 0:
            for k in range(points.shape[1]):
                points[0, k], points[1, k], points[2, k] = affine_point(m, points[0, k], points[1, k], points[2, k])
        elif kinds[s] == 1:
            for k in range(points.shape[1]):
                points[0, k], points[1, k], points[2, k] = field_step(fields, table, m, points[0, k], points[1, k],
                                                                      points[2, k])
        else:
            field_at_voxel_row(fields, table, m, i, j, points)
    for k in range(points.shape[1]):
        out[3 * k], out[3 * k + 1], out[3 * k + 2] = chain_end(i, j, k, finish, subtract, points[0, k],
                                                               points[1, k], points[2, k])


@cached_njit(**_JIT)
def chain3d(start, kinds, matrices, fields, tables, finish, subtract, out):
    """``out[b, i, j, k] = formulas.chain_point(i, j, k, ...)``: a chain of world transforms collapsed into
    one field on the grid of ``out`` ``(batch, f1, f2, f3, 3)`` (every batch element the same), row by row
    (:func:`chain_row`)."""
    n_batch, f1, f2, f3, _ = out.shape
    dst = out.reshape(-1)
    for t in prange(n_batch * f1):
        i = t - (t // f1) * f1
        points = np.empty((3, f3), np.float64)
        for j in range(f2):
            first = 3 * (t * f2 + j) * f3
            chain_row(i, j, start, kinds, matrices, fields, tables, finish, subtract, points,
                      dst[first : first + 3 * f3])


_LINES_PER_TASK = 256  # adjacent lines the prefilter filters together (one vector step per sample)


@cached_njit(**_JIT)
def spline_prefilter(lines, prefilter, constant, fill):
    """Cubic B-spline coefficients along the middle axis of ``lines`` ``(outer, n, inner)``, in place
    (``formulas.spline_line``; ``prefilter`` as there, ``fill`` the constant extension).

    A task filters up to ``_LINES_PER_TASK`` adjacent lines at once, so that each step reads and
    writes contiguous memory.
    """
    n_outer, n, n_inner = lines.shape
    flat = lines.reshape(-1)
    n_blocks = (n_inner + _LINES_PER_TASK - 1) // _LINES_PER_TASK
    for t in prange(n_outer * n_blocks):
        o = t // n_blocks
        first_line = (t - o * n_blocks) * _LINES_PER_TASK
        width = min(_LINES_PER_TASK, n_inner - first_line)
        spline_line(flat, o * n * n_inner + first_line, n, n_inner, width, constant, fill, prefilter)


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


@cached_njit(**_JIT)
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


@cached_njit(**_JIT)
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


@cached_njit(**_JIT)
def linear_axis_table(coords, top, one, constant, lo, hi, w_lo):
    """``linear_axis`` applied to every coordinate of a flat array (the generic n-D path)."""
    for t in prange(coords.shape[0]):
        lo[t], hi[t], w_lo[t] = linear_axis(coords[t], top, one, constant)


@cached_njit(**_JIT)
def nearest_axis_table(coords, top, constant, index):
    """``nearest_axis`` applied to every coordinate of a flat array (the generic n-D path)."""
    for t in prange(coords.shape[0]):
        index[t] = nearest_axis(coords[t], top, constant)


_COPY_TILE = 16  # voxels along x and along z per tile of reverse_axes_copy


def reverse_axes_copy(src, out):
    """``out[x, y, z, c] = src[c, z, y, x]`` (:func:`_reverse_axes_copy`, its channel count compiled)."""
    _reverse_axes_copy(src, _lanes(src.shape[0]), out)


@cached_njit(**_JIT)
def _reverse_axes_copy(src, channel_lanes, out):
    """``out[x, y, z, c] = src[c, z, y, x]``: a volume stored x fastest (NIfTI's order, ``src`` its
    reversed-axes view, C-contiguous) copied into C order, in tiles of ``_COPY_TILE`` along x and z so that
    both the reads and the writes stay within cached lines; parallel over y.  ``channel_lanes`` is
    :func:`_lanes` of the channel count: a compile-time count (1 to ``_MAX_LANES``) lets the innermost loop
    unroll, which more than halves the time of the common 1- and 3-channel files."""
    n_c, n_z, n_y, n_x = src.shape
    n_ch = len(channel_lanes) if len(channel_lanes) > 0 else n_c
    flat_src, flat_out = src.reshape(-1), out.reshape(-1)
    c_stride, z_stride, x_stride = n_z * n_y * n_x, n_y * n_x, n_y * n_z * n_ch
    for y in prange(n_y):
        for x0 in range(0, n_x, _COPY_TILE):
            for z0 in range(0, n_z, _COPY_TILE):
                for x in range(x0, min(x0 + _COPY_TILE, n_x)):
                    run = x * x_stride + (y * n_z + z0) * n_ch  # out[x, y, z0, 0]
                    column = y * n_x + x  # src[0, 0, y, x]
                    for z in range(z0, min(z0 + _COPY_TILE, n_z)):
                        for c in range(n_ch):
                            flat_out[np.uint64(run + (z - z0) * n_ch + c)] = flat_src[
                                np.uint64(column + c * c_stride + z * z_stride)]
