"""The register-blocked matrix product of the Winograd convolution against NumPy's, in float64."""

import numpy as np
import pytest
from numba import njit

from arrayreg._kernels.microkernel import small_gemm, vector_width


@njit
def product(a, b, c, rows):
    small_gemm(a, b, c, rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, k, vectors", [(1, 1, 1), (4, 16, 2), (7, 5, 3), (9, 32, 2), (64, 16, 2), (3, 3, 1)])
def test_small_gemm_equals_numpy(dtype, rows, k, vectors):
    rng = np.random.default_rng(rows * 100 + k)
    n = vectors * vector_width(np.dtype(dtype))
    a = rng.standard_normal((rows + 2, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.full((rows + 2, n), np.nan, dtype)
    product(a, b, c, rows)
    expected = a[:rows].astype(np.float64) @ b.astype(np.float64)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c[:rows], expected, rtol=tolerance, atol=tolerance * np.abs(expected).max())
    assert np.isnan(c[rows:]).all()  # rows past ``rows`` are left alone


def test_vector_width():
    assert vector_width(np.dtype(np.float32)) == 16 and vector_width(np.dtype(np.float64)) == 8
