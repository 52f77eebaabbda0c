"""Chunked versions of the warps and field tools for dask arrays (``pip install -e ".[dask]"``).

Each output block is computed by the in-memory kernels from the blocks it
needs and nothing more.  A warp's output block needs the box of moving voxels
that its own displacements reach; that box comes exactly from the DDF block
(``min`` and ``max`` of ``grid + ddf``, plus the interpolation's support), so no
halo is guessed.  The graph holds only module-level functions, NumPy scalars
and tuples: it pickles, and runs on the threaded scheduler and on
``dask.distributed`` alike.  CuPy blocks run the GPU kernels.

The blocks of a warp sample at ``loc = (p + ddf) - start``: ``p + ddf`` is
formed in the compute dtype exactly as the in-memory kernel forms it, and the
subtraction of the box's integer start is exact (``|loc| < 2**24`` in
float32), so linear, nearest and label results equal the in-memory ones bit
for bit.  Cubic interpolation prefilters each box on its own; the box then
reaches :data:`SPLINE_HALO` voxels further, where the prefilter's influence has
decayed below ``0.268**16 < 1e-9`` of the image's range.
"""

from __future__ import annotations

import itertools
import warnings

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from . import _validation as validate
from . import ddf as _ddf
from . import fields as _fields
from . import resize as _resize
from ._backend import backend_of
from ._kernels import cpu
from ._plan import compute_dtype, kernel_array
from .io import world as _world
from .resample import resample

#: Voxels the box of a cubic warp reaches beyond the spline's own support (the prefilter's reach).
SPLINE_HALO = 16

#: Voxels a box reaches beyond ``floor(min)`` and ``floor(max) + 1`` of its locations: one for the rounding of
#: ``p + ddf`` in the compute dtype (the bounds are taken in float64), and for cubic the taps at ``floor - 1``
#: and ``floor + 2`` plus the prefilter's reach.
_MARGIN = {"linear": 1, "nearest": 1, "label": 1, "cubic": 2 + SPLINE_HALO}


def _as_dask(value, name: str):
    """``value`` as a dask array (NumPy and CuPy arrays become one-block dask arrays)."""
    if isinstance(value, da.Array):
        return value
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        raise TypeError(f"{name} must be a dask array (or a NumPy/CuPy array); got {type(value).__name__}")
    return da.from_array(value, chunks=value.shape or (), asarray=False)


def _block_slices(chunks) -> list:
    """For each axis, the ``(start, stop)`` of each of its blocks."""
    return [list(zip(np.cumsum((0,) + c[:-1]).tolist(), np.cumsum(c).tolist())) for c in chunks]


def _grid_of(origin, shape, dtype, xp):
    """The three index vectors ``origin[a] + arange(shape[a])`` in ``dtype``, shaped to broadcast
    against ``(batch, n1, n2, n3)``."""
    axes = []
    for a in range(3):
        vector = xp.arange(origin[a], origin[a] + shape[a], dtype=dtype)
        axes.append(vector.reshape((1,) + tuple(-1 if b == a else 1 for b in range(3))))
    return axes


def _locations(ddf, grid, origin, start, dtype):
    """``(grid + ddf) - start`` in ``dtype``, ``grid`` the reference grid shifted by ``origin`` when None.

    The sum is the in-memory kernel's (one rounding in ``dtype``); subtracting the integer ``start`` is exact.
    """
    xp = backend_of(ddf=ddf).xp
    loc = kernel_array(ddf, dtype, xp).copy()
    if grid is None:
        for a, index in enumerate(_grid_of(origin, ddf.shape[1:4], dtype, xp)):
            loc[..., a] += index
    else:
        loc += kernel_array(grid, dtype, xp)
    for a in range(3):
        loc[..., a] -= dtype.type(start[a])
    return loc


