import numpy as np
import pytest

import arrayreg
from arrayreg import get_n_bits_combinations, get_reference_grid, random_transform_generator, warp_grid


def test_n_bits_combinations():
    assert get_n_bits_combinations(1) == [[0], [1]]
    assert get_n_bits_combinations(2) == [[0, 0], [0, 1], [1, 0], [1, 1]]
    bits = get_n_bits_combinations(4)
    assert [int("".join(map(str, b)), 2) for b in bits] == list(range(16))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_n_bits_combinations_rejects(bad):
    with pytest.raises(ValueError, match="num_bits must be an int >= 1"):
        get_n_bits_combinations(bad)


def test_reference_grid_equals_np_indices():
    grid = get_reference_grid((4, 5, 6))
    assert grid.dtype == np.float32 and grid.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(np.moveaxis(grid, -1, 0), np.indices((4, 5, 6)))


@pytest.mark.parametrize("bad", [(4, 5), (4, 0, 5), (4, 5.0, 6), "abc"])
def test_reference_grid_rejects(bad):
    with pytest.raises(ValueError, match="grid_size"):
        get_reference_grid(bad)


def test_warp_grid_matches_einsum(rng):
    grid = rng.standard_normal((5, 6, 7, 3))
    theta = random_transform_generator(3, 0.3, seed=1)
    padded = np.concatenate([grid, np.ones((5, 6, 7, 1))], axis=-1)
    want = np.einsum("ijkq,bqp->bijkp", padded, theta.astype(np.float64))
    got = warp_grid(grid.astype(np.float32), theta)
    assert got.dtype == np.float32 and got.shape == (3, 5, 6, 7, 3)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(warp_grid(grid, theta), want, rtol=1e-13)


def test_identity_theta_returns_grid():
    grid = get_reference_grid((3, 4, 5))
    theta = np.concatenate([np.eye(3), np.zeros((1, 3))])[None].astype(np.float32)
    np.testing.assert_array_equal(warp_grid(grid, theta)[0], grid)


def test_warp_grid_shape_errors():
    with pytest.raises(ValueError, match="grid must have shape \\(dim1, dim2, dim3, 3\\)"):
        warp_grid(np.zeros((3, 4, 3)), np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match="theta must have shape \\(batch, 4, 3\\)"):
        warp_grid(np.zeros((3, 4, 5, 3)), np.zeros((1, 3, 3)))


def test_warp_grid_out_is_filled_and_returned(rng):
    grid = arrayreg.get_reference_grid((4, 5, 6))
    theta = rng.normal(size=(2, 4, 3)).astype(np.float32)
    out = np.full((2, 4, 5, 6, 3), np.nan, np.float32)
    assert arrayreg.warp_grid(grid, theta, out=out) is out
    homogeneous = np.concatenate([grid, np.ones((4, 5, 6, 1), np.float32)], axis=-1).astype(np.float64)
    np.testing.assert_allclose(out, np.einsum("ijkq,bqp->bijkp", homogeneous, theta.astype(np.float64)), rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("bad, error, message", [
    (np.empty((2, 4, 5, 6, 3), np.float64), ValueError, "dtype float32"),
    (np.empty((1, 4, 5, 6, 3), np.float32), ValueError, r"shape \(2, 4, 5, 6, 3\)"),
    (np.empty((2, 4, 5, 6, 3), np.float32, order="F"), ValueError, "C-contiguous"),
    ([[1.0]], TypeError, "numpy array"),
])
def test_warp_grid_out_errors(rng, bad, error, message):
    theta = rng.normal(size=(2, 4, 3)).astype(np.float32)
    with pytest.raises(error, match=message):
        arrayreg.warp_grid(arrayreg.get_reference_grid((4, 5, 6)), theta, out=bad)


def test_warp_grid_out_must_not_alias_the_grid():
    buffer = np.zeros((1, 4, 5, 6, 3), np.float32)
    with pytest.raises(ValueError, match="share memory with grid"):
        arrayreg.warp_grid(buffer[0], np.zeros((1, 4, 3), np.float32), out=buffer)
