"""A register-blocked matrix product for the small GEMMs of the Winograd convolution.

The Winograd kernel multiplies, per block of 64 tiles, 64 pairs of small
matrices (64 x c_in by c_in x c_out, c_in and c_out often 16 or 32).  Through
the BLAS each product is one library call whose fixed cost exceeds its
arithmetic (measured: 26 ms of calls for the 32768 products of a 64^3 16->32
convolution, against 11 ms for the same products here).

:func:`small_gemm` computes ``c[:rows] = a[:rows] @ b`` for C-contiguous
float32 or float64 ``a (>= rows, k)``, ``b (k, n)``, ``c (>= rows, n)`` with
``n`` a multiple of ``VECTOR`` values (16 float32 or 8 float64, a 512-bit
vector).  Its inner block keeps 4 rows by 2 vectors of ``c`` in registers
while it runs over ``k``: per step, 2 vector loads of ``b``, 4 broadcasts of
``a`` and 8 fused multiply-adds (``llvm.fma``, one rounding per step; LLVM
lowers the 512-bit vectors to whatever the CPU has).  Remainders take blocks
of 1 row and of 1 vector.  The sum runs over ``k`` in order, so the values
differ from a BLAS product only by the rounding of the fused steps.
"""

import llvmlite.ir as ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_I32, _I64 = ir.IntType(32), ir.IntType(64)
_LANES = {types.float32: 16, types.float64: 8}  # the values of a 512-bit vector


def vector_width(dtype):
    """Values per vector for a NumPy float dtype (16 for float32, 8 for float64)."""
    return 64 // dtype.itemsize


def _block(rows, vectors):
    """The intrinsic ``block(a, a0, lda, b, b0, ldb, c, c0, ldc, k)``: ``rows`` rows by ``vectors`` vectors of
    ``c`` (flat, from ``c0``, row stride ``ldc``) = the same of ``a`` (flat) times ``b`` (flat), over ``k``."""

    @intrinsic
    def block(typingctx, a, a0, lda, b, b0, ldb, c, c0, ldc, k):
        if not (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" for x in (a, b, c))
                and a.dtype == b.dtype == c.dtype and a.dtype in _LANES
                and all(isinstance(x, types.Integer) for x in (a0, lda, b0, ldb, c0, ldc, k))):
            return None
        lanes = _LANES[a.dtype]

        def codegen(context, builder, signature, args):
            a_p, b_p, c_p = (context.make_array(signature.args[n])(context, builder, args[n]).data for n in (0, 3, 6))
            a0, lda, b0, ldb, c0, ldc, k = (context.cast(builder, args[n], signature.args[n], types.int64)
                                            for n in (1, 2, 4, 5, 7, 8, 9))
            scalar = context.get_value_type(signature.args[0].dtype)
            vector = ir.VectorType(scalar, lanes)
            name = f"llvm.fma.v{lanes}{'f32' if lanes == 16 else 'f64'}"
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3), name)

            def address(pointer, offset):
                return builder.bitcast(builder.gep(pointer, [offset]), vector.as_pointer())

            def at(base, row, stride, extra):
                return builder.add(builder.add(base, builder.mul(row, stride)), ir.Constant(_I64, extra))

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
            b_row = [builder.load(address(b_p, at(b0, step, ldb, lanes * v)), align=4) for v in range(vectors)]
            updated = []
            undefined = ir.Constant(vector, ir.Undefined)
            for r in range(rows):
                value = builder.load(builder.gep(a_p, [builder.add(at(a0, ir.Constant(_I64, r), lda, 0), step)]))
                spread = builder.shuffle_vector(builder.insert_element(undefined, value, ir.Constant(_I32, 0)),
                                                undefined, ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))
                updated += [builder.call(fma, [spread, b_row[v], sums[r * vectors + v]]) for v in range(vectors)]
            for total, value in zip(sums, updated):
                total.add_incoming(value, builder.block)
            step.add_incoming(builder.add(step, ir.Constant(_I64, 1)), builder.block)
            builder.branch(header)
            builder.position_at_end(done)
            for r in range(rows):
                for v in range(vectors):
                    target = address(c_p, at(c0, ir.Constant(_I64, r), ldc, lanes * v))
                    builder.store(sums[r * vectors + v], target, align=4)
            return context.get_dummy_value()

        return types.none(a, a0, lda, b, b0, ldb, c, c0, ldc, k), codegen

    return block


_block4x2, _block4x1, _block1x2, _block1x1 = _block(4, 2), _block(4, 1), _block(1, 2), _block(1, 1)


@njit(inline="always")
def small_gemm(a, b, c, rows):
    """``c[:rows] = a[:rows] @ b``; ``b.shape[1]`` must be a multiple of :func:`vector_width` (the caller's
    check).  Blocks of 4 rows by 2 vectors, then the remaining vector and rows."""
    k, n = a.shape[1], b.shape[1]
    lanes = 64 // a.itemsize
    flat_a, flat_b, flat_c = a.reshape(-1), b.reshape(-1), c.reshape(-1)
    full_rows = rows - rows % 4
    pairs = n - n % (2 * lanes)
    for t in range(0, full_rows, 4):
        for f in range(0, pairs, 2 * lanes):
            _block4x2(flat_a, t * k, k, flat_b, f, n, flat_c, t * n + f, n, k)
        if pairs < n:
            _block4x1(flat_a, t * k, k, flat_b, pairs, n, flat_c, t * n + pairs, n, k)
    for t in range(full_rows, rows):
        for f in range(0, pairs, 2 * lanes):
            _block1x2(flat_a, t * k, k, flat_b, f, n, flat_c, t * n + f, n, k)
        if pairs < n:
            _block1x1(flat_a, t * k, k, flat_b, pairs, n, flat_c, t * n + pairs, n, k)