def _bounds(ddf, grid=None, block_info=None):
    """``[[min], [max]]`` of ``grid + ddf`` per spatial axis over one block, in float64, shaped
    ``(1, 1, 1, 1, 6)`` for ``map_blocks``.

    On the reference grid, NumPy blocks take one pass of ``_kernels.cpu.location_bounds``, where a NaN
    coordinate counts as 0 (the voxel that the row kernels of :func:`arrayreg.ddf.warp_box` read for it).
    Other blocks, which :func:`arrayreg.resample` samples inside their own box, ignore NaN (``inf`` and
    ``-inf`` when every value is NaN); CuPy blocks use ``min(p_a + ddf_a) = min_i (i + min(ddf_a over the
    plane p_a = i))``: the reduction runs in the DDF's own dtype (``fmin``/``fmax`` skip NaN), and only the
    per-plane profile is added to the index, in float64.
    """
    xp = backend_of(ddf=ddf).xp
    if grid is None and xp is np:
        origin = np.array([start for start, _ in block_info[0]["array-location"][1:4]], dtype=np.float64)
        planes = np.empty((ddf.shape[0] * ddf.shape[1], 6))
        cpu.location_bounds(np.ascontiguousarray(ddf), origin, planes)
        low, high = planes[:, :3].min(axis=0, initial=np.inf), planes[:, 3:].max(axis=0, initial=-np.inf)
    elif grid is None:
        origin = [start for start, _ in block_info[0]["array-location"][1:4]]
        low, high = [], []
        for a in range(3):
            others = tuple(b for b in range(4) if b != a + 1)
            index = np.arange(origin[a], origin[a] + ddf.shape[a + 1], dtype=np.float64)
            low.append(np.fmin.reduce(index + _host(xp.fmin.reduce(ddf[..., a], axis=others)).astype(np.float64)))
            high.append(np.fmax.reduce(index + _host(xp.fmax.reduce(ddf[..., a], axis=others)).astype(np.float64)))
        low, high = np.array(low), np.array(high)
    else:
        loc = (ddf.astype(np.float64) + grid).reshape(-1, 3)
        low, high = _host(xp.fmin.reduce(loc, axis=0)), _host(xp.fmax.reduce(loc, axis=0))
    low, high = np.where(np.isnan(low), np.inf, low), np.where(np.isnan(high), -np.inf, high)
    return np.concatenate([low, high]).reshape(1, 1, 1, 1, 6)


def _host(array):
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _box(low, high, margin, dim) -> tuple:
    """``[floor(low) - margin, floor(high) + 1 + margin]`` clipped to ``[0, dim - 1]``, its start at most
    ``dim - 2``, as a non-empty ``(start, stop)``.

    A coordinate ``c`` reads corners ``ceil(c) - 1`` and ``ceil(c)``; one clamped to ``dim - 1`` reads
    ``dim - 2`` (with weight 0) and ``dim - 1``, hence the start; with a constant boundary the corners
    outside the volume read the fill value.  So the box holds every voxel the kernels read.
    """
    start = int(np.clip(np.floor(low) - margin, 0, max(dim - 2, 0)))
    stop = int(np.clip(np.floor(high) + 1 + margin, 0, dim - 1)) + 1
    return min(start, stop - 1), stop


def _sample_block(volume, ddf, grid, origin, start, keywords, add_ddf, image_shape):
    """One output block: ``resample(volume, grid + ddf - start)``, plus ``ddf`` itself with ``add_ddf``.

    On the reference grid the row kernel warps the box directly where it can (``ddf.warp_box``), with the
    clamp limits of the whole image (spatial shape ``image_shape``); the numbers are the same.
    """
    dtype = compute_dtype(volume, ddf, grid)
    warped = None if grid is not None else _ddf.warp_box(volume, start, image_shape, ddf, origin, **keywords)
    if warped is None:
        warped = resample(volume, _locations(ddf, grid, origin, start, dtype), **keywords)
    return kernel_array(ddf, dtype, backend_of(ddf=ddf).xp) + warped if add_ddf else warped


def _assemble(pieces, origins, box):
    """The ``box`` (a ``(start, stop)`` per axis) of a chunked array from the ``pieces`` that overlap it,
    each with the index of its first element in ``origins``."""
    out = backend_of(piece=pieces[0]).xp.empty(tuple(e - s for s, e in box), dtype=pieces[0].dtype)
    for piece, origin in zip(pieces, origins):
        source, target = [], []
        for (s, e), o, n in zip(box, origin, piece.shape):
            low, high = max(s, o), min(e, o + n)
            source.append(slice(low - o, high - o))
            target.append(slice(low - s, high - s))
        out[tuple(target)] = piece[tuple(source)]
    return out


def _cut(chunk, region):
    """The part ``region`` (slices) of one chunk."""
    return chunk[region]


