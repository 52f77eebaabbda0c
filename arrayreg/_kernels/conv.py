"""CPU convolution kernels for ``nn.functional``: Winograd F(2x2x2, 3x3x3) for 3x3x3 kernels at stride 1,
and the patch (im2col) and scatter loops of strided and transposed convolution.

Winograd F(2x2x2, 3x3x3).  Per axis, a 4-sample input tile ``d`` and a 3-tap
kernel ``g`` give 2 correlation outputs ``y[i] = sum_k d[i + k] g[k]`` as ``y = A^T ((G g) * (B^T d))``
(Lavin & Gray, 2016), with::

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

In 3-D the transforms apply along each axis: a 2x2x2 output tile costs 64
products per (input, output) channel pair instead of 216.  Over a block of
tiles the products are 64 independent GEMMs ``M[q] = V[q] @ U[q]`` over the
channels (``q = 16 a + 4 b + c`` indexes the transformed 4x4x4 tile).  The
transforms and the GEMMs are the vector code of :mod:`.microkernel`, one
vector of channels at a time, so that each block's ``V`` and ``M`` stay in
the core's cache.  The kernel transform ``U = (G x G x G) kernel`` is made
once by the caller.

The patch and scatter loops call the BLAS ``gemm`` that SciPy links from
inside their parallel loops.  The kernels trust their caller: no checks here.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from numba import njit, prange

from .jit import cached_njit
from .microkernel import small_gemm, vector_lanes, winograd_input, winograd_output

KERNEL_TRANSFORM = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

# OpenBLAS runs a GEMM single-threaded below m * n * k = 4 * 65536; the patch and scatter loops stay under
# it, so the BLAS calls made inside their parallel loops never start threads of their own.
SINGLE_THREAD_GEMM = 4 * 65536


@functools.lru_cache(maxsize=2)
def blas_gemm(dtype):
    """SciPy's Fortran ``sgemm`` / ``dgemm`` as a ctypes function (every argument a pointer)."""
    from numba.extending import get_cython_function_address

    name = "sgemm" if np.dtype(dtype) == np.float32 else "dgemm"
    address = get_cython_function_address("scipy.linalg.cython_blas", name)
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))(address)


# Bytes of transformed tiles and products per parallel block: they stay in the core's L2 (1 MB on the
# machines measured) between the transforms and the products.
BLOCK_BYTES = 1 << 20


