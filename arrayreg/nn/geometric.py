"""The layers of DeepReg's geometric core: ``Warping``, ``IntDVF``, ``AdditiveUpSampling``.

Forward only, no weights; constructors, call conventions and attributes
(``Warping.grid_ref``, ``IntDVF._warping``, ``AdditiveUpSampling._stride``, ...)
follow DeepReg v0.1.1 (``deepreg.model.layer``).  ``layer(x)`` and
``layer.call(x)`` are the same.
"""

from __future__ import annotations

from .. import _validation as validate
from .._backend import backend_of
from .._docstrings import fill
from ..ddf import Scratch, integrate_with, warp_image_ddf
from ..grid import get_reference_grid
from ..resize import resize3d
from .layers import Layer


def _inputs_pair(inputs, layer: str, names: str):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise TypeError(f"{layer} must be called with a list [{names}]; got {type(inputs).__name__}")
    return inputs


def _check_fixed_size(field, name: str, fixed_image_size: tuple) -> None:
    shape = tuple(field.shape)
    if shape[1:4] != fixed_image_size:
        raise ValueError(f"{name} shape must be (batch, {', '.join(map(str, fixed_image_size))}, 3) to match "
                         f"fixed_image_size = {fixed_image_size}; got {name}.shape = {shape}")


@fill
class Warping(Layer):
    """Warp an image with a DDF defined on the fixed grid: ``Warping(fixed_image_size)([ddf, image])``.

    Equivalent to ``warp_image_ddf(image, ddf, grid_ref=self.grid_ref)`` with
    ``grid_ref = get_reference_grid(fixed_image_size)[None]``, shape
    ``(1, *fixed_image_size, 3)``; the ddf's spatial shape must equal
    ``fixed_image_size``.  The keywords ``interpolation``, ``boundary`` and
    ``fill_value`` go beyond DeepReg and default to its behaviour.

    Parameters
    ----------
    fixed_image_size : tuple of 3 positive ints
    name : str, default "warping"
    {{interpolation}}
    {{boundary}}
    {{fill_value}}

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg import Warping
    >>> image = np.arange(4, dtype=np.float32).reshape(1, 1, 1, 4)
    >>> ddf = np.full((1, 1, 1, 4, 3), 0.0, np.float32)
    >>> ddf[..., 2] = -1.0
    >>> Warping((1, 1, 4))([ddf, image])
    array([[[[0., 0., 1., 2.]]]], dtype=float32)
    """

    def __init__(self, fixed_image_size, name: str = "warping", *, interpolation: str = "linear",
                 boundary: str = "clamp", fill_value=0.0):
        super().__init__(name)
        self.fixed_image_size = validate.check_size3(fixed_image_size, "fixed_image_size")
        self.interpolation = validate.check_choice(interpolation, "interpolation", validate.INTERPOLATIONS)
        self.boundary = validate.check_choice(boundary, "boundary", validate.BOUNDARIES)
        self.fill_value = fill_value
        self._grid_ref = None

    @property
    def grid_ref(self):
        """DeepReg's reference grid, ``(1, *fixed_image_size, 3)`` float32 NumPy, made on first use."""
        if self._grid_ref is None:
            self._grid_ref = get_reference_grid(self.fixed_image_size)[None]
        return self._grid_ref

    def forward(self, inputs, training=None):
        ddf, image = _inputs_pair(inputs, "Warping", "ddf, image")
        ddf = validate.as_coordinates(ddf, "ddf", backend_of(ddf=ddf, image=image).xp)
        _check_fixed_size(ddf, "ddf", self.fixed_image_size)
        # The reference grid is the default grid of a ddf of this shape: it is not materialised here.
        return warp_image_ddf(image, ddf, interpolation=self.interpolation, boundary=self.boundary,
                              fill_value=self.fill_value)


class IntDVF(Layer):
    """Integrate a velocity field by scaling and squaring: ``IntDVF(fixed_image_size, num_steps=7)(dvf)``.

    ``ddf = dvf / 2**num_steps``, then ``num_steps`` times ``ddf += warp(ddf, ddf)``;
    see :func:`arrayreg.integrate_dvf`.  ``dvf`` is ``(batch, *fixed_image_size, 3)``.
    The layer keeps the spare field of the squaring steps between calls (one
    field's memory, for as long as the layer lives): a call allocates only its
    result.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayreg import IntDVF
    >>> IntDVF((4, 4, 4), num_steps=7)(np.zeros((2, 4, 4, 4, 3), np.float32)).shape
    (2, 4, 4, 4, 3)
    """

    def __init__(self, fixed_image_size, num_steps: int = 7, name: str = "int_dvf"):
        super().__init__(name)
        self.fixed_image_size = validate.check_size3(fixed_image_size, "fixed_image_size")
        self._num_steps = validate.check_int(num_steps, "num_steps", 0)
        self._warping = Warping(self.fixed_image_size)
        self._scratch = Scratch()

    @property
    def num_steps(self) -> int:
        return self._num_steps

    def forward(self, inputs, training=None):
        dvf = validate.as_coordinates(inputs, "dvf", backend_of(dvf=inputs).xp)
        _check_fixed_size(dvf, "dvf", self.fixed_image_size)
        return integrate_with(dvf, self._num_steps, self._scratch)


class AdditiveUpSampling(Layer):
    """Resize then sum channel groups: ``AdditiveUpSampling(output_shape, stride=2)(x)``.

    ``y = resize3d(x, output_shape)`` (bilinear), then the channels are split
    into ``stride`` contiguous groups and summed:
    ``out[..., c] = sum_s y[..., s * C / stride + c]`` for ``C`` input channels.
    ``x`` is ``(batch, d1, d2, d3, C)`` with ``C`` divisible by ``stride``.
    """

    def __init__(self, output_shape, stride: int = 2, name: str = "additive_up_sampling"):
        super().__init__(name)
        self._output_shape = validate.check_size3(output_shape, "output_shape")
        self._stride = validate.check_int(stride, "stride", 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._output_shape, input_shape[-1] // self._stride)

    def forward(self, inputs, training=None):
        x = validate.as_array(inputs, "inputs", backend_of(inputs=inputs).xp)
        if x.ndim != 5:
            raise ValueError(f"inputs must have shape (batch, dim1, dim2, dim3, channels); got {x.shape}")
        if x.shape[4] % self._stride != 0:
            raise ValueError(
                "The channel dimension can not be divided by the stride: "
                f"channels = {x.shape[4]}, stride = {self._stride}"
            )
        resized = resize3d(x, self._output_shape)
        groups = resized.reshape(resized.shape[:4] + (self._stride, x.shape[4] // self._stride))
        out = groups[..., 0, :].copy()
        for s in range(1, self._stride):
            out += groups[..., s, :]
        return out