def _box_task(volume, box, layer, name):
    """A task that assembles ``box`` (a ``(start, stop)`` per axis) of the dask array ``volume``.

    For each chunk that overlaps the box, a task named ``(name, *chunk index)`` is added to ``layer``
    that cuts the overlap out of the chunk, so that only the overlap travels to the worker that
    assembles the box.  No slicing layer of dask's is made: the graph grows by these tasks alone,
    whatever feeds ``volume``.
    """
    spans = _block_slices(volume.chunks)
    picks = [[n for n, (s, e) in enumerate(spans[a]) if s < high and e > low] for a, (low, high) in enumerate(box)]
    keys, origins = [], []
    for index in itertools.product(*picks):
        starts = [max(spans[a][n][0], low) for a, (n, (low, _)) in enumerate(zip(index, box))]
        stops = [min(spans[a][n][1], high) for a, (n, (_, high)) in enumerate(zip(index, box))]
        region = tuple(slice(s - spans[a][n][0], e - spans[a][n][0])
                       for a, (n, s, e) in enumerate(zip(index, starts, stops)))
        key = (name,) + index
        layer[key] = (_cut, (volume.name,) + index, region)
        keys.append(key)
        origins.append(tuple(starts))
    return (_assemble, keys, origins, tuple(box))


def _sampled(volume, ddf, grid, boxes, keywords, add_ddf, meta):
    """The lazy result of :func:`_sample_block` over every block of ``ddf``, one task per block.

    ``boxes[index]`` is the ``(start, stop)`` of the volume's box per spatial axis for the block at
    ``index`` (batch, i, j, k); ``meta`` is a small in-memory result with the output dtype and rank.
    """
    name = "arrayreg-sample-" + tokenize(volume, ddf, grid, boxes, keywords, add_ddf)
    spans = _block_slices(ddf.chunks[:4])
    channel = ((0, volume.shape[4]),) if volume.ndim == 5 else ()
    layer = {}
    for index in itertools.product(*(range(n) for n in ddf.numblocks[:4])):
        origin = tuple(spans[a][n][0] for a, n in enumerate(index[1:], start=1))
        box = boxes[index]
        cut = f"{name}-cut-{'-'.join(map(str, index))}"
        piece = _box_task(volume, (spans[0][index[0]],) + box + channel, layer, cut)
        grid_key = None if grid is None else (grid.name, 0) + index[1:] + (0,)
        key = (name,) + index + ((0,) if meta.ndim == 5 else ())
        layer[key] = (_sample_block, piece, (ddf.name,) + index + (0,), grid_key, origin,
                      tuple(s for s, _ in box), keywords, add_ddf, volume.shape[1:4])
    dependencies = [volume, ddf] + ([] if grid is None else [grid])
    graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)
    chunks = ddf.chunks[:4] + (((volume.shape[4],),) if meta.ndim == 5 else ())
    return da.Array(graph, name, chunks=chunks, dtype=meta.dtype, meta=meta[:0])


def _check_image_ddf(image, ddf, grid_ref, names=("image", "ddf")):
    """The arrays as dask arrays with the channel and vector axes in one block, ``grid_ref`` chunked as
    ``ddf``; shape errors as the in-memory function's."""
    image, ddf = _as_dask(image, names[0]), _as_dask(ddf, names[1])
    if image.ndim not in (4, 5):
        raise ValueError(f"{names[0]} shape must be (batch, m_dim1, m_dim2, m_dim3) "
                         f"or (batch, m_dim1, m_dim2, m_dim3, ch), got {image.shape}")
    if ddf.ndim != 5 or ddf.shape[-1] != 3:
        raise ValueError(f"{names[1]} shape must be (batch, f_dim1, f_dim2, f_dim3, 3), got {ddf.shape}")
    if image.shape[0] != ddf.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same batch size; got {names[0]}.shape = "
                         f"{image.shape}, {names[1]}.shape = {ddf.shape}")
    if grid_ref is not None:
        grid_ref = _as_dask(grid_ref, "grid_ref")
        if grid_ref.shape != (1,) + ddf.shape[1:]:
            raise ValueError("grid_ref shape must be (1, f_dim1, f_dim2, f_dim3, 3) or None, "
                             "(f_dim1, f_dim2, f_dim3) must be the same as ddf, "
                             f"got grid_ref.shape = {grid_ref.shape} and ddf.shape = {ddf.shape}.")
    ddf = ddf.rechunk({4: -1})
    if image.ndim == 5:
        image = image.rechunk({4: -1})
    if grid_ref is not None:
        grid_ref = grid_ref.rechunk(((1,),) + ddf.chunks[1:])
    return image, ddf, grid_ref


