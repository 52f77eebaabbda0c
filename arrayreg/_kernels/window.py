"""A linear warp's corner values from contiguous windows of the source rows, on AVX-512 CPUs.

A smooth displacement field sends 16 neighbouring points of a fixed-grid row
to nearly the same place.  Along axes 1 and 2 their lower corners ``i0`` and
``j0`` take one value, or two neighbouring ones; along axis 3 their corners
``k0``, ``k1`` lie within 32 consecutive voxels.  The 8 corner values of all
16 points then come from 4 (or 9) source rows, each a window of 32 voxels
loaded with plain vector loads and picked from with permutes
(``vpermi2ps``), where gathers would fetch them one value at a time: on a
Zen 5 core a 16-lane gather costs about as much as 16 loads, and gathers
were most of the row kernel's time.

:func:`window_tile` does one tile of 16 points of a float32 linear warp with
1 to ``MAX_CHANNELS`` interleaved channels, start to end in vector
registers.  Its values are those of the clamp boundary; with the constant
boundary it takes only tiles whose points all lie in ``(0, top]`` on every
axis, where the two boundaries agree:

1. per point, the corners and weights along each axis exactly as
   ``formulas.linear_axis`` computes them (clamp to ``[0, top]``;
   ``hi = ceil(c)``, ``lo = hi - 1`` unless ``hi == 0``, weight ``hi - c``;
   a NaN coordinate reads voxel 0 with a NaN weight);
2. the tile's window along axis 3 starts ``SLACK`` voxels before its first
   point's ``k0`` (within ``[0, d3 - 32]``); it fits when every point's
   ``k0`` and ``k1`` lie in it.  The tile is *square* when, besides, every
   point has ``i1 == i0 + 1`` and ``j1 == j0 + 1`` with ``i0`` in
   ``{a, a + 1}`` and ``j0`` in ``{b, b + 1}`` (``a``, ``b`` the smaller of
   the first and last point's).  With one row pair per axis the corners are
   the windows of rows ``a, a + 1`` by ``b, b + 1``; along an axis with two,
   the tile reads 3 rows there (``a .. a + 2``, clipped to the last row a
   point reads) and each point takes its 2: 6 windows when one axis has two
   pairs, 9 when both have.  A window of several channels
   is loaded whole and split into one 32-voxel window per channel.  Any
   other tile (a rough field, points clamped at 0 where ``i1 == i0``) is
   left to the caller: False;
3. per channel, ``formulas.trilinear`` of the 8 corners, operation for
   operation (no fused multiply-add); the channels interleaved again and
   stored to the tile's values, ``out[first * channels:(first + 16) * channels]``;
4. prefetches: the last ``channels`` lines of the windows of rows
   ``a .. a + 2`` by ``b + 1 .. b + 3``, which the same tile of the next row
   along axis 2 may read (the row kernel's per-point prefetching cost more
   than it saved here), and the tile's displacements ``DISP_AHEAD`` values
   ahead.  Measured on W1's smooth field (160x192x224, 2 threads): 8.2 ->
   5.4 ms against prefetching only the windows a tile reads, one row
   further.

The values are bit for bit those of ``formulas.linear_point3``.  Every load
stays inside the row of the voxels it serves (the window starts at most at
``d3 - 32``); the caller guarantees ``d3 >= 32``, ``top[2] == d3 - 1`` and
that every row ``i``, ``j`` in ``[0, top]`` lies in ``src``.

``AVAILABLE`` says whether this CPU runs it: Numba compiles for the host,
and a build for another CPU (``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` set)
must not bake in AVX-512 instructions.  Elsewhere, and for other dtypes,
:func:`takes_windows` is False and the caller's general loop does every point.
"""

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .cache import emit_prefetch

WIDTH = 16  # points per tile: float32 lanes of a 512-bit register
SPAN = 2 * WIDTH  # voxels per window: two vector loads, the table of one vpermi2ps
MAX_CHANNELS = 4  # channels of the windows: a window's values, 32 per channel, deinterleaved by LLVM shuffles
SLACK = 8  # voxels of a window before its tile's first k0 (points may step back along axis 3)
LINE_VALUES = 16  # float32 values of a 64-byte cache line
DISP_AHEAD = 4096  # values of the displacements prefetched ahead of a tile (16 KiB).  Measured on W1, 2 threads,
# before the 6-window tiles: none 8.0-8.4 ms, 4096 values 6.8-7.2 ms, 2048 and 8192 the same within the noise


