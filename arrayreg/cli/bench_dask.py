"""``arrayreg bench --dask``: a zarr-to-zarr warp on a memory-limited LocalCluster against the in-memory kernel.

The 512**3 float32 run writes an image and a smooth DDF to zarr stores (the DDF
is 1.5 GiB), warps store to store on 2 workers of 1 GiB each, and records each
worker's peak resident memory (polled every 0.25 s) and whether any worker
was restarted.  The same warp in memory (data loaded from the stores, not
timed) gives the throughput to compare with.  The stores are raw (zarr's
``compressors=None``); the same run with zarr's default compression (zstd)
follows, as its own row.  The 1024**3 uint16 run keeps the same cluster: its
image is a raw zarr store, and its DDF (12 GiB as float32) is computed block by
block inside the graph from the same analytic field, so that the disk holds
only the image and the output.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BLOCK = 128  # the DDF's and the output's chunks
IMAGE_CHUNK = 64  # the image store's chunks (a block's box reads 27 to 64 of them; 32 read less beyond the box
# but took twice as long in zarr's per-chunk work: 11.7 against 5.6 ms per box, measured)


def _smooth_ddf_block(shape, amplitude, block_info=None):
    """A block of the analytic field ``amplitude * sin`` products on a grid of ``shape`` (float32)."""
    location = block_info[None]["array-location"]
    axes = [np.arange(a, b, dtype=np.float64) * (np.pi / n) for (a, b), n in zip(location[:3], shape)]
    i, j, k = np.meshgrid(*axes, indexing="ij", sparse=True)
    components = [np.sin(i + 0.3) * np.cos(j) * np.sin(k + 1.1), np.cos(i) * np.sin(j + 0.7) * np.cos(k),
                  np.sin(i + j) * np.cos(k + 0.2)]
    return (amplitude * np.stack(np.broadcast_arrays(*components), axis=-1)).astype(np.float32)


def smooth_ddf(shape, amplitude=4.0, block=BLOCK):
    """The lazy analytic DDF ``(n1, n2, n3, 3)``."""
    import dask.array as da

    chunks = tuple(_regular(n, block) for n in shape) + ((3,),)
    return da.map_blocks(_smooth_ddf_block, shape, amplitude, chunks=chunks, dtype=np.float32)


def _regular(n, block):
    """dask chunks of ``block`` voxels (the last one shorter) along an axis of ``n``."""
    return (block,) * (n // block) + ((n % block,) if n % block else ())


def _image_block(dtype, block_info=None):
    """A block of a textured test volume (bands on every axis), in ``dtype``."""
    location = block_info[None]["array-location"]
    i, j, k = np.meshgrid(*[np.arange(a, b) for a, b in location], indexing="ij", sparse=True)
    values = (i * 7 + j * 13 + k * 3) % 251 + 10 * ((i // 16 + j // 16 + k // 16) % 2)
    return values.astype(dtype)


def _write_inputs(folder, size, dtype, with_ddf, compressors=None):
    """The image store (and the DDF store), written on the threaded scheduler block by block."""
    import dask
    import dask.array as da

    from ..io.chunked import to_zarr

    image = da.map_blocks(_image_block, dtype, chunks=(_regular(size, BLOCK),) * 3, dtype=dtype)
    writes = [to_zarr(folder / "image.zarr", image, chunks=min(IMAGE_CHUNK, size), compressors=compressors)]
    if with_ddf:
        writes.append(to_zarr(folder / "ddf.zarr", smooth_ddf((size,) * 3), compressors=compressors))
    dask.compute(*writes, scheduler="threads")


class MemoryWatch:
    """Polls each worker's resident memory in a thread; ``peaks`` maps worker address to bytes."""

    def __init__(self, client, period=0.25):
        self.client, self.period, self.peaks = client, period, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            try:
                for worker, rss in self.client.run(_rss).items():
                    self.peaks[worker] = max(self.peaks.get(worker, 0), rss)
            except Exception:  # a worker that is restarting; recorded by the restart check
                pass
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _rss():
    import psutil

    return psutil.Process().memory_info().rss


def _warp_stores(client, image_path, ddf, out_path, compressors=None):
    """Store-to-store warp; returns (seconds, per-worker peak MiB, restarted?)."""
    from .. import dask as chunked
    from ..io.chunked import Batched, open_store, to_zarr

    image = Batched(open_store(image_path)[0])
    workers_before = set(client.scheduler_info()["workers"])
    with MemoryWatch(client) as watch:
        start = time.perf_counter()
        warped = chunked.warp_image_ddf(image, ddf[None])
        client.compute(to_zarr(out_path, warped[0], compressors=compressors)).result()
        seconds = time.perf_counter() - start
    restarted = set(client.scheduler_info()["workers"]) != workers_before
    return seconds, {w: rss / 2**20 for w, rss in watch.peaks.items()}, restarted


