"""arrayreg.dask against the in-memory functions (themselves checked against scipy and DeepReg elsewhere)."""

import itertools

import numpy as np
import pytest

import arrayreg
from arrayreg.io import AffineTransform, FieldTransform

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
chunked = pytest.importorskip("arrayreg.dask")


@pytest.fixture(scope="module")
def cluster_client():
    """A dask.distributed cluster in this process with 2 workers (tasks and results still pickled)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        with distributed.Client(c, set_as_default=False) as client:
            yield client


def far_reaching_ddf(rng, shape, batch=2):
    """Displacements of a few voxels, with a slab pointing far outside, NaN and inf voxels."""
    ddf = rng.uniform(-3, 3, (batch,) + shape + (3,)).astype(np.float32)
    ddf[:, : shape[0] // 3, ..., 1] += 40.0
    ddf[0, -1, -1, -1] = np.nan
    ddf[-1, 0, 0, 0, 2] = -np.inf
    ddf[-1, 1, 0, 0] = 1e30
    return ddf


CHUNKINGS = [(1, 1, 1, 1, 3), (1, 2, 3, 4, 3), (2, 5, 7, 3, 3)]


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("boundary", ["clamp", "constant"])
@pytest.mark.parametrize("interpolation", ["linear", "nearest", "cubic"])
@pytest.mark.parametrize("channels", [None, 3])
def test_warp_equals_the_in_memory_warp(rng, chunks, boundary, interpolation, channels):
    image = rng.standard_normal((2, 9, 8, 7) + ((channels,) if channels else ())).astype(np.float32)
    ddf = far_reaching_ddf(rng, (5, 7, 3))
    keywords = {"interpolation": interpolation, "boundary": boundary, "fill_value": 0.25}
    want = arrayreg.warp_image_ddf(image, ddf, **keywords)
    lazy = chunked.warp_image_ddf(da.from_array(image, (1, 4, 3, 5) + image.shape[4:]), da.from_array(ddf, chunks),
                                  **keywords)
    assert lazy.chunks[:4] == da.from_array(ddf, chunks).chunks[:4]
    got = lazy.compute(scheduler="threads")
    assert got.dtype == want.dtype and got.shape == want.shape
    if interpolation == "cubic":  # each box prefiltered on its own
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.ptp(image))
    else:
        np.testing.assert_array_equal(got, want)


def test_cubic_boxes_inside_a_larger_image_stay_within_1e6(rng):
    image = rng.standard_normal((1, 48, 40, 44)).astype(np.float32)
    ddf = rng.uniform(-2, 2, (1, 32, 32, 32, 3)).astype(np.float32)
    want = arrayreg.warp_image_ddf(image, ddf, interpolation="cubic")
    got = chunked.warp_image_ddf(da.from_array(image, 8), da.from_array(ddf, (1, 8, 8, 8, 3)),
                                 interpolation="cubic").compute()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.ptp(image))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_label_warp_is_bitwise_and_reads_only_each_box(rng, dtype):
    labels = rng.integers(0, 6, (1, 12, 11, 10)).astype(dtype)
    ddf = rng.uniform(-1.5, 1.5, (1, 12, 11, 10, 3)).astype(np.float32)
    image = da.from_array(labels, 3)
    lazy = chunked.warp_image_ddf(image, da.from_array(ddf, (1, 3, 3, 3, 3)), interpolation="label")
    np.testing.assert_array_equal(lazy.compute(), arrayreg.warp_image_ddf(labels, ddf, interpolation="label"))
    # displacements under 2 voxels never need the far side of the image: a block's task reads a few chunks
    graph = lazy.__dask_graph__()
    image_keys = {k for k in graph if isinstance(k, tuple) and k[0] == image.name}
    dependencies = graph.get_all_dependencies()
    cuts = dependencies[(lazy.name, 0, 0, 0, 0)]  # the block's tasks that cut the overlap out of a chunk
    first_block_reads = set().union(*(dependencies[cut] for cut in cuts)) & image_keys
    assert 0 < len(first_block_reads) <= 8 < len(image_keys)


def test_float64_and_grid_ref(rng):
    image = rng.standard_normal((1, 8, 9, 10, 2))
    ddf = rng.uniform(-2, 2, (1, 6, 5, 4, 3))
    grid = (arrayreg.get_reference_grid((6, 5, 4))[None] * 1.3).astype(np.float64)
    want = arrayreg.warp_image_ddf(image, ddf, grid)
    got = chunked.warp_image_ddf(da.from_array(image, 4), da.from_array(ddf, (1, 2, 2, 2, 3)), grid).compute()
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def test_all_nan_and_all_outside_blocks(rng):
    image = rng.standard_normal((1, 6, 6, 6)).astype(np.float32)
    ddf = np.full((1, 4, 4, 4, 3), np.nan, np.float32)
    ddf[:, 2:] = 1e6
    for boundary in ("clamp", "constant"):
        want = arrayreg.warp_image_ddf(image, ddf, boundary=boundary, fill_value=7.0)
        got = chunked.warp_image_ddf(da.from_array(image, 3), da.from_array(ddf, (1, 2, 2, 2, 3)), boundary=boundary,
                                     fill_value=7.0).compute()
        np.testing.assert_array_equal(got, want)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_bounds_equal_a_brute_force_float64_minimum(rng, dtype):
    """Each block's bounds are min and max of grid + ddf over its points (one float64 sum each; a NaN
    coordinate counts as voxel 0, which the clamped kernels read for it)."""
    from arrayreg.dask import _bounds

    ddf = rng.uniform(-3, 3, (2, 5, 6, 7, 3)).astype(dtype)
    ddf[0, 1, 2] = np.nan
    ddf[1, 4, 0, 3, 1] = 1e30
    ddf[1, 2, 2, 2, 2] = -np.inf
    ddf[0, 0, 0, 0, 0] = 1e-30
    ddf[1, :, 3, :, 0] = np.nan
    origin = (11, 0, 300)
    location = [(0, 2)] + [(o, o + n) for o, n in zip(origin, ddf.shape[1:4])] + [(0, 3)]
    points = np.stack(np.meshgrid(*[np.arange(o, o + n, dtype=np.float64) for o, n in zip(origin, ddf.shape[1:4])],
                                  indexing="ij"), axis=-1) + ddf.astype(np.float64)
    points[np.isnan(points)] = 0.0
    want = np.concatenate([points.min(axis=(0, 1, 2, 3)), points.max(axis=(0, 1, 2, 3))])
    got = _bounds(ddf, None, {0: {"array-location": location}})
    np.testing.assert_array_equal(got.reshape(6), want)
    ddf[...] = np.nan
    got = _bounds(ddf, None, {0: {"array-location": location}})
    np.testing.assert_array_equal(got.reshape(6), np.zeros(6))



@pytest.mark.parametrize("channels", [None, 1, 3])
@pytest.mark.parametrize("boundary", ["clamp", "constant"])
def test_box_warps_read_nothing_outside_their_box(rng, channels, boundary):
    """ddf.warp_box on each block's box, the box held inside a NaN-filled buffer: a read beyond the box
    (such as voxel 0 for a NaN point, or the voxel before a clamped edge) would make a value NaN."""
    from arrayreg.dask import _MARGIN, _bounds, _box
    from arrayreg.ddf import warp_box

    image = rng.standard_normal((1, 10, 9, 8) + ((channels,) if channels else ())).astype(np.float32)
    ddf = far_reaching_ddf(rng, (6, 7, 5), batch=1)
    ddf[0, 4:, :, :, 0] = 30.0  # blocks that reach only the last plane of axis 1
    keywords = {"interpolation": "linear", "boundary": boundary, "fill_value": 2.5}
    want = arrayreg.warp_image_ddf(image, ddf, **keywords)
    for origin in itertools.product(range(0, 6, 2), range(0, 7, 3), range(0, 5, 2)):
        block = tuple(slice(o, o + n) for o, n in zip(origin, (2, 3, 2)))
        piece = np.ascontiguousarray(ddf[(slice(None),) + block])
        location = [(0, 1)] + [(s.start, s.start + n) for s, n in zip(block, piece.shape[1:4])] + [(0, 3)]
        bounds = _bounds(piece, None, {0: {"array-location": location}})[0, 0, 0, 0]
        box = tuple(_box(bounds[a], bounds[3 + a], _MARGIN["linear"], image.shape[a + 1]) for a in range(3))
        values = image[(slice(None),) + tuple(slice(*b) for b in box)]
        padded = np.full(values.size + 2000, np.nan, np.float32)
        padded[1000 : 1000 + values.size] = values.reshape(-1)
        held = padded[1000 : 1000 + values.size].reshape(values.shape)
        got = warp_box(held, tuple(s for s, _ in box), image.shape[1:4], piece, origin, **keywords)
        np.testing.assert_array_equal(got, want[(slice(None),) + tuple(slice(o, o + n) for o, n in
                                                                        zip(origin, piece.shape[1:4]))])


def test_bad_input_is_named():
    image = da.zeros((1, 4, 4, 4), chunks=2)
    with pytest.raises(ValueError, match="ddf shape"):
        chunked.warp_image_ddf(image, da.zeros((1, 4, 4, 4, 2), chunks=2))
    with pytest.raises(ValueError, match="batch size"):
        chunked.warp_image_ddf(image, da.zeros((2, 4, 4, 4, 3), chunks=2))
    with pytest.raises(ValueError, match="interpolation"):
        chunked.warp_image_ddf(image, da.zeros((1, 4, 4, 4, 3), chunks=2), interpolation="spline")
    with pytest.raises(TypeError, match="label"):
        chunked.warp_image_ddf(image, da.zeros((1, 4, 4, 4, 3), chunks=2), interpolation="label")
    with pytest.raises(TypeError, match="image must be a dask array"):
        chunked.warp_image_ddf([1, 2], da.zeros((1, 4, 4, 4, 3), chunks=2))


@pytest.mark.parametrize("boundary", ["clamp", "constant"])
def test_compose_equals_the_in_memory_composition(rng, boundary):
    outer = rng.uniform(-2, 2, (2, 7, 6, 5, 3)).astype(np.float32)
    inner = far_reaching_ddf(rng, (6, 5, 4))
    want = arrayreg.compose_ddf(outer, inner, boundary=boundary)
    got = chunked.compose_ddf(da.from_array(outer, 3), da.from_array(inner, (1, 2, 3, 1, 3)), boundary=boundary)
    np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.parametrize("chunks", [(1, 1, 1, 1, 3), (1, 4, 3, 5, 3)])
def test_integrate_equals_the_in_memory_integration(rng, chunks):
    dvf = rng.uniform(-6, 6, (2, 5, 4, 6, 3)).astype(np.float32)
    dvf[1, 0, 0, 0] = np.nan
    got = chunked.integrate_dvf(da.from_array(dvf, chunks), num_steps=5)
    np.testing.assert_array_equal(got.compute(), arrayreg.integrate_dvf(dvf, num_steps=5))
    np.testing.assert_array_equal(chunked.integrate_dvf(da.from_array(dvf, chunks), 0).compute(),
                                  arrayreg.integrate_dvf(dvf, 0))



def test_integrate_with_nan_far_from_the_origin(rng):
    """NaN spreads over the squaring steps, and the clamped kernels read voxel 0 for it: every box must hold
    voxel 0 (an out-of-bounds read otherwise, which CI's NUMBA_BOUNDSCHECK pass turns into an error)."""
    dvf = rng.uniform(-1, 1, (1, 12, 12, 12, 3)).astype(np.float32)
    dvf[0, 8, 9, 10] = np.nan
    dvf[0, 9, 2, 9, 1] = np.inf
    got = chunked.integrate_dvf(da.from_array(dvf, (1, 4, 4, 4, 3)), num_steps=4).compute(scheduler="sync")
    np.testing.assert_array_equal(got, arrayreg.integrate_dvf(dvf, num_steps=4))


def test_jacobian_equals_the_in_memory_jacobian(rng):
    ddf = rng.uniform(-1, 1, (2, 7, 6, 5, 3)).astype(np.float32)
    want = arrayreg.jacobian_determinant(ddf, spacing=(1.0, 0.5, 2.0))
    for chunks in [(1, 1, 1, 1, 3), (1, 3, 4, 2, 3)]:
        got = chunked.jacobian_determinant(da.from_array(ddf, chunks), spacing=(1.0, 0.5, 2.0))
        np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(13, 5, 17), (3, 3, 3), (1, 20, 2)])
