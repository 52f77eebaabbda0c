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

from .. import _validation as validate
from .._backend import backend_of
from .._plan import compute_dtype
from . import _conv

PADDINGS = ("same", "valid")
conv_padding = _conv.conv_padding


def _floating(x):
    """float32/float64 arrays as they are; anything else (ints, float16) as float32."""
    return x if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else x.astype(np.float32)


def _volume(x, name: str, xp):
    x = validate.as_array(x, name, xp)
    if x.ndim != 5:
        raise ValueError(f"{name} must have shape (batch, d1, d2, d3, channels); got {x.shape}")
    return _floating(x)


def _optional(value, name: str, xp, dtype):
    return None if value is None else validate.as_array(value, name, xp).astype(dtype, copy=False)


def _conv_operands(x, kernel, bias, strides, padding, transposed: bool):
    """The checked operands of :func:`conv3d` / :func:`conv3d_transpose`: ``(backend, x, kernel, bias, strides)``.

    ``x`` must be ``(batch, d1, d2, d3, in)`` and ``kernel`` ``(kd, kh, kw, in, filters)``,
    or ``(kd, kh, kw, filters, in)`` when ``transposed``; all three come back in
    the compute dtype (float64 when ``x`` or ``kernel`` is float64, else float32).
    """
    backend = backend_of(x=x, kernel=kernel, bias=bias)
    xp = backend.xp
    x = _volume(x, "x", xp)
    kernel = validate.as_array(kernel, "kernel", xp)
    axis = 4 if transposed else 3
    if kernel.ndim != 5 or kernel.shape[axis] != x.shape[4]:
        expected = f"filters, {x.shape[4]}" if transposed else f"{x.shape[4]}, filters"
        raise ValueError(f"kernel must have shape (kd, kh, kw, {expected}); got {kernel.shape}")
    strides = validate.check_triple(strides, "strides")
    validate.check_choice(padding, "padding", PADDINGS)
    dtype = compute_dtype(x, kernel)
    bias = _optional(bias, "bias", xp, dtype)
    filters = kernel.shape[3 if transposed else 4]
    if bias is not None and bias.shape != (filters,):
        raise ValueError(f"bias must have shape ({filters},), one value per filter of the kernel; got {bias.shape}")
    return backend, x.astype(dtype, copy=False), kernel.astype(dtype, copy=False), bias, strides


def conv3d(x, kernel, bias=None, strides=1, padding: str = "same"):
    """3-D cross-correlation (Keras ``Conv3D``).

    ``out[b, o, f] = sum_{a, c} x_pad[b, o * s + a, c] * kernel[a, c, f] + bias[f]``.

    Parameters
    ----------
    x : array, shape (batch, d1, d2, d3, in)
    kernel : array, shape (kd, kh, kw, in, filters)
    bias : array, shape (filters,), optional
    strides : int or 3 ints, default 1
    padding : {"same", "valid"}, default "same"
        TensorFlow's rule (see the module docstring).

    Returns
    -------
    array, shape (batch, o1, o2, o3, filters)
        float64 when ``x`` or ``kernel`` is float64, float32 otherwise.

    Notes
    -----

    NumPy in gives NumPy out, through Numba kernels (``_kernels/conv.py``): a
    3x3x3 kernel at stride 1 runs as Winograd F(2x2x2, 3x3x3) (a quarter of the
    multiplications, errors of the same size as the direct sum's; transforms and
    products as vector code, ``_kernels/microkernel.py``), any other as patch
    (im2col) rows of a few output voxels per GEMM through SciPy's BLAS, called
    from inside the parallel loop, never a whole patch matrix.

    CuPy in gives CuPy out: by cuDNN for float32 when NVIDIA's ``cudnn``
    frontend is importable (``arrayreg.nn._cudnn``; no TF32 plans), by cuBLAS
    otherwise, as one GEMM per kernel tap, ``out += x_pad[o * s + tap] @ kernel[tap]``
    (at stride 1 on the flattened padded volume, where each tap's operand is a
    contiguous slice, in blocks of ``_conv.BLOCK_ROWS`` output rows).  The
    strategies and the rule that picks one are in ``arrayreg.nn._conv``.
    """
    backend, x, kernel, bias, strides = _conv_operands(x, kernel, bias, strides, padding, transposed=False)
    out = _conv.convolve(backend, x, kernel, strides, padding)
    if bias is not None:
        out += bias
    return out