def _in_memory(folder, repeat=3):
    """The in-memory warp of the same data: the median seconds of the kernel alone, the seconds of the
    whole job in memory (read both stores, warp, write the output store), and the result."""
    import zarr

    from .. import warp_image_ddf

    start = time.perf_counter()
    image = zarr.open_array(str(folder / "image.zarr"), mode="r")[...][None]
    ddf = zarr.open_array(str(folder / "ddf.zarr"), mode="r")[...][None]
    result = warp_image_ddf(image, ddf)
    written = zarr.create_array(str(folder / "in_memory.zarr"), shape=result.shape[1:], chunks=(BLOCK,) * 3,
                                dtype=result.dtype, compressors=None)
    written[...] = result[0]
    end_to_end = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        warp_image_ddf(image, ddf)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), end_to_end, result[0]


def run(size=512, big=1024, workers=2, memory_limit="1GiB"):
    """Print the table of the three runs."""
    from distributed import Client

    from ..io.chunked import open_zarr
    from .chunked import local_cluster

    rows = []
    with tempfile.TemporaryDirectory(prefix="arrayreg_dask_bench_", dir=os.environ.get("ARRAYREG_BENCH_DIR")) as d:
        folder = Path(d)
        (folder / "a").mkdir()
        (folder / "b").mkdir()
        _write_inputs(folder / "a", size, np.float32, True)
        in_memory, end_to_end, want = _in_memory(folder / "a")
        with local_cluster(workers, memory_limit) as cluster, Client(cluster) as client:
            _warm_up(client)
            ddf = open_zarr(folder / "a" / "ddf.zarr", "ddf")[0]
            seconds, peaks, restarted = _warp_stores(client, folder / "a" / "image.zarr", ddf,
                                                     folder / "a" / "out.zarr")
            difference = float(np.abs(_read(folder / "a" / "out.zarr") - want).max())
            del want
            rows.append((f"{size}^3 float32, zarr DDF, raw stores", size**3, seconds, in_memory, peaks, restarted))
            (folder / "c").mkdir()
            _write_inputs(folder / "c", size, np.float32, True, compressors="auto")
            seconds, peaks, restarted = _warp_stores(client, folder / "c" / "image.zarr",
                                                     open_zarr(folder / "c" / "ddf.zarr", "ddf")[0],
                                                     folder / "c" / "out.zarr", compressors="auto")
            rows.append((f"{size}^3 float32, zarr DDF, zstd stores (zarr's default)", size**3, seconds, in_memory,
                         peaks, restarted))
            if big:
                (folder / "a" / "ddf.zarr").rename(folder / "a" / "gone.zarr")
                _write_inputs(folder / "b", big, np.uint16, False)
                seconds, peaks, restarted = _warp_stores(client, folder / "b" / "image.zarr",
                                                         smooth_ddf((big,) * 3), folder / "b" / "out.zarr")
                rows.append((f"{big}^3 uint16, DDF computed in the graph, raw stores", big**3, seconds, None, peaks,
                             restarted))
    print(f"### dask: zarr to zarr on a LocalCluster of {workers} workers x 1 thread, {memory_limit} each\n")
    print("| run | seconds | Mvoxel/s | in-memory kernel Mvoxel/s | ratio | peak RSS per worker MiB | restarted |")
    print("|---|---|---|---|---|---|---|")
    for name, voxels, seconds, memory_seconds, peaks, restarted in rows:
        inmem = "-" if memory_seconds is None else f"{voxels / memory_seconds / 1e6:.1f}"
        ratio = "-" if memory_seconds is None else f"{memory_seconds / seconds:.2f}"
        peak_text = ", ".join(f"{p:.0f}" for p in sorted(peaks.values()))
        print(f"| {name} | {seconds:.1f} | {voxels / seconds / 1e6:.1f} | {inmem} | {ratio} | {peak_text} | "
              f"{'yes' if restarted else 'no'} |")
    print(f"the {size}^3 job wholly in memory (read both stores, warp, write the store; needs "
          f"{(size**3 * 20) / 2**30:.1f} GiB in one process): {end_to_end:.1f} s, "
          f"{size**3 / end_to_end / 1e6:.1f} Mvoxel/s\n")
    print(f"largest difference between the {size}^3 zarr output and the in-memory warp: {difference:.1e}\n")
    return rows


def _read(path):
    import zarr

    return zarr.open_array(str(path), mode="r")[...]


def _warm_up(client):
    """Compile (or load from Numba's cache) the kernels in every worker before timing."""
    import dask.array as da

    from .. import dask as chunked

    tiny = chunked.warp_image_ddf(da.zeros((1, 8, 8, 8), np.float32, chunks=4),
                                  da.zeros((1, 8, 8, 8, 3), np.float32, chunks=4))
    client.run(lambda: None)
    client.compute(tiny).result()
    client.compute(chunked.warp_image_ddf(da.zeros((1, 8, 8, 8), np.uint16, chunks=4),
                                          da.zeros((1, 8, 8, 8, 3), np.float32, chunks=4))).result()