def _host_has_avx512():
    if numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return False
    return bool(llvm.get_host_cpu_features().get("avx512f", False))


AVAILABLE = _host_has_avx512()

_F32, _I16, _I32, _I64 = ir.FloatType(), ir.IntType(16), ir.IntType(32), ir.IntType(64)
_FLOATS, _INTS = ir.VectorType(_F32, WIDTH), ir.VectorType(_I32, WIDTH)
_PERMUTE = ir.FunctionType(_FLOATS, [_FLOATS, _INTS, _FLOATS])


def takes_windows(src, channel_lanes, disp, coords, xi, top, out):
    """Whether :func:`window_tile` runs for arguments of these types on this CPU (a compile-time constant);
    in kernels only."""
    raise TypeError("takes_windows is compiled into the CPU kernels; it has no Python implementation")


def window_tile(src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, out):
    """Points ``first`` to ``first + 16`` of a linear warp row into ``out``; in kernels only.

    ``src`` is the flat source with ``len(channel_lanes)`` channels (1 to ``MAX_CHANNELS``), ``base`` the flat
    offset of its voxel ``(0, 0, 0)``, ``s1`` and ``s2`` its strides (in values) along axes 1 and 2, ``d3`` its
    row length in voxels; point ``k`` of the row is ``(xi, yj, coords[k]) + disp[3k:3k+3]``, its values
    ``out[k * channels:(k + 1) * channels]``.  With ``constant`` (the constant boundary) a tile is done only
    when every point lies in ``(0, top]`` on every axis, where the two boundaries agree.  Returns whether the
    tile was done; on False ``out`` is untouched.
    """
    raise TypeError("window_tile is compiled into the CPU kernels; it has no Python implementation")


def _is_float32_row(array):
    return isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C" and array.dtype == types.float32


def _windows_apply(src, channel_lanes, disp, coords, xi, top, out):
    return (AVAILABLE and isinstance(channel_lanes, types.BaseTuple) and 1 <= len(channel_lanes) <= MAX_CHANNELS
            and all(_is_float32_row(a) for a in (src, disp, coords, out)) and xi == types.float32
            and isinstance(top, types.UniTuple) and top.dtype == types.float32)


@overload(takes_windows, inline="always")
def _select_takes_windows(src, channel_lanes, disp, coords, xi, top, out):
    applies = _windows_apply(src, channel_lanes, disp, coords, xi, top, out)
    return lambda src, channel_lanes, disp, coords, xi, top, out: applies


@overload(window_tile, inline="always")
def _select_window_tile(src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, out):
    if not (_windows_apply(src, channel_lanes, disp, coords, xi, top, out) and yj == types.float32):
        return lambda src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, out: False
    tile_intrinsic = _TILES[len(channel_lanes)]

    def tile(src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, out):
        return tile_intrinsic(src, base, disp, coords, first, xi, yj, top[0], top[1], top[2], s1, s2, d3, constant,
                              out)
    return tile


# ---------------------------------------------------------------- IR helpers
def _int(value):
    return ir.Constant(_I32, value)


def _splat(builder, value, vector_type):
    lane = builder.insert_element(ir.Constant(vector_type, ir.Undefined), value, _int(0))
    return builder.shuffle_vector(lane, ir.Constant(vector_type, ir.Undefined), ir.Constant(_INTS, [0] * WIDTH))


def _call(builder, name, args, result_type):
    function_type = ir.FunctionType(result_type, [a.type for a in args])
    return builder.call(cgutils.get_or_insert_function(builder.module, function_type, name), args)


def _load(builder, pointer, offset, count):
    vector_type = ir.VectorType(_F32, count)
    return builder.load(builder.bitcast(builder.gep(pointer, [offset]), vector_type.as_pointer()), align=4)


def _lanes(builder, vector, picks):
    """The lanes ``picks`` of ``vector``, as a vector of ``len(picks)``."""
    undefined = ir.Constant(vector.type, ir.Undefined)
    return builder.shuffle_vector(vector, undefined, ir.Constant(ir.VectorType(_I32, len(picks)), picks))


def _channel_halves(builder, window, channels, channel):
    """The 32 values of ``channel`` in a window of ``32 * channels`` interleaved values, as two vectors of 16."""
    return tuple(_lanes(builder, window, [channels * (half * WIDTH + t) + channel for t in range(WIDTH)])
                 for half in (0, 1))