def conv3d_transpose(x, kernel, bias=None, strides=1, padding: str = "same", output_padding=None):
    """Transposed 3-D convolution (Keras ``Conv3DTranspose``), the adjoint of :func:`conv3d`.

    Output length per axis (Keras): without ``output_padding``, ``in * s`` for
    "same" and ``in * s + max(k - s, 0)`` for "valid"; with it,
    ``(in - 1) * s + k - 2 * pad + output_padding`` with ``pad = k // 2`` for
    "same", 0 for "valid".  The full scatter ``full[i * s + a] += x[i] @ kernel[a]``
    (one GEMM per tap) is then cropped from TensorFlow's ``pad_before`` of the
    forward convolution.  NumPy or CuPy, as :func:`conv3d`.

    Parameters
    ----------
    x : array, shape (batch, d1, d2, d3, in)
    kernel : array, shape (kd, kh, kw, filters, in)
    bias : array, shape (filters,), optional
    strides : int or 3 ints, default 1
    padding : {"same", "valid"}, default "same"
    output_padding : int or 3 ints >= 0, optional

    Returns
    -------
    array, shape (batch, o1, o2, o3, filters)
    """
    backend, x, kernel, bias, strides = _conv_operands(x, kernel, bias, strides, padding, transposed=True)
    xp, dtype = backend.xp, x.dtype
    k = kernel.shape[:3]
    if output_padding is None:
        lengths = [n * s + (max(kk - s, 0) if padding == "valid" else 0) for n, kk, s in zip(x.shape[1:4], k, strides)]
    else:
        extra = validate.check_triple(output_padding, "output_padding", minimum=0)
        lengths = [(n - 1) * s + kk - 2 * (kk // 2 if padding == "same" else 0) + e
                   for n, kk, s, e in zip(x.shape[1:4], k, strides, extra)]
    befores = [_conv.conv_padding(length, kk, s, padding)[1] for length, kk, s in zip(lengths, k, strides)]
    full_shape = [max((n - 1) * s + kk, before + length) for n, s, kk, before, length in
                  zip(x.shape[1:4], strides, k, befores, lengths)]
    full = xp.zeros((x.shape[0], *full_shape, kernel.shape[3]), dtype=dtype)
    _conv.scatter_transpose(backend, x, kernel, strides, full)
    out = xp.ascontiguousarray(full[(slice(None),) + tuple(slice(b, b + n) for b, n in zip(befores, lengths))])
    if bias is not None:
        out += bias
    return out


def max_pool3d(x, pool_size=2, strides=None, padding: str = "valid"):
    """Max pooling (Keras ``MaxPool3D``): the maximum over the taps' strided views.

    Parameters
    ----------
    x : array, shape (batch, d1, d2, d3, ch)
    pool_size : int or 3 ints, default 2
    strides : int or 3 ints, optional
        Defaults to ``pool_size``.
    padding : {"same", "valid"}, default "valid"
        "same" pads with -inf.

    Returns
    -------
    array, shape (batch, o1, o2, o3, ch)
    """
    xp = backend_of(x=x).xp
    x = _volume(x, "x", xp)
    pool = validate.check_triple(pool_size, "pool_size")
    strides = pool if strides is None else validate.check_triple(strides, "strides")
    validate.check_choice(padding, "padding", PADDINGS)
    padded, out_shape = _conv.padded(x, pool, strides, padding, xp, value=-np.inf)
    views = [_conv.tap_view(padded, tap, out_shape, strides) for tap in _conv.taps(pool)]
    out = views[0].copy()
    for view in views[1:]:
        xp.maximum(out, view, out=out)
    return out


def batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon: float = 1e-3, training: bool = False):
    """``gamma * (x - mean) / sqrt(var + epsilon) + beta`` over the channel axis.

    ``training=False`` uses the moving statistics; ``training=True`` the batch
    statistics (mean and biased variance over every axis but the last).

    Parameters
    ----------
    x : array, shape (..., ch)
    gamma, beta, moving_mean, moving_variance : array, shape (ch,)
    epsilon : float, default 1e-3 (Keras)
    training : bool, default False

    Returns
    -------
    array, shape of ``x``
    """
    xp = backend_of(x=x, gamma=gamma, beta=beta, moving_mean=moving_mean, moving_variance=moving_variance).xp
    x = _floating(validate.as_array(x, "x", xp))
    if training:
        axes = tuple(range(x.ndim - 1))
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, variance = (validate.as_array(moving_mean, "moving_mean", xp).astype(x.dtype),
                          validate.as_array(moving_variance, "moving_variance", xp).astype(x.dtype))
    gamma = validate.as_array(gamma, "gamma", xp).astype(x.dtype)
    scale = gamma / xp.sqrt(variance.astype(x.dtype) + x.dtype.type(epsilon))
    return x * scale + (validate.as_array(beta, "beta", xp).astype(x.dtype) - mean.astype(x.dtype) * scale)


