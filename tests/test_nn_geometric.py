import numpy as np
import pytest

import arrayreg.layer as layer
from arrayreg import get_reference_grid, integrate_dvf, resize3d, warp_image_ddf
from arrayreg.nn import AdditiveUpSampling, IntDVF, Warping

from .reference import map_coordinates_batched, one_hot_vote


def test_layer_module_reexports_nn():
    assert layer.Warping is Warping and layer.IntDVF is IntDVF and layer.AdditiveUpSampling is AdditiveUpSampling


def test_warping_takes_ddf_first(rng):
    image = rng.standard_normal((2, 9, 8, 7)).astype(np.float32)
    ddf = rng.uniform(-2, 2, (2, 4, 5, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(Warping((4, 5, 6))([ddf, image]), warp_image_ddf(image, ddf))
    nearest = Warping((4, 5, 6), interpolation="nearest", boundary="constant", fill_value=-1)([ddf, image])
    want = warp_image_ddf(image, ddf, interpolation="nearest", boundary="constant", fill_value=-1)
    np.testing.assert_array_equal(nearest, want)


def test_warping_with_label_interpolation_votes_like_a_one_hot_warp(rng):
    labels = rng.integers(0, 4, (2, 9, 8, 7)).astype(np.uint16) * 100
    ddf = rng.uniform(-2, 2, (2, 4, 5, 6, 3)).astype(np.float32)
    got = Warping((4, 5, 6), interpolation="label")([ddf, labels])
    want = one_hot_vote(lambda indicator, fill: Warping((4, 5, 6))([ddf, indicator]), labels, "clamp", 0,
                        np.float32)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, want)


def test_warping_errors():
    with pytest.raises(ValueError, match="ddf shape must be \\(batch, 4, 5, 6, 3\\)"):
        Warping((4, 5, 6))([np.zeros((1, 4, 5, 7, 3)), np.zeros((1, 4, 5, 6))])
    with pytest.raises(TypeError, match="Warping must be called with a list \\[ddf, image\\]"):
        Warping((4, 5, 6))(np.zeros((1, 4, 5, 6, 3)))


def test_int_dvf(rng):
    dvf = rng.uniform(-1, 1, (1, 6, 7, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(IntDVF((6, 7, 8), num_steps=4)(dvf), integrate_dvf(dvf, 4))
    with pytest.raises(ValueError, match="dvf shape must be \\(batch, 6, 7, 8, 3\\)"):
        IntDVF((6, 7, 8))(np.zeros((1, 6, 7, 9, 3)))


@pytest.mark.parametrize("num_steps", [1, 2, 3])
def test_int_dvf_calls_again_give_new_arrays_of_the_same_values(rng, num_steps):
    """The layer keeps its spare field between calls: each call still returns an array of its own, equal
    to scaling and squaring written out with map_coordinates (order 1, nearest: the clamp boundary), for
    an odd and an even number of steps and after a change of dtype."""
    layer_ = IntDVF((5, 6, 7), num_steps=num_steps)
    dvf = rng.uniform(-3, 3, (2, 5, 6, 7, 3)).astype(np.float32)
    ddf = dvf / np.float32(2**num_steps)
    for _ in range(num_steps):
        ddf = ddf + map_coordinates_batched(ddf, get_reference_grid((5, 6, 7))[None] + ddf).astype(np.float32)
    first = layer_(dvf)
    first_copy = first.copy()
    float64 = layer_(dvf.astype(np.float64))
    second = layer_(dvf)
    assert second is not first and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, first_copy)  # not overwritten by the later calls
    np.testing.assert_array_equal(second, first)
    np.testing.assert_allclose(first, ddf, rtol=0, atol=1e-5)
    assert float64.dtype == np.float64
    np.testing.assert_allclose(float64, first, rtol=0, atol=1e-5)


def test_int_dvf_of_small_field_approximates_the_field():
    # For a tiny smooth velocity the flow is close to the velocity itself.
    grid = get_reference_grid((10, 10, 10))
    dvf = (1e-3 * np.sin(grid / 3.0))[None].astype(np.float64)
    np.testing.assert_allclose(IntDVF((10, 10, 10))(dvf), dvf, rtol=0, atol=1e-5)


def test_additive_upsampling_sums_contiguous_channel_groups(rng):
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32)
    resized = resize3d(x, (6, 8, 10))
    want = resized[..., 0:2] + resized[..., 2:4] + resized[..., 4:6]
    np.testing.assert_allclose(AdditiveUpSampling((6, 8, 10), stride=3)(x), want, rtol=1e-6)


def test_additive_upsampling_errors():
    with pytest.raises(ValueError, match="The channel dimension can not be divided by the stride"):
        AdditiveUpSampling((4, 4, 4), stride=2)(np.zeros((1, 2, 2, 2, 3)))
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        AdditiveUpSampling((4, 4, 4), stride=0)
