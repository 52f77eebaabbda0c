"""A linear warp's corner values from contiguous tables of the source rows, on AVX-512 CPUs.

A smooth displacement field sends 16 neighbouring points of a fixed-grid row
to nearly the same place.  Along axes 1 and 2 their lower corners ``i0`` and
``j0`` take one value, or two neighbouring ones; along axis 3 their corners
``k0``, ``k1`` lie close together.  The 8 corner values of all 16 points then
come from 4 (6 or 9) source rows, read with plain vector loads of 32
consecutive values (a *table*) and picked from with permutes
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
2. the tile's ``16 * channels`` values, interleaved as they are stored,
   fill ``channels`` output registers; lane ``t`` of register ``r`` is
   channel ``(16r + t) % channels`` of point ``(16r + t) // channels``.
   Register ``r``'s table starts ``SLACKS[channels]`` voxels before the
   ``k0`` of its first point (within ``[0, channels * d3 - 32]`` values),
   and a lane picks value ``channels * k + channel - start`` of it, so that
   no value is ever deinterleaved; the tables fit when every lane's ``k0``
   and ``k1`` index lies in ``[0, 32)``.  The tile is *square* when, besides,
   every point has ``i1 == i0 + 1`` and ``j1 == j0 + 1`` with ``i0`` in
   ``{a, a + 1}`` and ``j0`` in ``{b, b + 1}`` (``a``, ``b`` the smaller of
   the first and last point's).  With one row pair per axis the corners
   come from rows ``a, a + 1`` by ``b, b + 1``; along an axis with two, the
   tile reads 3 rows there (``a .. a + 2``, clipped to the last row a point
   reads) and each point takes its 2: 6 rows when one axis has two pairs, 9
   when both have.  Any other tile (a rough field, points clamped at 0
   where ``i1 == i0``) is left to the caller: False;
3. per output register, ``formulas.trilinear`` of the 8 corners, operation
   for operation (no fused multiply-add), with the weights of each lane's
   point, stored to ``out[first * channels:(first + 16) * channels]``; a
   composition's tile (``weights``) stores the weighted sum with the
   displacements instead (``cpu.combined``);
4. prefetches: the last ``channels`` lines of the tables of the rows
   ``NEW_ROWS`` (``a + 2`` by ``b + 1 .. b + 3`` and ``a, a + 1`` by
   ``b + 3``), which the same tile of the next row along axis 2 or of the
   next plane along axis 1 reads first (the row kernel's per-point
   prefetching cost more than it saved here), and the tile's displacements
   ``DISP_AHEAD`` values ahead.  Measured on W1's smooth field (160x192x224,
   2 threads): 8.2 -> 5.4 ms against prefetching only the windows a tile
   reads, one row further.

The values are bit for bit those of ``formulas.linear_point3``.  Every load
stays inside the row of the voxels it serves (a table starts at most
``channels * d3 - 32`` values into its row); the caller guarantees
``d3 >= 32``, ``top[2] == d3 - 1`` and that every row ``i``, ``j`` in
``[0, top]`` lies in ``src``.

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
SPAN = 2 * WIDTH  # values per table: two vector loads, the table of one vpermi2ps (the fewest voxels a row needs)
MAX_CHANNELS = 4  # channels of the tiles: 16 to 64 values, 1 to 4 output registers
SLACKS = {1: 8, 2: 3, 3: 1, 4: 1}  # per channel count, voxels of a table before its first point's k0 (points may
# step back along axis 3); a table's 32 values hold 32 // channels voxels, a register's points fewer
LINE_VALUES = 16  # float32 values of a 64-byte cache line
NEW_ROWS = ((2, 1), (2, 2), (2, 3), (0, 3), (1, 3))  # the rows a tile prefetches, from its (a, b)
DISP_AHEAD = 4096  # values of the displacements prefetched ahead of a tile (16 KiB).  Measured on W1, 2 threads,
# before the 6-window tiles: none 8.0-8.4 ms, 4096 values 6.8-7.2 ms, 2048 and 8192 the same within the noise


def _host_has_avx512():
    if numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return False
    return bool(llvm.get_host_cpu_features().get("avx512f", False))


AVAILABLE = _host_has_avx512()

_F32, _I16, _I32, _I64 = ir.FloatType(), ir.IntType(16), ir.IntType(32), ir.IntType(64)
_I64_WIDTH = ir.Constant(_I64, WIDTH)
_FLOATS, _INTS = ir.VectorType(_F32, WIDTH), ir.VectorType(_I32, WIDTH)
_PERMUTE = ir.FunctionType(_FLOATS, [_FLOATS, _INTS, _FLOATS])


def takes_windows(src, channel_lanes, disp, coords, xi, top, out):
    """Whether :func:`window_tile` runs for arguments of these types on this CPU (a compile-time constant);
    in kernels only."""
    raise TypeError("takes_windows is compiled into the CPU kernels; it has no Python implementation")


def window_tile(src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, weights, out):
    """Points ``first`` to ``first + 16`` of a linear warp row into ``out``; in kernels only.

    ``src`` is the flat source with ``len(channel_lanes)`` channels (1 to ``MAX_CHANNELS``), ``base`` the flat
    offset of its voxel ``(0, 0, 0)``, ``s1`` and ``s2`` its strides (in values) along axes 1 and 2, ``d3`` its
    row length in voxels; point ``k`` of the row is ``(xi, yj, coords[k]) + disp[3k:3k+3]``, its values
    ``out[k * channels:(k + 1) * channels]``.  With ``constant`` (the constant boundary) a tile is done only
    when every point lies in ``(0, top]`` on every axis, where the two boundaries agree.  ``weights`` is
    ``()``, or for a composition of 3-channel fields ``(w_inner, w_outer)`` (float32): then ``out`` receives
    ``w_inner * disp + w_outer * value``, as ``cpu.combined``.  Returns whether the tile was done; on False
    ``out`` is untouched.
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


