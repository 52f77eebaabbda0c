"""Vector-register code of the Winograd convolution: its tile transforms and its small matrix products.

The Winograd kernel (:mod:`.conv`) keeps, per block of tiles, the transformed
input tiles ``v[t, q, :]`` and products ``m[t, q, :]`` as rows of channels.
Every channel count is padded to ``C``, whole *vectors* of ``L`` lanes, ``L``
the smallest power of two that holds the channels, at most one 512-bit vector
(16 float32 or 8 float64; :func:`padded_channels`), so each operation here
works on one vector of ``L`` channels at a time:

- :func:`winograd_input`: one 4x4x4 input tile, 64 vector loads, the
  transform ``B^T`` (``[d0 - d2, d1 + d2, d2 - d1, d1 - d3]``) along axis 1,
  then 2, then 3, one plane of results at a time, 64 vector stores;
- :func:`winograd_output`: 64 vector loads of one tile's products, ``A^T``
  (``[(m0 + m1) + m2, (m1 - m2) - m3]``) the same way, and 8 masked stores of
  the 2x2x2 output voxels, leaving out the voxels past the volume's end and
  the channels past the last filter;
- :func:`small_gemm`: ``c[:rows] = a[:rows] @ b`` in register blocks of 8 rows
  by 2 vectors of ``c`` (16 rows where ``c`` is one vector wide) while it runs
  over ``k``: per step, 2 vector loads of ``b``, 8 broadcasts of ``a`` and 16
  fused multiply-adds (``llvm.fma``, one rounding per step); remainders take
  blocks of 1 row and of 1 vector.  The sum runs over ``k`` in order.

These replace scalar loops over the channels (3x slower for the transforms) and
one BLAS call per small product (32768 calls of fixed cost for a 64^3 16 -> 32
convolution).  ``C`` is a compile-time constant: ``channels`` is any tuple of
``C`` integers (:func:`channel_marker`), only its length counts.  The transforms
address a tile's samples and results at multiples of ``C`` from one base
offset, constants in the machine code, where runtime strides made LLVM keep 128
addresses on the stack (measured: 2.0 -> 1.2 ms of input transforms for a 64^3
16 -> 32 convolution).  LLVM lowers the vectors to whatever the CPU has.
Callers guarantee every offset they pass lies in its array (the kernels trust
their caller).
"""

import llvmlite.ir as ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_I32, _I64 = ir.IntType(32), ir.IntType(64)
_FLOATS = (types.float32, types.float64)


def vector_width(dtype):
    """Values per 512-bit vector for a NumPy float dtype (16 for float32, 8 for float64)."""
    return 64 // dtype.itemsize


def lanes_for(channels, dtype):
    """Lanes of the vectors for ``channels`` values: the smallest power of two >= ``channels``, at most a
    512-bit vector."""
    return min(vector_width(dtype), 1 << max(channels - 1, 0).bit_length())


