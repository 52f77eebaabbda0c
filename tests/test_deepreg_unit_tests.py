"""DeepReg v0.1.1's own unit tests (``test/unit/test_layer_util.py``, ``test_layer.py``), ported to arrayreg.

Each test keeps DeepReg's inputs and expectations, with NumPy in place of
TensorFlow; only what arrayreg does not model is left out (Keras's
``get_config`` and the wrapped Keras layer objects, ``Deconv3d._deconv3d``).
Where DeepReg raises ``AssertionError`` arrayreg raises ``ValueError``.
"""

import numpy as np
import pytest

import arrayreg.layer as layer
import arrayreg.layer_util as layer_util


def is_equal(a, b, atol=1e-5):
    return np.asarray(a).shape == np.asarray(b).shape and np.allclose(a, b, rtol=0, atol=atol)


# -- test_layer_util.py

def test_get_reference_grid():
    want = np.array([[[[0, 0, 0], [0, 0, 1], [0, 0, 2]], [[0, 1, 0], [0, 1, 1], [0, 1, 2]]]], np.float32)
    assert is_equal(want, layer_util.get_reference_grid(grid_size=[1, 2, 3]))


def test_get_n_bits_combinations():
    assert layer_util.get_n_bits_combinations(1) == [[0], [1]]
    assert layer_util.get_n_bits_combinations(2) == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert layer_util.get_n_bits_combinations(3) == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1],
                                                     [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]]


def test_pyramid_combinations():
    got = layer_util.pyramid_combination(values=np.array([[1], [2]], np.float32),
                                         weights=np.array([[0.2]], np.float32))
    assert is_equal(got, np.array([1.8], np.float32))
    values = np.array([[1], [2], [3], [4]], np.float32)
    got = layer_util.pyramid_combination(values=values, weights=np.array([[0.2], [0.3]], np.float32))
    assert is_equal(got, np.array([3.3], np.float32))
    with pytest.raises(ValueError) as err_info:
        layer_util.pyramid_combination(values=np.array([[1], [2]], np.float32),
                                       weights=np.array([[[0.2]], [[0.2]]], np.float32))
    assert "In pyramid_combination, elements of values and weights should have same dimension" in str(err_info.value)
    with pytest.raises(ValueError) as err_info:
        layer_util.pyramid_combination(values=np.array([[1]], np.float32), weights=np.array([[0.2]], np.float32))
    assert "In pyramid_combination, num_dim = len(weights), len(values) must be 2 ** num_dim" in str(err_info.value)


def test_resample():
    vol = np.array([[[0, 1, 2], [3, 4, 5]]], np.float32)
    loc = np.array([[[[0, 0], [0, 1], [0, 3]], [[0.4, 0], [0.5, 1], [0.6, 2]],
                     [[0.4, 0.7], [0.5, 0.5], [0.6, 0.3]]]], np.float32)
    want = np.array([[[0, 1, 2], [1.2, 2.5, 3.8], [1.9, 2, 2.1]]], np.float32)
    assert is_equal(want, layer_util.resample(vol=vol, loc=loc, interpolation="linear"))
    vol_ch = np.stack([vol, vol], axis=-1)
    assert is_equal(np.stack([want, want], axis=-1), layer_util.resample(vol=vol_ch, loc=loc, interpolation="linear"))
    with pytest.raises(ValueError) as err_info:
        layer_util.resample(vol=np.array([[0]], np.float32), loc=np.array([[0, 0], [0, 0]], np.float32))
    assert "vol shape inconsistent with loc" in str(err_info.value)
    with pytest.raises(ValueError) as err_info:
        layer_util.resample(vol=np.array([[0]], np.float32), loc=np.array([[0, 0], [0, 0]], np.float32),
                            interpolation="some-string")
    assert "resample supports only linear interpolation" in str(err_info.value)
    assert "'nearest'" in str(err_info.value)  # arrayreg also says what it accepts beyond DeepReg


def test_random_transform_generator():
    assert layer_util.random_transform_generator(1, 0).shape == (1, 4, 3)
    expected = np.array([[[9.4661278e-01, -3.8267835e-03, 3.6934228e-03],
                          [5.5613145e-03, 9.8034811e-01, -1.8044969e-02],
                          [1.9651605e-04, 1.4576728e-02, 9.6243286e-01],
                          [-2.5107686e-03, 1.9579126e-02, -1.2195010e-02]]], np.float32)
    assert is_equal(layer_util.random_transform_generator(batch_size=1, scale=0.1, seed=0), expected)


