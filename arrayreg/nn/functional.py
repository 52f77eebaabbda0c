"""Forward primitives with Keras semantics, channels-last: convolution, pooling, norms, dense, activations.

Shapes: volumes are ``(batch, d1, d2, d3, ch)``; a Conv3D kernel is
``(kd, kh, kw, in, out)``, a Conv3DTranspose kernel ``(kd, kh, kw, out, in)``.
Padding follows TensorFlow: ``"same"`` gives ``out = ceil(in / stride)`` with
``pad_total = max((out - 1) * stride + k - in, 0)`` and ``pad_before =
pad_total // 2``; ``"valid"`` gives ``out = ceil((in - k + 1) / stride)``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validation as v
from .._backend import backend_of

PADDINGS = ("same", "valid")
# Rows of the output block that one pass of tap GEMMs accumulates: about 1 MB of float32 per 32 filters,
# small enough to stay in L2 while the 27 taps stream over it.
BLOCK_ROWS = 8192


def _triple(value, name: str, minimum: int = 1) -> tuple:
    """An int, or 3 ints, each at least ``minimum`` (bools refused), as a 3-tuple."""
    def valid(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) and x >= minimum

    values = (value,) * 3 if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 3 or not all(valid(x) for x in values):
        raise ValueError(f"{name} must be an int >= {minimum} or 3 of them; got {value!r}")
    return tuple(int(x) for x in values)


def _floating(x):
    """float32/float64 arrays as they are; anything else (ints, float16) as float32."""
    return x if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else x.astype(np.float32)


def _volume(x, name: str, xp):
    x = v.as_array(x, name, xp)
    if x.ndim != 5:
        raise ValueError(f"{name} must have shape (batch, d1, d2, d3, channels); got {x.shape}")
    return _floating(x)


def _optional(value, name: str, xp, dtype):
    return None if value is None else v.as_array(value, name, xp).astype(dtype, copy=False)


def _conv_operands(x, kernel, bias, strides, padding, transposed: bool):
    """The checked operands of :func:`conv3d` / :func:`conv3d_transpose`: ``(backend, x, kernel, bias, strides)``.

    ``x`` must be ``(batch, d1, d2, d3, in)`` and ``kernel`` ``(kd, kh, kw, in, filters)``,
    or ``(kd, kh, kw, filters, in)`` when ``transposed``; all three come back in
    the compute dtype (float64 when ``x`` or ``kernel`` is float64, else float32).
    """
    backend = backend_of(x=x, kernel=kernel, bias=bias)
    xp = backend.xp
    x = _volume(x, "x", xp)
    kernel = v.as_array(kernel, "kernel", xp)
    axis = 4 if transposed else 3
    if kernel.ndim != 5 or kernel.shape[axis] != x.shape[4]:
        expected = f"filters, {x.shape[4]}" if transposed else f"{x.shape[4]}, filters"
        raise ValueError(f"kernel must have shape (kd, kh, kw, {expected}); got {kernel.shape}")
    strides = _triple(strides, "strides")
    v.check_choice(padding, "padding", PADDINGS)
    dtype = v.compute_dtype(x, kernel)
    bias = _optional(bias, "bias", xp, dtype)
    filters = kernel.shape[3 if transposed else 4]
    if bias is not None and bias.shape != (filters,):
        raise ValueError(f"bias must have shape ({filters},), one value per filter of the kernel; got {bias.shape}")
    return backend, x.astype(dtype, copy=False), kernel.astype(dtype, copy=False), bias, strides


def conv_padding(size: int, kernel: int, stride: int, padding: str) -> tuple:
    """``(out, pad_before, pad_after)`` along one axis, TensorFlow's rule."""
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    out = max(math.ceil((size - kernel + 1) / stride), 0)
    return out, 0, 0


def _padded(x, kernel, strides, padding, xp, value=0.0):
    """``x`` padded by TensorFlow's rule, and the output lengths."""
    pads = [conv_padding(n, k, s, padding) for n, k, s in zip(x.shape[1:4], kernel, strides)]
    if any(before or after for _, before, after in pads):
        x = xp.pad(x, [(0, 0)] + [(b, a) for _, b, a in pads] + [(0, 0)], constant_values=value)
    return x, tuple(out for out, _, _ in pads)


def _taps(kernel_shape):
    return [(a, b, c) for a in range(kernel_shape[0]) for b in range(kernel_shape[1]) for c in range(kernel_shape[2])]


def _tap_view(x, tap, out_shape, strides):
    """``x[:, o * s + tap]`` for every output index ``o``: the input each output reads through one kernel tap."""
    return x[(slice(None),) + tuple(slice(t, t + (n - 1) * s + 1, s) for t, n, s in zip(tap, out_shape, strides))]


