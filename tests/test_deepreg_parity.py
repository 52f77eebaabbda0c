"""Every case of DeepReg v0.1.1's reference outputs (computed by DeepReg itself), at atol 1e-5.

The cases come from ``deepreg_v011_tfkeras.npz``: DeepReg v0.1.1 run under
tf_keras (Keras 2, the Keras it was written for), so each layer's weights are
stored in DeepReg's own order and are set here with ``set_weights`` in the
file's order.  Arguments come from each case's ``_meta`` entry, never from its
name.  Layer cases run as soon as ``arrayreg.nn`` has the layer; until then
they skip.
"""

import numpy as np
import pytest

import arrayreg

from .reference_cases import CASES, check_case


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_case(case):
    check_case(case)


def test_reference_file_has_72_cases():
    assert len(CASES) == 72


def test_random_transform_matches_deepreg_published_values():
    published = np.array(
        [
            [0.94661278, -0.0038267835, 0.0036934228],
            [0.0055613145, 0.98034811, -0.018044969],
            [0.00019651605, 0.014576728, 0.96243286],
            [-0.0025107686, 0.019579126, -0.012195010],
        ]
    )
    theta = arrayreg.random_transform_generator(1, 0.1, seed=0)
    assert theta.shape == (1, 4, 3) and theta.dtype == np.float32
    np.testing.assert_allclose(theta[0], published, rtol=0, atol=1e-7)