def _meta_call(function, *arrays, **keywords):
    """``function`` on one-voxel NumPy stand-ins of ``arrays``: the in-memory function's own errors for
    bad options, and the dtype and rank of its result."""
    small = [None if a is None else np.zeros((1,) * (a.ndim - 1) + a.shape[-1:], a.dtype) for a in arrays]
    return function(*small, **keywords)


def warp_image_ddf(image, ddf, grid_ref=None, *, interpolation: str = "linear", boundary: str = "clamp",
                   fill_value=0.0):
    """:func:`arrayreg.warp_image_ddf` on dask arrays, block by block, with exact halos.

    ``warped[b, x] = image[b]`` interpolated at ``grid_ref[0, x] + ddf[b, x]``,
    with the in-memory function's keywords, shapes, dtypes and numbers.

    For each block of ``ddf`` the box of ``image`` that its locations reach is
    found first: ``[floor(min) - m, floor(max) + 1 + m]`` of ``grid + ddf`` per
    axis, clipped to the image (``m`` = 1, for rounding; cubic adds its taps and
    :data:`SPLINE_HALO`).  NaN locations are left out of the min and max (they
    give NaN or ``fill_value`` whatever the box), and far-away ones clip to the
    edge, where ``clamp`` reads and ``constant`` reads nothing.  Finding the
    boxes reads the DDF once, eagerly, when this function is called; the warp
    itself is lazy and reads only those boxes of the image.

    Parameters
    ----------
    image : dask array or zarr array, shape (batch, m1, m2, m3) or (batch, m1, m2, m3, ch)
        A dask array chunked along any axis but the channel axis (rechunked to
        one block), zarr-backed (``dask.array.from_zarr``) or not, CuPy blocks
        too.  Or a store read directly: a ``zarr.Array``, or any object with
        ``shape``, ``dtype`` and NumPy slicing that pickles (such as
        ``io.chunked.Batched``).  Then each task finds its own box from its DDF
        block and reads just that box from the store: one pass over the DDF, no
        eager step, and no image data moves between workers.
    ddf : dask array, shape (batch, f1, f2, f3, 3)
        Displacements in voxels; chunked along any axis but the last.
    grid_ref : dask or NumPy array, shape (1, f1, f2, f3, 3), optional
        None means the reference grid.
    interpolation, boundary, fill_value
        As :func:`arrayreg.warp_image_ddf`.

    Returns
    -------
    dask array, shape (batch, f1, f2, f3[, ch])
        Chunked as ``ddf`` (the channel axis in one block); linear, nearest and
        label results equal the in-memory ones bit for bit, cubic ones to 1e-6
        of the image's range.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import arrayreg
    >>> import arrayreg.dask
    >>> image = np.arange(64, dtype=np.float32).reshape(1, 4, 4, 4)
    >>> ddf = np.full((1, 4, 4, 4, 3), 0.5, np.float32)
    >>> lazy = arrayreg.dask.warp_image_ddf(da.from_array(image, 2), da.from_array(ddf, (1, 2, 2, 2, 3)))
    >>> bool((lazy.compute() == arrayreg.warp_image_ddf(image, ddf)).all())
    True
    """
    keywords = {"interpolation": interpolation, "boundary": boundary, "fill_value": fill_value}
    if _is_store(image):
        return _warp_from_store(image, ddf, grid_ref, keywords)
    image, ddf, grid_ref = _check_image_ddf(image, ddf, grid_ref)
    meta = _meta_call(_ddf.warp_image_ddf, image, ddf, grid_ref, **keywords)
    boxes = _data_boxes(ddf, grid_ref, image.shape[1:4], _MARGIN[interpolation])
    return _sampled(image, ddf, grid_ref, boxes, keywords, False, meta)


def _is_store(image) -> bool:
    """An image to be read box by box inside the tasks: neither a dask collection nor an in-memory array."""
    if isinstance(image, da.Array) or dask.is_dask_collection(image):
        return False
    if isinstance(image, np.ndarray) or hasattr(image, "__cuda_array_interface__"):
        return False
    return all(hasattr(image, name) for name in ("shape", "dtype", "__getitem__"))


