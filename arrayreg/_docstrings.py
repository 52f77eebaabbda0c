"""Parameter text shared by the public functions, written once and filled in (as SciPy's ``ndimage`` does).

A docstring names a shared entry as ``{{name}}`` on a line of its own, at the
indentation of a numpydoc parameter (4 spaces); :func:`fill` replaces it.
"""

from __future__ import annotations

import re

SHARED = {
    "interpolation": """\
interpolation : {"linear", "nearest", "label", "cubic"}, default "linear"
    ``"linear"`` (DeepReg): along each axis the coordinate ``c`` gives the
    corners ``hi = ceil(c)`` and ``lo = hi - 1`` (``max(hi - 1, 0)`` when
    clamped) with the floor weight ``w = hi - c``; the corners combine as
    :func:`arrayreg.pyramid_combination`.
    ``"nearest"`` (beyond DeepReg): the voxel ``floor(c + 1/2)`` (halves round
    up); the image's dtype is kept, so integer label maps stay integer.
    ``"label"`` (integer or bool label maps, any ids): the linear corners and
    weights; each id among the corners scores the sum of the weights of its
    corners (the value its channel would get in a warp of the one-hot map, bit
    for bit), the highest score wins and ties go to the smallest id.  Corners
    outside vote for ``fill_value`` with ``"constant"``; the dtype is kept; no
    one-hot volume is built.  A NaN coordinate with ``"clamp"`` gives 0.
    ``"cubic"``: the cubic B-spline of the image, with the exact prefilter
    (SciPy's ``order=3``, ``prefilter=True``), from one coefficient array of the
    compute dtype the size of the image.  At the edges the image is taken as
    extended to infinity, by its edge values (``"clamp"``, SciPy's
    ``mode="nearest"``) or by ``fill_value`` (``"constant"``, SciPy's
    ``mode="grid-constant"``), and the spline of that infinite image is
    evaluated exactly; coordinates are clipped to 32 voxels outside, where it
    equals its limit to float64 rounding.  3 spatial axes only.""",
    "boundary": """\
boundary : {"clamp", "constant"}, default "clamp"
    ``"clamp"`` (DeepReg): each coordinate is first clipped to
    ``[0, dim - 1]``, so points outside take the edge values (SciPy's
    ``mode="nearest"``, torch's ``padding_mode="border"``).  ``"constant"``:
    coordinates are not clipped and every corner outside the volume contributes
    ``fill_value`` (SciPy's ``mode="grid-constant"``, torch's
    ``padding_mode="zeros"`` when ``fill_value`` is 0).""",
    "fill_value": """\
fill_value : float, default 0.0
    The value of the corners outside the volume with ``boundary="constant"``.
    It must be finite in the output dtype (NaN is allowed) and, for integer
    images with nearest or label interpolation, an integer of the image's range.""",
    "dtype_rule": """\
The dtype rule: computation is in float64 when any floating input is float64,
otherwise in float32 (float16 and integer images compute in float32); linear
and cubic results have that dtype, nearest and label results the image's
(float16 becomes float32).""",
    "batch_layout": """\
Arrays are channels-last and batch-first: images ``(batch, d1, d2, d3)`` or
``(batch, d1, d2, d3, ch)``, fields ``(batch, f1, f2, f3, 3)`` in voxels with
``field[..., d]`` along axis ``d + 1`` (``ij`` order).  NumPy arrays run on the
Numba CPU kernels and return NumPy; CuPy arrays run on the CUDA kernels on
CuPy's current stream and return CuPy.""",
}

_MARKER = re.compile(r"^(?P<indent>[ ]*)\{\{(?P<name>\w+)\}\}[ ]*$", re.MULTILINE)


def fill(function):
    """Replace each ``{{name}}`` line of ``function.__doc__`` by :data:`SHARED` ``[name]``, indented alike."""
    def shared(match):
        indent = match.group("indent")
        return "\n".join(indent + line if line else line for line in SHARED[match.group("name")].splitlines())

    function.__doc__ = _MARKER.sub(shared, function.__doc__)
    return function
