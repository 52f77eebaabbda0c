"""Adversarial inputs to every public function: each gives a documented result or a named error.

Never a crash, a hang or an out-of-bounds access (``.ci/run`` also runs this
module with ``NUMBA_BOUNDSCHECK=1``).
"""

import numpy as np
import pytest

import arrayreg
from arrayreg.nn import AdditiveUpSampling, IntDVF, Warping

BAD_VALUES = [np.nan, np.inf, -np.inf, 1e38, -1e38, -0.0, 1e-40, -1e-45]
MODES = [
    dict(),
    dict(interpolation="nearest"),
    dict(boundary="constant", fill_value=-7.0),
    dict(interpolation="nearest", boundary="constant", fill_value=-7.0),
]


def small(rng, shape, dtype=np.float32):
    return rng.uniform(-1, 1, shape).astype(dtype)


# ------------------------------------------------------------------- values
@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("mode", MODES, ids=["linear", "nearest", "constant", "nearest-constant"])
def test_bad_displacements_give_documented_values(rng, bad, mode):
    image = small(rng, (1, 4, 5, 6))
    ddf = np.zeros((1, 4, 5, 6, 3), np.float32)
    ddf[0, 2, 2, 2, 1] = bad
    out = arrayreg.warp_image_ddf(image, ddf, **mode)
    others = np.ones(out.shape, bool)
    others[0, 2, 2, 2] = False
    np.testing.assert_array_equal(out[others], image[others])
    value = out[0, 2, 2, 2]
    constant = mode.get("boundary") == "constant"
    if np.isnan(bad):
        assert (value == -7.0) if constant else np.isnan(value)
    elif abs(bad) > 10:
        edge = 0 if bad < 0 else 4
        assert value == (-7.0 if constant else image[0, 2, edge, 2])
    else:  # -0.0 and denormals are zero displacements for every purpose
        assert value == image[0, 2, 2, 2]


@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("n_dims", [1, 2, 3, 4])
def test_bad_locations_stay_in_bounds_for_every_dimension(rng, bad, n_dims):
    vol = small(rng, (1,) + (3, 4, 5, 2)[:n_dims] + (2,))
    loc = np.full((1, 3, n_dims), 1.0, np.float32)
    loc[0, 1, -1] = bad
    for mode in MODES:
        out = arrayreg.resample(vol, loc, **mode)
        assert out.shape == (1, 3, 2)
        np.testing.assert_array_equal(out[0, 0], out[0, 2])
        if np.isnan(bad):
            expected_nan = mode.get("boundary") != "constant"
            assert np.isnan(out[0, 1]).all() == expected_nan


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e38])
def test_bad_image_values_propagate_arithmetically(rng, bad):
    image = small(rng, (1, 4, 5, 6))
    image[0, 1, 1, 1] = bad
    ddf = np.full((1, 4, 5, 6, 3), 0.25, np.float32)
    out = arrayreg.warp_image_ddf(image, ddf)
    assert out.shape == image.shape
    # voxels whose corners avoid the bad one stay finite
    assert np.isfinite(out[0, 2:, 2:, 2:]).all()
    resized = arrayreg.resize3d(image, (8, 10, 12))
    assert np.isfinite(resized[0, 5:, 5:, 5:]).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e38, -0.0, 1e-40])
def test_bad_thetas_and_grids(rng, bad):
    grid = arrayreg.get_reference_grid((3, 4, 5))
    theta = arrayreg.random_transform_generator(2, 0.2, seed=1)
    theta[1, 3, 0] = bad
    out = arrayreg.warp_grid(grid, theta)
    assert out.shape == (2, 3, 4, 5, 3)
    np.testing.assert_allclose(out[0], arrayreg.warp_grid(grid, theta[:1])[0])
    grid = grid.copy()
    grid[0, 0, 0, 0] = bad
    assert arrayreg.warp_grid(grid, theta[:1]).shape == (1, 3, 4, 5, 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1e38])
def test_bad_velocity_fields(rng, bad):
    dvf = small(rng, (1, 5, 6, 7, 3))
    dvf[0, 2, 3, 4, 0] = bad
    out = IntDVF((5, 6, 7), num_steps=3)(dvf)
    assert out.shape == dvf.shape and out.dtype == np.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_pyramid_combination_propagates(bad):
    values = [np.ones(3)] * 4
    weights = [np.array([0.5, bad, 0.5])] * 2
    with np.errstate(invalid="ignore"):
        out = arrayreg.pyramid_combination(values, weights)
    assert np.isfinite(out[0]) and np.isfinite(out[2]) and not np.isfinite(out[1])


