"""``arrayreg warp`` and ``arrayreg apply`` on zarr stores, through :mod:`arrayreg.dask`.

Taken when any path of the command ends in ``.zarr``.  Inputs that are NIfTI
files are read into memory and split into blocks; ``.zarr`` outputs are written
block by block, NIfTI outputs are gathered first.  The work runs on a
``dask.distributed`` cluster: the one at ``--scheduler``, or a ``LocalCluster``
of one single-threaded worker per core with ``--memory-limit`` each.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from .. import io
from ..io.chunked import Batched, is_zarr_path, open_store, open_zarr, to_zarr

#: Block edge (voxels) for NIfTI inputs split for dask.
BLOCK = 64


def uses_zarr(*paths) -> bool:
    """True when any of ``paths`` (None ignored) names a zarr store."""
    return any(p is not None and is_zarr_path(p) for p in paths)


@contextlib.contextmanager
def cluster(scheduler: str | None, memory_limit: str | None):
    """A ``distributed.Client``: connected to ``scheduler``, or to a new ``LocalCluster`` sized to the machine."""
    from distributed import Client

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with local_cluster(os.cpu_count() or 1, memory_limit or "auto") as local, Client(local) as client:
        yield client


def local_cluster(workers: int, memory_limit):
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes, each with one Numba
    thread and glibc's own allocator thresholds.

    dask sets ``MALLOC_TRIM_THRESHOLD_`` in its workers, which also fixes glibc's mmap threshold: then every
    block-sized array is fresh pages from the kernel, faulted in one by one.  Without it a 512**3 store-to-store
    warp on 2 workers took 1.9-2.4 s instead of 3.2-3.5 s (measured); its workers' peak resident memory rose
    from about 280 to 430 MiB, as freed blocks stay in the heap for the next ones.
    """
    import dask
    from distributed import LocalCluster

    environ = {key: value for key, value in dask.config.get("distributed.nanny.pre-spawn-environ").items()
               if key != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit,
                            dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"})


def _image(path):
    """``(batched image, affine or None, nibabel image or None)``: a zarr store as a :class:`Batched` view
    (each task reads its own box from it), a NIfTI file as a dask array ``(1, m1, m2, m3[, ch])``."""
    import dask.array as da

    if is_zarr_path(path):
        store, affine = open_store(path, "image")
        return Batched(store), affine, None
    data, image = io.load_nifti(path)
    if data.ndim not in (3, 4):
        raise io.NiftiError(f"{path}: an image must have shape (m1, m2, m3) or (m1, m2, m3, ch), got {data.shape}")
    return da.from_array(data[None], chunks=(1,) + (BLOCK,) * 3 + data.shape[3:]), image.affine, image


def _grid(path):
    """``(shape, affine, nibabel image or None)`` of a reference: a store's shape and ``"affine"``
    attribute, or a NIfTI file's header (its data is not read)."""
    if is_zarr_path(path):
        store, affine = open_store(path, "image")
        if affine is None:
            raise io.NiftiError(f"{path}: a reference store needs its 'affine' attribute (4x4 vox-to-RAS)")
        return tuple(store.shape[:3]), affine, None
    image = io.load_nifti_header(path)
    return tuple(image.shape[:3]), image.affine, image


def _ddf(path):
    """``(dask (f1, f2, f3, 3), affine or None, nibabel image or None)``; NIfTI through ``io.load_ddf``."""
    import dask.array as da

    if is_zarr_path(path):
        return (*open_zarr(path, "ddf"), None)
    data, image = io.load_ddf(path)
    return da.from_array(data, chunks=(BLOCK,) * 3 + (3,)), image.affine, image


def _write(client, target, result, affine, like) -> None:
    """Compute ``result`` (no batch axis) into ``target``: a zarr store block by block, or a NIfTI file."""
    from distributed import progress

    if is_zarr_path(target):
        future = client.compute(to_zarr(target, result, affine))
        progress(future)
        future.result()
    else:
        future = client.compute(result)
        progress(future)
        data = np.asarray(future.result())
        if like is None:
            import nibabel

            like = nibabel.Nifti1Image(data, np.eye(4) if affine is None else affine)
        io.save_nifti(target, data, like=like)
    print(f"\nwrote {target}")


def warp(args, targets) -> None:
    """``arrayreg warp`` with zarr stores: each image warped by :func:`arrayreg.dask.warp_image_ddf`."""
    from .. import dask as chunked

    with cluster(args.scheduler, args.memory_limit) as client:
        ddf, affine, ddf_image = _ddf(args.ddf)
        for path, target in zip(args.image, targets):
            image = _image(path)[0]
            warped = chunked.warp_image_ddf(image, ddf[None], interpolation=args.interpolation,
                                            boundary=args.boundary, fill_value=args.fill_value)
            _write(client, target, warped[0], affine, ddf_image)


def apply(args, chain, targets) -> None:
    """``arrayreg apply`` with zarr stores: the chain collapsed block by block, then the chunked warp."""
    from .. import dask as chunked

    with cluster(args.scheduler, args.memory_limit) as client:
        shape, reference_affine, reference_image = _grid(args.reference)
        if args.output_field:
            io.write_transform(args.output_field, io.transforms_to_field(chain, shape, reference_affine))
            print(f"wrote {args.output_field}")
        for path, target in zip(args.image, targets):
            image, moving_affine, _ = _image(path)
            if moving_affine is None:
                raise io.NiftiError(f"{path}: a moving store needs its 'affine' attribute (4x4 vox-to-RAS)")
            ddf = chunked.transforms_to_ddf(chain, shape, reference_affine, moving_affine, chunks=BLOCK)
            warped = chunked.warp_image_ddf(image, ddf, interpolation=args.interpolation, boundary="constant",
                                            fill_value=args.fill_value)
            _write(client, target, warped[0], reference_affine, reference_image)