def conv3d(x, kernel, bias=None, strides=1, padding: str = "same"):
    """3-D cross-correlation (Keras ``Conv3D``): ``out[b, o, f] = sum_{a, c} x_pad[b, o * s + a, c] * kernel[a, c, f] + bias[f]``.

    ``x`` is ``(batch, d1, d2, d3, in)``, ``kernel`` ``(kd, kh, kw, in, filters)``.
    Computes in float64 when ``x`` or ``kernel`` is float64, in float32 otherwise.

    NumPy in gives NumPy out, through Numba kernels (``_kernels/conv.py``) that
    call SciPy's BLAS from inside their parallel loop: a 3x3x3 kernel at stride
    1 runs as Winograd F(2x2x2, 3x3x3) (a quarter of the multiplications,
    errors of the same size as the direct sum's), any other as patch (im2col)
    rows of a few output voxels per GEMM, never a whole patch matrix.

    CuPy in gives CuPy out: by cuDNN for float32 when NVIDIA's ``cudnn``
    frontend is importable (``arrayreg.nn._cudnn``; no TF32 plans), by cuBLAS
    otherwise, as one GEMM per kernel tap, ``out += x_pad[o * s + tap] @ kernel[tap]``
    (at stride 1 on the flattened padded volume, where each tap's operand is a
    contiguous slice, in blocks of :data:`BLOCK_ROWS` output rows).
    """
    backend, x, kernel, bias, strides = _conv_operands(x, kernel, bias, strides, padding, transposed=False)
    xp, dtype = backend.xp, x.dtype
    out = _conv3d_cudnn(x, kernel, strides, padding) if xp is not np and dtype == np.float32 else None
    if out is None and backend.name == "cpu":
        winograd = strides == (1, 1, 1) and kernel.shape[:3] == (3, 3, 3)
        out = _conv3d_winograd(x, kernel, padding) if winograd else _conv3d_patches(x, kernel, strides, padding)
    elif out is None and strides == (1, 1, 1):
        out = _conv3d_flat(x, kernel, padding, xp)
    elif out is None:
        out = _conv3d_strided(x, kernel, strides, padding, xp)
    if bias is not None:
        out += bias
    return out


def _conv3d_cudnn(x, kernel, strides, padding):
    """float32 CuPy convolution by cuDNN when NVIDIA's frontend is importable; None otherwise (or on failure)."""
    from . import _cudnn

    if _cudnn.binding() is None:
        return None
    pads = [conv_padding(n, k, s, padding) for n, k, s in zip(x.shape[1:4], kernel.shape[:3], strides)]
    if any(o == 0 for o, _, _ in pads) or x.shape[0] == 0:
        return None
    return _cudnn.conv3d(x, kernel, strides, pads)


def _conv3d_flat(x, kernel, padding, xp):
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
    shifts = [a * plane + b * p3 + c for a, b, c in _taps(kernel.shape)]
    taps = kernel.reshape(-1, c_in, c_out)
    planes = max(1, round(BLOCK_ROWS / plane))
    block = xp.empty((planes * plane, c_out), dtype=x.dtype)
    for n in range(x.shape[0]):
        volume[interior] = x[n]
        for start in range(0, o1, planes):
            count = min(planes, o1 - start)
            rows = block[: count * plane]
            rows[...] = 0
            first = start * plane
            for shift, tap in zip(shifts, taps):
                rows += flat[first + shift : first + shift + count * plane] @ tap
            out[n, start : start + count] = rows.reshape(count, p2, p3, c_out)[:, :o2, :o3]
    return out