def _warp_from_store(store, ddf, grid_ref, keywords):
    """:func:`warp_image_ddf` with each task reading its box from ``store`` itself."""
    if len(store.shape) not in (4, 5):
        raise ValueError("image shape must be (batch, m_dim1, m_dim2, m_dim3) "
                         f"or (batch, m_dim1, m_dim2, m_dim3, ch), got {tuple(store.shape)}")
    stand_in = da.empty(store.shape, dtype=store.dtype, chunks=store.shape)
    _, ddf, grid_ref = _check_image_ddf(stand_in, ddf, grid_ref)
    meta = _meta_call(_ddf.warp_image_ddf, stand_in, ddf, grid_ref, **keywords)
    arrays = (ddf,) if grid_ref is None else (ddf, grid_ref)
    chunks = ddf.chunks[:4] + (((store.shape[4],),) if len(store.shape) == 5 else ())
    return da.map_blocks(_store_block, *arrays, store=store, keywords=keywords, margin=_MARGIN[keywords[
        "interpolation"]], chunks=chunks, drop_axis=None if len(store.shape) == 5 else 4, dtype=meta.dtype,
                         meta=meta[:0])


def _store_block(ddf, grid=None, *, store, keywords, margin, block_info=None):
    """One output block of :func:`_warp_from_store`: its box from its own bounds, read, then warped."""
    location = block_info[0]["array-location"]
    bounds = _bounds(ddf, grid, block_info)[0, 0, 0, 0]
    box = tuple(_box(bounds[a], bounds[3 + a], margin, store.shape[a + 1]) for a in range(3))
    volume = store[(slice(*location[0]),) + tuple(slice(s, e) for s, e in box)]
    volume = backend_of(ddf=ddf).xp.asarray(volume)
    origin = tuple(start for start, _ in location[1:4])
    return _sample_block(volume, ddf, grid, origin, tuple(s for s, _ in box), keywords, False, store.shape[1:4])


def _data_boxes(ddf, grid, dims, margin) -> dict:
    """Each block's box from its own locations (one eager pass over ``ddf``)."""
    arrays = (ddf,) if grid is None else (ddf, grid)
    bounds = da.map_blocks(_bounds, *arrays, chunks=((1,) * ddf.numblocks[0], (1,) * ddf.numblocks[1],
                                                     (1,) * ddf.numblocks[2], (1,) * ddf.numblocks[3], (6,)),
                           dtype=np.float64, meta=np.empty((0,) * 5)).compute()
    return {index: tuple(_box(bounds[index][a], bounds[index][3 + a], margin, dims[a]) for a in range(3))
            for index in np.ndindex(bounds.shape[:4])}


def _reach_boxes(ddf, reach, dims, from_zero) -> dict:
    """Each block's box from a bound on its displacements: ``reach[a] >= max |ddf[..., a]|``; with
    ``from_zero`` (a field with NaN, which spreads to blocks that no bound foresees) every box starts at voxel
    0, which the clamped kernels read for a NaN coordinate (:func:`_bounds`)."""
    spans = _block_slices(ddf.chunks[1:4])
    boxes = {}
    for index in itertools.product(*(range(n) for n in ddf.numblocks[:4])):
        region = [spans[a][n] for a, n in enumerate(index[1:])]
        boxes[index] = tuple(_box(0 if from_zero else s - reach[a], e - 1 + reach[a], 1, dims[a])
                             for a, (s, e) in enumerate(region))
    return boxes


def compose_ddf(outer, inner, *, boundary: str = "constant"):
    """:func:`arrayreg.compose_ddf` on dask arrays: ``out(x) = inner(x) + outer(x + inner(x))``.

    Each block of ``inner`` reads the box of ``outer`` that its own points reach, found as in
    :func:`warp_image_ddf` (one eager pass over ``inner``).  Chunked as ``inner``; equal to the
    in-memory result bit for bit.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import arrayreg.dask
    >>> a = da.full((1, 4, 4, 4, 3), 0.5, np.float32, chunks=(1, 2, 2, 2, 3))
    >>> float(arrayreg.dask.compose_ddf(a, a, boundary="clamp").max().compute())
    1.0
    """
    outer, inner = _as_dask(outer, "outer"), _as_dask(inner, "inner")
    meta = _meta_call(_fields.compose_ddf, outer, inner, boundary=boundary)
    outer, inner, _ = _check_image_ddf(outer, inner, None, ("outer", "inner"))
    keywords = {"interpolation": "linear", "boundary": boundary, "fill_value": 0.0}
    boxes = _data_boxes(inner, None, outer.shape[1:4], _MARGIN["linear"])
    return _sampled(outer, inner, None, boxes, keywords, True, meta)


