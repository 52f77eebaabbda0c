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
channels (``q = 16 a + 4 b + c`` indexes the transformed 4x4x4 tile), run by
:func:`.microkernel.small_gemm` where the filters fill whole 512-bit vectors,
else by the BLAS ``gemm`` that SciPy links, called from inside the parallel
loop so that each block's ``V`` and ``M`` stay in the core's cache.  The kernel
transform ``U = (G x G x G) kernel`` is made once by the caller.  The kernels
trust their caller: no checks here.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from numba import njit, prange

from .jit import cached_njit
from .microkernel import small_gemm

KERNEL_TRANSFORM = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

# OpenBLAS runs a GEMM single-threaded below m * n * k = 4 * 65536; a block stays under it,
# so the BLAS calls made inside the parallel loop never start threads of their own.
SINGLE_THREAD_GEMM = 4 * 65536


@functools.lru_cache(maxsize=2)
def blas_gemm(dtype):
    """SciPy's Fortran ``sgemm`` / ``dgemm`` as a ctypes function (every argument a pointer)."""
    from numba.extending import get_cython_function_address

    name = "sgemm" if np.dtype(dtype) == np.float32 else "dgemm"
    address = get_cython_function_address("scipy.linalg.cython_blas", name)
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))(address)


def tiles_per_block(c_in, c_out):
    """Tiles per parallel block: at most 64 (``V`` and ``M`` then fit in L2) and one single-threaded GEMM."""
    return max(1, min(64, SINGLE_THREAD_GEMM // (c_in * c_out)))


@njit(inline="always")
def input_tile(padded, origin, plane, row_length, s, v, t):
    """``v[:, t, :] = (B^T x B^T x B^T)`` of the 4x4x4 tile at flat row ``origin`` of ``padded`` (scratch ``s``)."""
    channels = padded.shape[1]
    for ab in range(16):  # along axis 3: the 4 samples of each (a, b) line
        row = origin + (ab // 4) * plane + (ab % 4) * row_length
        for ch in range(channels):
            d0, d1, d2, d3 = padded[row, ch], padded[row + 1, ch], padded[row + 2, ch], padded[row + 3, ch]
            s[4 * ab, ch] = d0 - d2
            s[4 * ab + 1, ch] = d1 + d2
            s[4 * ab + 2, ch] = d2 - d1
            s[4 * ab + 3, ch] = d1 - d3
    for ac in range(16):  # along axis 2, in place
        q = (ac // 4) * 16 + ac % 4
        for ch in range(channels):
            e0, e1, e2, e3 = s[q, ch], s[q + 4, ch], s[q + 8, ch], s[q + 12, ch]
            s[q, ch] = e0 - e2
            s[q + 4, ch] = e1 + e2
            s[q + 8, ch] = e2 - e1
            s[q + 12, ch] = e1 - e3
    for q in range(16):  # along axis 1, into v
        for ch in range(channels):
            f0, f1, f2, f3 = s[q, ch], s[q + 16, ch], s[q + 32, ch], s[q + 48, ch]
            v[q, t, ch] = f0 - f2
            v[q + 16, t, ch] = f1 + f2
            v[q + 32, t, ch] = f2 - f1
            v[q + 48, t, ch] = f1 - f3


@njit(inline="always")
def output_tile(m, t, i, j, k, s, r, out):
    """``out[2i:2i+2, 2j:2j+2, 2k:2k+2] = (A^T x A^T x A^T) m[:, t, :]``, cropped to ``out`` (scratch ``s``, ``r``)."""
    filters = m.shape[2]
    n1, n2, n3 = out.shape[0], out.shape[1], out.shape[2]
    for ab in range(16):  # along axis 3: 4 -> 2
        for f in range(filters):
            m0, m1, m2, m3 = m[4 * ab, t, f], m[4 * ab + 1, t, f], m[4 * ab + 2, t, f], m[4 * ab + 3, t, f]
            s[2 * ab, f] = m0 + m1 + m2
            s[2 * ab + 1, f] = m1 - m2 - m3
    for ac in range(8):  # along axis 2
        a, c = ac // 2, ac % 2
        for f in range(filters):
            e0, e1, e2, e3 = s[8 * a + c, f], s[8 * a + 2 + c, f], s[8 * a + 4 + c, f], s[8 * a + 6 + c, f]
            r[4 * a + c, f] = e0 + e1 + e2
            r[4 * a + 2 + c, f] = e1 - e2 - e3
    for bc in range(4):  # along axis 1, into out
        y, z = 2 * j + bc // 2, 2 * k + bc % 2
        if y < n2 and z < n3:
            for f in range(filters):
                out[2 * i, y, z, f] = r[bc, f] + r[4 + bc, f] + r[8 + bc, f]
            if 2 * i + 1 < n1:
                for f in range(filters):
                    out[2 * i + 1, y, z, f] = r[4 + bc, f] - r[8 + bc, f] - r[12 + bc, f]


@njit(inline="always")
def tile_index(tile, tiles2, tiles3):
    i = tile // (tiles2 * tiles3)
    rest = tile - i * tiles2 * tiles3
    return i, rest // tiles3, rest % tiles3


@cached_njit()
def block_scratch(block, c_in, c_out, like):
    """Per-block buffers: transformed tiles ``v``, products ``m``, and transform scratch ``s`` and ``r``."""
    v = np.empty((64, block, c_in), dtype=like.dtype)
    m = np.empty((64, block, c_out), dtype=like.dtype)
    s = np.empty((64, max(c_in, c_out)), dtype=like.dtype)
    r = np.empty((16, c_out), dtype=like.dtype)
    return v, m, s, r


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


@cached_njit(parallel=True, nogil=True, error_model="numpy")
def winograd3x3x3(padded, plane, row_length, tiles2, tiles3, n_tiles, u, gemm, block, out):
    """One volume: ``out = conv3d(x, kernel)`` from the flat zero-padded ``padded`` and ``u = G x G x G kernel``.

    ``padded`` holds the volume at the padding offset inside ``2 * tiles + 2``
    samples per axis, as rows of channels; ``plane`` and ``row_length`` are its
    row strides along axes 1 and 2.  Each parallel block transforms ``block``
    tiles, runs the 64 GEMMs ``m[q] = v[q] @ u[q]`` (:func:`.microkernel.small_gemm`, or through ``gemm``, column
    major: ``m[q]^T = u[q]^T v[q]^T``), and transforms them into ``out``.
    """
    c_in, c_out = u.shape[1], u.shape[2]
    for first in prange((n_tiles + block - 1) // block):
        start = first * block
        count = min(block, n_tiles - start)
        v, m, s, r = block_scratch(block, c_in, c_out, u)
        for t in range(count):
            i, j, k = tile_index(start + t, tiles2, tiles3)
            input_tile(padded, 2 * i * plane + 2 * j * row_length + 2 * k, plane, row_length, s, v, t)
        if c_out % (64 // u.itemsize) == 0:  # whole 512-bit vectors of filters: the register-blocked product
            for q in range(64):
                small_gemm(v[q], u[q], m[q], count)
        else:
            arguments = gemm_arguments(count, c_in, c_out, u)
            for q in range(64):
                multiply(gemm, arguments, u[q], v[q], m[q])
        for t in range(count):
            i, j, k = tile_index(start + t, tiles2, tiles3)
            output_tile(m, t, i, j, k, s, r, out)


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
