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
from numpy.lib.stride_tricks import sliding_window_view

from .. import _validation as v

PADDINGS = ("same", "valid")


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


def _volume(x, name: str = "x") -> np.ndarray:
    x = v.as_array(x, name)
    if x.ndim != 5:
        raise ValueError(f"{name} must have shape (batch, d1, d2, d3, channels); got {x.shape}")
    return _floating(x)


def conv_padding(size: int, kernel: int, stride: int, padding: str) -> tuple:
    """``(out, pad_before, pad_after)`` along one axis, TensorFlow's rule."""
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    out = max(math.ceil((size - kernel + 1) / stride), 0)
    return out, 0, 0


def _padded(x, kernel, strides, padding, value=0.0):
    pads = [conv_padding(n, k, s, padding) for n, k, s in zip(x.shape[1:4], kernel, strides)]
    if any(before or after for _, before, after in pads):
        x = np.pad(x, [(0, 0)] + [(b, a) for _, b, a in pads] + [(0, 0)], constant_values=value)
    return x, tuple(out for out, _, _ in pads)


def conv3d(x, kernel, bias=None, strides=1, padding: str = "same", block_bytes: int = 32 * 2**20):
    """3-D cross-correlation (Keras ``Conv3D``): ``out[b, o, f] = sum_{a, c} x_pad[b, o * s + a, c] * kernel[a, c, f] + bias[f]``.

    Blocked im2col + BLAS GEMM: the patch matrix is built for a slab of
    output planes at a time, at most ``block_bytes`` large, never for the
    whole volume.
    """
    x = _volume(x)
    kernel = v.as_array(kernel, "kernel")
    if kernel.ndim != 5 or kernel.shape[3] != x.shape[4]:
        raise ValueError(f"kernel must have shape (kd, kh, kw, {x.shape[4]}, filters); got {kernel.shape}")
    strides = _triple(strides, "strides")
    v.check_choice(padding, "padding", PADDINGS)
    dtype = np.result_type(x.dtype, kernel.dtype, np.float32)
    x, (o1, o2, o3) = _padded(x.astype(dtype, copy=False), kernel.shape[:3], strides, padding)
    k1, k2, k3, c_in, c_out = kernel.shape
    weights = kernel.astype(dtype, copy=False).reshape(-1, c_out)
    out = np.empty((x.shape[0], o1, o2, o3, c_out), dtype=dtype)
    if out.size == 0:
        return out
    windows = sliding_window_view(x, (k1, k2, k3), axis=(1, 2, 3))[:, :: strides[0], :: strides[1], :: strides[2]]
    # windows: (b, o1, o2, o3, c_in, k1, k2, k3); the patch rows follow the kernel's (k1, k2, k3, c_in) order
    row_bytes = k1 * k2 * k3 * c_in * dtype.itemsize
    planes = max(1, block_bytes // max(1, row_bytes * o2 * o3))
    for b in range(x.shape[0]):
        for start in range(0, o1, planes):
            stop = min(start + planes, o1)
            patches = np.ascontiguousarray(windows[b, start:stop].transpose(0, 1, 2, 4, 5, 6, 3))
            out[b, start:stop] = (patches.reshape(-1, weights.shape[0]) @ weights).reshape(stop - start, o2, o3, c_out)
    if bias is not None:
        out += v.as_array(bias, "bias").astype(dtype, copy=False)
    return out


def conv3d_transpose(x, kernel, bias=None, strides=1, padding: str = "same", output_padding=None):
    """Transposed 3-D convolution (Keras ``Conv3DTranspose``), the adjoint of :func:`conv3d`.

    Output length per axis (Keras): without ``output_padding``, ``in * s`` for
    "same" and ``in * s + max(k - s, 0)`` for "valid"; with it,
    ``(in - 1) * s + k - 2 * pad + output_padding`` with ``pad = k // 2`` for
    "same", 0 for "valid".  The full scatter ``full[i * s + a] += x[i] @ kernel[a]``
    is then cropped from TensorFlow's ``pad_before`` of the forward convolution.
    """
    x = _volume(x)
    kernel = v.as_array(kernel, "kernel")
    if kernel.ndim != 5 or kernel.shape[4] != x.shape[4]:
        raise ValueError(f"kernel must have shape (kd, kh, kw, filters, {x.shape[4]}); got {kernel.shape}")
    strides = _triple(strides, "strides")
    v.check_choice(padding, "padding", PADDINGS)
    k = kernel.shape[:3]
    if output_padding is None:
        lengths = [n * s + (max(kk - s, 0) if padding == "valid" else 0) for n, kk, s in zip(x.shape[1:4], k, strides)]
    else:
        extra = _triple(output_padding, "output_padding", minimum=0)
        lengths = [(n - 1) * s + kk - 2 * (kk // 2 if padding == "same" else 0) + e
                   for n, kk, s, e in zip(x.shape[1:4], k, strides, extra)]
    dtype = np.result_type(x.dtype, kernel.dtype, np.float32)
    befores = [conv_padding(length, kk, s, padding)[1] for length, kk, s in zip(lengths, k, strides)]
    full_shape = [max((n - 1) * s + kk, before + length) for n, s, kk, before, length in
                  zip(x.shape[1:4], strides, k, befores, lengths)]
    full = np.zeros((x.shape[0], *full_shape, kernel.shape[3]), dtype=dtype)
    n1, n2, n3 = x.shape[1:4]
    s1, s2, s3 = strides
    flat = x.astype(dtype, copy=False)
    for a in range(k[0]):
        for b in range(k[1]):
            for c in range(k[2]):
                contribution = flat @ kernel[a, b, c].astype(dtype, copy=False).T
                full[:, a : a + (n1 - 1) * s1 + 1 : s1, b : b + (n2 - 1) * s2 + 1 : s2,
                     c : c + (n3 - 1) * s3 + 1 : s3] += contribution
    out = full[:, befores[0] : befores[0] + lengths[0], befores[1] : befores[1] + lengths[1],
               befores[2] : befores[2] + lengths[2]]
    out = np.ascontiguousarray(out)
    if bias is not None:
        out += v.as_array(bias, "bias").astype(dtype, copy=False)
    return out


def max_pool3d(x, pool_size=2, strides=None, padding: str = "valid"):
    """Max pooling (Keras ``MaxPool3D``); ``strides`` defaults to ``pool_size``; "same" pads with -inf."""
    x = _volume(x)
    pool = _triple(pool_size, "pool_size")
    strides = pool if strides is None else _triple(strides, "strides")
    v.check_choice(padding, "padding", PADDINGS)
    padded, _ = _padded(x, pool, strides, padding, value=-np.inf)
    windows = sliding_window_view(padded, pool, axis=(1, 2, 3))[:, :: strides[0], :: strides[1], :: strides[2]]
    return windows.max(axis=(-3, -2, -1))


def batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon: float = 1e-3, training: bool = False):
    """``gamma * (x - mean) / sqrt(var + epsilon) + beta`` over the channel axis.

    ``training=False`` uses the moving statistics; ``training=True`` the batch
    statistics (mean and biased variance over every axis but the last).
    """
    x = _floating(v.as_array(x, "x"))
    if training:
        axes = tuple(range(x.ndim - 1))
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, variance = np.asarray(moving_mean), np.asarray(moving_variance)
    scale = np.asarray(gamma, x.dtype) / np.sqrt(variance.astype(x.dtype) + x.dtype.type(epsilon))
    return x * scale + (np.asarray(beta, x.dtype) - mean.astype(x.dtype) * scale)


def layer_norm(x, gamma, beta, epsilon: float = 1e-3):
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over the last axis (per voxel)."""
    x = _floating(v.as_array(x, "x"))
    mean = x.mean(axis=-1, keepdims=True)
    variance = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + x.dtype.type(epsilon)) * np.asarray(gamma, x.dtype) + np.asarray(beta, x.dtype)


def dense(x, kernel, bias=None):
    """``x @ kernel + bias`` on the last axis; ``kernel`` is ``(in, units)``."""
    x = v.as_array(x, "x")
    kernel = v.as_array(kernel, "kernel")
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[-1]:
        raise ValueError(f"kernel must have shape ({x.shape[-1]}, units); got {kernel.shape}")
    out = x @ kernel
    return out if bias is None else out + v.as_array(bias, "bias")


# ------------------------------------------------------------- activations
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _softmax(x):
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _gelu(x):
    from scipy.special import erf

    return (0.5 * x * (1 + erf(x / np.sqrt(2)))).astype(x.dtype, copy=False)


ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "softplus": lambda x: np.logaddexp(0, x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "linear": lambda x: x,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "gelu": _gelu,
    "swish": lambda x: x * _sigmoid(x),
}


def activation(x, identifier: str = "relu"):
    """Keras activations by name (softmax over the last axis; leaky_relu slope 0.2; exact gelu)."""
    if identifier is None:
        identifier = "linear"
    v.check_choice(identifier, "identifier", tuple(ACTIVATIONS))
    x = _floating(v.as_array(x, "x"))
    return ACTIVATIONS[identifier](x).astype(x.dtype, copy=False)
