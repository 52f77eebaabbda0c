"""Independent references for the tests: brute-force loops sharing no code with arrayreg."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import ndimage


def trilinear_clamped(vol, point):
    """Textbook n-linear interpolation in float64 with edge clamping: floor-based weights.

    ``vol`` is ``(*spatial, ch)``; returns ``(ch,)``.
    """
    spatial = vol.shape[:-1]
    lows, fracs = [], []
    for c, size in zip(point, spatial):
        c = min(max(float(c), 0.0), size - 1.0)
        low = int(math.floor(c))
        lows.append(low)
        fracs.append(c - low)
    total = np.zeros(vol.shape[-1])
    for offsets in itertools.product((0, 1), repeat=len(spatial)):
        weight = 1.0
        index = []
        for low, frac, off, size in zip(lows, fracs, offsets, spatial):
            weight *= frac if off else 1.0 - frac
            index.append(min(low + off, size - 1))
        if weight:
            total += weight * vol[tuple(index)].astype(np.float64)
    return total


def linear_constant(vol, point, fill):
    """n-linear interpolation where each corner outside the volume is ``fill`` (grid_sample zeros padding)."""
    spatial = vol.shape[:-1]
    total = np.zeros(vol.shape[-1])
    lows = [int(math.floor(c)) for c in point]
    for offsets in itertools.product((0, 1), repeat=len(spatial)):
        weight = 1.0
        index = []
        for low, c, off in zip(lows, point, offsets):
            frac = c - low
            weight *= frac if off else 1.0 - frac
            index.append(low + off)
        inside = all(0 <= i < s for i, s in zip(index, spatial))
        total += weight * (vol[tuple(index)].astype(np.float64) if inside else fill)
    return total


def nearest_clamped(vol, point):
    index = tuple(int(math.floor(min(max(float(c), 0.0), s - 1.0) + 0.5)) for c, s in zip(point, vol.shape[:-1]))
    return vol[index]


def resample_loop(vol, loc, rule, **kwargs):
    """Apply ``rule(vol[b], point)`` to every location; ``vol`` may lack the channel axis."""
    n = loc.shape[-1]
    has_channel = vol.ndim == n + 2
    vol_c = vol if has_channel else vol[..., None]
    out = np.zeros(loc.shape[:-1] + (vol_c.shape[-1],), dtype=np.float64 if rule is not nearest_clamped else vol.dtype)
    for index in np.ndindex(loc.shape[:-1]):
        out[index] = rule(vol_c[index[0]], loc[index], **kwargs)
    return out if has_channel else out[..., 0]


def map_coordinates_batched(vol, loc, mode="nearest", cval=0.0, order=1):
    """scipy.ndimage.map_coordinates(order=order) for each batch element and channel, in float64."""
    n = loc.shape[-1]
    has_channel = vol.ndim == n + 2
    vol_c = vol if has_channel else vol[..., None]
    out = np.empty(loc.shape[:-1] + (vol_c.shape[-1],), dtype=np.float64)
    for b in range(vol.shape[0]):
        coords = np.moveaxis(loc[b].astype(np.float64), -1, 0)
        for c in range(vol_c.shape[-1]):
            out[b, ..., c] = ndimage.map_coordinates(
                vol_c[b, ..., c].astype(np.float64), coords, order=order, mode=mode, cval=cval
            )
    return out if has_channel else out[..., 0]


def zoom_linear(volume, size):
    """scipy.ndimage.zoom with half-pixel centres (grid_mode) on the three spatial axes of (d1, d2, d3)."""
    factors = [o / i for o, i in zip(size, volume.shape)]
    return ndimage.zoom(volume.astype(np.float64), factors, order=1, grid_mode=True, mode="nearest")


def one_hot_vote(sample_channel, labels, boundary, fill_value, dtype):
    """Label interpolation by brute force: every id's indicator map (``dtype`` 0/1) sampled linearly with
    ``sample_channel(indicator, fill)`` (fill 1 for the id ``fill_value`` with ``"constant"``), then the
    argmax over the ids in ascending order, so that ties go to the smallest id."""
    ids = np.unique(labels)
    if boundary == "constant":
        ids = np.unique(np.append(ids, np.array(fill_value, labels.dtype)))
    channels = [sample_channel((labels == i).astype(dtype), float(boundary == "constant" and i == fill_value))
                for i in ids]
    return ids[np.argmax(np.stack(channels), axis=0)]
