import numpy as np
import pytest

import arrayreg.layer as layer
from arrayreg.nn import Activation, Conv3d, Deconv3d, Dense, MaxPool3d, Norm
from arrayreg.nn import functional as F


def test_lazy_build_keras_order_and_seeded_initializers(rng):
    x = rng.standard_normal((1, 5, 6, 7, 3)).astype(np.float32)
    conv = Conv3d(4, seed=7)
    out = conv(x)
    assert out.shape == (1, 5, 6, 7, 4) and list(conv.weights) == ["kernel", "bias"]
    assert [w.shape for w in conv.get_weights()] == [(3, 3, 3, 3, 4), (4,)]
    again = Conv3d(4, seed=7)
    again.build(x.shape)
    np.testing.assert_array_equal(again.get_weights()[0], conv.get_weights()[0])
    limit = np.sqrt(6 / (27 * 3 + 27 * 4))
    assert np.abs(conv.get_weights()[0]).max() <= limit and not conv.get_weights()[1].any()
    np.testing.assert_allclose(out, F.conv3d(x, *conv.get_weights()), rtol=1e-6)


def test_set_weights_checks_count_and_shapes(rng):
    conv = Conv3d(2, kernel_size=1, use_bias=False)
    with pytest.raises(ValueError, match="has no weights yet"):
        conv.set_weights([np.zeros((1, 1, 1, 3, 2))])
    conv.build((1, 4, 4, 4, 3))
    with pytest.raises(ValueError, match="expects 1 weights \\(kernel\\); got 2"):
        conv.set_weights([np.zeros((1, 1, 1, 3, 2)), np.zeros(2)])
    with pytest.raises(ValueError, match="weight 'kernel' must have shape \\(1, 1, 1, 3, 2\\)"):
        conv.set_weights([np.zeros((1, 1, 1, 2, 2))])
    norm = Norm("batch_norm")
    norm.build((1, 2, 2, 2, 5))
    assert list(norm.weights) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert list(Dense(3)(np.zeros((2, 2, 2, 2, 1))).shape) == [2, 3]


def test_deconv_output_shape_rules(rng):
    x = rng.standard_normal((1, 4, 5, 6, 2)).astype(np.float32)
    assert Deconv3d(3, output_shape=(8, 9, 12), strides=2)(x).shape == (1, 8, 9, 12, 3)
    with pytest.raises(ValueError, match="needs output_padding"):
        Deconv3d(3, output_shape=(10, 10, 12), strides=2)(x)


def test_layer_module_and_errors():
    assert layer.Conv3d is Conv3d and layer.MaxPool3d is MaxPool3d and layer.Activation is Activation
    with pytest.raises(ValueError, match="name must be one of 'batch_norm', 'layer_norm'"):
        Norm("group_norm")
    with pytest.raises(ValueError, match="filters must be an int >= 1"):
        Conv3d(0)
    with pytest.raises(ValueError, match="identifier must be one of"):
        Activation("nope")


def test_blocks_weights_order_build_and_seed(rng):
    from arrayreg.nn import DownSampleResnetBlock, UpSampleResnetBlock

    up = UpSampleResnetBlock(3, seed=5)
    up.build([(1, 4, 5, 6, 6), (1, 8, 10, 12, 3)])
    shapes = [w.shape for w in up.get_weights()]
    # conv3d_block, residual_block (conv3d_block, conv3d, norm), then the deconv3d_block built in build()
    assert shapes[0] == (3, 3, 3, 3, 3) and shapes[-5] == (3, 3, 3, 3, 6) and len(shapes) == 20
    again = UpSampleResnetBlock(3, seed=5)
    again.build([(1, 4, 5, 6, 6), (1, 8, 10, 12, 3)])
    for a, b in zip(up.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = [rng.standard_normal((1, 4, 5, 6, 6)).astype(np.float32), rng.standard_normal((1, 8, 10, 12, 3)).astype(np.float32)]
    assert up(x).shape == (1, 8, 10, 12, 3)
    pooled, skip = DownSampleResnetBlock(4)(rng.standard_normal((1, 8, 8, 8, 2)).astype(np.float32))
    assert pooled.shape == (1, 4, 4, 4, 4) and skip.shape == (1, 8, 8, 8, 4)
    with pytest.raises(ValueError, match="expects 20 weights; got 1"):
        up.set_weights([np.zeros(1)])


def test_weights_round_trip_through_npz(tmp_path, rng):
    from arrayreg.nn import Residual3dBlock

    x = rng.standard_normal((1, 6, 6, 6, 4)).astype(np.float32)
    block = Residual3dBlock(4, seed=1)
    want = block(x)
    block.save_weights(tmp_path / "w.npz")
    other = Residual3dBlock(4, seed=2)
    other.build(x.shape)
    assert not np.allclose(other(x), want)
    other.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(other(x), want)