def _interleave(builder, vectors):
    """The 16 lanes of each of ``vectors`` interleaved: lane ``t`` of vector ``c`` at ``t * len(vectors) + c``."""
    if len(vectors) == 1:
        return vectors[0]
    wide = vectors[0]
    for vector in vectors[1:]:  # concatenate: 16, 32, 48, 64 lanes
        n = wide.type.count
        padded = _lanes(builder, vector, list(range(WIDTH)) + [0] * (n - WIDTH)) if n > WIDTH else vector
        picks = list(range(n)) + [n + t for t in range(WIDTH)]
        wide = builder.shuffle_vector(wide, padded, ir.Constant(ir.VectorType(_I32, n + WIDTH), picks))
    channels = len(vectors)
    return _lanes(builder, wide, [c * WIDTH + t for t in range(WIDTH) for c in range(channels)])


def _smaller(builder, a, b):
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def _larger(builder, a, b):
    return builder.select(builder.icmp_signed(">", a, b), a, b)


def _all(builder, lanes):
    """Whether every lane of the 16 booleans ``lanes`` is set."""
    return builder.icmp_signed("==", builder.bitcast(lanes, _I16), ir.Constant(_I16, -1))


def _clamped_axis(builder, c, top):
    """``formulas.linear_axis(c, top, one, False)`` on 16 lanes: ``(lo, hi, w_lo)``."""
    zero, izero = ir.Constant(_FLOATS, [0.0] * WIDTH), ir.Constant(_INTS, [0] * WIDTH)
    nan = builder.fcmp_unordered("uno", c, c)
    c = builder.select(builder.fcmp_ordered("<", c, zero), zero, c)
    c = builder.select(builder.fcmp_ordered(">", c, top), top, c)
    hi_f = _call(builder, "llvm.ceil.v16f32", [c], _FLOATS)  # NaN stays NaN, so the weight is NaN
    hi = builder.select(nan, izero, builder.fptosi(hi_f, _INTS))  # fptosi of NaN is poison: never selected
    lo = builder.sub(hi, builder.zext(builder.icmp_signed(">", hi, izero), _INTS))
    return lo, hi, builder.fsub(hi_f, c)


def _inside(builder, points, tops):
    """Whether every lane of every coordinate of ``points`` lies in ``(0, top]`` (False for NaN)."""
    zero = ir.Constant(_FLOATS, [0.0] * WIDTH)
    inside = None
    for c, top in zip(points, tops):
        lanes = builder.and_(builder.fcmp_ordered(">", c, zero), builder.fcmp_ordered("<=", c, top))
        inside = lanes if inside is None else builder.and_(inside, lanes)
    return _all(builder, inside)


def _mix(builder, lo, hi, w):
    """``formulas.mix``: ``lo * w + hi * (1 - w)``."""
    one = ir.Constant(_FLOATS, [1.0] * WIDTH)
    return builder.fadd(builder.fmul(lo, w), builder.fmul(hi, builder.fsub(one, w)))


