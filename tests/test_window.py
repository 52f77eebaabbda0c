"""The AVX-512 window tiles of the linear row warp (arrayreg._kernels.window), against a NumPy reference.

The reference is DeepReg's clamped linear interpolation written out in NumPy float32, operation for
operation (clamp, ``hi = ceil(c)``, ``lo = hi - 1`` unless ``hi == 0``, weight ``hi - c``, the corners
combined along axis 0, then 1, then 2): the window tiles must equal it bit for bit.
"""

import ctypes
import mmap
import sys

import numpy as np
import pytest
from numba import njit

import arrayreg
from arrayreg._kernels import window
from arrayreg._kernels.window import WIDTH, takes_windows, window_tile

pytestmark = pytest.mark.skipif(not window.AVAILABLE, reason="the window tiles need an AVX-512 CPU")


def clamped_axis(c, size):
    top = np.float32(size - 1)
    nan = np.isnan(c)
    c = np.where(c < 0, np.float32(0), np.where(c > top, top, c))
    hi_f = np.ceil(c)
    hi = np.where(nan, 0, np.nan_to_num(hi_f)).astype(np.int64)
    lo = np.where(hi > 0, hi - 1, hi)
    return lo, hi, (hi_f - c).astype(np.float32)


def constant_axis(c, size):
    """The constant boundary's corners along one axis: index -1 for a corner outside the volume."""
    top = np.float32(size - 1)
    inside = (c > -1) & (c < top + 1)
    hi_f = np.ceil(np.where(inside, c, 0)).astype(np.float32)
    hi = hi_f.astype(np.int64)
    lo = np.where(inside, hi - 1, -1)
    hi = np.where(inside & (hi_f <= top), hi, -1)
    return lo, hi, np.where(inside, hi_f - c, np.float32(1)).astype(np.float32)


def mix(lo, hi, w):
    return lo * w + hi * (np.float32(1) - w)


def deepreg_warp(image, ddf, fill=None):
    """``image (d1, d2, d3[, ch])`` float32 warped by ``ddf (f1, f2, f3, 3)`` on the reference grid: clamp, or
    with ``fill`` the constant boundary (corners outside are ``fill``)."""
    grid = np.indices(ddf.shape[:3], dtype=np.float32)
    axis = clamped_axis if fill is None else constant_axis
    (i0, i1, wi), (j0, j1, wj), (k0, k1, wk) = (axis(grid[a] + ddf[..., a], image.shape[a]) for a in range(3))
    if image.ndim == 4:
        wi, wj, wk = wi[..., None], wj[..., None], wk[..., None]

    def corner(i, j, k):
        values = image[np.maximum(i, 0), np.maximum(j, 0), np.maximum(k, 0)]
        outside = (i < 0) | (j < 0) | (k < 0)
        return values if fill is None else np.where(outside[..., None] if image.ndim == 4 else outside,
                                                     np.float32(fill), values)

    v = {(a, b, c): corner((i0, i1)[a], (j0, j1)[b], (k0, k1)[c]) for a in (0, 1) for b in (0, 1) for c in (0, 1)}
    f00, f10 = mix(v[0, 0, 0], v[1, 0, 0], wi), mix(v[0, 1, 0], v[1, 1, 0], wi)
    f01, f11 = mix(v[0, 0, 1], v[1, 0, 1], wi), mix(v[0, 1, 1], v[1, 1, 1], wi)
    return mix(mix(f00, f10, wj), mix(f01, f11, wj), wk)


