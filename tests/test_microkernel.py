"""The Winograd convolution's vector code against NumPy: the tile transforms (Lavin & Gray's B^T and A^T,
applied along the three axes by einsum in float64) and the small matrix products."""

import numpy as np
import pytest
from numba import njit

from arrayreg._kernels.microkernel import (
    channel_marker,
    lanes_for,
    padded_channels,
    small_gemm,
    vector_width,
    winograd_input,
    winograd_output,
)

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
# (dtype, C): every padded channel count has vectors of min(C, 512 bits) lanes
WIDTHS = ([(np.float32, width) for width in (1, 2, 4, 8, 16, 32, 48)]
          + [(np.float64, width) for width in (1, 2, 4, 8, 24)])


def lanes_of(dtype, width):
    return min(width, vector_width(np.dtype(dtype)))


def separable(matrix, tile):
    """``matrix`` along the first three axes of ``tile`` (4, 4, 4, lanes), in float64."""
    return np.einsum("xa,yb,zc,abcl->xyzl", matrix, matrix, matrix, tile.astype(np.float64))


@njit
def gemm(a, a0, lda, b, b0, c, c0, ldc, rows, k, channels):
    small_gemm(a, a0, lda, b, b0, c, c0, ldc, rows, k, channels)


@njit
def transform_input(src, start, plane, row, dst, dst_start, channels):
    winograd_input(src, start, plane, row, dst, dst_start, channels)


@njit
def transform_output(m, m_start, out, out_start, plane, row, step, valid, filters, channels):
    winograd_output(m, m_start, out, out_start, plane, row, step, valid, filters, channels)


@pytest.mark.parametrize("dtype, width", WIDTHS)
@pytest.mark.parametrize("rows, k", [(1, 1), (4, 16), (7, 5), (9, 32), (64, 16), (3, 3), (40, 8), (17, 2)])
def test_small_gemm_equals_numpy(dtype, width, rows, k):
    """Rows of ``a`` ``lda`` apart (a sub-matrix), ``b`` and ``c`` at offsets in flat arrays, rows past ``rows``
    and values around ``c`` untouched."""
    rng = np.random.default_rng(rows * 100 + k)
    lda, ldc = k + 3, width + 5
    a = rng.standard_normal((rows + 2) * lda + 7).astype(dtype)
    b = rng.standard_normal(k * width + 11).astype(dtype)
    c = np.full((rows + 2) * ldc + 13, np.nan, dtype)
    gemm(a, 7, lda, b, 11, c, 13, ldc, rows, k, channel_marker(width))
    a_matrix = a[7:7 + rows * lda].reshape(rows, lda)[:, :k].astype(np.float64)
    expected = a_matrix @ b[11:].reshape(k, width).astype(np.float64)
    got = c[13:13 + rows * ldc].reshape(rows, ldc)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[:, :width], expected, rtol=tolerance, atol=tolerance * np.abs(expected).max())
    assert np.isnan(got[:, width:]).all() and np.isnan(c[:13]).all() and np.isnan(c[13 + rows * ldc:]).all()


@pytest.mark.parametrize("dtype, width", WIDTHS)
def test_winograd_input_is_b_transpose_along_each_axis(dtype, width):
    """One vector of channels (the last of the C) of a tile of a (6, 7, 9, C) volume; the 64 results ``C``
    apart, nothing else written."""
    rng = np.random.default_rng(width)
    lanes = lanes_of(dtype, width)
    volume = rng.standard_normal((6, 7, 9, width)).astype(dtype)
    origin, first_channel = (1, 2, 3), width - lanes
    dst_start = 5
    dst = np.full(dst_start + 64 * width, np.nan, dtype)
    start = np.ravel_multi_index(origin + (first_channel,), volume.shape)
    transform_input(volume.reshape(-1), start, 7 * 9 * width, 9 * width, dst, dst_start + first_channel,
                    channel_marker(width))
    tile = volume[1:5, 2:6, 3:7, first_channel:]
    got = dst[dst_start:].reshape(64, width)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got[:, first_channel:], separable(B_T, tile).reshape(64, lanes), rtol=tolerance,
                               atol=tolerance)
    assert np.isnan(got[:, :first_channel]).all() and np.isnan(dst[:dst_start]).all()


@pytest.mark.parametrize("dtype, width", WIDTHS)
@pytest.mark.parametrize("valid", [0x333, 0x311, 0x133, 0x000, 0x322])
def test_winograd_output_is_a_transpose_along_each_axis(dtype, width, valid):
    """The 2x2x2 voxels at (1, 2, 3) of a (4, 5, 6, filters + 2) output from products ``C`` apart; only the
    voxels whose rows ``valid`` marks (bit x, 4 + y, 8 + z) and only the first ``filters`` channels are
    written."""
    rng = np.random.default_rng(width + valid)
    lanes = lanes_of(dtype, width)
    filters = max(1, lanes - 1)
    products = rng.standard_normal(64 * width + 3).astype(dtype)
    out = np.full((4, 5, 6, filters + 2), np.nan, dtype)
    start = np.ravel_multi_index((1, 2, 3, 1), out.shape)
    transform_output(products, 3, out.reshape(-1), start, 5 * 6 * (filters + 2), 6 * (filters + 2), filters + 2,
                     valid, filters, channel_marker(width))
    tile = products[3:].reshape(64, width)[:, :lanes].reshape(4, 4, 4, lanes)
    want = np.full(out.shape, np.nan)
    for x in range(2):
        for y in range(2):
            for z in range(2):
                if valid >> x & 1 and valid >> (4 + y) & 1 and valid >> (8 + z) & 1:
                    want[1 + x, 2 + y, 3 + z, 1:1 + filters] = separable(A_T, tile)[x, y, z, :filters]
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, want, rtol=tolerance, atol=tolerance)  # NaN where nothing may be written


@pytest.mark.parametrize("channels, dtype, lanes, width", [
    (1, np.float32, 1, 1), (2, np.float32, 2, 2), (3, np.float32, 4, 4), (8, np.float32, 8, 8),
    (9, np.float32, 16, 16), (16, np.float32, 16, 16), (24, np.float32, 16, 32), (70, np.float32, 16, 80),
    (8, np.float64, 8, 8), (12, np.float64, 8, 16), (3, np.float64, 4, 4),
])
def test_lanes_and_padded_channels(channels, dtype, lanes, width):
    assert lanes_for(channels, np.dtype(dtype)) == lanes
    assert padded_channels(channels, np.dtype(dtype)) == width


def test_vector_width():
    assert vector_width(np.dtype(np.float32)) == 16 and vector_width(np.dtype(np.float64)) == 8