def test_warp_grid():
    grid = np.array([[[[0, 0, 0], [0, 0, 1], [0, 0, 2]], [[0, 1, 0], [0, 1, 1], [0, 1, 2]]]], np.float32)
    theta = np.array([[[0.86, 0.75, 0.48], [0.07, 0.98, 0.01], [0.72, 0.52, 0.97], [0.12, 0.4, 0.04]]], np.float32)
    expected = np.array([[[[[0.12, 0.4, 0.04], [0.84, 0.92, 1.01], [1.56, 1.44, 1.98]],
                           [[0.19, 1.38, 0.05], [0.91, 1.9, 1.02], [1.63, 2.42, 1.99]]]]], np.float32)
    assert is_equal(layer_util.warp_grid(grid=grid, theta=theta), expected)


def test_warp_image_ddf():
    batch_size, fixed_image_size, moving_image_size, channel = 2, (32, 32, 16), (24, 24, 16), 6
    image = np.ones((batch_size, *moving_image_size), np.float32)
    image_ch = np.ones((batch_size, *moving_image_size, channel), np.float32)
    ddf = np.ones((batch_size, *fixed_image_size, 3), np.float32)
    grid_ref = np.ones((1, *fixed_image_size, 3), np.float32)
    assert layer_util.warp_image_ddf(image=image, ddf=ddf, grid_ref=grid_ref).shape == (batch_size, *fixed_image_size)
    assert layer_util.warp_image_ddf(image=image, ddf=ddf, grid_ref=None).shape == (batch_size, *fixed_image_size)
    assert layer_util.warp_image_ddf(image=image_ch, ddf=ddf, grid_ref=grid_ref).shape == (
        batch_size, *fixed_image_size, channel)
    assert layer_util.warp_image_ddf(image=image_ch, ddf=ddf, grid_ref=None).shape == (
        batch_size, *fixed_image_size, channel)
    with pytest.raises(ValueError) as err_info:
        layer_util.warp_image_ddf(image=np.ones(moving_image_size, np.float32), ddf=ddf, grid_ref=grid_ref)
    assert "image shape must be (batch, m_dim1, m_dim2, m_dim3)" in str(err_info.value)
    with pytest.raises(ValueError) as err_info:
        layer_util.warp_image_ddf(image=image, ddf=np.ones((batch_size, *fixed_image_size, 2), np.float32),
                                  grid_ref=grid_ref)
    assert "ddf shape must be (batch, f_dim1, f_dim2, f_dim3, 3)" in str(err_info.value)
    with pytest.raises(ValueError) as err_info:
        layer_util.warp_image_ddf(image=image, ddf=ddf,
                                  grid_ref=np.ones((batch_size, *moving_image_size, 3), np.float32))
    assert "grid_ref shape must be (1, f_dim1, f_dim2, f_dim3, 3) or None" in str(err_info.value)


@pytest.mark.parametrize("input_shape, size, output_shape", [
    ((1, 3, 5), (2, 4, 6), (2, 4, 6)), ((1, 1, 3, 5), (2, 4, 6), (1, 2, 4, 6)),
    ((1, 1, 3, 5, 1), (2, 4, 6), (1, 2, 4, 6, 1)), ((1, 1, 3, 5, 3), (2, 4, 6), (1, 2, 4, 6, 3)),
    ((1, 3, 5), (1, 3, 5), (1, 3, 5)), ((1, 1, 3, 5), (1, 3, 5), (1, 1, 3, 5)),
    ((1, 1, 3, 5, 1), (1, 3, 5), (1, 1, 3, 5, 1)), ((1, 1, 3, 5, 3), (1, 3, 5), (1, 1, 3, 5, 3)),
])
def test_resize3d(input_shape, size, output_shape):
    assert layer_util.resize3d(image=np.ones(input_shape, np.float32), size=size).shape == output_shape


def test_resize3d_errors():
    with pytest.raises(ValueError) as err_info:
        layer_util.resize3d(image=np.ones((1, 1), np.float32), size=(1, 1, 1))
    assert "resize3d takes input image of dimension 3 or 4 or 5" in str(err_info.value)
    with pytest.raises(ValueError) as err_info:
        layer_util.resize3d(image=np.ones((1, 1, 1), np.float32), size=(1, 1))
    assert "resize3d takes size of type tuple/list and of length 3" in str(err_info.value)


# -- test_layer.py

@pytest.mark.parametrize("input_shape, output_shape, expected_shape", [
    ((6, 7, 8), (12, 14, 16), (12, 14, 16)), ((6, 7, 8), (11, 13, 15), (11, 13, 15)), ((6, 7, 8), None, (12, 14, 16)),
])
def test_deconv3d(input_shape, output_shape, expected_shape):
    deconv3d = layer.Deconv3d(filters=3, strides=2, output_shape=output_shape)
    assert deconv3d(np.ones((5, *input_shape, 1), np.float32)).shape == (5, *expected_shape, 3)