def test_resize_equals_the_in_memory_resize(rng, method, size):
    image = rng.standard_normal((2, 9, 8, 7, 2)).astype(np.float32)
    got = chunked.resize3d(da.from_array(image, (1, 2, 3, 4, 2)), size, method)
    np.testing.assert_array_equal(got.compute(), arrayreg.resize3d(image, size, method))
    np.testing.assert_array_equal(chunked.resize3d(da.from_array(image[0, ..., 0], 4), size, method).compute(),
                                  arrayreg.resize3d(image[0, ..., 0], size, method))


def test_world_chain_blocks_equal_the_whole_grid(rng):
    field_affine = np.array([[1.1, 0.2, 0, -3], [-0.1, 0.9, 0, 4], [0, 0, 1.7, 2], [0, 0, 0, 1]])
    chain = [FieldTransform(rng.uniform(-2, 2, (6, 7, 5, 3)), field_affine),
             AffineTransform(np.array([[1, 0.1, 0, 2.0], [0, 1, 0.05, 0], [0, 0, 1, 1], [0, 0, 0, 1]]))]
    reference, moving = np.diag([0.8, 1.1, 1.7, 1.0]), np.diag([1.0, 1.2, 0.9, 1.0])
    want = arrayreg.transforms_to_ddf(chain, (9, 8, 7), reference, moving)
    got = chunked.transforms_to_ddf(chain, (9, 8, 7), reference, moving, chunks=(2, 3, 4)).compute()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_distributed_scheduler_gives_the_same_results(rng, cluster_client):
    image = rng.standard_normal((2, 9, 8, 7, 2)).astype(np.float32)
    ddf = far_reaching_ddf(rng, (5, 7, 3))
    lazy = chunked.warp_image_ddf(da.from_array(image, 4), da.from_array(ddf, (1, 2, 3, 2, 3)), boundary="constant")
    np.testing.assert_array_equal(cluster_client.compute(lazy).result(),
                                  arrayreg.warp_image_ddf(image, ddf, boundary="constant"))
    dvf = rng.uniform(-4, 4, ddf.shape).astype(np.float32)
    integrated = chunked.integrate_dvf(da.from_array(dvf, (1, 2, 3, 2, 3)), num_steps=3)
    np.testing.assert_array_equal(cluster_client.compute(integrated).result(), arrayreg.integrate_dvf(dvf, 3))
    resized = chunked.resize3d(da.from_array(image, (1, 3, 3, 3, 2)), (4, 11, 6))
    np.testing.assert_array_equal(cluster_client.compute(resized).result(), arrayreg.resize3d(image, (4, 11, 6)))


