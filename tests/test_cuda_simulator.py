"""The CUDA launch path on Numba's simulator (run in a process with NUMBA_ENABLE_CUDASIM=1).

``.ci/run`` runs this module in its own pytest process.  Inside
``simulated_gpu()`` NumPy inputs take the CUDA path end to end: allocation,
launch configuration (small blocks, so grid-stride loops span several blocks)
and the kernels, which call the same formulas as the CPU loops.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import config

import arrayreg
from arrayreg.testing import simulated_gpu

from . import reference_cases as parity
from .reference import map_coordinates_batched, zoom_linear

pytestmark = pytest.mark.skipif(not config.ENABLE_CUDASIM, reason="needs NUMBA_ENABLE_CUDASIM=1 (a separate process)")

GEOMETRIC = sorted(
    case for case, info in parity.CASES.items()
    if info["function"].startswith("layer_util.")
    or info["function"].split(".")[-1] in ("Warping", "IntDVF", "AdditiveUpSampling")
)


def assert_cuda_path_equals_cpu(runs):
    """Each call of ``runs`` gives the same dtype and bits on the simulated CUDA path as on the CPU."""
    for run in runs:
        cpu = run()
        with simulated_gpu(threads_per_block=16, max_blocks=3):
            gpu = run()
        assert gpu.dtype == cpu.dtype
        np.testing.assert_array_equal(gpu, cpu)


def cuda_calls(monkeypatch):
    """Count launches, to prove the CUDA path (not the CPU loops) ran."""
    from arrayreg._kernels import cuda

    calls = []
    original = cuda._launch

    def counting(kernel, n_threads, *args):
        calls.append(n_threads)
        return original(kernel, n_threads, *args)

    monkeypatch.setattr(cuda, "_launch", counting)
    return calls


@pytest.mark.parametrize("case", GEOMETRIC)
def test_reference_case_on_simulated_gpu(case):
    with simulated_gpu():
        parity.check_case(case)


def test_the_cuda_path_really_runs(monkeypatch, rng):
    calls = cuda_calls(monkeypatch)
    image = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    with simulated_gpu(threads_per_block=8, max_blocks=2):
        arrayreg.warp_image_ddf(image, np.zeros((1, 4, 5, 6, 3), np.float32))
    assert calls == [120]


@pytest.mark.parametrize("n_dims", [2, 3])
@pytest.mark.parametrize("channels", [None, 2])
def test_resample_matches_scipy(rng, n_dims, channels):
    vol = rng.standard_normal((2,) + (5, 6, 4)[:n_dims] + ((channels,) if channels else ())).astype(np.float32)
    loc = rng.uniform(-2, 7, (2, 3, 4, n_dims)).astype(np.float32)
    with simulated_gpu():
        got = arrayreg.resample(vol, loc)
    np.testing.assert_allclose(got, map_coordinates_batched(vol, loc), rtol=1e-5, atol=1e-5)


def test_warp_and_resize_match_scipy(rng):
    image = rng.standard_normal((1, 6, 7, 5)).astype(np.float32)
    ddf = rng.uniform(-2, 2, (1, 4, 5, 6, 3)).astype(np.float32)
    loc = arrayreg.get_reference_grid((4, 5, 6))[None] + ddf
    volume = rng.standard_normal((4, 5, 3)).astype(np.float32)
    with simulated_gpu():
        warped = arrayreg.warp_image_ddf(image, ddf)
        resized = arrayreg.resize3d(volume, (7, 3, 6))
    np.testing.assert_allclose(warped, map_coordinates_batched(image, loc), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(resized, zoom_linear(volume, (7, 3, 6)), rtol=1e-5, atol=1e-5)


CALLS = {
    "resample2d": lambda a: arrayreg.resample(a["vol2"], a["loc2"], **a["mode"]),
    "resample3d": lambda a: arrayreg.resample(a["vol3"], a["loc3"], **a["mode"]),
    "resample1d": lambda a: arrayreg.resample(a["vol1"], a["loc1"], **a["mode"]),
    "warp": lambda a: arrayreg.warp_image_ddf(a["image"], a["ddf"], **a["mode"]),
    "warp_grid_ref": lambda a: arrayreg.warp_image_ddf(a["image"], a["ddf"], a["grid_ref"], **a["mode"]),
}
MODES = [
    {},
    {"interpolation": "nearest"},
    {"boundary": "constant", "fill_value": -1.5},
    {"interpolation": "nearest", "boundary": "constant", "fill_value": 3.0},
]


@pytest.fixture
def inputs(rng):
    ddf = rng.uniform(-3, 3, (2, 3, 4, 5, 3)).astype(np.float32)
    ddf[0, 0, 0, 0] = [np.nan, 1, 1]
    ddf[1, 1, 1, 1] = [1, np.inf, -1e30]
    return {
        "vol1": rng.standard_normal((2, 6, 2)).astype(np.float32),
        "loc1": rng.uniform(-2, 8, (2, 5, 1)).astype(np.float32),
        "vol2": rng.standard_normal((2, 5, 6, 2)).astype(np.float32),
        "loc2": rng.uniform(-2, 8, (2, 4, 5, 2)).astype(np.float32),
        "vol3": rng.standard_normal((2, 5, 6, 4)).astype(np.float32),
        "loc3": rng.uniform(-2, 8, (2, 3, 5, 3)).astype(np.float32),
        "image": rng.standard_normal((2, 6, 5, 4, 2)).astype(np.float32),
        "ddf": ddf,
        "grid_ref": (1.2 * arrayreg.get_reference_grid((3, 4, 5)) - 0.3)[None],
    }


@pytest.mark.parametrize("mode", MODES, ids=["linear", "nearest", "constant", "nearest-constant"])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_cpu_and_cuda_agree_bitwise(inputs, call, mode):
    args = dict(inputs, mode=mode)
    cpu = CALLS[call](args)
    with simulated_gpu(threads_per_block=16, max_blocks=3):
        gpu = CALLS[call](args)
    assert gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
    np.testing.assert_array_equal(gpu, cpu)


@pytest.mark.parametrize("boundary", ["clamp", "constant"])
@pytest.mark.parametrize("call", ["resample3d", "resample2d", "warp", "warp_grid_ref"])
@pytest.mark.parametrize("image_dtype", ["bool", "uint8", "int32", "uint64"])
def test_label_votes_agree_bitwise(rng, call, boundary, image_dtype):
    image, ddf, grid = typed_inputs(rng, image_dtype, "float32", 2)
    ddf[1, 1] = np.round(ddf[1, 1] * 2) / 2  # ties
    mode = dict(interpolation="label", boundary=boundary, fill_value=1)
    cpu = SAMPLERS[call](image, ddf, grid, **mode)
    with simulated_gpu(threads_per_block=16, max_blocks=3):
        gpu = SAMPLERS[call](image, ddf, grid, **mode)
    assert gpu.dtype == cpu.dtype == np.dtype(image_dtype)
    np.testing.assert_array_equal(gpu, cpu)


@pytest.mark.parametrize("boundary", ["clamp", "constant"])
@pytest.mark.parametrize("call", ["resample3d", "warp", "warp_grid_ref"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cubic_prefilter_and_taps_agree_bitwise(rng, call, boundary, dtype):
    for channels in (None, 3):
        image, ddf, grid = typed_inputs(rng, dtype, dtype, channels)
        mode = dict(interpolation="cubic", boundary=boundary, fill_value=-0.5)
        cpu = SAMPLERS[call](image, ddf, grid, **mode)
        with simulated_gpu(threads_per_block=16, max_blocks=3):
            gpu = SAMPLERS[call](image, ddf, grid, **mode)
        assert gpu.dtype == cpu.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(gpu, cpu)


def test_cubic_on_thin_volumes_agrees_bitwise(rng):
    """Axes of 1 to 3 voxels: fewer taps than the spline's 4, folded edges on both sides at once."""
    runs = []
    for shape in [(1, 2, 3), (3, 1, 2), (2, 3, 1)]:
        image = rng.standard_normal((1,) + shape).astype(np.float32)
        loc = rng.uniform(-3, 5, (1, 6, 3)).astype(np.float32)
        runs += [lambda image=image, loc=loc, boundary=boundary: arrayreg.resample(image, loc, "cubic",
                                                                                     boundary=boundary)
                 for boundary in ("clamp", "constant")]
    assert_cuda_path_equals_cpu(runs)


