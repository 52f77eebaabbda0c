import itertools

import numpy as np
import pytest
from scipy import ndimage

from arrayreg.nn import functional as F


def correlate_reference(x, kernel, strides, padding):
    """scipy.ndimage.correlate per (input, output) channel on the TF-padded volume, then strided."""
    k = kernel.shape[:3]
    pads = [F.conv_padding(n, kk, s, padding) for n, kk, s in zip(x.shape[1:4], k, strides)]
    out_shape = tuple(p[0] for p in pads)
    out = np.zeros((x.shape[0],) + out_shape + (kernel.shape[4],))
    for b in range(x.shape[0]):
        padded = np.pad(x[b].astype(np.float64), [(p[1], p[2]) for p in pads] + [(0, 0)])
        for f in range(kernel.shape[4]):
            total = sum(
                ndimage.correlate(padded[..., c], kernel[..., c, f].astype(np.float64), mode="constant",
                                  origin=[-(kk // 2) for kk in k])
                for c in range(x.shape[4])
            )
            strided = total[:: strides[0], :: strides[1], :: strides[2]]
            out[b, ..., f] = strided[: out_shape[0], : out_shape[1], : out_shape[2]]
    return out


@pytest.mark.parametrize("kernel_size", [(3, 3, 3), (1, 1, 1), (2, 3, 4)])
@pytest.mark.parametrize("strides", [(1, 1, 1), (2, 2, 2), (1, 3, 2)])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("rows", [1, 7, 10**6])  # output voxels per GEMM (and Winograd tiles per block)
def test_conv3d_matches_scipy_correlate(rng, monkeypatch, kernel_size, strides, padding, rows):
    from arrayreg._kernels import conv

    monkeypatch.setattr(conv, "rows_per_gemm", lambda k, n: rows)
    monkeypatch.setattr(conv, "tiles_per_block", lambda *sizes: rows)
    x = rng.standard_normal((2, 7, 8, 9, 3)).astype(np.float32)
    kernel = rng.standard_normal(kernel_size + (3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    got = F.conv3d(x, kernel, bias, strides, padding)
    want = correlate_reference(x, kernel, strides, padding) + bias
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def transpose_loop(x, kernel, strides, lengths, befores):
    spatial = tuple(n + b + kk for n, b, kk in zip(lengths, befores, kernel.shape[:3]))
    full = np.zeros((x.shape[0],) + spatial + (kernel.shape[3],))
    for b, i, j, k in itertools.product(*map(range, x.shape[:4])):
        for a, c, d in itertools.product(*map(range, kernel.shape[:3])):
            full[b, i * strides[0] + a, j * strides[1] + c, k * strides[2] + d] += kernel[a, c, d] @ x[b, i, j, k]
    return full[:, befores[0] : befores[0] + lengths[0], befores[1] : befores[1] + lengths[1],
                befores[2] : befores[2] + lengths[2]]


@pytest.mark.parametrize("strides, padding, output_padding", [
    ((2, 2, 2), "same", None), ((1, 1, 1), "same", None), ((1, 1, 1), "valid", None),
    ((2, 2, 2), "same", (1, 0, 1)), ((2, 1, 2), "valid", None),
])
def test_conv3d_transpose_matches_a_scatter_loop(rng, strides, padding, output_padding):
    x = rng.standard_normal((1, 3, 4, 2, 2))
    kernel = rng.standard_normal((3, 3, 3, 5, 2))
    got = F.conv3d_transpose(x, kernel, None, strides, padding, output_padding)
    if output_padding is None:
        lengths = [n * s + (max(3 - s, 0) if padding == "valid" else 0) for n, s in zip(x.shape[1:4], strides)]
    else:
        lengths = [(n - 1) * s + 3 - 2 * (1 if padding == "same" else 0) + e
                   for n, s, e in zip(x.shape[1:4], strides, output_padding)]
    befores = [F.conv_padding(length, 3, s, padding)[1] for length, s in zip(lengths, strides)]
    np.testing.assert_allclose(got, transpose_loop(x, kernel, strides, lengths, befores), rtol=1e-12, atol=1e-12)


def test_conv3d_transpose_is_the_adjoint_of_conv3d(rng):
    x = rng.standard_normal((1, 6, 7, 5, 2))
    kernel = rng.standard_normal((3, 3, 3, 2, 4))
    y = rng.standard_normal(F.conv3d(x, kernel, None, 2, "same").shape)
    transposed = F.conv3d_transpose(y, kernel, None, 2, "same", output_padding=(1, 0, 0))
    assert transposed.shape == x.shape
    np.testing.assert_allclose(np.vdot(F.conv3d(x, kernel, None, 2, "same"), y), np.vdot(x, transposed), rtol=1e-10)


@pytest.mark.parametrize("pool, strides, padding", [(2, None, "valid"), (2, None, "same"), (3, 2, "same")])
def test_max_pool3d_matches_a_loop(rng, pool, strides, padding):
    x = rng.standard_normal((2, 7, 8, 9, 3))
    s = pool if strides is None else strides
    got = F.max_pool3d(x, pool, strides, padding)
    pads = [F.conv_padding(n, pool, s, padding) for n in x.shape[1:4]]
    want = np.empty((2,) + tuple(p[0] for p in pads) + (3,))
    for index in np.ndindex(want.shape[1:4]):
        lows = [o * s - p[1] for o, p in zip(index, pads)]
        window = x[:, max(lows[0], 0) : lows[0] + pool, max(lows[1], 0) : lows[1] + pool,
                   max(lows[2], 0) : lows[2] + pool]
        want[(slice(None),) + index] = window.max(axis=(1, 2, 3))
    np.testing.assert_array_equal(got, want)


def test_norms_and_dense_follow_their_formulas(rng):
    x = rng.standard_normal((2, 3, 4, 5, 6))
    gamma, beta = rng.uniform(0.5, 1.5, 6), rng.standard_normal(6)
    mean, var = rng.standard_normal(6), rng.uniform(0.5, 2, 6)
    np.testing.assert_allclose(F.batch_norm(x, gamma, beta, mean, var), gamma * (x - mean) / np.sqrt(var + 1e-3) + beta,
                               rtol=1e-12)
    batch_mean, batch_var = x.mean(axis=(0, 1, 2, 3)), x.var(axis=(0, 1, 2, 3))
    np.testing.assert_allclose(F.batch_norm(x, gamma, beta, mean, var, training=True),
                               gamma * (x - batch_mean) / np.sqrt(batch_var + 1e-3) + beta, rtol=1e-10)
    voxel_mean, voxel_var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    want = (x - voxel_mean) / np.sqrt(voxel_var + 1e-3) * gamma + beta
    np.testing.assert_allclose(F.layer_norm(x, gamma, beta), want, rtol=1e-12)
    kernel, bias = rng.standard_normal((6, 4)), rng.standard_normal(4)
    np.testing.assert_allclose(F.dense(x, kernel, bias), np.einsum("...i,ij->...j", x, kernel) + bias, rtol=1e-12)


def test_activations_and_unknown_names():
    x = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(F.activation(x, "sigmoid"), 1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(F.activation(x, "softplus"), np.log1p(np.exp(x)), rtol=1e-12)
    np.testing.assert_allclose(F.activation(x, "swish"), x / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(F.activation(x, "leaky_relu"), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(F.activation(x, "gelu")[5:],
                               [0, 0.8413447460685429, 1.954499736103642, 2.99595031, 3.99987332, 4.99999928],
                               rtol=1e-6)
    np.testing.assert_allclose(F.activation(x[None], "softmax").sum(), 1.0)
    np.testing.assert_allclose(F.activation(x, "elu")[:2], np.expm1(x[:2]))
    with pytest.raises(ValueError, match="identifier must be one of 'relu', 'sigmoid'"):
        F.activation(x, "mish")


def test_conv3d_errors():
    with pytest.raises(ValueError, match="kernel must have shape \\(kd, kh, kw, 3, filters\\)"):
        F.conv3d(np.zeros((1, 4, 4, 4, 3)), np.zeros((3, 3, 3, 2, 1)))
    with pytest.raises(ValueError, match="x must have shape \\(batch, d1, d2, d3, channels\\)"):
        F.conv3d(np.zeros((4, 4, 4, 3)), np.zeros((3, 3, 3, 3, 1)))
    with pytest.raises(ValueError, match="padding must be one of 'same', 'valid'"):
        F.conv3d(np.zeros((1, 4, 4, 4, 3)), np.zeros((3, 3, 3, 3, 1)), padding="full")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 2), (2, 2, 1, 3, 3), (1, 5, 6, 7, 4), (1, 4, 4, 4, 70)])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-4), (np.float64, 1e-11)])
def test_winograd_path_matches_a_float64_correlation(rng, shape, padding, dtype, tolerance):
    """3x3x3 at stride 1 on the CPU runs as Winograd F(2,3): odd and tiny volumes (partial tiles), many
    channels (small blocks, one tile per block for 70 x 90), float64."""
    x = rng.standard_normal(shape).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, shape[4], 90 if shape[4] == 70 else 5)).astype(dtype)
    want = correlate_reference(x, kernel, (1, 1, 1), padding)
    got = F.conv3d(x, kernel, None, 1, padding)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * max(1.0, np.abs(want).max(initial=0)))


