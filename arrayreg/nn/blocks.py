"""DeepReg's composite blocks (``deepreg.model.layer`` v0.1.1): sub-layers in DeepReg's order.

A block's weights are its sub-layers', in Keras 2 order (see :mod:`arrayreg.nn.layers`),
with the sub-layers that DeepReg creates in ``build()`` last.  ``build(shape)``
(a shape, or a list of shapes for list inputs) creates every sub-layer's
weights from the shapes alone, as Keras does: it runs nothing, so it accepts
any shapes that DeepReg's ``build`` accepts, including ones that the forward
pass would then reject.  The private attributes carry DeepReg's names
(``_conv3d_block``, ``_residual_block``, ``_deconv3d_block``, ...).
"""

from __future__ import annotations

from .._backend import backend_of
from ..resize import resize3d
from .geometric import AdditiveUpSampling
from .layers import Activation, Conv3d, Deconv3d, Layer, MaxPool3d, Norm, Slot


def _shape_pair(input_shape, block: str, names: str) -> tuple:
    """The two shapes of a block called on a list ``[a, b]``."""
    if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
            and all(isinstance(s, (list, tuple)) and len(s) == 5 for s in input_shape)):
        raise ValueError(f"{block} is called on a list [{names}] of 5-d inputs; its input_shape must be two "
                         f"shapes (batch, d1, d2, d3, channels); got {input_shape!r}")
    return tuple(input_shape[0]), tuple(input_shape[1])


class Block(Layer):
    """A layer made of sub-layers: their weights, paths prefixed by the sub-layer's name.

    Sub-layers with the same name are told apart as Keras does, by a counter
    (``conv3d_block``, ``conv3d_block_1``, ...), counted here within the block.
    """

    def __init__(self, name=None, seed=None):
        super().__init__(name, seed=seed)
        self._layers: list = []

    def _track(self, layer):
        self._layers.append(layer)
        return layer

    def _slots(self) -> list:
        slots, seen = [], {}
        for layer in self._layers:
            count = seen.get(layer.name, 0)
            seen[layer.name] = count + 1
            local = layer.name if count == 0 else f"{layer.name}_{count}"
            slots += [Slot(f"{local}/{s.path}", s.owner, s.key) for s in layer._slots()]
        return slots

    @staticmethod
    def _build_chain(shape, *layers):
        """Build ``layers`` one after the other from ``shape``; the last one's output shape."""
        for layer in layers:
            if not layer.built:
                layer.build(shape)
                layer.built = True
            shape = layer.compute_output_shape(shape)
        return shape


class Conv3dBlock(Block):
    """``Conv3dBlock(filters, kernel_size=3, strides=1, padding="same")``: conv3d (no bias) -> batch norm -> relu."""

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", name=None, seed=None):
        super().__init__(name, seed)
        self._conv3d = self._track(Conv3d(filters, kernel_size, strides, padding, use_bias=False, seed=self._rng))
        self._norm = self._track(Norm(seed=self._rng))
        self._act = self._track(Activation())

    def build(self, input_shape) -> None:
        self._build_chain(input_shape, self._conv3d, self._norm, self._act)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._conv3d.compute_output_shape(input_shape)

    def forward(self, inputs, training=None):
        return self._act(self._norm(self._conv3d(inputs), training=training))


class Deconv3dBlock(Block):
    """``Deconv3dBlock(filters, output_shape=None, kernel_size=3, strides=1, padding="same")``:
    deconv3d (no bias) -> batch norm -> relu."""

    def __init__(self, filters, output_shape=None, kernel_size=3, strides=1, padding="same", name=None, seed=None):
        super().__init__(name, seed)
        self._deconv3d = self._track(Deconv3d(filters, output_shape, kernel_size, strides, padding, use_bias=False,
                                              seed=self._rng))
        self._norm = self._track(Norm(seed=self._rng))
        self._act = self._track(Activation())

    def build(self, input_shape) -> None:
        self._build_chain(input_shape, self._deconv3d, self._norm, self._act)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._deconv3d.compute_output_shape(input_shape)

    def forward(self, inputs, training=None):
        return self._act(self._norm(self._deconv3d(inputs), training=training))