def test_zarr_backed_image(rng, tmp_path):
    zarr = pytest.importorskip("zarr")
    image = rng.standard_normal((10, 9, 8)).astype(np.float32)
    store = zarr.create_array(str(tmp_path / "image.zarr"), shape=image.shape, chunks=(4, 4, 4), dtype="f4")
    store[...] = image
    ddf = rng.uniform(-2, 2, (1, 6, 6, 6, 3)).astype(np.float32)
    lazy = chunked.warp_image_ddf(da.from_zarr(str(tmp_path / "image.zarr"))[None], da.from_array(ddf, 3))
    np.testing.assert_array_equal(lazy.compute(), arrayreg.warp_image_ddf(image[None], ddf))


@pytest.mark.parametrize("channels", [None, 2])
@pytest.mark.parametrize("interpolation", ["linear", "label", "cubic"])
def test_tasks_read_their_boxes_from_a_store(rng, tmp_path, channels, interpolation):
    """A zarr array as the image: each task reads its own box from the store (no eager pass)."""
    zarr = pytest.importorskip("zarr")
    from arrayreg.io.chunked import Batched

    dtype = np.int16 if interpolation == "label" else np.float32
    image = rng.integers(0, 9, (10, 9, 8) + ((channels,) if channels else ())).astype(dtype)
    store = zarr.create_array(str(tmp_path / "s.zarr"), shape=image.shape, chunks=(4, 4, 4) + image.shape[3:],
                              dtype=dtype)
    store[...] = image
    ddf = far_reaching_ddf(rng, (6, 7, 5), batch=1)
    for boundary in ("clamp", "constant"):
        keywords = {"interpolation": interpolation, "boundary": boundary, "fill_value": 3}
        got = chunked.warp_image_ddf(Batched(store), da.from_array(ddf, (1, 2, 3, 2, 3)), **keywords).compute()
        want = arrayreg.warp_image_ddf(image[None], ddf, **keywords)
        if interpolation == "cubic":
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.ptp(image))
        else:
            np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError, match="batch axis"):
        Batched(store)[0]