class _Tile:
    """The IR of one tile: its corners and weights, whether it is square (and uniform), its windows."""

    def __init__(self, builder, channels, src, base, s1, s2, d3, axes):
        b = self.builder = builder
        self.channels, self.src, self.base, self.s1, self.s2 = channels, src, base, s1, s2
        (self.i0, i1, self.wi), (self.j0, j1, self.wj), (k0, k1, self.wk) = axes
        self.i1, self.j1 = i1, j1
        self.i_min, self.j_min = (_smaller(b, b.extract_element(v, _int(0)), b.extract_element(v, _int(WIDTH - 1)))
                                  for v in (self.i0, self.j0))
        ones = ir.Constant(_INTS, [1] * WIDTH)
        at_i = b.icmp_signed("==", self.i0, _splat(b, self.i_min, _INTS))
        at_j = b.icmp_signed("==", self.j0, _splat(b, self.j_min, _INTS))
        self.next_i, self.next_j = b.not_(at_i), b.not_(at_j)
        after_i = b.icmp_signed("==", self.i0, b.add(_splat(b, self.i_min, _INTS), ones))
        after_j = b.icmp_signed("==", self.j0, b.add(_splat(b, self.j_min, _INTS), ones))
        two_rows = b.and_(_all(b, b.or_(at_i, after_i)), _all(b, b.or_(at_j, after_j)))
        pairs = b.and_(_all(b, b.icmp_signed("==", i1, b.add(self.i0, ones))),
                       _all(b, b.icmp_signed("==", j1, b.add(self.j0, ones))))
        last_start = b.trunc(b.sub(d3, ir.Constant(_I64, SPAN)), _I32)
        start = b.sub(b.extract_element(k0, _int(0)), _int(SLACK))
        self.start = _larger(b, _smaller(b, start, last_start), _int(0))
        start_lanes = _splat(b, self.start, _INTS)
        self.indices = (b.sub(k0, start_lanes), b.sub(k1, start_lanes))
        span = ir.Constant(_INTS, [SPAN] * WIDTH)
        in_window = b.and_(_all(b, b.icmp_unsigned("<", self.indices[0], span)),
                           _all(b, b.icmp_unsigned("<", self.indices[1], span)))
        self.square = b.and_(b.and_(in_window, two_rows), pairs)
        self.uniform_i, self.uniform_j = _all(b, at_i), _all(b, at_j)
        self.permute = cgutils.get_or_insert_function(b.module, _PERMUTE, "llvm.x86.avx512.vpermi2var.ps.512")

    def corners(self, rows_i, rows_j):
        """Per channel, the 8 corners (order ``v000, v100, v010, v110, v001, ...``: ``i`` fastest, then ``j``,
        ``k``) from the windows of ``rows_i`` by ``rows_j`` rows: 2 along an axis where the tile is uniform,
        3 with the per-point choice where it is not."""
        b = self.builder
        values = SPAN * self.channels
        origin = self.origin(values)
        last_i = b.add(self.i_min, _int(1))
        last_j = b.add(self.j_min, _int(1))
        if rows_i == 3:
            last_i = _call(b, "llvm.vector.reduce.smax.v16i32", [self.i1], _I32)
        if rows_j == 3:
            last_j = _call(b, "llvm.vector.reduce.smax.v16i32", [self.j1], _I32)
        picks = {}
        for di in range(rows_i):
            row_i = b.mul(b.sext(_smaller(b, b.add(self.i_min, _int(di)), last_i), _I64), self.s1)
            for dj in range(rows_j):
                row_j = b.mul(b.sext(_smaller(b, b.add(self.j_min, _int(dj)), last_j), _I64), self.s2)
                window = _load(b, self.src, b.add(origin, b.add(row_i, row_j)), values)
                halves = [_channel_halves(b, window, self.channels, c) for c in range(self.channels)]
                for c, (low, high) in enumerate(halves):
                    for kk in (0, 1):
                        picks[di, dj, kk, c] = b.call(self.permute, [low, self.indices[kk], high])
        corners = []
        for c in range(self.channels):
            chosen = []
            for kk in (0, 1):
                for jj in (0, 1):
                    for ii in (0, 1):
                        chosen.append(self._chosen(picks, ii, jj, kk, c, rows_i, rows_j))
            corners.append(chosen)
        return corners

    def _chosen(self, picks, ii, jj, kk, c, rows_i, rows_j):
        """Corner ``(ii, jj, kk)`` of channel ``c``: on an axis of 3 rows, a point past the tile's first row
        (``next_i``, ``next_j``) takes its corner one row further."""
        b = self.builder
        if rows_j == 3:
            def along_j(di):
                return b.select(self.next_j, picks[di, jj + 1, kk, c], picks[di, jj, kk, c])
        else:
            def along_j(di):
                return picks[di, jj, kk, c]
        if rows_i == 3:
            return b.select(self.next_i, along_j(ii + 1), along_j(ii))
        return along_j(ii)

    def origin(self, values):
        """The flat offset of the window of row ``(0, 0)``: the tile's window start, in values."""
        b = self.builder
        return b.add(self.base, b.mul(b.sext(self.start, _I64), ir.Constant(_I64, self.channels)))

    def prefetch_next_row(self):
        """Prefetch, for the rows ``a .. a + 2`` by ``b + 1 .. b + 3``, the last ``channels`` lines of a window
        (the 16 voxels a window gains over the previous tile's): the windows the same tile of the next row
        along axis 2 may read.  Measured against prefetching only the last line of the windows this tile
        reads, one row further: W1 (1 channel) 7.2 -> 6.3 ms, W3 (3 channels) 41 -> 30 ms."""
        b = self.builder
        values = SPAN * self.channels
        last = b.add(self.origin(values), ir.Constant(_I64, values - 1))
        for di in range(3):
            row_i = b.mul(b.sext(b.add(self.i_min, _int(di)), _I64), self.s1)
            for dj in range(1, 4):
                row_j = b.mul(b.sext(b.add(self.j_min, _int(dj)), _I64), self.s2)
                row = b.add(last, b.add(row_i, row_j))
                for line in range(self.channels):  # the tile's step along axis 3: 16 voxels, a line per channel
                    emit_prefetch(b, self.src, b.add(row, ir.Constant(_I64, -LINE_VALUES * line)))

    def store(self, corners, destination):
        """``formulas.trilinear`` of each channel's 8 corners, interleaved into ``destination``."""
        b = self.builder
        results = []
        for v in corners:
            f00, f10 = _mix(b, v[0], v[1], self.wi), _mix(b, v[2], v[3], self.wi)
            f01, f11 = _mix(b, v[4], v[5], self.wi), _mix(b, v[6], v[7], self.wi)
            results.append(_mix(b, _mix(b, f00, f10, self.wj), _mix(b, f01, f11, self.wj), self.wk))
        value = _interleave(b, results)
        b.store(value, b.bitcast(destination, value.type.as_pointer()), align=4)


