"""The kernel layer: everything that runs per voxel, and nothing that validates.

Modules
-------
device
    What a device array is, the simulated-launch switch and the launch log (no Numba import).
threads
    Loads the ``tbb`` wheel's library so that Numba's threads are fork-safe (no Numba import).
jit
    ``cached_njit``: Numba's ``njit`` with a disk cache that never breaks a call.
formulas
    The scalar maths of one output point (interpolation along an axis, sampling a
    point, the affine of a point, TensorFlow's lerp), written once and compiled
    per target by ``formulas.build(jit, ceil)``.
stack
    ``stack_pointer``: fixed-size scratch on a CPU kernel's stack, which lets LLVM turn a
    loop of indexed loads into hardware gathers.
cache
    ``prefetch``: a cache-line prefetch as an intrinsic, for the row kernels.
window
    A float32 linear warp's corners from windows of the source rows (AVX-512 permutes).
microkernel
    The Winograd convolution's vector code: tile transforms and register-blocked GEMMs.
cpu
    ``@cached_njit(parallel=True)`` loops (``prange`` over an outer axis) around the formulas.
cuda
    ``@cuda.jit`` grid-stride kernels around the same formulas, and launchers that
    take exactly ``cpu``'s arguments (a test checks the signatures), so a public
    function calls ``backend.kernels.X(...)`` without knowing the target.
conv
    Convolution loops: Winograd F(2x2x2, 3x3x3) on ``microkernel``'s vector code,
    patch rows and the transposed scatter on SciPy's BLAS.

Numba idioms a reader meets here
--------------------------------
- **Literal flags.**  ``nearest`` and ``constant`` are Python bools.  A loop body
  (``njit(inline="always")``) is called with the literal ``False``/``True`` where the
  caller knows the mode, so Numba compiles one branch-free specialisation per mode
  instead of testing the flag per voxel.
- **Type witnesses.**  Where a kernel must allocate per-thread scratch of a dtype
  that depends on the call (``offset_type``, ``disp_type``), it receives a
  zero-length array of that dtype: Numba types the allocation from the argument.
- **Scalars by value.**  ``top`` (``dim - 1`` per axis), ``one`` and ``outside`` are
  scalars or tuples of the compute dtype: they travel in the launch parameters,
  so no table is copied to the device per call, and no float64 literal promotes
  float32 arithmetic.
- **Tuples as compile-time counts.**  A tuple of zeros whose length is a lane
  count makes Numba unroll a loop over it at compile time.
"""