def test_deconv3d_block():
    deconv3d_block = layer.Deconv3dBlock(8)
    assert isinstance(deconv3d_block._deconv3d, layer.Deconv3d)
    deconv3d_block._deconv3d.build((8, 8))


def test_residual3d_block():
    res3d_block = layer.Residual3dBlock(8)
    assert isinstance(res3d_block._conv3d_block, layer.Conv3dBlock)
    assert res3d_block._conv3d_block._conv3d.kernel_size == (3, 3, 3)
    assert res3d_block._conv3d_block._conv3d.strides == (1, 1, 1)
    assert res3d_block._conv3d.use_bias is False
    assert res3d_block._conv3d.kernel_size == (3, 3, 3)
    assert res3d_block._conv3d.strides == (1, 1, 1)


def test_downsample_resnet_block():
    model = layer.DownSampleResnetBlock(8)
    assert model._pooling is True
    assert isinstance(model._residual_block, layer.Residual3dBlock)
    assert model._conv3d_block3 is None
    model = layer.DownSampleResnetBlock(8, pooling=False)
    assert model._max_pool3d is None
    assert isinstance(model._conv3d_block3, layer.Conv3dBlock)


def test_upsample_resnet_block():
    model = layer.UpSampleResnetBlock(8)
    model.build([(5, 32, 32, 16, 4), (5, 64, 64, 32, 2)])
    assert model._filters == 8
    assert model._concat is False
    assert isinstance(model._conv3d_block, layer.Conv3dBlock)
    assert isinstance(model._residual_block, layer.Residual3dBlock)
    assert isinstance(model._deconv3d_block, layer.Deconv3dBlock)


def test_init_conv3d_with_resize():
    model = layer.Conv3dWithResize((62, 62, 24), 8)
    assert model._output_shape == (62, 62, 24)
    output = model.call(np.zeros((5, 32, 32, 16, 4)))
    assert output.shape == (5, 62, 62, 24, 8)


def test_warping():
    model = layer.Warping((32, 32, 16))
    assert model.grid_ref.shape == (1, 32, 32, 16, 3)
    inputs = [np.ones((5, 32, 32, 16, 3), np.float32), np.ones((5, 24, 24, 16), np.float32)]
    assert model.call(inputs).shape == (5, 32, 32, 16)


def test_init_dvf():
    model = layer.IntDVF((32, 32, 16))
    assert isinstance(model._warping, layer.Warping)
    assert model._num_steps == 7
    assert model.call(np.ones((5, 32, 32, 16, 3))).shape == (5, 32, 32, 16, 3)


def test_additive_upsampling():
    model = layer.AdditiveUpSampling((32, 32, 16))
    assert model._stride == 2
    assert model._output_shape == (32, 32, 16)
    inputs = np.ones((5, 24, 24, 16, 8))
    assert model(inputs).shape == (5, 32, 32, 16, 4)
    assert model.call(inputs).shape == (5, 32, 32, 16, 4)
    with pytest.raises(ValueError):
        layer.AdditiveUpSampling((32, 32, 16), stride=3)(inputs)


def test_local_net_residual3d_block():
    conv3d_block = layer.LocalNetResidual3dBlock(8)
    assert conv3d_block._conv3d.kernel_size == (3, 3, 3)
    assert conv3d_block._conv3d.strides == (1, 1, 1)
    assert conv3d_block._conv3d.padding == "same"
    assert conv3d_block._conv3d.use_bias is False


def test_local_net_upsample_resnet_block():
    model = layer.LocalNetUpSampleResnetBlock(8)
    model.build([(5, 32, 32, 16, 4), (5, 64, 64, 32, 4)])
    assert model._filters == 8
    assert model._use_additive_upsampling is True
    assert isinstance(model._deconv3d_block, layer.Deconv3dBlock)
    assert isinstance(model._additive_upsampling, layer.AdditiveUpSampling)
    assert isinstance(model._conv3d_block, layer.Conv3dBlock)
    assert isinstance(model._residual_block, layer.LocalNetResidual3dBlock)


def test_int_dvf_needs_a_3d_size():
    with pytest.raises(ValueError, match="fixed_image_size"):
        layer.IntDVF(fixed_image_size=(2, 3))


@pytest.mark.parametrize("name", layer.__all__)
def test_every_layer_has_call_as_keras_does(name):
    cls = getattr(layer, name)
    assert callable(getattr(cls, "call", None)) and cls.call is cls.__call__