@pytest.mark.parametrize("c_in, c_out", [(1, 1), (8, 8), (16, 32), (9, 17), (33, 3), (2, 8)])
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-4), (np.float64, 1e-11)])
def test_winograd_channel_counts_matches_a_float64_correlation(rng, c_in, c_out, dtype, tolerance):
    """Channel and filter counts that fill one vector, several, or leave a partial one (padded with zeros
    in the kernel, masked off in the output), float32 (16 lanes) and float64 (8 lanes)."""
    x = rng.standard_normal((1, 5, 6, 7, c_in)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 3, c_in, c_out)).astype(dtype)
    want = correlate_reference(x, kernel, (1, 1, 1), "same")
    got = F.conv3d(x, kernel)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * max(1.0, np.abs(want).max()))


def test_winograd_blocks_do_not_depend_on_their_size(rng, monkeypatch):
    from arrayreg._kernels import conv

    x = rng.standard_normal((1, 9, 10, 11, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 3, 4)).astype(np.float32)
    want = F.conv3d(x, kernel)
    for block in (1, 7, 1000):
        monkeypatch.setattr(conv, "tiles_per_block", lambda *sizes, block=block: block)
        np.testing.assert_array_equal(F.conv3d(x, kernel), want)


@pytest.mark.parametrize("layout", ["big-endian", "fortran", "strided"])
@pytest.mark.parametrize("kernel_size, strides", [((3, 3, 3), 1), ((3, 3, 3), 2), ((2, 3, 1), 1)])
def test_convolutions_do_not_depend_on_the_memory_layout(rng, layout, kernel_size, strides):
    """The CPU kernels hand raw pointers to BLAS: every input must reach them native and contiguous."""
    x = rng.standard_normal((2, 6, 7, 8, 3)).astype(np.float32)
    kernel = rng.standard_normal(kernel_size + (3, 4)).astype(np.float32)
    transposed = rng.standard_normal(kernel_size + (4, 3)).astype(np.float32)
    change = {
        "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
        "fortran": np.asfortranarray,
        "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    }[layout]
    np.testing.assert_array_equal(F.conv3d(change(x), change(kernel), None, strides),
                                  F.conv3d(x, kernel, None, strides))
    np.testing.assert_array_equal(F.conv3d_transpose(change(x), change(transposed), None, strides),
                                  F.conv3d_transpose(x, transposed, None, strides))


def test_an_integer_kernel_keeps_float32():
    """The compute dtype is float64 only when x or kernel is float64: an int64 kernel computes in float32."""
    x = np.ones((1, 4, 4, 4, 2), np.float32)
    out = F.conv3d(x, np.ones((3, 3, 3, 2, 3), np.int64), np.zeros(3, np.int64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 1, 1, 1], [54.0, 54.0, 54.0])  # 27 taps x 2 channels x 1 x 1


@pytest.mark.parametrize("channels, width, before", [(3, 4, (1, 0, 2)), (8, 8, (1, 1, 1)), (2, 2, (0, 0, 0))])
def test_winograd_padding_copy_equals_numpy_pad(rng, channels, width, before):
    """The Winograd path's padded copy: ``x`` at ``before``, zero around it and in the channels past ``x``'s,
    every value of a buffer that starts as NaN written."""
    from arrayreg._kernels import conv

    x = rng.standard_normal((5, 6, 7, channels)).astype(np.float32)
    padded = np.full((8, 9, 11, width), np.nan, np.float32)
    conv.pad_volume(x, before, padded)
    after = [p - n - b for p, n, b in zip(padded.shape[:3], x.shape[:3], before)]
    want = np.pad(x, [(b, a) for b, a in zip(before, after)] + [(0, width - channels)])
    np.testing.assert_array_equal(padded, want)