def layer_norm(x, gamma, beta, epsilon: float = 1e-3):
    """``(x - mean) / sqrt(var + epsilon) * gamma + beta`` over the last axis (per voxel).

    Parameters
    ----------
    x : array, shape (..., ch)
    gamma, beta : array, shape (ch,)
    epsilon : float, default 1e-3 (Keras)

    Returns
    -------
    array, shape of ``x``
    """
    xp = backend_of(x=x, gamma=gamma, beta=beta).xp
    x = _floating(validate.as_array(x, "x", xp))
    mean = x.mean(axis=-1, keepdims=True)
    variance = x.var(axis=-1, keepdims=True)
    normalised = (x - mean) / xp.sqrt(variance + x.dtype.type(epsilon))
    gamma = validate.as_array(gamma, "gamma", xp).astype(x.dtype)
    return normalised * gamma + validate.as_array(beta, "beta", xp).astype(x.dtype)


def dense(x, kernel, bias=None):
    """``x @ kernel + bias`` on the last axis.

    Parameters
    ----------
    x : array, shape (..., in)
    kernel : array, shape (in, units)
    bias : array, shape (units,), optional

    Returns
    -------
    array, shape (..., units)
    """
    xp = backend_of(x=x, kernel=kernel, bias=bias).xp
    x = validate.as_array(x, "x", xp)
    kernel = validate.as_array(kernel, "kernel", xp)
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[-1]:
        raise ValueError(f"kernel must have shape ({x.shape[-1]}, units); got {kernel.shape}")
    out = x @ kernel
    return out if bias is None else out + validate.as_array(bias, "bias", xp)


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

    Parameters
    ----------
    x : array
    identifier : str, default "relu"
        A key of :data:`ACTIVATIONS`; None means "linear".

    Returns
    -------
    array, shape of ``x``

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg.nn.functional import activation
    >>> activation(np.array([-1.0, 0.0, 2.0], np.float32), "relu")
    array([0., 0., 2.], dtype=float32)
    """
    if identifier is None:
        identifier = "linear"
    validate.check_choice(identifier, "identifier", tuple(ACTIVATIONS))
    xp = backend_of(x=x).xp
    x = _floating(validate.as_array(x, "x", xp))
    return ACTIVATIONS[identifier](x, xp).astype(x.dtype, copy=False)