@njit
def _tiles_of_row(src, channel_lanes, dims, disp, xi, yj, coords, top, constant, weights, out):
    """Every whole tile of one row through window_tile: whether each was done."""
    d1, d2, d3 = dims
    n_ch = len(channel_lanes)
    done = np.zeros(out.shape[0] // (WIDTH * n_ch), np.bool_)
    for tile in range(done.shape[0]):
        done[tile] = window_tile(src, channel_lanes, 0, disp, coords, tile * WIDTH, xi, yj, top, d2 * d3 * n_ch,
                                 d3 * n_ch, d3, constant, weights, out)
    return done


def window_warp(image, ddf, constant=False, weights=()):
    """The warp by window tiles alone: NaN where no tile did a point; the tiles' flags; the points done.
    ``image`` is ``(d1, d2, d3)`` or ``(d1, d2, d3, ch)``; ``weights`` as window_tile's."""
    d1, d2, d3 = image.shape[:3]
    channels = image.shape[3] if image.ndim == 4 else 1
    f1, f2, f3 = ddf.shape[:3]
    coords = np.arange(max(image.shape[:3] + ddf.shape[:3]), dtype=np.float32)
    top = tuple(np.float32(s - 1) for s in image.shape[:3])
    out = np.full(ddf.shape[:3] + image.shape[3:], np.nan, np.float32)
    flags = np.zeros((f1, f2, f3 // WIDTH), bool)
    for i in range(f1):
        for j in range(f2):
            flags[i, j] = _tiles_of_row(image.reshape(-1), (0,) * channels, (d1, d2, d3), ddf[i, j].reshape(-1),
                                        coords[i], coords[j], coords, top, constant, weights,
                                        out[i, j].reshape(-1))
    done = np.zeros(ddf.shape[:3], bool)
    done[..., : flags.shape[-1] * WIDTH] = np.repeat(flags, WIDTH, axis=-1)
    return out, flags, done


def smooth_field(shape, amplitude, seed):
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(0, np.pi, s, dtype=np.float32) for s in shape], indexing="ij")
    phases = rng.uniform(0, np.pi, (3, 3)).astype(np.float32)
    return np.stack([amplitude * np.sin(axes[0] + p[0]) * np.cos(axes[1] + p[1]) * np.sin(axes[2] + p[2])
                     for p in phases], axis=-1).astype(np.float32)


@pytest.mark.parametrize("shape, amplitude, least_done", [((16, 16, 64), 2.0, 0.85), ((12, 14, 64), 2.5, 0.8),
                                                         ((6, 7, 32), 1.5, 0.7), ((9, 10, 48), 6.0, 0.3)])
def test_window_tiles_equal_the_reference_bit_for_bit(shape, amplitude, least_done):
    """Smooth fields leave few tiles to the caller; the rougher last one leaves most."""
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    ddf = smooth_field(shape, amplitude, seed=2)
    out, flags, done = window_warp(image, ddf)
    expected = deepreg_warp(image, ddf)
    assert flags.mean() > least_done
    np.testing.assert_array_equal(out[done], expected[done])
    assert np.isnan(out[~done]).all()  # a tile left to the caller writes nothing


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_window_tiles_with_channels(channels):
    """Windows of 32 voxels of every channel, deinterleaved; the tile's values interleaved again."""
    shape = (10, 11, 48)
    image = np.random.default_rng(8).random(shape + (channels,), dtype=np.float32)
    ddf = smooth_field(shape, 1.5, seed=9)
    out, flags, done = window_warp(image, ddf)
    assert flags.mean() > 0.7
    np.testing.assert_array_equal(out[done], deepreg_warp(image, ddf)[done])
    assert np.isnan(out[~done]).all()


def test_constant_boundary_takes_only_tiles_inside():
    """With the constant boundary a tile is done only when all its points lie in (0, top] on every axis."""
    shape = (9, 10, 64)
    image = np.random.default_rng(11).random(shape + (2,), dtype=np.float32)
    ddf = smooth_field(shape, 1.5, seed=12)
    out, flags, done = window_warp(image, ddf, constant=True)
    points = np.indices(shape, dtype=np.float32) + np.moveaxis(ddf, -1, 0)
    top = np.array(shape, np.float32).reshape(3, 1, 1, 1) - 1
    inside = ((points > 0) & (points <= top)).all(0).reshape(shape[:2] + (-1, WIDTH)).all(-1)
    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(flags, inside & window_warp(image, ddf)[1])
    np.testing.assert_array_equal(out[done], deepreg_warp(image, ddf, fill=0.5)[done])


@pytest.mark.parametrize("channels", [None, 3])
def test_warp_image_ddf_constant_with_windows_equals_the_reference(channels):
    shape = (8, 9, 48)
    rng = np.random.default_rng(13)
    image = rng.random((1,) + shape + ((channels,) if channels else ()), dtype=np.float32)
    ddf = smooth_field(shape, 2.5, seed=14)[None]
    out = np.asarray(arrayreg.warp_image_ddf(image, ddf, boundary="constant", fill_value=0.25))
    np.testing.assert_array_equal(out[0], deepreg_warp(image[0], ddf[0], fill=0.25))


def test_every_kind_of_square_tile_occurs_and_agrees():
    """Tiles on one row pair along axes 1 and 2 (4 windows), across two along axis 1 only or axis 2 only
    (6 windows, chosen per point) and across two along both (9 windows)."""
    shape = (10, 12, 64)
    image = np.random.default_rng(3).random(shape, dtype=np.float32)
    ddf = np.zeros(shape + (3,), np.float32)
    steps = np.linspace(0.1, 1.9, WIDTH, dtype=np.float32)  # the lower corner steps up within a tile
    ddf[..., 0], ddf[..., 1] = 0.3, 0.25
    ddf[..., 16:32, 0] = steps  # tile 1: two row pairs along axis 1
    ddf[..., 32:48, 1] = steps  # tile 2: along axis 2
    ddf[..., 48:, 0], ddf[..., 48:, 1] = steps, steps[::-1]  # tile 3: along both
    ddf[..., 2] = -np.linspace(0.0, 3.0, 64, dtype=np.float32)  # points step back along axis 3
    out, flags, done = window_warp(image, ddf)
    assert flags[:-1, :-1].all()
    grid = np.indices(shape, dtype=np.float32)
    spans = [(lambda lower: lower.max(-1) - lower.min(-1))(np.floor(grid[a] + ddf[..., a]).reshape(10, 12, 4, WIDTH))
             for a in (0, 1)]
    kinds = {(int(si), int(sj)) for si, sj in zip(spans[0][:-1, :-1].ravel(), spans[1][:-1, :-1].ravel())}
    assert kinds == {(0, 0), (1, 0), (0, 1), (1, 1)}
    np.testing.assert_array_equal(out[done], deepreg_warp(image, ddf)[done])


def test_nan_inf_and_far_points():
    """NaN points (voxel 0, NaN weight) leave their tile to the caller; infinite and far points clamp (a
    point clamped far along axis 3 falls outside its tile's window, which is then left too)."""
    shape = (5, 6, 64)
    image = np.random.default_rng(4).random(shape, dtype=np.float32)
    ddf = np.full(shape + (3,), 0.4, np.float32)
    ddf[1, 2, 3, 0] = np.nan
    ddf[2, 3, 20:24, 0] = np.inf
    ddf[2, 2, 20:24, 2] = np.inf
    ddf[2, 4, 40:44, 1] = 1e30
    ddf[3, 1, :16, 2] = -np.inf
    out, flags, done = window_warp(image, ddf)
    assert not flags[1, 2, 0] and not flags[2, 2, 1]
    expected = deepreg_warp(image, ddf)
    np.testing.assert_array_equal(out[done], expected[done])
    assert done[2, 3, 20] and done[2, 4, 40] and done[3, 1, 0]


@pytest.fixture
def guarded():
    """``make(shape, at_end)``: a float32 array whose data ends (``at_end``) or starts right at an unreadable
    page, so that a load past its end or before its start faults (and the test process dies)."""
    maps = []

    def make(shape, at_end):
        n_bytes = 4 * int(np.prod(shape))
        pages = -(-n_bytes // mmap.PAGESIZE) + 2
        memory = mmap.mmap(-1, pages * mmap.PAGESIZE)
        maps.append(memory)
        address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
        libc = ctypes.CDLL(None)
        for page in (0, pages - 1):
            assert libc.mprotect(ctypes.c_void_p(address + page * mmap.PAGESIZE), mmap.PAGESIZE, 0) == 0
        first = (pages - 1) * mmap.PAGESIZE - n_bytes if at_end else mmap.PAGESIZE
        return np.frombuffer(memory, np.float32, count=n_bytes // 4, offset=first).reshape(shape)

    yield make


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through the C library")
@pytest.mark.parametrize("at_end", [True, False])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_windows_stay_inside_the_image_at_its_first_and_last_row(guarded, at_end, channels):
    shape = (3, 4, 40)
    image = guarded(shape + ((channels,) if channels > 1 else ()), at_end)
    image[...] = np.random.default_rng(7).random(image.shape, dtype=np.float32)
    ddf = np.zeros(shape + (3,), np.float32)
    # tiles clamped to the first and the last voxel of each row: the windows of the first row start at the
    # image's first voxel, those of the last row end at its last voxel
    ddf[..., 2] = np.where(np.arange(40) < 16, -50.0, 50.0)
    ddf[..., :2] = 0.25
    out, flags, done = window_warp(image, ddf)
    assert flags[:, :, :2].all()
    np.testing.assert_array_equal(out[done], deepreg_warp(image, ddf)[done])


def test_windows_read_nothing_outside_the_image():
    """The image sits in a buffer padded with NaN: a window that read past it would give a NaN."""
    shape = (4, 5, 32)
    pad = 64
    buffer = np.full(pad + np.prod(shape) + pad, np.nan, np.float32)
    image = buffer[pad:-pad].reshape(shape)
    image[...] = np.random.default_rng(5).random(shape, dtype=np.float32)
    ddf = np.zeros(shape + (3,), np.float32)
    ddf[..., 0] = np.where(np.arange(4)[:, None, None] == 0, -3.0, 3.0)  # clamped to the first and last plane
    ddf[..., 2] = np.where(np.arange(32) < 16, -40.0, 40.0)  # windows at the start and the end of the rows
    out, flags, done = window_warp(image, ddf)
    assert done.sum() > done.size // 2
    assert not np.isnan(out[done]).any()
    np.testing.assert_array_equal(out[done], deepreg_warp(image, ddf)[done])


@pytest.mark.parametrize("batch, shape, channels", [(2, (7, 9, 80), None), (1, (6, 8, 37), None),
                                                    (1, (5, 6, 31), None), (2, (6, 7, 40), 3), (1, (5, 6, 33), 2)])
def test_warp_image_ddf_with_windows_equals_the_reference(batch, shape, channels):
    """The whole warp: window tiles, the tiles they leave (a rough patch), rows of every length, batches."""
    rng = np.random.default_rng(6)
    image = rng.random((batch,) + shape + ((channels,) if channels else ()), dtype=np.float32)
    ddf = np.stack([smooth_field(shape, 3.0, seed=b) for b in range(batch)])
    ddf[0, 2, 3, : shape[2] // 2] = rng.normal(0, 4, (shape[2] // 2, 3)).astype(np.float32)
    out = np.asarray(arrayreg.warp_image_ddf(image, ddf))
    for b in range(batch):
        np.testing.assert_array_equal(out[b], deepreg_warp(image[b], ddf[b]))


@njit
def _takes(src, disp, coords, xi, top, out):
    return takes_windows(src, (0,), disp, coords, xi, top, out)


def test_compose_with_windows_equals_the_reference():
    """integrate_dvf's squaring steps warp a 3-channel field: the windows serve them too."""
    shape = (12, 13, 64)
    dvf = smooth_field(shape, 4.0, seed=10)[None]
    half = dvf / np.float32(2)
    composed = np.asarray(arrayreg.integrate_dvf(dvf, 1))[0]
    np.testing.assert_array_equal(composed, half[0] + deepreg_warp(half[0], half[0]))


@pytest.mark.parametrize("boundary", ["clamp", "constant"])
def test_compose_of_fields_of_other_sizes_equals_warp_then_add(boundary):
    """compose_ddf's rows (windows with the weighted sum) where the outer field's rows differ in length from
    the inner one's, against warping the outer field and adding (windows without weights)."""
    outer = smooth_field((7, 8, 40), 2.0, seed=6)[None]
    inner = smooth_field((6, 7, 48), 1.5, seed=7)[None]
    got = np.asarray(arrayreg.compose_ddf(outer, inner, boundary=boundary))
    want = inner + np.asarray(arrayreg.warp_image_ddf(outer, inner, boundary=boundary))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.0, -1.0), (0.5, -2.0)])
def test_tiles_with_weights_store_the_weighted_sum(weights):
    """A composition's tiles store ``w_inner * displacement + w_outer * value`` (3 channels)."""
    shape = (8, 9, 48)
    image = np.random.default_rng(4).standard_normal(shape + (3,)).astype(np.float32)
    ddf = smooth_field(shape, 2.0, seed=5)
    w_inner, w_outer = (np.float32(w) for w in weights)
    out, flags, done = window_warp(image, ddf, weights=(w_inner, w_outer))
    assert flags.mean() > 0.7  # all but the tiles clamped at the first row along axis 1 or 2
    expected = w_inner * ddf + w_outer * deepreg_warp(image, ddf)
    np.testing.assert_array_equal(out[done], expected[done])


def test_windows_take_float32_only():
    row32, row64 = np.zeros(4, np.float32), np.zeros(4, np.float64)
    top32, top64 = (np.float32(1),) * 3, (1.0,) * 3
    assert _takes(row32, row32, row32, np.float32(0), top32, row32)
    assert not _takes(row64, row64, row64, 0.0, top64, row64)
    assert not _takes(row32, row64, row64, 0.0, top64, row32)