def integrate_dvf(dvf, num_steps: int = 7):
    """:func:`arrayreg.integrate_dvf` on dask arrays: each squaring step a chunked self-warp.

    ``ddf = dvf / 2**num_steps``, then ``num_steps`` times ``ddf = ddf + warp(ddf, ddf)`` (linear,
    clamp).  The boxes of every step come from one eager pass: with ``M = max |dvf[..., a]|`` (NaN
    ignored), step ``k`` (from 0) displaces by at most ``2**k * M / 2**num_steps`` along axis ``a``
    (a linear sample is a convex combination), so its boxes reach that far and no further (from voxel 0 on,
    when the field holds NaN).  The result
    is lazy, chunked as ``dvf``, and equal to the in-memory one bit for bit.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import arrayreg.dask
    >>> dvf = da.full((1, 4, 4, 4, 3), 0.5, np.float32, chunks=2)
    >>> float(abs(arrayreg.dask.integrate_dvf(dvf) - 0.5).max().compute())
    0.0
    """
    dvf = _as_dask(dvf, "dvf")
    meta = _meta_call(_ddf.integrate_dvf, dvf, num_steps=num_steps)
    _, dvf, _ = _check_image_ddf(dvf, dvf, None, ("dvf", "dvf"))
    current = dvf.astype(meta.dtype).map_blocks(np.ldexp, -num_steps, dtype=meta.dtype)
    if num_steps == 0 or dvf.size == 0:
        return current
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN fields
        largest, has_nan = dask.compute(da.nanmax(abs(current), axis=(0, 1, 2, 3)), da.isnan(current).any())
    largest = np.nan_to_num(largest, nan=0.0)
    keywords = {"interpolation": "linear", "boundary": "clamp", "fill_value": 0.0}
    dims = dvf.shape[1:4]
    for step in range(num_steps):
        reach = [int(min(np.ceil(np.ldexp(min(m, max(dims)), step)), max(dims))) for m in largest]
        boxes = _reach_boxes(current, reach, dims, bool(has_nan))
        current = _sampled(current, current, None, boxes, keywords, True, meta)
    return current


def jacobian_determinant(ddf, spacing=(1, 1, 1)):
    """:func:`arrayreg.jacobian_determinant` on dask arrays: each block with a one-voxel overlap.

    Central differences read one neighbour along each axis, so each block is
    computed from itself and one voxel of each neighbouring block, and the
    volume's own border keeps its one-sided differences.  Chunked as ``ddf``;
    equal to the in-memory result bit for bit.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import arrayreg.dask
    >>> ddf = da.zeros((1, 4, 4, 4, 3), np.float32, chunks=2)
    >>> float(arrayreg.dask.jacobian_determinant(ddf).mean().compute())
    1.0
    """
    ddf = _as_dask(ddf, "ddf")
    meta = _meta_call(_fields.jacobian_determinant, ddf, spacing=spacing)
    _, ddf, _ = _check_image_ddf(ddf, ddf, None, ("ddf", "ddf"))
    depth = {0: 0, 1: 1, 2: 1, 3: 1, 4: 0}
    return ddf.map_overlap(_fields.jacobian_determinant, depth=depth, boundary="none", trim=True, drop_axis=4,
                           dtype=meta.dtype, meta=meta[:0], spacing=spacing)


