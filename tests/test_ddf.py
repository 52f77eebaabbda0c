import numpy as np
import pytest

from arrayreg import get_reference_grid, integrate_dvf, random_ddf, resample, warp_image_ddf

from .reference import linear_constant, map_coordinates_batched, one_hot_vote, resample_loop


def smooth_ddf(rng, shape, amplitude=3.0, batch=1):
    """A smooth random DDF: a few low-frequency sines per component."""
    grids = np.meshgrid(*[np.linspace(0, np.pi, s) for s in shape], indexing="ij")
    ddf = np.zeros((batch,) + shape + (3,), np.float32)
    for b in range(batch):
        for c in range(3):
            phase = rng.uniform(0, np.pi, 3)
            ddf[b, ..., c] = (amplitude * np.sin(grids[0] + phase[0]) * np.cos(grids[1] + phase[1])
                              * np.sin(grids[2] + phase[2]))
    return ddf


@pytest.mark.parametrize("channels", [None, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_warp_matches_scipy_with_different_moving_and_fixed_sizes(rng, channels, dtype):
    image = rng.standard_normal((2, 9, 10, 11) + ((channels,) if channels else ())).astype(dtype)
    ddf = rng.uniform(-3, 3, (2, 6, 7, 8, 3)).astype(dtype)
    loc = get_reference_grid((6, 7, 8))[None] + ddf
    got = warp_image_ddf(image, ddf)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, map_coordinates_batched(image, loc), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_default_warp_rows_equal_resample_points_bitwise(rng, channels, dtype):
    """The row kernels of the default mode (fused for 1 to 4 channels, gather rows with int32 offsets for 5)
    against the per-point resample."""
    image = rng.standard_normal((2, 9, 10, 11, channels)).astype(dtype)
    ddf = rng.uniform(-4, 4, (2, 6, 7, 8, 3)).astype(dtype)
    want = resample(image, get_reference_grid((6, 7, 8))[None].astype(dtype) + ddf)
    np.testing.assert_array_equal(warp_image_ddf(image, ddf), want)


@pytest.mark.parametrize("channels", [None, 2, 3, 5])
@pytest.mark.parametrize("boundary", ["clamp", "constant"])
def test_rows_longer_than_a_stack_tile_equal_resample_points_bitwise(rng, channels, boundary):
    """Rows of 600 points: the fused kernel's third, partial tile of 256, with points outside in every tile."""
    image = rng.standard_normal((1, 3, 4, 590) + ((channels,) if channels else ())).astype(np.float32)
    ddf = rng.uniform(-3, 3, (1, 3, 2, 600, 3)).astype(np.float32)
    ddf[0, 1, 1, ::97] = [0.0, 0.0, -700.0]
    ddf[0, 2, 0, 5::150, 2] = np.nan
    want = resample(image, get_reference_grid((3, 2, 600))[None] + ddf, boundary=boundary, fill_value=-1.5)
    np.testing.assert_array_equal(warp_image_ddf(image, ddf, boundary=boundary, fill_value=-1.5), want)


def test_misaligned_data_and_int64_offsets_give_the_same_warp(rng, monkeypatch):
    from arrayreg._kernels import cpu

    image = rng.standard_normal((1, 9, 10, 11, 5)).astype(np.float32)
    labels = rng.integers(0, 4, (1, 9, 10, 11)).astype(np.int16)
    ddf = rng.uniform(-4, 4, (1, 6, 7, 8, 3)).astype(np.float32)
    want, want_labels = warp_image_ddf(image, ddf), warp_image_ddf(labels, ddf, interpolation="label")
    buffer = np.empty(image.size + 1, np.float32)
    shifted = buffer[1:].reshape(image.shape)  # C-contiguous, 4 bytes off a 16-byte boundary
    shifted[...] = image
    assert shifted.ctypes.data % 16 != 0
    np.testing.assert_array_equal(warp_image_ddf(shifted, ddf), want)
    monkeypatch.setattr(cpu, "_offset_type", lambda array: np.empty(0, np.int64))
    np.testing.assert_array_equal(warp_image_ddf(image, ddf), want)
    np.testing.assert_array_equal(warp_image_ddf(labels, ddf, interpolation="label"), want_labels)


def test_warp_equals_resample_of_grid_plus_ddf_bitwise(rng):
    image = rng.standard_normal((2, 9, 10, 11, 3)).astype(np.float32)
    ddf = rng.uniform(-4, 4, (2, 6, 7, 8, 3)).astype(np.float32)
    grid_ref = (1.3 * get_reference_grid((6, 7, 8)) + 0.2)[None]
    for kwargs in [{}, {"interpolation": "nearest"}, {"boundary": "constant", "fill_value": 2.0}]:
        np.testing.assert_array_equal(warp_image_ddf(image, ddf, **kwargs),
                                      resample(image, get_reference_grid((6, 7, 8))[None] + ddf, **kwargs))
        np.testing.assert_array_equal(warp_image_ddf(image, ddf, grid_ref, **kwargs),
                                      resample(image, grid_ref + ddf, **kwargs))


def test_zero_ddf_is_identity(rng):
    image = rng.standard_normal((2, 5, 6, 7, 2)).astype(np.float32)
    np.testing.assert_array_equal(warp_image_ddf(image, np.zeros((2, 5, 6, 7, 3), np.float32)), image)


@pytest.mark.parametrize("shift", [(1, 0, 0), (0, -2, 1), (2, 3, -1)])
def test_integer_translation_is_a_clamped_shift(rng, shift):
    image = rng.standard_normal((1, 6, 7, 8)).astype(np.float32)
    ddf = np.broadcast_to(np.array(shift, np.float32), (1, 6, 7, 8, 3))
    index = [np.clip(np.arange(n) + s, 0, n - 1) for n, s in zip(image.shape[1:], shift)]
    want = image[0][np.ix_(*index)]
    np.testing.assert_array_equal(warp_image_ddf(image, ddf)[0], want)


def test_integer_labels_with_nearest_keep_dtype(rng):
    labels = rng.integers(0, 5, (1, 6, 7, 8)).astype(np.int32)
    ddf = rng.uniform(-1, 1, (1, 6, 7, 8, 3)).astype(np.float32)
    got = warp_image_ddf(labels, ddf, interpolation="nearest")
    assert got.dtype == np.int32
    assert set(np.unique(got)) <= set(np.unique(labels))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1e30])