# ------------------------------------------------------------------- shapes
def test_zero_size_axes_give_empty_outputs_or_errors(rng):
    assert arrayreg.warp_image_ddf(np.zeros((0, 3, 3, 3)), np.zeros((0, 2, 2, 2, 3))).shape == (0, 2, 2, 2)
    assert arrayreg.warp_image_ddf(np.zeros((1, 3, 3, 3)), np.zeros((1, 0, 2, 2, 3))).shape == (1, 0, 2, 2)
    assert arrayreg.warp_grid(np.zeros((0, 2, 2, 3)), np.zeros((1, 4, 3))).shape == (1, 0, 2, 2, 3)
    assert arrayreg.integrate_dvf(np.zeros((1, 0, 2, 2, 3))).shape == (1, 0, 2, 2, 3)
    assert arrayreg.resize3d(np.zeros((0, 2, 2, 2)), (3, 3, 3)).shape == (0, 3, 3, 3)
    with pytest.raises(ValueError, match="image must have at least one voxel"):
        arrayreg.warp_image_ddf(np.zeros((1, 0, 3, 3)), np.zeros((1, 2, 2, 2, 3)))
    with pytest.raises(ValueError, match="image must have at least one voxel"):
        arrayreg.resize3d(np.zeros((2, 0, 3)), (3, 3, 3))
    with pytest.raises(ValueError, match="output_shape"):
        AdditiveUpSampling((0, 2, 2))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: arrayreg.resample(np.float32(1), np.zeros((1, 2, 3))), "vol shape inconsistent with loc"),
        (lambda: arrayreg.resample(np.zeros((1, 3, 3, 3)), np.float32(1)), "loc must have shape"),
        (lambda: arrayreg.warp_image_ddf(np.float32(1), np.zeros((1, 2, 2, 2, 3))), "image shape must be"),
        (lambda: arrayreg.warp_image_ddf(np.zeros((1, 2, 2, 2)), np.float32(1)), "ddf shape must be"),
        (lambda: arrayreg.warp_grid(np.float32(1), np.zeros((1, 4, 3))), "grid must have shape"),
        (lambda: arrayreg.warp_grid(np.zeros((2, 2, 2, 3)), np.float32(1)), "theta must have shape"),
        (lambda: arrayreg.resize3d(np.float32(1), (2, 2, 2)), "resize3d takes input image of dimension"),
        (lambda: arrayreg.integrate_dvf(np.float32(1)), "dvf shape must be"),
        (lambda: AdditiveUpSampling((2, 2, 2))(np.zeros((1, 2, 2, 2))), "inputs must have shape"),
        (lambda: Warping((2, 2, 2))([np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 2))]), "ddf shape must be"),
        (lambda: IntDVF((2, 2, 2))(np.zeros((2, 2, 2, 3))), "dvf shape must be"),
        (lambda: arrayreg.get_reference_grid(np.zeros(())), "grid_size must be"),
    ],
)
def test_wrong_ranks_and_0d_arrays_are_named_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ------------------------------------------------------------------ layouts
@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "big-endian"])
def test_memory_layouts_give_the_same_results(rng, layout):
    image = small(rng, (2, 5, 6, 7, 2))
    ddf = rng.uniform(-2, 2, (2, 4, 5, 6, 3)).astype(np.float32)

    def transform(a):
        if layout == "fortran":
            return np.asfortranarray(a)
        if layout == "strided":
            wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
            wide[..., ::2] = a
            return wide[..., ::2]
        if layout == "readonly":
            b = a.copy()
            b.setflags(write=False)
            return b
        return a.astype(a.dtype.newbyteorder(">"))

    calls = [
        lambda i, d: arrayreg.warp_image_ddf(i, d),
        lambda i, d: arrayreg.warp_image_ddf(i, d, interpolation="nearest", boundary="constant"),
        lambda i, d: arrayreg.resample(i, d),
        lambda i, d: arrayreg.resize3d(i, (3, 8, 4)),
        lambda i, d: arrayreg.integrate_dvf(d, 3),
        lambda i, d: arrayreg.warp_grid(d[0], np.tile(np.eye(4, 3, dtype=np.float32), (2, 1, 1))),
        lambda i, d: AdditiveUpSampling((6, 7, 8))(i),
    ]
    for call in calls:
        np.testing.assert_array_equal(call(transform(image), transform(ddf)), call(image, ddf))