def padded_channels(channels, dtype):
    """``channels`` rounded up to whole vectors of :func:`lanes_for` lanes: the ``C`` of the kernels."""
    lanes = lanes_for(channels, dtype)
    return -(-channels // lanes) * lanes


def channel_marker(width):
    """The compile-time channel count ``C`` handed to the kernels: a tuple of ``width`` zeros."""
    return (0,) * width


@njit(inline="always")
def vector_lanes(channels, itemsize):
    """``L`` in the kernels: lanes of a vector for the channel marker ``channels`` (at most 512 bits)."""
    return min(len(channels), 64 // itemsize)


def _is_flat(array):
    return isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C" and array.dtype in _FLOATS


def _are_integers(*values):
    return all(isinstance(value, types.Integer) for value in values)


def _layout(channels, dtype):
    """``(C, L)`` for a channel marker and a Numba float dtype, or None where the marker is not one."""
    if not (isinstance(channels, types.UniTuple) and channels.count >= 1 and dtype in _FLOATS):
        return None
    lanes = min(64 // (dtype.bitwidth // 8), channels.count)
    return (channels.count, lanes) if channels.count % lanes == 0 else None


class _Emitter:
    """What each code generator needs: the array pointers, offsets cast to int64, and vector loads/stores."""

    def __init__(self, context, builder, signature, args, lanes):
        self.context, self.builder = context, builder
        self.scalar = context.get_value_type(signature.args[0].dtype)
        self.vector = ir.VectorType(self.scalar, lanes)
        self.align = signature.args[0].dtype.bitwidth // 8
        self.signature, self.args = signature, args

    def data(self, n):
        return self.context.make_array(self.signature.args[n])(self.context, self.builder, self.args[n]).data

    def integer(self, n):
        return self.context.cast(self.builder, self.args[n], self.signature.args[n], types.int64)

    def offset(self, base, *terms):
        """``base + sum(count * stride)`` over ``terms`` of (constant count, int64 stride)."""
        total = base
        for count, stride in terms:
            if count:
                total = self.builder.add(total, self.builder.mul(ir.Constant(_I64, count), stride))
        return total

    def address(self, pointer, offset):
        """The vector at ``pointer[offset]``; ``offset`` an int64 value or a Python int (a constant)."""
        if isinstance(offset, int):
            offset = ir.Constant(_I64, offset)
        return self.builder.bitcast(self.builder.gep(pointer, [offset]), self.vector.as_pointer())

    def load(self, pointer, offset):
        return self.builder.load(self.address(pointer, offset), align=self.align)

    def store(self, value, pointer, offset):
        self.builder.store(value, self.address(pointer, offset), align=self.align)

    def bits(self, rows, count):
        """``[[bit 4 * axis + n of rows for n < count] for axis < 3]`` as i1 values."""
        return [[self.builder.trunc(self.builder.lshr(rows, ir.Constant(_I64, 4 * axis + n)), ir.IntType(1))
                 for n in range(count)] for axis in range(3)]

    def lanes_below(self, limit, lanes):
        """The mask of the lanes ``< limit`` (an int64)."""
        lane = ir.Constant(ir.VectorType(_I64, lanes), list(range(lanes)))
        return self.builder.icmp_signed("<", lane, self.splat(limit, lanes))

    def _masked(self, operation, types_):
        kind = f"v{self.vector.count}{'f32' if self.align == 4 else 'f64'}"
        return cgutils.get_or_insert_function(self.builder.module, ir.FunctionType(*types_),
                                              f"llvm.masked.{operation}.{kind}.p0")

    def masked_store(self):
        """``llvm.masked.store(value, pointer, align, mask)`` for this vector."""
        mask = ir.VectorType(ir.IntType(1), self.vector.count)
        return self._masked("store", (ir.VoidType(), [self.vector, self.vector.as_pointer(), _I32, mask]))

    def splat(self, value, lanes):
        """``value`` (a scalar of any type) in every lane."""
        undefined = ir.Constant(ir.VectorType(value.type, lanes), ir.Undefined)
        first = self.builder.insert_element(undefined, value, ir.Constant(_I32, 0))
        return self.builder.shuffle_vector(first, undefined, ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))


# ------------------------------------------------------------------ transforms
def _input_line(builder, d0, d1, d2, d3):
    """``B^T d`` along one axis."""
    return [builder.fsub(d0, d2), builder.fadd(d1, d2), builder.fsub(d2, d1), builder.fsub(d1, d3)]


def _output_line(builder, m0, m1, m2, m3):
    """``A^T m`` along one axis."""
    return [builder.fadd(builder.fadd(m0, m1), m2), builder.fsub(builder.fsub(m1, m2), m3)]


def _along(builder, values, axis, line, size):
    """``line`` along ``axis`` of ``values`` (a dict of index tuples -> vectors, 4 per line), ``size`` values
    of each line kept."""
    result = {}
    for key in values:
        if key[axis] == 0:
            inputs = [values[key[:axis] + (n,) + key[axis + 1:]] for n in range(4)]
            for n, value in enumerate(line(builder, *inputs)[:size]):
                result[key[:axis] + (n,) + key[axis + 1:]] = value
    return result


def _planes(builder, load, line, size):
    """The separable transform ``line`` along axes 1, 2 and 3 of the 4x4x4 values ``load(a, b, c)``, one
    plane of results at a time: plane ``x`` (``x < size``) is ``line`` along axis 1 of the loaded planes,
    then along axes 2 and 3.  16 vectors are live, not 64 (LLVM drops the loads and sums a plane does not
    use).  Yields ``((x, y, z), vector)``."""
    for x in range(size):
        plane = {(b, c): line(builder, *(load(a, b, c) for a in range(4)))[x] for b in range(4) for c in range(4)}
        for (y, z), value in _along(builder, _along(builder, plane, 0, line, size), 1, line, size).items():
            yield (x, y, z), value


@intrinsic
def winograd_input(typingctx, src, start, plane, row, dst, dst_start, channels):
    """``dst[dst_start + q * C:][:L] = (B^T x B^T x B^T) d``, ``q = 16 a + 4 b + c``, for the tile ``d[a, b,
    c] = src[start + a * plane + b * row + c * C:][:L]`` (``C`` the length of ``channels``); in kernels
    only."""
    layout = _layout(channels, getattr(src, "dtype", None))
    if not (layout and _is_flat(src) and _is_flat(dst) and src.dtype == dst.dtype
            and _are_integers(start, plane, row, dst_start)):
        return None
    width, lanes = layout

    def codegen(context, builder, signature, args):
        emit = _Emitter(context, builder, signature, args, lanes)
        start, plane, row, dst_start = (emit.integer(n) for n in (1, 2, 3, 5))
        origin = builder.gep(emit.data(0), [start])
        rows = {(a, b): builder.gep(origin, [emit.offset(ir.Constant(_I64, 0), (a, plane), (b, row))])
                for a in range(4) for b in range(4)}
        target = builder.gep(emit.data(4), [dst_start])

        def load(a, b, c):
            return emit.load(rows[a, b], c * width)

        for (a, b, c), value in _planes(builder, load, _input_line, 4):
            emit.store(value, target, (16 * a + 4 * b + c) * width)
        return context.get_dummy_value()

    return types.none(src, start, plane, row, dst, dst_start, channels), codegen


@intrinsic
def winograd_output(typingctx, m, m_start, out, out_start, plane, row, step, valid, filters, channels):
    """``out[out_start + x * plane + y * row + z * step:][:filters] = ((A^T x A^T x A^T) p)[x, y, z]`` for
    ``p[q] = m[m_start + q * C:][:L]``: the first ``filters`` (<= L) channels of each output voxel inside
    the volume (masked stores; bits ``x``, ``4 + y``, ``8 + z`` of ``valid`` say whether its row along each
    axis lies in it).  In kernels only."""
    layout = _layout(channels, getattr(m, "dtype", None))
    if not (layout and _is_flat(m) and _is_flat(out) and m.dtype == out.dtype
            and _are_integers(m_start, out_start, plane, row, step, valid, filters)):
        return None
    width, lanes = layout

    def codegen(context, builder, signature, args):
        emit = _Emitter(context, builder, signature, args, lanes)
        m_start, out_start, plane, row, step, valid, filters = (emit.integer(n) for n in (1, 3, 4, 5, 6, 7, 8))
        source = builder.gep(emit.data(0), [m_start])
        origin = builder.gep(emit.data(2), [out_start])
        store = emit.masked_store()
        lane_mask = emit.lanes_below(filters, lanes)
        no_lanes = ir.Constant(lane_mask.type, [0] * lanes)
        rows = emit.bits(valid, 2)

        def load(a, b, c):
            return emit.load(source, (16 * a + 4 * b + c) * width)

        for (x, y, z), value in _planes(builder, load, _output_line, 2):
            mask = builder.select(builder.and_(builder.and_(rows[0][x], rows[1][y]), rows[2][z]), lane_mask, no_lanes)
            offset = emit.offset(ir.Constant(_I64, 0), (x, plane), (y, row), (z, step))
            builder.call(store, [value, emit.address(origin, offset), ir.Constant(_I32, emit.align), mask])
        return context.get_dummy_value()

    return types.none(m, m_start, out, out_start, plane, row, step, valid, filters, channels), codegen


# ------------------------------------------------------------------ products
def _block(rows, vectors):
    """The intrinsic ``block(a, a0, lda, b, b0, ldb, c, c0, ldc, k, channels)``: ``rows`` rows by ``vectors``
    vectors of ``L`` lanes of ``c`` (flat, from ``c0``, row stride ``ldc``) = the same of ``a`` (flat) times
    ``b`` (flat), over ``k``."""

    @intrinsic
    def block(typingctx, a, a0, lda, b, b0, ldb, c, c0, ldc, k, channels):
        layout = _layout(channels, getattr(a, "dtype", None))
        if not (layout and all(_is_flat(x) for x in (a, b, c)) and a.dtype == b.dtype == c.dtype
                and _are_integers(a0, lda, b0, ldb, c0, ldc, k)):
            return None
        lanes = layout[1]

        def codegen(context, builder, signature, args):
            emit = _Emitter(context, builder, signature, args, lanes)
            a_p, b_p, c_p = emit.data(0), emit.data(3), emit.data(6)
            a0, lda, b0, ldb, c0, ldc, k = (emit.integer(n) for n in (1, 2, 4, 5, 7, 8, 9))
            vector = emit.vector
            name = f"llvm.fma.v{lanes}{'f32' if emit.align == 4 else 'f64'}"
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3), name)
            entry = builder.block
            header, body, done = (builder.append_basic_block(n) for n in ("gemm_k", "gemm_step", "gemm_done"))
            builder.branch(header)
            builder.position_at_end(header)
            step = builder.phi(_I64)
            sums = [builder.phi(vector) for _ in range(rows * vectors)]
            step.add_incoming(ir.Constant(_I64, 0), entry)
            for total in sums:
                total.add_incoming(ir.Constant(vector, [0.0] * lanes), entry)
            builder.cbranch(builder.icmp_signed("<", step, k), body, done)
            builder.position_at_end(body)
            b_row = builder.add(b0, builder.mul(step, ldb))
            b_values = [emit.load(b_p, builder.add(b_row, ir.Constant(_I64, lanes * v))) for v in range(vectors)]
            updated = []
            for r in range(rows):
                value = builder.load(builder.gep(a_p, [builder.add(emit.offset(a0, (r, lda)), step)]))
                spread = emit.splat(value, lanes)
                updated += [builder.call(fma, [spread, b_values[v], sums[r * vectors + v]]) for v in range(vectors)]
            for total, value in zip(sums, updated):
                total.add_incoming(value, builder.block)
            step.add_incoming(builder.add(step, ir.Constant(_I64, 1)), builder.block)
            builder.branch(header)
            builder.position_at_end(done)
            for r in range(rows):
                row_start = emit.offset(c0, (r, ldc))
                for v in range(vectors):
                    emit.store(sums[r * vectors + v], c_p, builder.add(row_start, ir.Constant(_I64, lanes * v)))
            return context.get_dummy_value()

        return types.none(a, a0, lda, b, b0, ldb, c, c0, ldc, k, channels), codegen

    return block