def test_non_finite_ddf_never_reads_out_of_bounds(rng, bad):
    image = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    ddf = np.zeros((1, 4, 5, 6, 3), np.float32)
    ddf[0, 1, 2, 3, 1] = bad
    out = warp_image_ddf(image, ddf)
    constant = warp_image_ddf(image, ddf, boundary="constant", fill_value=5.0)
    assert np.isnan(out[0, 1, 2, 3]) == np.isnan(bad)
    assert constant[0, 1, 2, 3] == 5.0
    mask = np.ones(out.shape, bool)
    mask[0, 1, 2, 3] = False
    np.testing.assert_array_equal(out[mask], image[mask])


@pytest.mark.parametrize(
    "image_shape, ddf_shape, grid_shape, message",
    [
        ((2, 4, 5), (2, 4, 5, 6, 3), None, "image shape must be \\(batch, m_dim1, m_dim2, m_dim3\\)"),
        ((2, 4, 5, 6), (2, 4, 5, 6, 2), None, "ddf shape must be \\(batch, f_dim1, f_dim2, f_dim3, 3\\)"),
        ((2, 4, 5, 6), (2, 4, 5, 6, 3), (1, 3, 5, 6, 3),
         "grid_ref shape must be \\(1, f_dim1, f_dim2, f_dim3, 3\\) or None"),
        ((2, 4, 5, 6), (2, 4, 5, 6, 3), (2, 4, 5, 6, 3), "grid_ref shape must be"),
        ((2, 4, 5, 6), (3, 4, 5, 6, 3), None, "same batch size"),
    ],
)
def test_deepreg_shape_errors(image_shape, ddf_shape, grid_shape, message):
    grid = None if grid_shape is None else np.zeros(grid_shape, np.float32)
    with pytest.raises(ValueError, match=message):
        warp_image_ddf(np.zeros(image_shape, np.float32), np.zeros(ddf_shape, np.float32), grid)


