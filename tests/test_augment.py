import tracemalloc

import numpy as np
import pytest

from arrayreg import random_transform_generator
from arrayreg.augment import affine_ddf, random_deformation


def affine_ddf_loops(shape, theta):
    """Brute force in float64: normalise each voxel about the centre, apply theta, map back, subtract."""
    centre = (np.array(shape, np.float64) - 1) / 2
    half = np.maximum(centre, 1.0)
    out = np.empty((theta.shape[0], *shape, 3))
    for b in range(theta.shape[0]):
        for index in np.ndindex(*shape):
            normalised = np.append((np.array(index) - centre) / half, 1.0)
            moved = normalised @ theta[b].astype(np.float64)
            out[(b, *index)] = moved * half + centre - np.array(index)
    return out


@pytest.mark.parametrize("shape", [(5, 6, 7), (1, 4, 9)])
def test_affine_ddf_equals_the_normalised_affine_voxel_by_voxel(shape):
    theta = random_transform_generator(2, 0.3, seed=4)
    got = affine_ddf(shape, theta)
    assert got.shape == (2, *shape, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, affine_ddf_loops(shape, theta), rtol=0, atol=2e-5)


def test_affine_ddf_temporaries_stay_near_the_output_size():
    shape = (64, 64, 64)
    theta = random_transform_generator(1, 0.2, seed=0)
    affine_ddf(shape, theta)  # compile first
    tracemalloc.start()
    out = affine_ddf(shape, theta)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= 2.2 * out.nbytes  # the output and the float32 reference grid, nothing float64


def test_random_deformation_is_seeded_and_bounded():
    a = random_deformation((12, 10, 8), seed=3, scale=0.1, max_velocity=2.0)
    b = random_deformation((12, 10, 8), seed=np.random.default_rng(3), scale=0.1, max_velocity=2.0)
    assert a.shape == (1, 12, 10, 8, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and np.abs(a).max() < 12
    assert not np.array_equal(a, random_deformation((12, 10, 8), seed=4))