def test_every_graph_pickles(rng, tmp_path):
    """Nothing goes into a graph that a distributed scheduler could not ship (plain pickle, no cloudpickle)."""
    import pickle

    zarr = pytest.importorskip("zarr")
    from arrayreg.io.chunked import Batched

    image = da.from_array(rng.standard_normal((1, 6, 6, 6, 2)).astype(np.float32), 3)
    ddf = da.from_array(rng.uniform(-1, 1, (1, 6, 6, 6, 3)).astype(np.float32), (1, 3, 3, 3, 3))
    store = zarr.create_array(str(tmp_path / "s.zarr"), shape=(6, 6, 6), chunks=(3, 3, 3), dtype="f4")
    chain = [AffineTransform(np.eye(4))]
    lazies = [chunked.warp_image_ddf(image, ddf), chunked.warp_image_ddf(Batched(store), ddf),
              chunked.compose_ddf(ddf, ddf), chunked.integrate_dvf(ddf, 2), chunked.jacobian_determinant(ddf),
              chunked.resize3d(image, (4, 5, 7)), chunked.transforms_to_ddf(chain, (6, 6, 6), np.eye(4), np.eye(4))]
    for lazy in lazies:
        graph = dict(lazy.__dask_graph__())
        assert pickle.loads(pickle.dumps(graph)).keys() == graph.keys()


def test_a_store_with_grid_ref_and_batches(rng, tmp_path):
    zarr = pytest.importorskip("zarr")
    image = rng.standard_normal((2, 8, 9, 10)).astype(np.float32)
    store = zarr.create_array(str(tmp_path / "s.zarr"), shape=image.shape, chunks=(1, 4, 4, 4), dtype="f4")
    store[...] = image
    ddf = rng.uniform(-2, 2, (2, 5, 4, 6, 3)).astype(np.float32)
    grid = arrayreg.get_reference_grid((5, 4, 6))[None] * np.float32(1.5)
    got = chunked.warp_image_ddf(store, da.from_array(ddf, (1, 2, 2, 3, 3)), grid).compute()
    np.testing.assert_array_equal(got, arrayreg.warp_image_ddf(image, ddf, grid))