def tiles_per_block(c_in, c_out, itemsize):
    """Tiles per parallel block: at most 64, with ``v`` and ``m`` (64 rows of channels per tile) in
    ``BLOCK_BYTES``."""
    return max(1, min(64, BLOCK_BYTES // (64 * (c_in + c_out) * itemsize)))


@njit(inline="always")
def tile_index(tile, tiles2, tiles3):
    i = tile // (tiles2 * tiles3)
    rest = tile - i * tiles2 * tiles3
    return i, rest // tiles3, rest % tiles3


@njit(inline="always")
def output_rows(start, length):
    """Bit ``n`` (``n`` < 2) set where row ``start + n`` lies in ``[0, length)``."""
    return (start < length) | (start + 1 < length) << 1


@cached_njit(parallel=True, nogil=True)
def pad_volume(x, before, padded):
    """``padded[a, b, c, :channels] = x[(a, b, c) - before]`` where that lies in ``x``; zero elsewhere and in
    the channels past ``x``'s.  In parallel over the planes of ``padded``: the copy and the page faults of a
    fresh ``padded`` are split between the threads."""
    n1, n2, n3, channels = x.shape
    start, stop = before[2], before[2] + n3
    for a in prange(padded.shape[0]):
        i = a - before[0]
        for b in range(padded.shape[1]):
            j = b - before[1]
            row = padded[a, b]
            if not (0 <= i < n1 and 0 <= j < n2):
                row[:, :] = 0
                continue
            row[:start, :] = 0
            row[stop:, :] = 0
            row[start:stop, :channels] = x[i, j]
            row[start:stop, channels:] = 0


@njit(inline="always")
def tile_length(channels, itemsize):
    """Values per tile of ``v`` or ``m``: 64 rows of ``C`` channels and one spare vector, so that the rows of
    consecutive tiles that a product block reads or writes do not lie a power of two apart (one set of the
    L1 cache)."""
    return 64 * len(channels) + vector_lanes(channels, itemsize)


@njit(inline="always")
def winograd_block(padded, strides, u, in_channels, out_channels, first, count, v, m, out):
    """Tiles ``first`` to ``first + count`` of :func:`winograd3x3x3`: transformed into ``v``, multiplied into
    ``m`` and transformed into ``out``.  ``v`` and ``m`` are flat: tile ``t``'s rows ``q`` of ``C`` values
    from ``t * tile_length(C)``."""
    c_in, c_out, filters = len(in_channels), len(out_channels), out.shape[3]
    in_lanes, out_lanes = vector_lanes(in_channels, u.itemsize), vector_lanes(out_channels, u.itemsize)
    v_tile, m_tile = tile_length(in_channels, u.itemsize), tile_length(out_channels, u.itemsize)
    flat_u, flat_out = u.reshape(-1), out.reshape(-1)
    tiles2, tiles3 = (out.shape[1] + 1) // 2, (out.shape[2] + 1) // 2
    plane, row = strides
    for t in range(count):
        i, j, k = tile_index(first + t, tiles2, tiles3)
        origin = 2 * (i * plane + j * row + k * c_in)
        for ch in range(0, c_in, in_lanes):
            winograd_input(padded, origin + ch, plane, row, v, t * v_tile + ch, in_channels)
    for q in range(64):
        small_gemm(v, q * c_in, v_tile, flat_u, q * c_in * c_out, m, q * c_out, m_tile, count, c_in, out_channels)
    out_plane, out_row = out.shape[1] * out.shape[2] * filters, out.shape[2] * filters
    for t in range(count):
        i, j, k = tile_index(first + t, tiles2, tiles3)
        inside = (output_rows(2 * i, out.shape[0]) | output_rows(2 * j, out.shape[1]) << 4
                  | output_rows(2 * k, out.shape[2]) << 8)
        target = 2 * (i * out_plane + j * out_row + k * filters)
        for f in range(0, c_out, out_lanes):
            winograd_output(m, t * m_tile + f, flat_out, target + f, out_plane, out_row, filters, inside,
                            min(out_lanes, filters - f), out_channels)


@cached_njit(parallel=True, nogil=True, error_model="numpy")
def winograd3x3x3(padded, strides, u, in_channels, out_channels, block, threads, out):
    """One volume: ``out = conv3d(x, kernel)`` from the zero-padded ``x`` and ``u = G x G x G kernel``.

    ``padded`` is flat: the volume at the padding offset, as rows of ``C_in``
    channels (zero past the input's), ``strides`` its strides in values along
    axes 1 and 2; tile ``(i, j, k)`` reads its 4x4x4 samples from sample ``2
    (i, j, k)`` and writes the 2x2x2 voxels from ``2 (i, j, k)`` that lie in
    ``out``.  ``u`` is ``(64, C_in, C_out)``, zero past the kernel's channels
    and filters; ``C_in`` and ``C_out`` are the lengths of the markers
    ``in_channels`` and ``out_channels`` (:func:`.microkernel.channel_marker`).
    A block of ``block`` tiles is transformed into ``v``
    (:func:`.microkernel.winograd_input`), multiplied, ``m[q] = v[q] @ u[q]``
    (:func:`.microkernel.small_gemm`), and transformed into ``out``
    (:func:`.microkernel.winograd_output`).  Each of ``threads`` workers takes
    an equal run of consecutive blocks and allocates its ``v`` and ``m`` once:
    an allocation per block went through ``mmap`` and page faults whenever the
    C library's threshold for that lay below their size.
    """
    tiles = ((out.shape[0] + 1) // 2) * ((out.shape[1] + 1) // 2) * ((out.shape[2] + 1) // 2)
    blocks = (tiles + block - 1) // block
    workers = min(threads, blocks)
    for worker in prange(workers):
        v = np.empty(block * tile_length(in_channels, u.itemsize), dtype=u.dtype)
        m = np.empty(block * tile_length(out_channels, u.itemsize), dtype=u.dtype)
        for first in range(worker * blocks // workers * block, min((worker + 1) * blocks // workers * block, tiles),
                           block):
            winograd_block(padded, strides, u, in_channels, out_channels, first, min(block, tiles - first), v, m,
                           out)


@cached_njit()
def gemm_arguments(n, k, m, like):
    """The by-reference arguments of :func:`multiply` for ``n`` rows of ``k`` times a ``(k, m)`` matrix:
    "N", (m, n, k, lda, ldb, ldc), (alpha, beta)."""
    no_transpose = np.full(1, ord("N"), dtype=np.uint8)
    sizes = np.empty(6, dtype=np.int32)
    sizes[0], sizes[1], sizes[2], sizes[3], sizes[4], sizes[5] = m, n, k, m, k, m
    scalars = np.zeros(2, dtype=like.dtype)
    scalars[0] = 1
    return no_transpose, sizes, scalars


@cached_njit(nogil=True)
def multiply(gemm, arguments, a, b, c):
    """``c = a @ b`` through the Fortran ``gemm`` (column major), with ``arguments`` from :func:`gemm_arguments`.

    Row-major ``c[:n] = b[:n] @ a`` is column-major ``c^T = a^T b^T``: ``a`` is
    ``(k, m)``, ``b`` holds ``n`` rows of ``k`` and ``c`` ``n`` rows of ``m``, all C-contiguous.
    """
    no_transpose, sizes, scalars = arguments
    gemm(no_transpose.ctypes, no_transpose.ctypes, sizes[0:].ctypes, sizes[1:].ctypes, sizes[2:].ctypes,
         scalars.ctypes, a.ctypes, sizes[3:].ctypes, b.ctypes, sizes[4:].ctypes, scalars[1:].ctypes, c.ctypes,
         sizes[5:].ctypes)


# ------------------------------------------------------------------ any other convolution
def rows_per_gemm(k, n):
    """Rows per GEMM call of a ``(rows, k) @ (k, n)`` product: a single-threaded GEMM, and at least 1."""
    return max(1, SINGLE_THREAD_GEMM // (k * n))


@cached_njit(parallel=True, nogil=True, error_model="numpy")
def patch_conv(x, kernel_shape, strides, before, weights, gemm, chunk, out):
    """``out = conv3d(x)`` of one volume ``x`` ``(d1, d2, d3, ch)`` for any kernel and strides.

    Each parallel task fills the patch (im2col) rows of ``chunk`` output
    voxels, tap by tap in ``(a, b, c)`` order: the ``ch`` values of
    ``x[o * s + tap - before]``, zeros where that lies in the padding; then one
    GEMM with ``weights`` ``(taps * ch, filters)`` writes those output rows.
    Only ``chunk`` patch rows exist per thread, never the whole matrix.
    """
    n1, n2, n3, channels = x.shape
    k1, k2, k3 = kernel_shape
    o1, o2, o3, filters = out.shape
    total = o1 * o2 * o3
    flat_out = out.reshape(total, filters)
    for task in prange((total + chunk - 1) // chunk):
        first = task * chunk
        count = min(chunk, total - first)
        rows = np.empty((chunk, weights.shape[0]), dtype=weights.dtype)
        for r in range(count):
            oi, rest = divmod(first + r, o2 * o3)
            oj, ok = divmod(rest, o3)
            i0, j0, k0 = oi * strides[0] - before[0], oj * strides[1] - before[1], ok * strides[2] - before[2]
            row = rows[r]
            column = 0
            for a in range(k1):
                for b in range(k2):
                    for c in range(k3):
                        i, j, k = i0 + a, j0 + b, k0 + c
                        if 0 <= i < n1 and 0 <= j < n2 and 0 <= k < n3:
                            for q in range(channels):
                                row[column + q] = x[i, j, k, q]
                        else:
                            for q in range(channels):
                                row[column + q] = 0
                        column += channels
        multiply(gemm, gemm_arguments(count, weights.shape[0], filters, weights), weights, rows, flat_out[first:])


@cached_njit(parallel=True, nogil=True, error_model="numpy")
def transpose_conv(x, weights, kernel_shape, strides, gemm, chunk, full):
    """``full[i * s + tap] += x[i] @ kernel[tap]^T`` (transposed convolution) of one volume, uncropped.

    ``weights[a]`` is ``(ch, k2 * k3 * filters)``: every tap of kernel plane
    ``a``.  The parallel loop runs over the planes of ``full``, so each has
    one writer: plane ``P`` takes input plane ``i = (P - a) / s1`` through
    kernel plane ``a``, as GEMMs of ``chunk`` input rows whose products are
    added at ``(j * s2 + b, k * s3 + c)``.  Every (input plane, kernel plane)
    product is made once.
    """
    n1, n2, n3, channels = x.shape
    k1, k2, k3 = kernel_shape
    s1, s2, s3 = strides
    filters = full.shape[3]
    width = k2 * k3 * filters
    flat_x = x.reshape(n1, n2 * n3, channels)
    for plane in prange(full.shape[0]):
        products = np.empty((chunk, width), dtype=weights.dtype)
        for a in range(k1):
            if (plane - a) % s1 != 0 or not 0 <= (plane - a) // s1 < n1:
                continue
            i = (plane - a) // s1
            for first in range(0, n2 * n3, chunk):
                count = min(chunk, n2 * n3 - first)
                multiply(gemm, gemm_arguments(count, channels, width, weights), weights[a], flat_x[i, first:], products)
                for r in range(count):
                    j, k = divmod(first + r, n3)
                    for bc in range(k2 * k3):
                        b, c = divmod(bc, k3)
                        target = full[plane, j * s2 + b, k * s3 + c]
                        for f in range(filters):
                            target[f] += products[r, bc * filters + f]
