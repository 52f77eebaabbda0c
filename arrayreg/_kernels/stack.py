"""Fixed-size scratch on a CPU kernel's stack, for loops that gather.

LLVM vectorises a loop of indexed loads (``src[offset[k]]``) into hardware
gathers only when it can prove that the loop's stores do not write into
``src``.  Numba gives it no such proof for arrays (two array arguments may
share memory), so a row kernel that gathers from the volume and stores into
the output runs one scalar load at a time.  A buffer on the function's own
stack (an LLVM ``alloca``) is provably distinct from every argument: a loop
that gathers and stores only into it vectorises, and the buffer is copied to
the output afterwards.

``carray(stack_pointer(N, witness), N)`` is such a buffer of ``N`` elements
(``N`` a literal or a module constant) of the dtype of ``witness``: an array,
or a NumPy scalar type such as ``np.bool_``.  The memory is reserved once in
the function's entry block, so calling it inside a loop costs nothing; it is
uninitialised and lives until the kernel returns.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _element_type(witness):
    if isinstance(witness, types.Array):
        return witness.dtype
    if isinstance(witness, types.NumberClass):
        return witness.instance_type
    return None


@intrinsic
def stack_pointer(typingctx, length, witness):
    """Pointer to ``length`` uninitialised elements of ``witness``'s dtype on the stack."""
    element = _element_type(witness)
    if not isinstance(length, types.IntegerLiteral) or element is None:
        return None
    count = length.literal_value

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_data_type(element), size=count)

    return types.CPointer(element)(length, witness), codegen