def test_integrate_zero_field_is_zero_and_zero_steps_is_copy(rng):
    zero = np.zeros((1, 5, 6, 7, 3), np.float32)
    np.testing.assert_array_equal(integrate_dvf(zero, 7), zero)
    dvf = smooth_ddf(rng, (5, 6, 7))
    once = integrate_dvf(dvf, 0)
    np.testing.assert_array_equal(once, dvf)
    assert once is not dvf


def test_integrate_matches_explicit_scaling_and_squaring(rng):
    dvf = smooth_ddf(rng, (8, 9, 10), amplitude=4.0, batch=2)
    ddf = dvf / 2**5
    for _ in range(5):
        ddf = ddf + map_coordinates_batched(ddf, get_reference_grid((8, 9, 10))[None] + ddf)
    np.testing.assert_allclose(integrate_dvf(dvf, 5), ddf, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num_steps", [0, 1, 7, 100, 101, 149, 200, 1100])
def test_integrate_scaling_is_ldexp_bit_for_bit(rng, dtype, num_steps):
    """The first step of integrate_dvf, ``dvf / 2**num_steps``, on values whose quotient is subnormal, zero,
    huge, infinite or NaN: the parallel product where the factor is normal, ldexp beyond."""
    from arrayreg._backend import backend_of
    from arrayreg.ddf import scaled_field

    info = np.finfo(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, -info.tiny, info.max, info.smallest_subnormal,
                        3 * info.smallest_subnormal, 1.5, -2.75e-30], dtype)
    field = np.concatenate([special, rng.standard_normal(3 * 5 * 6 * 7 - special.size).astype(dtype)])
    field = field.reshape(1, 5, 6, 7, 3)
    got = scaled_field(backend_of(dvf=field), field, num_steps)
    want = np.ldexp(field, -num_steps)
    assert got.dtype == dtype and got is not field
    np.testing.assert_array_equal(got.view(f"u{info.bits // 8}"), want.view(f"u{info.bits // 8}"))


def test_integrate_constant_field_is_the_translation(rng):
    # A constant velocity v inside a large volume integrates to the displacement v (away from the edges).
    dvf = np.broadcast_to(np.array([0.75, -0.5, 0.25], np.float32), (1, 12, 12, 12, 3)).copy()
    np.testing.assert_allclose(integrate_dvf(dvf, 4)[0, 3:9, 3:9, 3:9], dvf[0, 3:9, 3:9, 3:9], rtol=0, atol=1e-6)


