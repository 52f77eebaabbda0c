import numpy as np
import pytest

import arrayreg.layer as layer
from arrayreg.nn import Activation, Conv3d, Deconv3d, Dense, MaxPool3d, Norm
from arrayreg.nn import functional as F


def test_lazy_build_keras_order_and_seeded_initializers(rng):
    x = rng.standard_normal((1, 5, 6, 7, 3)).astype(np.float32)
    conv = Conv3d(4, seed=7)
    out = conv(x)
    assert out.shape == (1, 5, 6, 7, 4) and list(conv.weights) == ["conv3d/kernel", "conv3d/bias"]
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
    with pytest.raises(ValueError, match="expects 1 weights \\(conv3d/kernel\\); got 2"):
        conv.set_weights([np.zeros((1, 1, 1, 3, 2)), np.zeros(2)])
    with pytest.raises(ValueError, match="weight 'conv3d/kernel' must have shape \\(1, 1, 1, 3, 2\\)"):
        conv.set_weights([np.zeros((1, 1, 1, 2, 2))])
    norm = Norm("batch_norm")
    norm.build((1, 2, 2, 2, 5))
    assert [path.split("/")[-1] for path in norm.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
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
    # trainable: conv3d_block, residual_block (conv3d_block, conv3d, norm), then the deconv3d_block built in
    # build(), 3 each; then the 4 batch norms' moving statistics
    assert shapes[0] == (3, 3, 3, 3, 3) and shapes[9] == (3, 3, 3, 3, 6) and len(shapes) == 20
    again = UpSampleResnetBlock(3, seed=5)
    again.build([(1, 4, 5, 6, 6), (1, 8, 10, 12, 3)])
    for a, b in zip(up.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = [rng.standard_normal((1, 4, 5, 6, 6)).astype(np.float32),
         rng.standard_normal((1, 8, 10, 12, 3)).astype(np.float32)]
    assert up(x).shape == (1, 8, 10, 12, 3)
    pooled, skip = DownSampleResnetBlock(4)(rng.standard_normal((1, 8, 8, 8, 2)).astype(np.float32))
    assert pooled.shape == (1, 4, 4, 4, 4) and skip.shape == (1, 8, 8, 8, 4)
    with pytest.raises(ValueError, match="expects 20 weights \\(conv3d_block/conv3d/conv3d/kernel, .*\\); got 1"):
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


def keras2_order_of(case):
    """The reference file's weight names for ``case`` with Keras's counters made local and the layer's own
    name dropped: the paths ``layer.weights`` must list, in the same order."""
    from arrayreg.nn.keras import local_paths

    from .reference_cases import DATA

    names = [str(n) for n in DATA[f"{case}.weight_names"]]
    return [path.split("/", 1)[1] for path in local_paths(names)]


@pytest.mark.parametrize("case, ctor, shape", [
    ("Residual3dBlock.f4", dict(filters=4), (2, 8, 8, 8, 4)),
    ("DownSampleResnetBlock.conv", dict(filters=4, pooling=False), (2, 8, 9, 10, 3)),
    ("UpSampleResnetBlock.sum", dict(filters=3), [(2, 4, 5, 6, 6), (2, 8, 10, 12, 3)]),
    ("LocalNetUpSampleResnetBlock.additive", dict(filters=3), [(2, 4, 5, 6, 6), (2, 8, 10, 12, 3)]),
])
def test_blocks_with_several_norms_use_keras2_order_and_round_trip(tmp_path, case, ctor, shape):
    import arrayreg.nn as nn

    block = getattr(nn, case.split(".")[0])(**ctor, seed=3)
    block.build(shape)
    assert list(block.weights) == keras2_order_of(case)
    kinds = [path.rsplit("/", 1)[1] for path in block.weights]
    first_moving = kinds.index("moving_mean")
    assert all(k in ("moving_mean", "moving_variance") for k in kinds[first_moving:])  # trainable ones first
    weights = [np.random.default_rng(i).standard_normal(w.shape).astype(np.float32)
               for i, w in enumerate(block.get_weights())]
    block.set_weights(weights)
    for got, want in zip(block.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    block.set_weights(block.get_weights())
    for got, want in zip(block.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    block.save_weights(tmp_path / "w.npz")
    other = getattr(nn, case.split(".")[0])(**ctor, seed=4)
    other.build(shape)
    other.load_weights(tmp_path / "w.npz")
    for got, want in zip(other.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    with np.load(tmp_path / "w.npz") as saved:
        positional = {k: saved[k] for k in saved.files if k != "weight_names"}
    np.savez(tmp_path / "positional.npz", **positional)  # an npz without names is read in Keras 2 order
    third = getattr(nn, case.split(".")[0])(**ctor, seed=5)
    third.build(shape)
    third.load_weights(tmp_path / "positional.npz")
    for got, want in zip(third.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


def test_build_uses_shapes_only_and_runs_nothing():
    """DeepReg's own tests build up-sampling blocks on shapes whose forward pass would fail (skip channels
    differ from filters); build must accept them, as DeepReg's does."""
    from arrayreg.nn import Deconv3dBlock, LocalNetUpSampleResnetBlock, UpSampleResnetBlock

    up = UpSampleResnetBlock(8)
    up.build([(5, 32, 32, 16, 4), (5, 64, 64, 32, 2)])
    assert up.built and isinstance(up._deconv3d_block, Deconv3dBlock)
    assert up.weights["deconv3d_block/deconv3d/conv3d_transpose/kernel"].shape == (3, 3, 3, 8, 4)
    assert up.weights["conv3d_block/conv3d/conv3d/kernel"].shape == (3, 3, 3, 8, 8)
    local = LocalNetUpSampleResnetBlock(8)
    local.build([(5, 32, 32, 16, 4), (5, 64, 64, 32, 4)])
    assert local.weights["local_net_residual3d_block/conv3d/conv3d/kernel"].shape == (3, 3, 3, 8, 8)
    assert local._additive_upsampling._output_shape == (64, 64, 32)
    with pytest.raises(ValueError, match="UpSampleResnetBlock is called on a list \\[down_sampled, skip\\]"):
        UpSampleResnetBlock(8).build((5, 32, 32, 16, 4))


@pytest.mark.parametrize("layer, shape", [
    ("Conv3d(3, strides=2, padding='valid')", (2, 9, 8, 7, 2)),
    ("Conv3d(3, kernel_size=(3, 1, 2), strides=(2, 1, 3))", (2, 9, 8, 7, 2)),
    ("Deconv3d(3, strides=2, padding='valid')", (2, 4, 5, 3, 2)),
    ("Deconv3d(3, strides=2)", (2, 4, 5, 3, 2)),
    ("Deconv3d(3, output_shape=(7, 10, 5), strides=2)", (2, 4, 5, 3, 2)),
    ("MaxPool3d(3, strides=2, padding='same')", (2, 9, 8, 7, 2)),
    ("MaxPool3d(2, padding='valid')", (2, 9, 8, 7, 2)),
    ("Dense(4)", (2, 3, 4, 5, 2)),
])
def test_compute_output_shape_agrees_with_the_forward_pass(layer, shape, rng):
    from arrayreg.nn import Deconv3d, Dense, MaxPool3d  # noqa: F401 (used by eval)

    made = eval(layer)
    x = rng.standard_normal(shape).astype(np.float32)
    assert made.compute_output_shape(shape) == made(x).shape