def resize3d(image, size, method: str = "bilinear"):
    """:func:`arrayreg.resize3d` on dask arrays, block by block.

    Output blocks split each axis where the input's blocks do, scaled by
    ``out / in``.  Each output block reads the input box between its first and
    last source indices (``lo`` and ``hi`` of the in-memory function's tables)
    and runs the in-memory kernel on it with those tables shifted, so the result
    equals the in-memory one bit for bit.

    Parameters
    ----------
    image : dask array, shape (d1, d2, d3), (batch, d1, d2, d3) or (batch, d1, d2, d3, ch)
        Chunked along any axis but the channel axis.
    size, method
        As :func:`arrayreg.resize3d`.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> import arrayreg.dask
    >>> image = da.from_array(np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2), chunks=1)
    >>> arrayreg.dask.resize3d(image, (4, 4, 4)).shape
    (1, 4, 4, 4)
    """
    image = _as_dask(image, "image")
    meta = _meta_call(_resize.resize3d, image, size=(2, 2, 2), method=method)
    if image.ndim == 3:
        return resize3d(image[None], size, method)[0]
    size = validate.check_size3(size, "size", "resize3d takes size of type tuple/list and of length 3")
    spatial = image.shape[1:4]
    if spatial == size:
        return image
    validate.check_spatial_nonempty(spatial, "image")
    if image.ndim == 5:
        image = image.rechunk({4: -1})
    tables = [_resize.axis_tables(n_in, n_out, method, meta.dtype) for n_in, n_out in zip(spatial, size)]
    out_chunks = [_scaled_chunks(c, n_out / n_in) for c, n_in, n_out in zip(image.chunks[1:4], spatial, size)]
    spans = _block_slices(image.chunks[:1] + tuple(out_chunks))
    channel = ((0, image.shape[4]),) if image.ndim == 5 else ()
    name = "arrayreg-resize-" + tokenize(image, size, method)
    layer = {}
    for index in itertools.product(*(range(len(s)) for s in spans)):
        regions = [spans[a][n] for a, n in enumerate(index[1:], start=1)]
        local = [_resize.shifted_tables(table, *region) for table, region in zip(tables, regions)]
        box = (spans[0][index[0]],) + tuple((start, stop) for start, stop, _ in local) + channel
        cut = f"{name}-cut-{'-'.join(map(str, index))}"
        layer[(name,) + index + (0,) * len(channel)] = (_resize.resize_with_tables, _box_task(image, box, layer, cut),
                                                        [t for _, _, t in local], method, meta.dtype)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[image])
    chunks = image.chunks[:1] + tuple(out_chunks) + image.chunks[4:]
    return da.Array(graph, name, chunks=chunks, dtype=meta.dtype, meta=meta[:0])


def _scaled_chunks(chunks, scale) -> tuple:
    """Block sizes that split ``round(n * scale)`` where ``chunks`` split ``n`` (empty blocks dropped)."""
    edges = np.unique(np.round(np.cumsum((0,) + tuple(chunks)) * scale).astype(np.int64))
    return tuple(int(n) for n in np.diff(edges))


def transforms_to_ddf(transforms, reference_shape, reference_affine, moving_affine, *, chunks=64,
                      dtype=np.float32):
    """:func:`arrayreg.transforms_to_ddf` as a lazy dask array, each block collapsed on its own.

    A block at voxel offset ``o`` is the chain on the grid whose affine is ``A @ T(o)``, with ``T(o)`` the
    translation by ``o``, minus ``p + o``: the same float64 arithmetic up to the product of the two
    matrices (``io.world.transforms_to_ddf_block``).  The transforms (fields included) travel with the graph once.

    Parameters
    ----------
    transforms, reference_shape, reference_affine, moving_affine, dtype
        As :func:`arrayreg.transforms_to_ddf`.
    chunks : int or tuple, default 64
        The blocks of the spatial axes (dask's ``chunks`` rules).

    Returns
    -------
    dask array, shape (1, n1, n2, n3, 3)
    """
    reference_affine = _world.check_affine(reference_affine, "reference_affine")
    moving_affine = _world.check_affine(moving_affine, "moving_affine")
    shape = validate.check_size3(reference_shape, "reference_shape")
    meta = _world.transforms_to_ddf(transforms, (1, 1, 1), reference_affine, moving_affine, dtype=dtype)
    template = da.empty((1,) + shape + (3,), dtype=meta.dtype, chunks=(1,) + da.core.normalize_chunks(
        chunks, shape) + ((3,),))
    held = dask.delayed(list(transforms) if isinstance(transforms, (list, tuple)) else [transforms], pure=True)
    return template.map_blocks(_collapse_block, held, reference_affine, moving_affine, dtype=meta.dtype,
                               meta=meta[:0])


def _collapse_block(template, transforms, reference_affine, moving_affine, block_info=None):
    """The block of :func:`transforms_to_ddf` at ``block_info``'s location."""
    origin = [start for start, _ in block_info[0]["array-location"][1:4]]
    return _world.transforms_to_ddf_block(transforms, template.shape[1:4], reference_affine, moving_affine,
                                          origin, dtype=template.dtype)