def test_integrate_errors():
    with pytest.raises(ValueError, match="dvf shape must be"):
        integrate_dvf(np.zeros((1, 4, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="num_steps must be an int >= 0"):
        integrate_dvf(np.zeros((1, 4, 4, 4, 3), np.float32), -1)


def test_warp_allocates_nothing_beyond_its_output(rng):
    import tracemalloc

    image = rng.standard_normal((1, 40, 48, 56)).astype(np.float32)
    ddf = rng.uniform(-3, 3, (1, 40, 48, 56, 3)).astype(np.float32)
    warp_image_ddf(image, ddf)  # compile outside the measurement
    tracemalloc.start()
    out = warp_image_ddf(image, ddf)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= out.nbytes * 1.10


def test_integrate_many_steps_does_not_overflow_the_scale():
    dvf = np.ones((1, 3, 3, 3, 3), np.float32)
    out = integrate_dvf(dvf, 2000)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_random_ddf_is_bounded_seeded_and_smooth():
    a = random_ddf((20, 22, 24), 3.0, 8.0, seed=1, batch_size=2)
    assert a.shape == (2, 20, 22, 24, 3) and a.dtype == np.float32
    assert np.abs(a).max() <= 3.0
    np.testing.assert_array_equal(a, random_ddf((20, 22, 24), 3.0, 8.0, seed=1, batch_size=2))
    # Linear interpolation between control points spaced n / (ceil(n / 8) + 1) output voxels apart:
    # neighbouring voxels differ by at most the full range 2 * 3.0 over that spacing.
    spacing = 20 / (np.ceil(20 / 8) + 1)
    assert np.abs(np.diff(a, axis=1)).max() <= 2 * 3.0 / spacing + 1e-5
    state = np.random.get_state()[1].copy()
    random_ddf((4, 4, 4), 1.0, 2.0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    with pytest.raises(ValueError, match="smoothness must be a finite number > 0"):
        random_ddf((4, 4, 4), 1.0, 0.0)


def test_random_ddf_with_smoothness_below_one_stays_bounded():
    """Below one voxel per control point the control grid stops growing: no unbounded allocation, no overflow."""
    import tracemalloc

    random_ddf((4, 4, 4), 1.0, 1.0, seed=0)  # compile the resize kernel outside the measurement
    tracemalloc.start()
    field = random_ddf((40, 40, 40), 3.0, 0.25, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * field.nbytes
    assert np.abs(field).max() <= 3.0
    tiny = random_ddf((5, 6, 7), 1.0, 5e-324, seed=0)
    assert tiny.shape == (1, 5, 6, 7, 3) and np.all(np.isfinite(tiny))


@pytest.mark.parametrize("channels", [None, 2, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_boundary_warp_matches_a_brute_force_loop_at_the_edges(rng, channels, dtype):
    """Points on, just inside and just outside every face, far outside and NaN; 1 to 4 channels take the
    fused row kernel, 5 the gather rows."""
    image = rng.standard_normal((2, 5, 6, 7) + ((channels,) if channels else ())).astype(dtype)
    shape = (4, 5, 6)
    ddf = rng.uniform(-1.5, 1.5, (2,) + shape + (3,))
    ddf[0, 0, :, :, 0] = 0.0  # x = 0 exactly on the first plane
    ddf[0, 3, :, :, 0] = 1.0  # x = 3 + 1 = 4, the image's top, on the last plane
    ddf[1, :, 0, 0] = [-1.0, 0.0, 0.0]  # x = i - 1: exactly -1 on the first plane
    ddf[1, 2, 2] = [0.0, 1e-6, -2.0 + 1e-6]  # z just inside -1 and just above 0
    ddf[1, 1, 1, 1] = [np.nan, 0, 0]
    ddf[1, 1, 1, 2] = [40.0, -60.0, 0]
    ddf = ddf.astype(dtype)
    got = warp_image_ddf(image, ddf, boundary="constant", fill_value=2.5)
    loc = get_reference_grid(shape)[None].astype(np.float64) + ddf.astype(np.float64)
    finite = np.isfinite(loc).all(-1)
    loc_finite = np.where(finite[..., None], loc, 0.0)
    want = resample_loop(image.astype(np.float64), loc_finite, linear_constant, fill=2.5)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[finite], want[finite], rtol=tolerance, atol=tolerance)
    assert np.all(got[~finite] == 2.5)  # a NaN coordinate has every corner outside
    points = resample(image, get_reference_grid(shape)[None] + ddf, boundary="constant", fill_value=2.5)
    np.testing.assert_array_equal(got, points)  # the row kernel and the point kernel, bit for bit


@pytest.mark.parametrize("boundary", ["clamp", "constant"])
@pytest.mark.parametrize("use_grid", [False, True])
def test_label_warp_equals_a_one_hot_warp_and_argmax(rng, boundary, use_grid):
    labels = rng.choice(np.array([-3, 0, 8, 1000], np.int32), (2, 6, 5, 7, 2))
    ddf = rng.uniform(-3, 3, (2, 4, 5, 6, 3)).astype(np.float32)
    ddf[0, 1, 1] = np.round(ddf[0, 1, 1] * 2) / 2  # corners and half-way points: zero weights and ties
    grid = (1.1 * get_reference_grid((4, 5, 6)) - 0.2)[None] if use_grid else None
    got = warp_image_ddf(labels, ddf, grid, interpolation="label", boundary=boundary, fill_value=8)
    want = one_hot_vote(lambda indicator, fill: warp_image_ddf(indicator, ddf, grid, boundary=boundary,
                                                               fill_value=fill), labels, boundary, 8, np.float32)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def voronoi_labels(points, seeds, ids):
    """The id of the nearest seed to each point: a label map defined everywhere in space."""
    return ids[((points[..., None, :] - seeds) ** 2).sum(-1).argmin(-1)]


def mean_dice(got, truth, ids):
    scores = [2 * ((got == i) & (truth == i)).sum() / ((got == i).sum() + (truth == i).sum())
              for i in ids if (got == i).any() or (truth == i).any()]
    return float(np.mean(scores))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_warp_of_many_labels_is_at_least_as_good_as_nearest(seed):
    """Against the continuous truth: the Voronoi labels evaluated at the displaced points themselves."""
    rng = np.random.default_rng(seed)
    shape = (40, 36, 32)
    seeds = rng.uniform(0, np.array(shape) - 1, (60, 3))
    ids = rng.permutation(1000)[:60].astype(np.int32)
    grid = get_reference_grid(shape).astype(np.float64)
    labels = voronoi_labels(grid, seeds, ids)[None]
    ddf = smooth_ddf(rng, shape, amplitude=3.0)
    truth = voronoi_labels(np.clip(grid + ddf[0], 0, np.array(shape) - 1), seeds, ids)
    label = mean_dice(warp_image_ddf(labels, ddf, interpolation="label")[0], truth, ids)
    nearest = mean_dice(warp_image_ddf(labels, ddf, interpolation="nearest")[0], truth, ids)
    assert label >= nearest


@pytest.mark.parametrize("boundary, mode", [("clamp", "nearest"), ("constant", "grid-constant")])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_cubic_warp_matches_scipy_order_3(rng, boundary, mode, dtype):
    image = (rng.random((2, 9, 10, 11, 2)) * 200).astype(dtype)
    ddf = smooth_ddf(rng, (7, 8, 9), amplitude=4.0, batch=2)
    loc = get_reference_grid((7, 8, 9))[None] + ddf
    got = warp_image_ddf(image, ddf, interpolation="cubic", boundary=boundary, fill_value=30.0)
    want = map_coordinates_batched(image, loc, mode=mode, cval=30.0, order=3)
    assert got.dtype == (np.float64 if dtype == np.float64 else np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * 200)


def test_label_warp_of_a_nan_displacement_gives_the_outside_value():
    labels = np.full((1, 3, 3, 3), 5, np.int16)
    ddf = np.zeros((1, 3, 3, 3, 3), np.float32)
    ddf[0, 1, 1, 1] = [np.nan, 0, 0]
    assert warp_image_ddf(labels, ddf, interpolation="label")[0, 1, 1, 1] == 0
    assert warp_image_ddf(labels, ddf, interpolation="label", boundary="constant", fill_value=9)[0, 1, 1, 1] == 9
    assert (warp_image_ddf(labels, ddf, interpolation="label") == 5).sum() == 26


def test_scratch_lends_its_array_again_and_a_new_one_while_lent():
    from arrayreg.ddf import Scratch

    scratch, field = Scratch(), np.zeros((1, 2, 3, 4, 3), np.float32)
    with scratch.lend(field, np) as spare:
        with scratch.lend(field, np) as other:  # lent already (another thread's call): an array of its own
            assert other is not spare and other.shape == field.shape and other.dtype == field.dtype
    with scratch.lend(field, np) as again:
        assert again is spare
    with scratch.lend(field.astype(np.float64), np) as wider:
        assert wider is not spare and wider.dtype == np.float64
