import numpy as np
import pytest

from arrayreg import random_transform_generator


def test_global_random_state_is_untouched():
    np.random.seed(99)
    before = np.random.get_state()
    expected_next = np.random.random()
    np.random.set_state(before)
    random_transform_generator(4, 0.2, seed=3)
    random_transform_generator(2, 0.2)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert np.random.random() == expected_next


def test_seeded_output_is_deterministic_and_uses_random_state_draws():
    theta = random_transform_generator(2, 0.3, seed=11)
    np.testing.assert_array_equal(theta, random_transform_generator(2, 0.3, seed=11))
    noise = np.random.RandomState(11).uniform(0.7, 1, (2, 4, 3))
    corners = np.array([[-1, -1, -1, 1], [-1, -1, 1, 1], [-1, 1, -1, 1], [1, -1, -1, 1]], float)
    np.testing.assert_allclose(corners @ theta.astype(np.float64), corners[None, :, :3] * noise, atol=1e-6)


def test_generator_seed_is_accepted():
    a = random_transform_generator(3, 0.1, seed=np.random.default_rng(5))
    b = random_transform_generator(3, 0.1, seed=np.random.default_rng(5))
    assert a.shape == (3, 4, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def test_scale_zero_is_identity():
    theta = random_transform_generator(2, 0.0, seed=0)
    want = np.concatenate([np.eye(3), np.zeros((1, 3))])
    np.testing.assert_allclose(theta, np.broadcast_to(want, (2, 4, 3)), atol=1e-7)


@pytest.mark.parametrize("scale", [-0.1, 1.5, float("nan"), "0.1"])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale must be a number in \\[0, 1\\]"):
        random_transform_generator(1, scale)


def test_bad_batch_size_and_seed():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        random_transform_generator(0, 0.1)
    with pytest.raises(TypeError, match="seed must be None, an int"):
        random_transform_generator(1, 0.1, seed="x")