def test_cpu_and_cuda_agree_on_the_rest(rng):
    dvf = rng.uniform(-1, 1, (1, 5, 6, 7, 3)).astype(np.float32)
    labels = rng.integers(0, 7, (2, 4, 5, 6)).astype(np.uint8)
    grid = rng.standard_normal((3, 4, 5, 3)).astype(np.float32)
    theta = arrayreg.random_transform_generator(2, 0.3, seed=4)
    image64 = rng.standard_normal((1, 4, 5, 6, 2))
    runs = [
        lambda: arrayreg.integrate_dvf(dvf, 5),
        lambda: arrayreg.warp_grid(grid, theta),
        lambda: arrayreg.resize3d(image64, (7, 3, 9)),
        lambda: arrayreg.resize3d(labels, (7, 3, 9), "nearest"),
        lambda: arrayreg.warp_image_ddf(labels, dvf[:, :4, :5, :6].repeat(2, 0), interpolation="nearest"),
    ]
    assert_cuda_path_equals_cpu(runs)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 in the simulator's Python
def test_cpu_and_cuda_agree_on_world_chains(rng):
    """Two fields (one float64, on oblique grids, NaN and far-away vectors included) and two affines."""
    from arrayreg import io

    oblique = np.array([[0.0, -1.2, 0.3, 4], [0.9, 0, 0.1, -1], [0.2, 0, 1.3, 0.5], [0, 0, 0, 1]])
    near = rng.uniform(-2, 2, (4, 5, 3, 3)).astype(np.float32)
    near[0, 0, 0] = [np.nan, 1e30, -np.inf]
    far = io.FieldTransform(rng.uniform(-1, 1, (3, 4, 6, 3)), np.diag([1.5, 0.8, 1.1, 1.0]))
    shift = io.AffineTransform(np.array([[1, 0.1, 0, 2.0], [0, 1, 0, -1], [0.05, 0, 0.95, 0.5], [0, 0, 0, 1]]))
    chain = [io.FieldTransform(near, oblique), shift, far, shift.inverse()]
    moved = oblique.copy()
    moved[:3, 3] += oblique[:3, :3] @ [1, -2, 1]  # the field's grid moved by whole voxels
    moving_affine = np.diag([1.1, 0.9, 1.2, 1.0])
    image = rng.standard_normal((2, 5, 4, 6, 3)).astype(np.float32)
    labels = rng.integers(0, 4, (1, 5, 4, 6)).astype(np.int16)
    runs = [
        lambda: io.transforms_to_ddf(chain, (4, 5, 6), np.diag([1.2, 1.0, 0.9, 1.0]), oblique),
        lambda: io.transforms_to_field(chain[:2], (3, 3, 2), oblique, dtype=np.float64).field,
        lambda: io.transforms_to_ddf(chain[1:2], (2, 3, 2), oblique, oblique),
        lambda: io.transforms_to_ddf(chain, (4, 5, 6), oblique, oblique),  # the field read at the voxels
        lambda: io.transforms_to_ddf(chain, (5, 6, 4), moved, oblique),
        lambda: io.apply_transforms(image, chain, (4, 5, 6), oblique, moving_affine),
        lambda: io.apply_transforms(labels, chain, (4, 5, 6), oblique, moving_affine, interpolation="label",
                                    fill_value=3),
        lambda: io.apply_transforms(image[..., 0].astype(np.float64), chain, (4, 5, 6), oblique, moving_affine,
                                    interpolation="cubic", fill_value=0.5),
    ]
    assert_cuda_path_equals_cpu(runs)


