"""Property tests (hypothesis) of the geometric core on the CPU backend."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import arrayreg

SHAPES = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6))
FLOATS = st.sampled_from([np.float32, np.float64])
VALUES = st.floats(-1e3, 1e3, allow_nan=False, width=32)
COMMON = settings(max_examples=40, deadline=None)


@st.composite
def images(draw, integer=False):
    shape = draw(SHAPES)
    batch = draw(st.integers(1, 2))
    channels = draw(st.sampled_from([None, 1, 3]))
    full = (batch,) + shape + ((channels,) if channels else ())
    if integer:
        return draw(arrays(np.int16, full, elements=st.integers(-100, 100)))
    return draw(arrays(draw(FLOATS), full, elements=VALUES))


@COMMON
@given(image=images(), interpolation=st.sampled_from(["linear", "nearest"]),
       boundary=st.sampled_from(["clamp", "constant"]))
def test_identity_ddf_returns_the_image_exactly(image, interpolation, boundary):
    ddf = np.zeros(image.shape[:4] + (3,), image.dtype)
    out = arrayreg.warp_image_ddf(image, ddf, interpolation=interpolation, boundary=boundary)
    np.testing.assert_array_equal(out, image)


@COMMON
@given(image=images(), data=st.data())
def test_integer_translation_is_the_clamped_shift(image, data):
    shift = [data.draw(st.integers(-3, 3)) for _ in range(3)]
    ddf = np.broadcast_to(np.array(shift, image.dtype), image.shape[:4] + (3,))
    index = [np.clip(np.arange(n) + s, 0, n - 1) for n, s in zip(image.shape[1:4], shift)]
    want = image[:, index[0]][:, :, index[1]][:, :, :, index[2]]
    np.testing.assert_array_equal(arrayreg.warp_image_ddf(image, ddf), want)
    labels = (image * 0).astype(np.int32) + np.arange(image.size, dtype=np.int32).reshape(image.shape)
    np.testing.assert_array_equal(
        arrayreg.warp_image_ddf(labels, ddf, interpolation="nearest"),
        labels[:, index[0]][:, :, index[1]][:, :, :, index[2]],
    )


@COMMON
@given(shape=SHAPES, coefficients=st.lists(st.floats(-3, 3), min_size=4, max_size=4), seed=st.integers(0, 2**16))
def test_linear_interpolation_reproduces_an_affine_function_inside(shape, coefficients, seed):
    index = np.indices(shape).astype(np.float64)
    vol = (np.tensordot(coefficients[:3], index, axes=1) + coefficients[3])[None]
    loc = np.random.default_rng(seed).uniform(0, np.array(shape) - 1, (1, 20, 3))
    want = loc[0] @ np.array(coefficients[:3]) + coefficients[3]
    np.testing.assert_allclose(arrayreg.resample(vol, loc)[0], want, rtol=1e-9, atol=1e-9)


@COMMON
@given(image=images(), seed=st.integers(0, 2**16), boundary=st.sampled_from(["clamp", "constant"]))
def test_linear_interpolation_stays_within_the_input_range(image, seed, boundary):
    ddf = np.random.default_rng(seed).uniform(-4, 4, image.shape[:4] + (3,)).astype(image.dtype)
    out = arrayreg.warp_image_ddf(image, ddf, boundary=boundary, fill_value=0.0)
    low, high = image.min(), image.max()
    if boundary == "constant":
        low, high = min(low, 0.0), max(high, 0.0)
    slack = 1e-5 * max(1.0, abs(low), abs(high))
    assert out.min() >= low - slack and out.max() <= high + slack


@COMMON
@given(image=images(), method=st.sampled_from(["bilinear", "nearest"]))
def test_resize_to_the_same_size_returns_the_input(image, method):
    assert arrayreg.resize3d(image, image.shape[1:4], method) is image


@COMMON
@given(shape=SHAPES, steps=st.integers(0, 8), seed=st.integers(0, 2**16))
def test_int_dvf_zero_steps_is_the_field_and_zero_field_stays_zero(shape, steps, seed):
    dvf = np.random.default_rng(seed).uniform(-2, 2, (1,) + shape + (3,)).astype(np.float32)
    np.testing.assert_array_equal(arrayreg.IntDVF(shape, num_steps=0)(dvf), dvf)
    zero = np.zeros_like(dvf)
    np.testing.assert_array_equal(arrayreg.IntDVF(shape, num_steps=steps)(zero), zero)