def _conv3d_winograd(x, kernel, padding):
    """Stride-1 3x3x3 convolution on the CPU by Winograd F(2x2x2, 3x3x3), one volume at a time.

    The volume is zero-padded by TensorFlow's rule (and up to whole 2x2x2
    output tiles) into a flat buffer of rows of channels; the kernel transform
    ``U = G x G x G kernel`` is made once, in float64.  Extra memory: the padded
    volume and, per thread, one block of transformed tiles.
    """
    from .._kernels import conv

    c_in, c_out = kernel.shape[3:]
    pads = [conv_padding(n, 3, 1, padding) for n in x.shape[1:4]]
    out = np.empty((x.shape[0], *(o for o, _, _ in pads), c_out), dtype=x.dtype)
    if out.size == 0:
        return out
    tiles = [(o + 1) // 2 for o, _, _ in pads]
    lengths = [2 * t + 2 for t in tiles]  # the padded extent the tiles read
    padded = np.zeros((lengths[0] * lengths[1] * lengths[2], c_in), dtype=x.dtype)
    interior = tuple(slice(before, before + n) for (_, before, _), n in zip(pads, x.shape[1:4]))
    g = conv.KERNEL_TRANSFORM
    u = np.einsum("pa,qb,rc,abcio->pqrio", g, g, g, kernel.astype(np.float64), optimize=True)
    u = np.ascontiguousarray(u.reshape(64, c_in, c_out).astype(x.dtype))
    for n in range(x.shape[0]):
        padded.reshape(*lengths, c_in)[interior] = x[n]
        conv.winograd3x3x3(padded, lengths[1] * lengths[2], lengths[2], tiles[1], tiles[2],
                           tiles[0] * tiles[1] * tiles[2], u, conv.blas_gemm(x.dtype),
                           conv.tiles_per_block(c_in, c_out), out[n])
    return out


def _conv3d_patches(x, kernel, strides, padding):
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


def _conv3d_strided(x, kernel, strides, padding, xp):
    """Strided convolution (the device path): one GEMM per tap on the strided view ``x_pad[:, o * s + tap]``."""
    padded, out_shape = _padded(x, kernel.shape[:3], strides, padding, xp)
    out = xp.zeros((x.shape[0], *out_shape, kernel.shape[4]), dtype=x.dtype)
    if out.size:
        for tap in _taps(kernel.shape):
            out += _tap_view(padded, tap, out_shape, strides) @ kernel[tap]
    return out


def conv3d_transpose(x, kernel, bias=None, strides=1, padding: str = "same", output_padding=None):
    """Transposed 3-D convolution (Keras ``Conv3DTranspose``), the adjoint of :func:`conv3d`.

    Output length per axis (Keras): without ``output_padding``, ``in * s`` for
    "same" and ``in * s + max(k - s, 0)`` for "valid"; with it,
    ``(in - 1) * s + k - 2 * pad + output_padding`` with ``pad = k // 2`` for
    "same", 0 for "valid".  The full scatter ``full[i * s + a] += x[i] @ kernel[a]``
    (one GEMM per tap) is then cropped from TensorFlow's ``pad_before`` of the
    forward convolution.  NumPy or CuPy, as :func:`conv3d`.
    """
    backend, x, kernel, bias, strides = _conv_operands(x, kernel, bias, strides, padding, transposed=True)
    xp, dtype = backend.xp, x.dtype
    k = kernel.shape[:3]
    if output_padding is None:
        lengths = [n * s + (max(kk - s, 0) if padding == "valid" else 0) for n, kk, s in zip(x.shape[1:4], k, strides)]
    else:
        extra = _triple(output_padding, "output_padding", minimum=0)
        lengths = [(n - 1) * s + kk - 2 * (kk // 2 if padding == "same" else 0) + e
                   for n, kk, s, e in zip(x.shape[1:4], k, strides, extra)]
    befores = [conv_padding(length, kk, s, padding)[1] for length, kk, s in zip(lengths, k, strides)]
    full_shape = [max((n - 1) * s + kk, before + length) for n, s, kk, before, length in
                  zip(x.shape[1:4], strides, k, befores, lengths)]
    full = xp.zeros((x.shape[0], *full_shape, kernel.shape[3]), dtype=dtype)
    if backend.name == "cpu":
        _scatter_transpose(x, kernel, strides, full)
    else:
        for tap in _taps(k):
            _tap_view(full, tap, x.shape[1:4], strides)[...] += x @ kernel[tap].T
    out = xp.ascontiguousarray(full[(slice(None),) + tuple(slice(b, b + n) for b, n in zip(befores, lengths))])
    if bias is not None:
        out += bias
    return out


def _scatter_transpose(x, kernel, strides, full):
    """The CPU scatter of :func:`conv3d_transpose` (``conv.transpose_conv``), one volume at a time."""
    from .._kernels import conv

    k1, k2, k3, filters, c_in = kernel.shape
    weights = np.ascontiguousarray(kernel.transpose(0, 4, 1, 2, 3).reshape(k1, c_in, k2 * k3 * filters))
    chunk = conv.rows_per_gemm(c_in, k2 * k3 * filters)
    for n in range(x.shape[0]):
        conv.transpose_conv(np.ascontiguousarray(x[n]), weights, kernel.shape[:3], strides, conv.blas_gemm(x.dtype),
                            chunk, full[n])


def max_pool3d(x, pool_size=2, strides=None, padding: str = "valid"):
    """Max pooling (Keras ``MaxPool3D``): the maximum over the taps' strided views; ``strides`` defaults to
    ``pool_size``; "same" pads with -inf."""
    xp = backend_of(x=x).xp
    x = _volume(x, "x", xp)
    pool = _triple(pool_size, "pool_size")
    strides = pool if strides is None else _triple(strides, "strides")
    v.check_choice(padding, "padding", PADDINGS)
    padded, out_shape = _padded(x, pool, strides, padding, xp, value=-np.inf)
    views = [_tap_view(padded, tap, out_shape, strides) for tap in _taps(pool)]
    out = views[0].copy()
    for view in views[1:]:
        xp.maximum(out, view, out=out)
    return out


def batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon: float = 1e-3, training: bool = False):
    """``gamma * (x - mean) / sqrt(var + epsilon) + beta`` over the channel axis.

    ``training=False`` uses the moving statistics; ``training=True`` the batch
    statistics (mean and biased variance over every axis but the last).
    """
    xp = backend_of(x=x, gamma=gamma, beta=beta, moving_mean=moving_mean, moving_variance=moving_variance).xp
    x = _floating(v.as_array(x, "x", xp))
    if training:
        axes = tuple(range(x.ndim - 1))
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, variance = (v.as_array(moving_mean, "moving_mean", xp).astype(x.dtype),
                          v.as_array(moving_variance, "moving_variance", xp).astype(x.dtype))
    scale = v.as_array(gamma, "gamma", xp).astype(x.dtype) / xp.sqrt(variance.astype(x.dtype) + x.dtype.type(epsilon))
    return x * scale + (v.as_array(beta, "beta", xp).astype(x.dtype) - mean.astype(x.dtype) * scale)


def layer_norm(x, gamma, beta, epsilon: float = 1e-3):
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over the last axis (per voxel)."""
    xp = backend_of(x=x, gamma=gamma, beta=beta).xp
    x = _floating(v.as_array(x, "x", xp))
    mean = x.mean(axis=-1, keepdims=True)
    variance = x.var(axis=-1, keepdims=True)
    normalised = (x - mean) / xp.sqrt(variance + x.dtype.type(epsilon))
    return normalised * v.as_array(gamma, "gamma", xp).astype(x.dtype) + v.as_array(beta, "beta", xp).astype(x.dtype)


def dense(x, kernel, bias=None):
    """``x @ kernel + bias`` on the last axis; ``kernel`` is ``(in, units)``."""
    xp = backend_of(x=x, kernel=kernel, bias=bias).xp
    x = v.as_array(x, "x", xp)
    kernel = v.as_array(kernel, "kernel", xp)
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[-1]:
        raise ValueError(f"kernel must have shape ({x.shape[-1]}, units); got {kernel.shape}")
    out = x @ kernel
    return out if bias is None else out + v.as_array(bias, "bias", xp)


# ------------------------------------------------------------- activations
# Each takes (x, xp): x a float array of the array module xp (NumPy or CuPy).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x, xp):
    decay = xp.exp(-xp.abs(x))  # never overflows
    return xp.where(x >= 0, 1 / (1 + decay), decay / (1 + decay))


def _softmax(x, xp):
    shifted = xp.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _elu(x, xp):
    return xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)))


def _gelu(x, xp):
    if xp is np:
        from scipy.special import erf
    else:
        from cupyx.scipy.special import erf
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


ACTIVATIONS = {
    "relu": lambda x, xp: xp.maximum(x, 0),
    "sigmoid": _sigmoid,
    "tanh": lambda x, xp: xp.tanh(x),
    "softmax": _softmax,
    "elu": _elu,
    "selu": lambda x, xp: _SELU_SCALE * xp.where(x > 0, x, _SELU_ALPHA * xp.expm1(xp.minimum(x, 0))),
    "softplus": lambda x, xp: xp.logaddexp(0, x),
    "softsign": lambda x, xp: x / (1 + xp.abs(x)),
    "linear": lambda x, xp: x,
    "leaky_relu": lambda x, xp: xp.where(x > 0, x, 0.2 * x),
    "gelu": _gelu,
    "swish": lambda x, xp: x * _sigmoid(x, xp),
}


def activation(x, identifier: str = "relu"):
    """Keras activations by name (softmax over the last axis; leaky_relu slope 0.2; exact gelu).

    NumPy or CuPy in, the same kind out; integer and float16 inputs compute in float32.
    """
    if identifier is None:
        identifier = "linear"
    v.check_choice(identifier, "identifier", tuple(ACTIVATIONS))
    xp = backend_of(x=x).xp
    x = _floating(v.as_array(x, "x", xp))
    return ACTIVATIONS[identifier](x, xp).astype(x.dtype, copy=False)
