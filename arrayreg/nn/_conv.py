"""The convolution strategies behind ``nn.functional.conv3d`` and ``conv3d_transpose``, and the table that picks one.

Every strategy computes the same sum, ``out[b, o, f] = sum_{a, c} x_pad[b, o * s + a, c] * kernel[a, c, f]``
(no bias), with TensorFlow's padding; they differ in where they run and how
they feed the matrix products.  :data:`CONV3D` lists them in the order they are
tried: the first whose condition holds and which returns an array wins (cuDNN
returns None where its library or a plan is missing).
"""

from __future__ import annotations

import math

import numpy as np

# Rows of the output block that one pass of tap GEMMs accumulates: about 1 MB of float32 per 32 filters,
# small enough to stay in L2 while the 27 taps stream over it.
BLOCK_ROWS = 8192


def conv_padding(size: int, kernel: int, stride: int, padding: str) -> tuple:
    """``(out, pad_before, pad_after)`` along one axis, TensorFlow's rule."""
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    out = max(math.ceil((size - kernel + 1) / stride), 0)
    return out, 0, 0


def padded(x, kernel, strides, padding, xp, value=0.0):
    """``x`` padded by TensorFlow's rule, and the output lengths."""
    pads = [conv_padding(n, k, s, padding) for n, k, s in zip(x.shape[1:4], kernel, strides)]
    if any(before or after for _, before, after in pads):
        x = xp.pad(x, [(0, 0)] + [(b, a) for _, b, a in pads] + [(0, 0)], constant_values=value)
    return x, tuple(out for out, _, _ in pads)


def taps(kernel_shape):
    return [(a, b, c) for a in range(kernel_shape[0]) for b in range(kernel_shape[1]) for c in range(kernel_shape[2])]


def tap_view(x, tap, out_shape, strides):
    """``x[:, o * s + tap]`` for every output index ``o``: the input each output reads through one kernel tap."""
    return x[(slice(None),) + tuple(slice(t, t + (n - 1) * s + 1, s) for t, n, s in zip(tap, out_shape, strides))]


def cudnn(x, kernel, strides, padding, xp):
    """float32 CuPy convolution by cuDNN when NVIDIA's frontend is importable; None otherwise (or on failure)."""
    from . import _cudnn

    if _cudnn.binding() is None:
        return None
    pads = [conv_padding(n, k, s, padding) for n, k, s in zip(x.shape[1:4], kernel.shape[:3], strides)]
    if any(o == 0 for o, _, _ in pads) or x.shape[0] == 0:
        return None
    return _cudnn.conv3d(x, kernel, strides, pads)


def flat_taps(x, kernel, strides, padding, xp):
    """Stride-1 convolution on the flattened padded volume (the device path).

    With ``P2, P3`` the padded lengths, the output at flat position
    ``p = i * P2 * P3 + j * P3 + k`` reads ``flat[p + a * P2 * P3 + b * P3 + c]``
    through tap ``(a, b, c)``: a shift by a constant, so each tap's operand is a
    contiguous row slice.  Whole padded planes are computed and the rows with
    ``j >= o2`` or ``k >= o3`` dropped.
    """
    k1, k2, k3, c_in, c_out = kernel.shape
    pads = [conv_padding(n, k, 1, padding) for n, k in zip(x.shape[1:4], kernel.shape[:3])]
    (o1, o2, o3), (p1, p2, p3) = zip(*[(o, n + before + after) for (o, before, after), n in zip(pads, x.shape[1:4])])
    out = xp.empty((x.shape[0], o1, o2, o3, c_out), dtype=x.dtype)
    if out.size == 0:
        return out
    plane = p2 * p3
    # the last output plane's rows plus the largest tap shift end this far past the volume
    flat = xp.zeros((p1 * plane + (k2 - 1) * p3 + k3 - 1, c_in), dtype=x.dtype)
    volume = flat[: p1 * plane].reshape(p1, p2, p3, c_in)
    interior = tuple(slice(before, before + n) for (_, before, _), n in zip(pads, x.shape[1:4]))
    shifts = [a * plane + b * p3 + c for a, b, c in taps(kernel.shape)]
    tap_kernels = kernel.reshape(-1, c_in, c_out)
    planes = max(1, round(BLOCK_ROWS / plane))
    block = xp.empty((planes * plane, c_out), dtype=x.dtype)
    for n in range(x.shape[0]):
        volume[interior] = x[n]
        for start in range(0, o1, planes):
            count = min(planes, o1 - start)
            rows = block[: count * plane]
            rows[...] = 0
            first = start * plane
            for shift, tap in zip(shifts, tap_kernels):
                rows += flat[first + shift : first + shift + count * plane] @ tap
            out[n, start : start + count] = rows.reshape(count, p2, p3, c_out)[:, :o2, :o3]
    return out