class Residual3dBlock(Block):
    """``Residual3dBlock(filters, kernel_size=3, strides=1)``: ``relu(norm(conv3d(conv3d_block(x))) + x)``."""

    def __init__(self, filters, kernel_size=3, strides=1, name=None, seed=None):
        super().__init__(name, seed)
        self._conv3d_block = self._track(Conv3dBlock(filters, kernel_size, strides, seed=self._rng))
        self._conv3d = self._track(Conv3d(filters, kernel_size, strides, use_bias=False, seed=self._rng))
        self._norm = self._track(Norm(seed=self._rng))
        self._act = self._track(Activation())

    def build(self, input_shape) -> None:
        self._build_chain(input_shape, self._conv3d_block, self._conv3d, self._norm, self._act)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._conv3d.compute_output_shape(self._conv3d_block.compute_output_shape(input_shape))

    def forward(self, inputs, training=None):
        conved = self._conv3d(self._conv3d_block(inputs, training=training))
        return self._act(self._norm(conved, training=training) + inputs)


class DownSampleResnetBlock(Block):
    """``DownSampleResnetBlock(filters, kernel_size=3, pooling=True)``; returns ``(pooled, skip)``.

    ``skip = residual_block(conv3d_block(x))``; ``pooled`` is a 2x max pool of
    ``skip`` (``_max_pool3d``) or, with ``pooling=False``, a stride-2
    ``Conv3dBlock`` (``_conv3d_block3``); the other attribute is ``None``.
    """

    def __init__(self, filters, kernel_size=3, pooling=True, name=None, seed=None):
        super().__init__(name, seed)
        self._pooling = bool(pooling)
        self._conv3d_block = self._track(Conv3dBlock(filters, kernel_size, seed=self._rng))
        self._residual_block = self._track(Residual3dBlock(filters, kernel_size, seed=self._rng))
        self._max_pool3d = self._track(MaxPool3d((2, 2, 2), (2, 2, 2))) if pooling else None
        self._conv3d_block3 = None if pooling else self._track(Conv3dBlock(filters, kernel_size, strides=2,
                                                                          seed=self._rng))

    @property
    def _down(self) -> Layer:
        return self._max_pool3d if self._pooling else self._conv3d_block3

    def build(self, input_shape) -> None:
        skip = self._build_chain(input_shape, self._conv3d_block, self._residual_block)
        self._build_chain(skip, self._down)
        self.built = True

    def compute_output_shape(self, input_shape):
        skip = self._residual_block.compute_output_shape(self._conv3d_block.compute_output_shape(input_shape))
        return self._down.compute_output_shape(skip), skip

    def forward(self, inputs, training=None):
        skip = self._residual_block(self._conv3d_block(inputs, training=training), training=training)
        return self._down(skip, training=training), skip


class UpSampleResnetBlock(Block):
    """``UpSampleResnetBlock(filters, kernel_size=3, concat=False)`` called with ``[down_sampled, skip]``.

    ``deconv3d_block`` (stride 2 to the skip's shape, created in ``build``) then
    sum (or channel concat) with ``skip``, ``conv3d_block``, ``residual_block``.
    """

    def __init__(self, filters, kernel_size=3, concat=False, name=None, seed=None):
        super().__init__(name, seed)
        self._filters, self._concat = filters, bool(concat)
        self._conv3d_block = self._track(Conv3dBlock(filters, kernel_size, seed=self._rng))
        self._residual_block = self._track(Residual3dBlock(filters, kernel_size, seed=self._rng))
        self._deconv3d_block = None

    def build(self, input_shape) -> None:
        down, skip = _shape_pair(input_shape, "UpSampleResnetBlock", "down_sampled, skip")
        self._deconv3d_block = self._track(Deconv3dBlock(self._filters, skip[1:4], strides=2, seed=self._rng))
        up = self._build_chain(down, self._deconv3d_block)
        if self._concat:
            up = up[:4] + (up[4] + skip[4],)
        self._build_chain(up, self._conv3d_block, self._residual_block)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:4]) + (self._filters,)

    def forward(self, inputs, training=None):
        down_sampled, skip = inputs[0], inputs[1]
        up = self._deconv3d_block(down_sampled, training=training)
        up = backend_of(up=up).xp.concatenate([up, skip], axis=4) if self._concat else up + skip
        return self._residual_block(self._conv3d_block(up, training=training), training=training)