@settings(max_examples=15, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    channels=st.sampled_from([None, 2]),
    interpolation=st.sampled_from(["linear", "nearest"]),
    boundary=st.sampled_from(["clamp", "constant"]),
    seed=st.integers(0, 2**16),
)
def test_property_cpu_equals_cuda_simulator(shape, channels, interpolation, boundary, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((1,) + shape + ((channels,) if channels else ())).astype(np.float32)
    ddf = rng.uniform(-3, 3, (1,) + shape + (3,)).astype(np.float32)
    kwargs = dict(interpolation=interpolation, boundary=boundary, fill_value=0.5)
    cpu = arrayreg.warp_image_ddf(image, ddf, **kwargs)
    with simulated_gpu(threads_per_block=8, max_blocks=2):
        gpu = arrayreg.warp_image_ddf(image, ddf, **kwargs)
    np.testing.assert_array_equal(gpu, cpu)


LAYERS = sorted(case for case in parity.CASES if case not in GEOMETRIC)


@pytest.mark.parametrize("case", LAYERS)
def test_layer_case_takes_the_device_path(case, monkeypatch):
    """Every forward-layer case on the device branch of nn (tap GEMMs by ``@``, not the CPU conv kernels)."""
    from arrayreg._kernels import conv

    def no_cpu_kernels(*args, **kwargs):
        raise AssertionError("the device path used the CPU convolution kernels")

    monkeypatch.setattr(conv, "blas_gemm", no_cpu_kernels)
    info = parity.CASES[case]
    with simulated_gpu():
        result = parity.run_layer(case, info)
    want = parity.expected(case, info)
    atol = 1e-4 if case.startswith(parity.DEEP_BLOCKS) else 1e-5
    results = result if isinstance(result, tuple) else (result,)
    for got, ref in zip(results, want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(got, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("kernel_size, strides, padding", [
    ((3, 3, 3), 1, "same"), ((1, 1, 1), 1, "valid"), ((2, 3, 4), (1, 3, 2), "same"), ((3, 3, 3), 2, "valid"),
])
def test_device_conv_primitives_equal_the_cpu_ones(rng, kernel_size, strides, padding):
    """The device branch (flat tap GEMMs, strided tap views, tap scatter) against the CPU kernels."""
    from arrayreg.nn import functional as F

    x = rng.standard_normal((2, 7, 8, 9, 3)).astype(np.float32)
    kernel = rng.standard_normal(kernel_size + (3, 4)).astype(np.float32)
    transposed = rng.standard_normal(kernel_size + (4, 3)).astype(np.float32)
    cpu = F.conv3d(x, kernel, None, strides, padding), F.conv3d_transpose(x, transposed, None, strides, padding)
    with simulated_gpu():
        device = F.conv3d(x, kernel, None, strides, padding), F.conv3d_transpose(x, transposed, None, strides, padding)
    for got, want in zip(device, cpu):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


IMAGE_DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16",
                "float32", "float64"]
SAMPLERS = {
    "resample3d": lambda image, ddf, grid, **mode: arrayreg.resample(image, grid + ddf, **mode),
    "resample2d": lambda image, ddf, grid, **mode: arrayreg.resample(image[:, 0], (grid + ddf)[:, 0, ..., 1:],
                                                                     **mode),
    "resample1d": lambda image, ddf, grid, **mode: arrayreg.resample(image[:, 0, 0], (grid + ddf)[:, 0, 0, :, 2:],
                                                                     **mode),
    "warp": lambda image, ddf, grid, **mode: arrayreg.warp_image_ddf(image, ddf, **mode),
    "warp_grid_ref": lambda image, ddf, grid, **mode: arrayreg.warp_image_ddf(image, ddf, grid, **mode),
}


def typed_inputs(rng, image_dtype, coordinate_dtype, channels):
    """A small image of ``image_dtype`` (values 0..5), a DDF reaching outside it, and a shifted grid."""
    image = rng.integers(0, 6, (2, 5, 4, 6) + ((channels,) if channels else ())).astype(image_dtype)
    ddf = rng.uniform(-3, 3, (2, 3, 4, 5, 3)).astype(coordinate_dtype)
    ddf[0, 0, 0, 0] = [np.nan, 1, 1]
    grid = (1.2 * arrayreg.get_reference_grid((3, 4, 5)) - 0.3)[None].astype(coordinate_dtype)
    return image, ddf, grid


def as_label_dtype(values, dtype, coordinate_dtype="float32"):
    """Nearest-interpolated float64 values as a label map of ``dtype`` would hold them (NaN reads as 0).

    float16 images are read in the compute dtype (float32, or float64 with float64 coordinates).
    """
    if np.dtype(dtype).kind in "biu":
        values = np.nan_to_num(values, nan=0.0)
    return values.astype(np.result_type(np.float32, coordinate_dtype) if dtype == "float16" else dtype)


@pytest.mark.parametrize("call", sorted(SAMPLERS))
@pytest.mark.parametrize("coordinate_dtype", ["float32", "float64"])
@pytest.mark.parametrize("image_dtype", IMAGE_DTYPES)
def test_nearest_in_every_dtype_picks_the_cpu_voxels(rng, call, coordinate_dtype, image_dtype):
    """Label maps of every dtype, in both boundaries and with 1 to 5 channels, on the CUDA path.

    Nearest only copies voxels, so the reference is the CPU result for the
    same image in float64, held in the label dtype (one CPU compilation per
    coordinate dtype instead of one per image dtype).  This is also what makes
    the simulator pass launch, and the compile gate compile, every image dtype.
    """
    for channels, boundary in [(None, "clamp"), (1, "constant"), (3, "clamp"), (5, "constant")]:
        image, ddf, grid = typed_inputs(rng, image_dtype, coordinate_dtype, channels)
        mode = dict(interpolation="nearest", boundary=boundary, fill_value=1)
        want = as_label_dtype(SAMPLERS[call](image.astype(np.float64), ddf, grid, **mode), image_dtype,
                              coordinate_dtype)
        with simulated_gpu(threads_per_block=16, max_blocks=3):
            got = SAMPLERS[call](image, ddf, grid, **mode)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("call", sorted(SAMPLERS))
@pytest.mark.parametrize("coordinate_dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("image_dtype", ["uint8", "float16", "float32", "float64"])
def test_linear_in_every_float_dtype_equals_the_cpu(rng, call, coordinate_dtype, image_dtype):
    for channels, boundary in [(None, "clamp"), (2, "constant"), (4, "clamp")]:
        image, ddf, grid = typed_inputs(rng, image_dtype, coordinate_dtype, channels)
        mode = dict(boundary=boundary, fill_value=-0.5)
        cpu = SAMPLERS[call](image, ddf, grid, **mode)
        with simulated_gpu(threads_per_block=16, max_blocks=3):
            gpu = SAMPLERS[call](image, ddf, grid, **mode)
        assert gpu.dtype == cpu.dtype
        np.testing.assert_array_equal(gpu, cpu)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_grid_resize_and_integration_in_every_float_dtype_equal_the_cpu(rng, dtype):
    image = rng.standard_normal((1, 4, 5, 6, 2)).astype(dtype)
    dvf = rng.uniform(-1, 1, (1, 5, 6, 7, 3)).astype(dtype)
    runs = [
        lambda: arrayreg.integrate_dvf(dvf, 3),
        lambda: arrayreg.warp_grid(dvf[0], np.eye(4, 3, dtype=dtype)[None] * 1.1),
        lambda: arrayreg.resize3d(image, (7, 3, 9)),
        lambda: arrayreg.resize3d(image, (7, 3, 9), "nearest"),
        lambda: arrayreg.jacobian_determinant(dvf * 2, (0.5, 1.0, 1.5)),
        lambda: arrayreg.jacobian_determinant(dvf[:, :1]),
        lambda: arrayreg.compose_ddf(dvf * 3, dvf[:, 1:] * 2),
        lambda: arrayreg.compose_ddf(dvf * 3, dvf[:, 1:] * 2, boundary="clamp"),
        lambda: arrayreg.invert_ddf(dvf, iterations=3),
    ]
    assert_cuda_path_equals_cpu(runs)


@pytest.mark.parametrize("dtype", IMAGE_DTYPES)
def test_resize_nearest_in_every_dtype_picks_the_cpu_voxels(rng, dtype):
    image = rng.integers(0, 6, (2, 4, 5, 3)).astype(dtype)
    want = as_label_dtype(arrayreg.resize3d(image.astype(np.float64), (3, 7, 5), "nearest"), dtype)
    with simulated_gpu(threads_per_block=16, max_blocks=3):
        got = arrayreg.resize3d(image, (3, 7, 5), "nearest")
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_dask_blocks_take_the_cuda_path(rng, monkeypatch):
    """arrayreg.dask's blocks run the in-memory kernels of their array kind: here the CUDA path."""
    da = pytest.importorskip("dask.array")
    chunked = pytest.importorskip("arrayreg.dask")
    image = rng.standard_normal((1, 6, 5, 4, 2)).astype(np.float32)
    ddf = rng.uniform(-2, 2, (1, 4, 5, 3, 3)).astype(np.float32)
    assert_cuda_path_equals_cpu([
        lambda: chunked.warp_image_ddf(da.from_array(image, 3), da.from_array(ddf, (1, 2, 3, 2, 3)),
                                       boundary="constant").compute(scheduler="synchronous"),
        lambda: chunked.integrate_dvf(da.from_array(ddf, (1, 2, 3, 2, 3)), 2).compute(scheduler="synchronous"),
        lambda: chunked.resize3d(da.from_array(image, (1, 3, 2, 2, 2)), (3, 7, 5)).compute(scheduler="synchronous"),
    ])
    calls = cuda_calls(monkeypatch)
    with simulated_gpu(threads_per_block=16, max_blocks=3):
        chunked.warp_image_ddf(da.from_array(image, 3), da.from_array(ddf, (1, 2, 3, 2, 3))).compute(
            scheduler="synchronous")
    assert len(calls) == 1 + 2 * 2 * 2  # the one-voxel call that checks the options, then one per block
