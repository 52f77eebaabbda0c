"""Software prefetch for CPU kernels whose loads the hardware cannot foresee.

A warp gathers its corner values from wherever the displacement field points.
The hardware prefetchers follow streams of plain loads, not gathers, so each
new cache line of the moving image is a demand miss that stalls the gather
for the whole trip to the L3 or to memory (measured: more than half of a
linear warp's time on a 160x192x224 volume).  ``prefetch(array, index)``
issues a prefetch of the line holding ``array[index]`` into every cache
level and returns at once: it never faults and never changes a value, so a
kernel can ask for the lines of the row it will warp next while it warps
this one.
"""

import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I8_POINTER = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)
_PREFETCH = ir.FunctionType(ir.VoidType(), [_I8_POINTER, _I32, _I32, _I32])


@intrinsic
def prefetch(typingctx, array, index):
    """Prefetch the cache line of ``array[index]`` (a C-contiguous 1-D array, an in-bounds integer index)
    for reading, into all cache levels (LLVM's ``llvm.prefetch``: read, locality 3, data)."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C"
            and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        emit_prefetch(builder, data, context.cast(builder, args[1], signature.args[1], types.intp))
        return context.get_dummy_value()

    return types.none(array, index), codegen


def emit_prefetch(builder, pointer, offset):
    """The IR of :func:`prefetch`: the line of ``pointer[offset]`` (an LLVM pointer and integer), for code
    generators of other intrinsics.  A prefetch never faults, so ``offset`` may lie past the array."""
    address = builder.bitcast(builder.gep(pointer, [offset]), _I8_POINTER)
    function = cgutils.get_or_insert_function(builder.module, _PREFETCH, "llvm.prefetch.p0i8")
    builder.call(function, [address, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