# -------------------------------------------------------------------- types
def test_integer_coordinates_and_lists(rng):
    image = small(rng, (1, 4, 5, 6))
    ddf = rng.integers(-2, 3, (1, 4, 5, 6, 3))
    np.testing.assert_array_equal(arrayreg.warp_image_ddf(image, ddf),
                                  arrayreg.warp_image_ddf(image, ddf.astype(np.float32)))
    out = arrayreg.warp_image_ddf(image.tolist(), ddf.tolist())
    assert out.shape == image.shape
    # Python floats are float64, so lists compute in float64
    np.testing.assert_array_equal(arrayreg.resize3d(image.tolist(), (2, 2, 2)),
                                  arrayreg.resize3d(image.astype(np.float64), (2, 2, 2)))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: arrayreg.resample(np.zeros((2, 3, 3)), np.zeros((1, 4, 2))), ValueError, "same batch size"),
        (lambda: arrayreg.warp_image_ddf(np.zeros((2, 3, 3, 3)), np.zeros((1, 3, 3, 3, 3))), ValueError,
         "same batch size"),
        (lambda: arrayreg.resample(np.zeros((1, 3, 3)), [[["a", "b"]]]), TypeError, "loc must hold real numbers"),
        (lambda: arrayreg.resample(np.zeros((1, 3, 3), complex), np.zeros((1, 1, 2))), TypeError,
         "vol must hold real numbers"),
        (lambda: arrayreg.warp_image_ddf(np.zeros((1, 3, 3, 3)), np.zeros((1, 3, 3, 3, 3), bool)), TypeError,
         "ddf must hold numbers"),
        (lambda: arrayreg.warp_image_ddf(np.zeros((1, 3, 3, 3)), np.zeros((1, 3, 3, 3, 3)), interpolation=None),
         ValueError, "interpolation must be one of"),
        (lambda: arrayreg.resize3d(np.zeros((3, 3, 3)), (2, 2, 2), method="area"), ValueError, "method must be one of"),
        (lambda: arrayreg.resize3d(np.zeros((3, 3, 3)), 5), TypeError, "size must be"),
        (lambda: arrayreg.random_transform_generator(1.5, 0.1), ValueError, "batch_size must be"),
        (lambda: IntDVF((2, 2, 2), num_steps=1.0), ValueError, "num_steps must be"),
        (lambda: arrayreg.warp_image_ddf(np.zeros((1, 3, 3, 3), np.uint8), np.zeros((1, 3, 3, 3, 3)),
                                         interpolation="nearest", boundary="constant", fill_value=300),
         ValueError, "fill_value must be an integer in \\[0, 255\\]"),
    ],
)
def test_type_and_batch_errors_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- big index
def test_index_arithmetic_beyond_two_to_the_31_elements():
    # A 2.2e9-voxel uint8 label map from np.zeros: only the pages we touch are ever allocated.
    shape = (1, 2048, 1024, 1040)
    assert np.prod(shape) > 2**31
    labels = np.zeros(shape, np.uint8)
    labels[0, 2047, 1023, 1039] = 7
    labels[0, 2047, 1023, 1000] = 5
    labels[0, 1100, 3, 1] = 9
    loc = np.array([[[2047, 1023, 1039], [2046.6, 1022.7, 1000.2], [1100, 3, 1], [5000, 5000, 5000]]], np.float32)
    out = arrayreg.resample(labels, loc, interpolation="nearest")
    np.testing.assert_array_equal(out[0], [7, 5, 9, 7])
    linear = arrayreg.resample(labels, np.array([[[2047, 1023, 1038.5]]], np.float64))
    assert linear[0, 0] == 3.5