def _branches(builder, uniform_i, uniform_j):
    """Yield ``(rows_i, rows_j)`` four times, each inside the branch where the tile is uniform along axis 1
    (``rows_i == 2``) or not (3), and along axis 2 likewise."""
    with builder.if_else(uniform_i, likely=True) as (at_i, spread_i):
        for rows_i, branch_i in ((2, at_i), (3, spread_i)):
            with branch_i:
                with builder.if_else(uniform_j, likely=True) as (at_j, spread_j):
                    for rows_j, branch_j in ((2, at_j), (3, spread_j)):
                        with branch_j:
                            yield rows_i, rows_j


def _tile_intrinsic(channels):
    """:func:`window_tile` for ``channels`` channels in LLVM IR (float32 rows, integer offsets, float32
    coordinates and limits)."""

    @intrinsic
    def tile16(typingctx, src, base, disp, coords, first, xi, yj, top0, top1, top2, s1, s2, d3, constant, out):
        if not (all(_is_float32_row(a) for a in (src, disp, coords, out))
                and all(a == types.float32 for a in (xi, yj, top0, top1, top2))
                and all(isinstance(a, types.Integer) for a in (base, first, s1, s2, d3))
                and isinstance(constant, types.Boolean)):
            return None

        def codegen(context, builder, signature, args):
            src_p, disp_p, coords_p, out_p = (context.make_array(signature.args[n])(context, builder, args[n]).data
                                              for n in (0, 2, 3, 14))
            base, first, s1, s2, d3 = (context.cast(builder, args[n], signature.args[n], types.int64)
                                       for n in (1, 4, 10, 11, 12))
            offset = builder.mul(first, ir.Constant(_I64, 3))
            triples = _load(builder, disp_p, offset, 3 * WIDTH)
            for line in range(0, 3 * WIDTH, LINE_VALUES):
                emit_prefetch(builder, disp_p, builder.add(offset, ir.Constant(_I64, DISP_AHEAD + line)))
            x, y, z = (_lanes(builder, triples, [3 * t + a for t in range(WIDTH)]) for a in range(3))
            x = builder.fadd(_splat(builder, args[5], _FLOATS), x)
            y = builder.fadd(_splat(builder, args[6], _FLOATS), y)
            z = builder.fadd(_load(builder, coords_p, first, WIDTH), z)
            tops = [_splat(builder, top, _FLOATS) for top in args[7:10]]
            axes = [_clamped_axis(builder, c, top) for c, top in zip((x, y, z), tops)]
            tile = _Tile(builder, channels, src_p, base, s1, s2, d3, axes)
            # with the constant boundary, only tiles inside (0, top] on every axis (there it equals clamp)
            flag = args[13]
            if flag.type != ir.IntType(1):
                flag = builder.icmp_unsigned("!=", flag, ir.Constant(flag.type, 0))
            outside_allowed = builder.not_(flag)
            done = builder.and_(tile.square, builder.or_(outside_allowed, _inside(builder, (x, y, z), tops)))
            destination = builder.gep(out_p, [builder.mul(first, ir.Constant(_I64, channels))])
            with builder.if_then(done, likely=True):
                tile.prefetch_next_row()
                for rows_i, rows_j in _branches(builder, tile.uniform_i, tile.uniform_j):
                    tile.store(tile.corners(rows_i, rows_j), destination)
            return done

        return (types.boolean(src, base, disp, coords, first, xi, yj, top0, top1, top2, s1, s2, d3, constant, out),
                codegen)

    return tile16


_TILES = {channels: _tile_intrinsic(channels) for channels in range(1, MAX_CHANNELS + 1)}