def _weights_apply(channel_lanes, weights):
    """Weights a tile takes: none, or two float32 with 3 channels (a composition's)."""
    return isinstance(weights, types.BaseTuple) and (
        len(weights) == 0 or (len(channel_lanes) == 3 and weights == types.UniTuple(types.float32, 2)))


@overload(window_tile, inline="always")
def _select_window_tile(src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, weights,
                        out):
    if not (_windows_apply(src, channel_lanes, disp, coords, xi, top, out) and yj == types.float32
            and _weights_apply(channel_lanes, weights)):
        return (lambda src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, weights,
                out: False)
    tile_intrinsic = _TILES[len(channel_lanes)]

    def tile(src, channel_lanes, base, disp, coords, first, xi, yj, top, s1, s2, d3, constant, weights, out):
        return tile_intrinsic(src, base, disp, coords, first, xi, yj, top[0], top[1], top[2], s1, s2, d3, constant,
                              weights, out)
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


def _expand(builder, vector, register, channels):
    """The lanes of the 16 per-point ``vector`` that output register ``register`` of a ``channels``-channel tile
    holds: lane ``t`` of the register is point ``(16 * register + t) // channels``."""
    if channels == 1:
        return vector
    return _lanes(builder, vector, [(WIDTH * register + t) // channels for t in range(WIDTH)])


class _Tile:
    """The IR of one tile: its corners and weights, whether it is square (and uniform), its tables.

    The tile's ``16 * channels`` values, interleaved as they are stored, fill ``channels`` output registers
    of 16 lanes; lane ``t`` of register ``r`` is channel ``(16r + t) % channels`` of point
    ``(16r + t) // channels``.  Each register reads each source row from a *table* of 32 consecutive values
    of that row (2 loads) with one permute per corner along axis 3, starting ``SLACKS[channels]`` voxels
    before the ``k0`` of its first point (within the row), so no value is ever deinterleaved.
    """

    def __init__(self, builder, channels, src, base, s1, s2, d3, axes):
        b = self.builder = builder
        self.channels, self.src, self.base, self.s1, self.s2 = channels, src, base, s1, s2
        (i0, i1, wi), (j0, j1, wj), (k0, k1, wk) = axes
        self.i0, self.j0, self.i1, self.j1 = i0, j0, i1, j1
        self.i_min, self.j_min = (_smaller(b, b.extract_element(v, _int(0)), b.extract_element(v, _int(WIDTH - 1)))
                                  for v in (i0, j0))
        ones = ir.Constant(_INTS, [1] * WIDTH)
        i_min, j_min = _splat(b, self.i_min, _INTS), _splat(b, self.j_min, _INTS)
        at_i, at_j = b.icmp_signed("==", i0, i_min), b.icmp_signed("==", j0, j_min)
        after_i, after_j = b.icmp_signed("==", i0, b.add(i_min, ones)), b.icmp_signed("==", j0, b.add(j_min, ones))
        two_rows = b.and_(_all(b, b.or_(at_i, after_i)), _all(b, b.or_(at_j, after_j)))
        pairs = b.and_(_all(b, b.icmp_signed("==", i1, b.add(i0, ones))),
                       _all(b, b.icmp_signed("==", j1, b.add(j0, ones))))
        self.uniform_i, self.uniform_j = _all(b, at_i), _all(b, at_j)
        registers = range(channels)
        # per register: its lanes' weights, its table's start and its lanes' indices in the table
        self.weights = [tuple(_expand(b, w, r, channels) for w in (wi, wj, wk)) for r in registers]
        last_start = b.trunc(b.sub(b.mul(d3, ir.Constant(_I64, channels)), ir.Constant(_I64, SPAN)), _I32)
        span = ir.Constant(_INTS, [SPAN] * WIDTH)
        self.starts, self.indices, in_tables = [], [], two_rows
        for r in registers:
            first_k0 = b.extract_element(k0, _int(WIDTH * r // channels))
            start = b.mul(b.sub(first_k0, _int(SLACKS[channels])), _int(channels))
            start = _larger(b, _smaller(b, start, last_start), _int(0))
            lane_channel = ir.Constant(_INTS, [(WIDTH * r + t) % channels for t in range(WIDTH)])
            offset = b.sub(lane_channel, _splat(b, start, _INTS))
            indices = tuple(b.add(b.mul(_expand(b, k, r, channels), ir.Constant(_INTS, [channels] * WIDTH)), offset)
                            for k in (k0, k1))
            for index in indices:
                in_tables = b.and_(in_tables, _all(b, b.icmp_unsigned("<", index, span)))
            self.starts.append(b.sext(start, _I64))
            self.indices.append(indices)
        self.square = b.and_(in_tables, pairs)
        self.permute = cgutils.get_or_insert_function(b.module, _PERMUTE, "llvm.x86.avx512.vpermi2var.ps.512")

    def corners(self, rows_i, rows_j):
        """Per output register, the 8 corners (order ``v000, v100, v010, v110, v001, ...``: ``i`` fastest, then
        ``j``, ``k``) from the tables of ``rows_i`` by ``rows_j`` rows: 2 along an axis where the tile is
        uniform, 3 with the per-point choice where it is not."""
        b = self.builder
        last_i = b.add(self.i_min, _int(1))
        last_j = b.add(self.j_min, _int(1))
        next_i = next_j = None  # per register, its lanes past the tile's first row (computed only where needed)
        if rows_i == 3:
            last_i = _call(b, "llvm.vector.reduce.smax.v16i32", [self.i1], _I32)
            next_i = self._past_first(self.i0, self.i_min)
        if rows_j == 3:
            last_j = _call(b, "llvm.vector.reduce.smax.v16i32", [self.j1], _I32)
            next_j = self._past_first(self.j0, self.j_min)
        picks = {}
        for di in range(rows_i):
            row_i = b.mul(b.sext(_smaller(b, b.add(self.i_min, _int(di)), last_i), _I64), self.s1)
            for dj in range(rows_j):
                row_j = b.mul(b.sext(_smaller(b, b.add(self.j_min, _int(dj)), last_j), _I64), self.s2)
                row = b.add(self.base, b.add(row_i, row_j))
                for r, (start, indices) in enumerate(zip(self.starts, self.indices)):
                    table = b.add(row, start)
                    low, high = _load(b, self.src, table, WIDTH), _load(b, self.src, b.add(table, _I64_WIDTH), WIDTH)
                    for kk in (0, 1):
                        picks[di, dj, kk, r] = b.call(self.permute, [low, indices[kk], high])
        return [[self._chosen(picks, ii, jj, kk, r, next_i, next_j)
                 for kk in (0, 1) for jj in (0, 1) for ii in (0, 1)] for r in range(self.channels)]

    def _past_first(self, lower, first_row):
        """Per output register, whether its lanes' lower corner ``lower`` is past the tile's ``first_row``."""
        b = self.builder
        first = _splat(b, first_row, _INTS)
        return [b.icmp_signed("!=", _expand(b, lower, r, self.channels), first) for r in range(self.channels)]

    def _chosen(self, picks, ii, jj, kk, r, next_i, next_j):
        """Corner ``(ii, jj, kk)`` of output register ``r``: on an axis of 3 rows (``next_i``, ``next_j`` not
        None), a lane past the tile's first row takes its corner one row further."""
        b = self.builder
        if next_j is not None:
            def along_j(di):
                return b.select(next_j[r], picks[di, jj + 1, kk, r], picks[di, jj, kk, r])
        else:
            def along_j(di):
                return picks[di, jj, kk, r]
        if next_i is not None:
            return b.select(next_i[r], along_j(ii + 1), along_j(ii))
        return along_j(ii)

    def prefetch_next_row(self):
        """Prefetch the ``channels`` lines that end with the last table's last value (the 16 voxels the next
        tile along axis 3 adds) in the rows ``NEW_ROWS`` from ``(a, b)``: the rows that the tiles after this
        one read first, the same tile of the next row along axis 2 (``b + 3``) and of the next plane along axis
        1 (``a + 2``, still in the L2 cache when that plane comes).  The rows this tile reads are in the cache
        already.  Measured against the last line of this tile's windows, one row further: W1 (1 channel)
        7.2 -> 6.3 ms, W3 (3 channels) 41 -> 30 ms; against all 9 rows ``a .. a + 2`` by ``b + 1 .. b + 3``,
        single-threaded, W1 10.6-10.9 -> 10.0-10.3 ms and W3 44.5-47.9 -> 42.8-45.2 ms."""
        b = self.builder
        last = b.add(self.base, b.add(self.starts[-1], ir.Constant(_I64, SPAN - 1)))
        for di, dj in NEW_ROWS:
            row_i = b.mul(b.sext(b.add(self.i_min, _int(di)), _I64), self.s1)
            row = b.add(last, b.add(row_i, b.mul(b.sext(b.add(self.j_min, _int(dj)), _I64), self.s2)))
            for line in range(self.channels):
                emit_prefetch(b, self.src, b.add(row, ir.Constant(_I64, -LINE_VALUES * line)))

    def values(self, corners):
        """``formulas.trilinear`` of each output register's 8 corners."""
        b = self.builder
        results = []
        for v, (wi, wj, wk) in zip(corners, self.weights):
            f00, f10 = _mix(b, v[0], v[1], wi), _mix(b, v[2], v[3], wi)
            f01, f11 = _mix(b, v[4], v[5], wi), _mix(b, v[6], v[7], wi)
            results.append(_mix(b, _mix(b, f00, f10, wj), _mix(b, f01, f11, wj), wk))
        return results


def _combined(builder, registers, disp, offset, weights):
    """``w_inner * inner + w_outer * value`` per lane (``cpu.combined``): the 3 output registers of a
    3-channel tile with the tile's displacements, ``disp[offset:offset + 48]`` (the same interleaving; loaded
    again, not kept in registers through the tile)."""
    w_inner, w_outer = (_splat(builder, w, _FLOATS) for w in weights)
    return [builder.fadd(builder.fmul(w_inner, _load(builder, disp, builder.add(offset, ir.Constant(_I64, WIDTH * r)),
                                                     WIDTH)),
                         builder.fmul(w_outer, value)) for r, value in enumerate(registers)]


def _store(builder, registers, destination):
    """The output registers, one after another, at ``destination``."""
    for r, value in enumerate(registers):
        pointer = builder.gep(destination, [ir.Constant(_I64, WIDTH * r)])
        builder.store(value, builder.bitcast(pointer, value.type.as_pointer()), align=4)


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
    def tile16(typingctx, src, base, disp, coords, first, xi, yj, top0, top1, top2, s1, s2, d3, constant, weights,
               out):
        if not (all(_is_float32_row(a) for a in (src, disp, coords, out))
                and all(a == types.float32 for a in (xi, yj, top0, top1, top2))
                and all(isinstance(a, types.Integer) for a in (base, first, s1, s2, d3))
                and isinstance(constant, types.Boolean) and _weights_apply((None,) * channels, weights)):
            return None

        def codegen(context, builder, signature, args):
            src_p, disp_p, coords_p, out_p = (context.make_array(signature.args[n])(context, builder, args[n]).data
                                              for n in (0, 2, 3, 15))
            weight_values = [builder.extract_value(args[14], n) for n in range(len(signature.args[14]))]
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
                    values = tile.values(tile.corners(rows_i, rows_j))
                    if weight_values:
                        values = _combined(builder, values, disp_p, offset, weight_values)
                    _store(builder, values, destination)
            return done

        return (types.boolean(src, base, disp, coords, first, xi, yj, top0, top1, top2, s1, s2, d3, constant, weights,
                              out), codegen)

    return tile16


_TILES = {channels: _tile_intrinsic(channels) for channels in range(1, MAX_CHANNELS + 1)}