def test_big_endian_float64_keeps_float64(rng):
    """NIfTI files from big-endian machines and FITS files load as '>f8': the result stays float64."""
    image = rng.standard_normal((1, 4, 5, 6))
    ddf = rng.uniform(-1, 1, (1, 4, 5, 6, 3))
    big_image, big_ddf = image.astype(">f8"), ddf.astype(">f8")
    runs = {
        "warp_image_ddf": lambda i, d: arrayreg.warp_image_ddf(i, d),
        "resample": lambda i, d: arrayreg.resample(i, d),
        "resize3d": lambda i, d: arrayreg.resize3d(i, (3, 7, 5)),
        "warp_grid": lambda i, d: arrayreg.warp_grid(d[0], np.eye(4, 3)[None].astype(d.dtype)),
        "integrate_dvf": lambda i, d: arrayreg.integrate_dvf(d, 3),
    }
    for name, run in runs.items():
        got, want = run(big_image, big_ddf), run(image, ddf)
        assert got.dtype == np.float64, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_an_axis_longer_than_2_to_the_24_is_never_indexed_past_its_end():
    """float32 rounds 2**24 + 3 up to 2**24 + 4: a clamped coordinate must still index at most dim - 1.

    Past the end of batch 0's axis lies batch 1 (all 7), so an index of ``dim`` would read 7.
    """
    n = 2**24 + 4
    vol = np.full((2, n, 1, 1), 7, np.uint8)
    vol[0] = 5
    loc = np.array([[[np.inf, 0, 0]], [[0, 0, 0]]], np.float32)
    np.testing.assert_array_equal(arrayreg.resample(vol, loc, "nearest")[:, 0], [5, 7])
    np.testing.assert_array_equal(arrayreg.resample(vol, loc)[:, 0], [5, 7])
    np.testing.assert_array_equal(arrayreg.resample(vol, loc, boundary="constant", fill_value=0)[:, 0], [0, 7])
    ddf = np.zeros((2, 1, 1, 1, 3), np.float32)
    ddf[0, 0, 0, 0, 0] = 1e30
    np.testing.assert_array_equal(arrayreg.warp_image_ddf(vol, ddf, interpolation="nearest").ravel(), [5, 7])
    np.testing.assert_array_equal(arrayreg.warp_image_ddf(vol, ddf).ravel(), [5, 7])


def test_longdouble_is_refused_naming_the_argument(rng):
    image = rng.standard_normal((1, 3, 4, 5)).astype(np.longdouble)
    ddf = np.zeros((1, 3, 4, 5, 3), np.float32)
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("np.longdouble is float64 on this platform")
    with pytest.raises(TypeError, match="image must be float16, float32 or float64; got float128"):
        arrayreg.resize3d(image, (2, 2, 2), "nearest")
    with pytest.raises(TypeError, match="vol must be float16, float32 or float64"):
        arrayreg.resample(image, ddf, "nearest")
    with pytest.raises(TypeError, match="ddf must be float16, float32 or float64"):
        arrayreg.warp_image_ddf(image.astype(np.float32), ddf.astype(np.longdouble))


def test_masked_arrays_are_refused_naming_the_argument(rng):
    ddf = np.ma.masked_greater(np.zeros((1, 3, 4, 5, 3), np.float32), 1.0)
    ddf[0, 0, 0, 0, 0] = np.ma.masked
    with pytest.raises(TypeError, match="ddf is a masked array"):
        arrayreg.warp_image_ddf(np.zeros((1, 3, 4, 5), np.float32), ddf)


def test_a_fill_value_that_overflows_the_output_dtype_is_refused(rng):
    image = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
    ddf = np.full((1, 3, 4, 5, 3), 10.0, np.float32)
    for fill in (1e300, -np.inf, np.inf):
        with pytest.raises(ValueError, match="fill_value must be finite in the output dtype float32"):
            arrayreg.warp_image_ddf(image, ddf, boundary="constant", fill_value=fill)
    warped = arrayreg.warp_image_ddf(image.astype(np.float64), ddf, boundary="constant", fill_value=1e300)
    assert np.all(warped == 1e300)
    assert np.all(np.isnan(arrayreg.warp_image_ddf(image, ddf, boundary="constant", fill_value=np.nan)))


def test_random_ddf_refuses_a_displacement_beyond_float32():
    with pytest.raises(ValueError, match="max_displacement must be a finite float32 number"):
        arrayreg.random_ddf((4, 4, 4), 1e39, 2.0, seed=0)


def test_list_inputs_are_converted_and_bad_ones_named():
    with pytest.raises(TypeError, match="values must be a list of arrays"):
        arrayreg.pyramid_combination(None, [0.5])
    with pytest.raises(TypeError, match="weights must be a list of arrays"):
        arrayreg.pyramid_combination([1.0, 2.0], 0.5)
    # nested lists: floor corner [1, 2] and ceil corner [3, 4] with floor weights [0.5, 0.25]
    np.testing.assert_allclose(arrayreg.pyramid_combination([[1.0, 2.0], [3.0, 4.0]], [[0.5, 0.25]]), [2.0, 3.5])
    with pytest.raises(TypeError, match="dvf must be an array of numbers"):
        IntDVF((2, 2, 2))([[1, 2], [3]])


def test_a_bias_of_the_wrong_length_is_named():
    from arrayreg.nn import functional as F

    x = np.ones((1, 4, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\), one value per filter of the kernel; "
                                         r"got \(5,\)"):
        F.conv3d(x, np.ones((3, 3, 3, 2, 3), np.float32), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        F.conv3d_transpose(x, np.ones((3, 3, 3, 4, 2), np.float32), np.zeros(2, np.float32))