class Conv3dWithResize(Block):
    """``Conv3dWithResize(output_shape, filters, kernel_initializer="glorot_uniform", activation=None)``:
    conv3d (with bias) then bilinear ``resize3d`` to ``output_shape``."""

    def __init__(self, output_shape, filters, kernel_initializer="glorot_uniform", activation=None, name=None,
                 seed=None):
        super().__init__(name, seed)
        self._output_shape = tuple(output_shape)
        self._conv3d = self._track(Conv3d(filters, strides=1, kernel_initializer=kernel_initializer,
                                          activation=activation, seed=self._rng))

    def build(self, input_shape) -> None:
        self._build_chain(input_shape, self._conv3d)
        self.built = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._output_shape, self._conv3d.filters)

    def forward(self, inputs, training=None):
        return resize3d(self._conv3d(inputs), self._output_shape)


class LocalNetResidual3dBlock(Block):
    """``LocalNetResidual3dBlock(filters, kernel_size=3, strides=1)`` on ``[x, r]``: ``relu(norm(conv3d(x)) + r)``."""

    def __init__(self, filters, kernel_size=3, strides=1, name=None, seed=None):
        super().__init__(name, seed)
        self._conv3d = self._track(Conv3d(filters, kernel_size, strides, use_bias=False, seed=self._rng))
        self._norm = self._track(Norm(seed=self._rng))
        self._act = self._track(Activation())

    def build(self, input_shape) -> None:
        conved, _ = _shape_pair(input_shape, "LocalNetResidual3dBlock", "x, residual")
        self._build_chain(conved, self._conv3d, self._norm, self._act)
        self.built = True

    def compute_output_shape(self, input_shape):
        return self._conv3d.compute_output_shape(input_shape[0])

    def forward(self, inputs, training=None):
        return self._act(self._norm(self._conv3d(inputs[0]), training=training) + inputs[1])


class LocalNetUpSampleResnetBlock(Block):
    """``LocalNetUpSampleResnetBlock(filters, use_additive_upsampling=True)`` on ``[nonskip, skip]``.

    ``h0 = deconv3d_block(nonskip) (+ additive_upsampling(nonskip))``,
    ``out = residual_block([conv3d_block(h0), h0 + skip])``; the deconv block
    and the additive up-sampling are created in ``build`` (weights last).
    """

    def __init__(self, filters, use_additive_upsampling=True, name=None, seed=None):
        super().__init__(name, seed)
        self._filters, self._use_additive_upsampling = filters, bool(use_additive_upsampling)
        self._conv3d_block = self._track(Conv3dBlock(filters, seed=self._rng))
        self._residual_block = self._track(LocalNetResidual3dBlock(filters, strides=1, seed=self._rng))
        self._deconv3d_block = self._additive_upsampling = None

    def build(self, input_shape) -> None:
        nonskip, skip = _shape_pair(input_shape, "LocalNetUpSampleResnetBlock", "nonskip, skip")
        output_shape = skip[1:4]
        self._deconv3d_block = self._track(Deconv3dBlock(self._filters, output_shape, strides=2, seed=self._rng))
        if self._use_additive_upsampling:
            self._additive_upsampling = AdditiveUpSampling(output_shape)
        h0 = self._build_chain(nonskip, self._deconv3d_block)
        conved = self._build_chain(h0, self._conv3d_block)
        self._build_chain([conved, h0], self._residual_block)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:4]) + (self._filters,)

    def forward(self, inputs, training=None):
        nonskip, skip = inputs[0], inputs[1]
        h0 = self._deconv3d_block(nonskip, training=training)
        if self._use_additive_upsampling:
            h0 = h0 + self._additive_upsampling(nonskip)
        return self._residual_block([self._conv3d_block(h0, training=training), h0 + skip], training=training)
