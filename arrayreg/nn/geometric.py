"""The layers of DeepReg's geometric core: ``Warping``, ``IntDVF``, ``AdditiveUpSampling``.

Forward only, no weights; constructors and call conventions follow DeepReg
v0.1.1 (``deepreg.model.layer``).
"""

from __future__ import annotations

import numpy as np

from .. import _validation as v
from .._backend import backend_of
from ..ddf import integrate_dvf, warp_image_ddf
from ..resize import resize3d


def _inputs_pair(inputs, layer: str, names: str):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise TypeError(f"{layer} must be called with a list [{names}]; got {type(inputs).__name__}")
    return inputs


class Warping:
    """Warp an image with a DDF defined on the fixed grid: ``Warping(fixed_image_size)([ddf, image])``.

    Equivalent to ``warp_image_ddf(image, ddf, grid_ref=get_reference_grid(fixed_image_size)[None])``;
    the ddf's spatial shape must equal ``fixed_image_size``.  The keywords
    ``interpolation``, ``boundary`` and ``fill_value`` go beyond DeepReg and
    default to its behaviour (see :func:`arrayreg.resample`).
    """

    def __init__(self, fixed_image_size, name: str = "warping", *, interpolation: str = "linear",
                 boundary: str = "clamp", fill_value=0.0):
        self.fixed_image_size = v.check_size3(fixed_image_size, "fixed_image_size")
        self.name = name
        self.interpolation = v.check_choice(interpolation, "interpolation", v.INTERPOLATIONS)
        self.boundary = v.check_choice(boundary, "boundary", v.BOUNDARIES)
        self.fill_value = fill_value

    def __call__(self, inputs, **kwargs):
        ddf, image = _inputs_pair(inputs, "Warping", "ddf, image")
        shape = np.shape(ddf)
        if tuple(shape[1:4]) != self.fixed_image_size:
            raise ValueError(
                f"ddf shape must be (batch, {', '.join(map(str, self.fixed_image_size))}, 3) to match "
                f"fixed_image_size = {self.fixed_image_size}; got ddf.shape = {tuple(shape)}"
            )
        return warp_image_ddf(image, ddf, interpolation=self.interpolation, boundary=self.boundary,
                              fill_value=self.fill_value)


class IntDVF:
    """Integrate a velocity field by scaling and squaring: ``IntDVF(fixed_image_size, num_steps=7)(dvf)``.

    ``ddf = dvf / 2**num_steps``, then ``num_steps`` times ``ddf += warp(ddf, ddf)``;
    see :func:`arrayreg.integrate_dvf`.  ``dvf`` is ``(batch, *fixed_image_size, 3)``.
    """

    def __init__(self, fixed_image_size, num_steps: int = 7, name: str = "int_dvf"):
        self.fixed_image_size = v.check_size3(fixed_image_size, "fixed_image_size")
        self.num_steps = v.check_int(num_steps, "num_steps", 0)
        self.name = name

    def __call__(self, inputs, **kwargs):
        inputs = v.as_coordinates(inputs, "dvf", backend_of(dvf=inputs).xp)
        shape = inputs.shape
        if tuple(shape[1:4]) != self.fixed_image_size:
            raise ValueError(
                f"dvf shape must be (batch, {', '.join(map(str, self.fixed_image_size))}, 3) to match "
                f"fixed_image_size = {self.fixed_image_size}; got dvf.shape = {tuple(shape)}"
            )
        return integrate_dvf(inputs, self.num_steps)


class AdditiveUpSampling:
    """Resize then sum channel groups: ``AdditiveUpSampling(output_shape, stride=2)(x)``.

    ``y = resize3d(x, output_shape)`` (bilinear), then the channels are split
    into ``stride`` contiguous groups and summed:
    ``out[..., c] = sum_s y[..., s * C / stride + c]`` for ``C`` input channels.
    ``x`` is ``(batch, d1, d2, d3, C)`` with ``C`` divisible by ``stride``.
    """

    def __init__(self, output_shape, stride: int = 2, name: str = "additive_upsampling"):
        self.output_shape = v.check_size3(output_shape, "output_shape")
        self.stride = v.check_int(stride, "stride", 1)
        self.name = name

    def __call__(self, inputs, **kwargs):
        x = v.as_array(inputs, "inputs", backend_of(inputs=inputs).xp)
        if x.ndim != 5:
            raise ValueError(f"inputs must have shape (batch, dim1, dim2, dim3, channels); got {x.shape}")
        if x.shape[4] % self.stride != 0:
            raise ValueError(
                "The channel dimension can not be divided by the stride: "
                f"channels = {x.shape[4]}, stride = {self.stride}"
            )
        resized = resize3d(x, self.output_shape)
        groups = resized.reshape(resized.shape[:4] + (self.stride, x.shape[4] // self.stride))
        out = groups[..., 0, :].copy()
        for s in range(1, self.stride):
            out += groups[..., s, :]
        return out