def winograd(x, kernel, strides, padding, xp):
    """Stride-1 3x3x3 convolution on the CPU by Winograd F(2x2x2, 3x3x3), one volume at a time.

    The volume is zero-padded by TensorFlow's rule (and up to whole 2x2x2
    output tiles) into a flat buffer of rows of channels, the channels padded
    with zeros to whole vectors (``microkernel.padded_channels``) and the rows by one
    voxel where their length in bytes would be a multiple of 512 (rows a power
    of two apart share cache sets); the kernel transform ``U = G x G x G
    kernel`` is made once, in float64, its channels padded the same way.
    Extra memory: the padded volume and, per thread, one block of transformed
    tiles and their products.
    """
    import numba

    from .._kernels import conv, microkernel

    c_in, c_out = kernel.shape[3:]
    pads = [conv_padding(n, 3, 1, padding) for n in x.shape[1:4]]
    out = np.empty((x.shape[0], *(o for o, _, _ in pads), c_out), dtype=x.dtype)
    if out.size == 0:
        return out
    in_width, out_width = (microkernel.padded_channels(c, x.dtype) for c in (c_in, c_out))
    lengths = [2 * ((o + 1) // 2) + 2 for o, _, _ in pads]  # the padded extent the tiles read
    lengths[2] += (lengths[2] * in_width * x.dtype.itemsize) % 512 == 0
    padded = np.empty((*lengths, in_width), dtype=x.dtype)
    g = conv.KERNEL_TRANSFORM
    u = np.zeros((64, in_width, out_width), dtype=x.dtype)
    u[:, :c_in, :c_out] = np.einsum("pa,qb,rc,abcio->pqrio", g, g, g, kernel.astype(np.float64),
                                    optimize=True).reshape(64, c_in, c_out)
    block = conv.tiles_per_block(in_width, out_width, x.dtype.itemsize)
    for n in range(x.shape[0]):
        conv.pad_volume(np.ascontiguousarray(x[n]), tuple(before for _, before, _ in pads), padded)
        conv.winograd3x3x3(padded.reshape(-1), (padded.strides[0] // x.dtype.itemsize,
                                                padded.strides[1] // x.dtype.itemsize),
                           u, microkernel.channel_marker(in_width), microkernel.channel_marker(out_width), block,
                           numba.get_num_threads(), out[n])
    return out


def patches(x, kernel, strides, padding, xp):
    """Any other convolution on the CPU: patch rows and GEMMs in one Numba loop (``conv.patch_conv``)."""
    from .._kernels import conv

    pads = [conv_padding(n, k, s, padding) for n, k, s in zip(x.shape[1:4], kernel.shape[:3], strides)]
    out = np.empty((x.shape[0], *(o for o, _, _ in pads), kernel.shape[4]), dtype=x.dtype)
    if out.size == 0:
        return out
    weights = np.ascontiguousarray(kernel.reshape(-1, kernel.shape[4]))  # rows in (tap, channel) order
    if kernel.shape[:3] == (1, 1, 1) and strides == (1, 1, 1):  # a pointwise kernel: one matrix product
        np.matmul(x.reshape(-1, x.shape[4]), weights, out=out.reshape(-1, out.shape[4]))
        return out
    chunk = conv.rows_per_gemm(*weights.shape)
    for n in range(x.shape[0]):
        conv.patch_conv(x[n], kernel.shape[:3], strides, tuple(b for _, b, _ in pads), weights,
                        conv.blas_gemm(x.dtype), chunk, out[n])
    return out


def strided_taps(x, kernel, strides, padding, xp):
    """Strided convolution (the device path): one GEMM per tap on the strided view ``x_pad[:, o * s + tap]``."""
    source, out_shape = padded(x, kernel.shape[:3], strides, padding, xp)
    out = xp.zeros((x.shape[0], *out_shape, kernel.shape[4]), dtype=x.dtype)
    if out.size:
        for tap in taps(kernel.shape):
            out += tap_view(source, tap, out_shape, strides) @ kernel[tap]
    return out


def numba_scatter(x, kernel, strides, full):
    """The CPU scatter of ``conv3d_transpose`` (``conv.transpose_conv``), one volume at a time."""
    from .._kernels import conv

    k1, k2, k3, filters, c_in = kernel.shape
    weights = np.ascontiguousarray(kernel.transpose(0, 4, 1, 2, 3).reshape(k1, c_in, k2 * k3 * filters))
    chunk = conv.rows_per_gemm(c_in, k2 * k3 * filters)
    for n in range(x.shape[0]):
        conv.transpose_conv(np.ascontiguousarray(x[n]), weights, kernel.shape[:3], strides, conv.blas_gemm(x.dtype),
                            chunk, full[n])


# (name, applies(backend, dtype, strides, kernel_shape), strategy(x, kernel, strides, padding, xp)), tried in order.
CONV3D = (
    ("cuDNN", lambda b, dtype, s, k: b.on_device and dtype == np.float32, cudnn),
    ("Winograd F(2x2x2, 3x3x3), Numba vector code",
     lambda b, dtype, s, k: b.on_cpu and s == (1, 1, 1) and k == (3, 3, 3),
     winograd),
    ("patch rows, Numba + BLAS", lambda b, dtype, s, k: b.on_cpu, patches),
    ("tap GEMMs on the flat padded volume", lambda b, dtype, s, k: s == (1, 1, 1), flat_taps),
    ("tap GEMMs on strided views", lambda b, dtype, s, k: True, strided_taps),
)


def convolve(backend, x, kernel, strides, padding):
    """``conv3d`` without bias by the first strategy of :data:`CONV3D` that applies and succeeds."""
    for _, applies, strategy in CONV3D:
        if applies(backend, x.dtype, strides, kernel.shape[:3]):
            out = strategy(x, kernel, strides, padding, backend.xp)
            if out is not None:
                return out
    raise AssertionError("the last strategy always applies")  # pragma: no cover


def tap_scatter(x, kernel, strides, full):
    """The device scatter of ``conv3d_transpose``: ``full[i * s + a] += x[i] @ kernel[a].T`` per tap."""
    for tap in taps(kernel.shape[:3]):
        tap_view(full, tap, x.shape[1:4], strides)[...] += x @ kernel[tap].T


def scatter_transpose(backend, x, kernel, strides, full):
    """Accumulate the full (uncropped) transposed convolution into ``full``: Numba on the CPU, tap GEMMs else."""
    (numba_scatter if backend.on_cpu else tap_scatter)(x, kernel, strides, full)
