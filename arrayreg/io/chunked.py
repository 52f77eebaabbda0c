"""Zarr stores as dask arrays: one array at the store's root, shaped like the NIfTI data.

An image store holds ``(m1, m2, m3)`` or ``(m1, m2, m3, ch)``, a DDF store
``(f1, f2, f3, 3)`` in voxels, with no batch axis.  The store's attribute
``"affine"`` (a 4x4 list, NIfTI's vox-to-RAS matrix), when present, gives the
grid; arrayreg writes it on every store it writes.  Zarr v3 stores are written;
v2 stores are read as well.  Needs ``pip install -e ".[dask]"``.
"""

from __future__ import annotations

import numpy as np


class ZarrError(ValueError):
    """A store that is not what the caller asked for."""


def is_zarr_path(path) -> bool:
    """True for a path ending in ``.zarr`` (a store), with or without a trailing slash."""
    return str(path).rstrip("/").endswith(".zarr")


def open_store(path, kind: str = "image"):
    """The ``zarr.Array`` at the root of the store ``path`` and its affine, as ``(array, affine)``.

    ``kind`` is ``"image"`` (3 or 4 axes) or ``"ddf"`` (4 axes, the last of length 3).  ``affine`` is the
    store's ``"affine"`` attribute as a float64 (4, 4) array, or None.
    """
    import zarr

    try:
        store = zarr.open_array(str(path), mode="r")
    except Exception as error:  # zarr raises several types for a missing or wrong store
        raise ZarrError(f"{path}: not a zarr store with one array at its root ({error})") from error
    shape = store.shape
    if kind == "ddf" and not (len(shape) == 4 and shape[-1] == 3):
        raise ZarrError(f"{path}: a DDF store must hold (f1, f2, f3, 3) in voxels; got {shape}")
    if kind == "image" and len(shape) not in (3, 4):
        raise ZarrError(f"{path}: an image store must hold (m1, m2, m3) or (m1, m2, m3, ch); got {shape}")
    affine = store.attrs.get("affine")
    if affine is not None:
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ZarrError(f"{path}: the 'affine' attribute must be a 4x4 matrix; got shape {affine.shape}")
    return store, affine


def open_zarr(path, kind: str = "image"):
    """:func:`open_store` as ``(dask_array, affine)``, the dask array chunked as the store."""
    import dask.array as da

    store, affine = open_store(path, kind)
    return da.from_zarr(store), affine


class Batched:
    """A read-only view of an array-like (a zarr array) with a batch axis of one in front, which pickles
    as the array does: ``Batched(store)[0, a:b] == store[a:b]``, for :func:`arrayreg.dask.warp_image_ddf`."""

    def __init__(self, array):
        self.array = array
        self.shape = (1,) + tuple(array.shape)
        self.dtype = array.dtype

    def __getitem__(self, index):
        batch, *rest = index if isinstance(index, tuple) else (index,)
        if not isinstance(batch, slice) or range(1)[batch] != range(1):
            raise IndexError(f"Batched: the batch axis (of length 1) must be taken whole; got {batch!r}")
        return self.array[tuple(rest)][None]


def to_zarr(path, array, affine=None, chunks=None, compressors="auto"):
    """A lazy write of the dask ``array`` to a new zarr v3 store at ``path`` (a ``dask.delayed``).

    ``chunks`` are the store's chunks (default: the array's, which must then be regular but for the last
    block of each axis); ``affine`` becomes the ``"affine"`` attribute; ``compressors`` is zarr's argument
    (``"auto"``: zarr's default, zstd; None stores the chunks raw, which reads and writes several times
    faster, while float data shrinks to only about 60%).  Compute the result to write.
    """
    import dask.array as da
    import zarr

    if chunks is not None:
        array = array.rechunk(chunks)
    store = zarr.create_array(str(path), shape=array.shape, chunks=tuple(c[0] for c in array.chunks),
                              dtype=array.dtype, overwrite=True, zarr_format=3, compressors=compressors)
    if affine is not None:
        store.attrs["affine"] = np.asarray(affine, dtype=np.float64).tolist()
    # each block is exactly one chunk of the store (regular chunks), so the blocks write without a lock
    return da.store(array, store, lock=False, compute=False)
