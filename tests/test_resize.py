import numpy as np
import pytest

from arrayreg import resize3d

from .reference import zoom_linear


@pytest.mark.parametrize("in_shape, size", [((5, 6, 7), (10, 12, 14)), ((9, 8, 7), (4, 5, 3)), ((6, 7, 8), (9, 5, 12))])
def test_bilinear_matches_scipy_zoom_grid_mode(rng, in_shape, size):
    volume = rng.standard_normal(in_shape).astype(np.float32)
    got = resize3d(volume, size)
    assert got.shape == size and got.dtype == np.float32
    np.testing.assert_allclose(got, zoom_linear(volume, size), rtol=1e-5, atol=1e-5)


def test_bilinear_batched_channels_match_per_channel_zoom(rng):
    image = rng.standard_normal((2, 4, 5, 6, 3))
    got = resize3d(image, (8, 7, 9))
    assert got.shape == (2, 8, 7, 9, 3) and got.dtype == np.float64
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(got[b, ..., c], zoom_linear(image[b, ..., c], (8, 7, 9)), rtol=1e-12, atol=1e-12)


def nearest_loop(volume, size):
    out = np.empty(size, volume.dtype)
    for index in np.ndindex(size):
        src = tuple(min(int(np.floor((o + 0.5) * n_in / n_out)), n_in - 1)
                    for o, n_in, n_out in zip(index, volume.shape, size))
        out[index] = volume[src]
    return out


@pytest.mark.parametrize("size", [(10, 9, 14), (3, 4, 2), (5, 6, 7)])
def test_nearest_matches_loop_and_keeps_dtype(rng, size):
    labels = rng.integers(0, 9, (2, 5, 6, 7)).astype(np.uint8)
    got = resize3d(labels, size, "nearest")
    assert got.dtype == np.uint8
    for b in range(2):
        np.testing.assert_array_equal(got[b], nearest_loop(labels[b], size))


def test_same_size_returns_input_unchanged(rng):
    image = rng.standard_normal((2, 5, 6, 7, 1)).astype(np.float32)
    assert resize3d(image, (5, 6, 7)) is image


def test_constant_volume_stays_constant():
    out = resize3d(np.full((3, 4, 5), 2.5, np.float32), (7, 2, 9))
    np.testing.assert_array_equal(out, 2.5)


def test_errors():
    with pytest.raises(ValueError, match="resize3d takes input image of dimension 3 or 4 or 5"):
        resize3d(np.zeros((3, 4)), (2, 2, 2))
    with pytest.raises(ValueError, match="resize3d takes size of type tuple/list and of length 3; got \\(2, 2\\)"):
        resize3d(np.zeros((3, 4, 5)), (2, 2))
    with pytest.raises(ValueError, match="method must be one of 'bilinear', 'nearest'; got 'bicubic'"):
        resize3d(np.zeros((3, 4, 5)), (2, 2, 2), "bicubic")
    with pytest.raises(ValueError, match="size must contain 3 positive ints"):
        resize3d(np.zeros((3, 4, 5)), (2, 0, 2))