_ROWS = 8  # rows of c per register block of 2 vectors: 16 sums in flight over the FMA latency
_block_wide, _block_narrow, _row_wide, _row_narrow = _block(_ROWS, 2), _block(_ROWS, 1), _block(1, 2), _block(1, 1)
_block_column = _block(2 * _ROWS, 1)  # where c is one vector wide: 16 rows, 16 sums again


@njit(inline="always")
def small_gemm(a, a0, lda, b, b0, c, c0, ldc, rows, k, channels):
    """``c[c0 + t * ldc:][:C] = sum_s a[a0 + t * lda + s] * b[b0 + s * C:][:C]`` for ``t < rows`` and ``s <
    k``: the product of a ``(rows, k)`` and a C-contiguous ``(k, C)`` matrix, each stored in a flat array
    (``C`` the length of ``channels``).  Blocks of 8 rows by 2 vectors (16 rows where ``C`` is one vector),
    then the remaining vector and rows."""
    n, width = len(channels), vector_lanes(channels, a.itemsize)
    pairs = n - n % (2 * width)
    done = 0
    if n == width:
        done = rows - rows % (2 * _ROWS)
        for t in range(0, done, 2 * _ROWS):
            _block_column(a, a0 + t * lda, lda, b, b0, n, c, c0 + t * ldc, ldc, k, channels)
    else:
        done = rows - rows % _ROWS
        for t in range(0, done, _ROWS):
            for f in range(0, pairs, 2 * width):
                _block_wide(a, a0 + t * lda, lda, b, b0 + f, n, c, c0 + t * ldc + f, ldc, k, channels)
            if pairs < n:
                _block_narrow(a, a0 + t * lda, lda, b, b0 + pairs, n, c, c0 + t * ldc + pairs, ldc, k, channels)
    for t in range(done, rows):
        for f in range(0, pairs, 2 * width):
            _row_wide(a, a0 + t * lda, lda, b, b0 + f, n, c, c0 + t * ldc + f, ldc, k, channels)
        if pairs < n:
            _row_narrow(a, a0 + t * lda, lda, b, b0 + pairs, n, c, c0 + t * ldc + pairs, ldc, k, channels)
