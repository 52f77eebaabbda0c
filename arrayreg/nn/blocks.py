"""DeepReg's composite blocks (``deepreg.model.layer`` v0.1.1): sub-layers in DeepReg's order.

``get_weights()`` concatenates the sub-layers' weights in the order DeepReg
constructs them, with the sub-layers that DeepReg creates in ``build()`` last
(Keras order).  ``build(shape)`` (a shape, or a list of shapes for list
inputs) runs the block once on zeros so that every sub-layer builds.
"""

from __future__ import annotations

import numpy as np

from .._backend import backend_of
from ..resize import resize3d
from .geometric import AdditiveUpSampling
from .layers import Activation, Conv3d, Deconv3d, Layer, MaxPool3d, Norm


class Block(Layer):
    """A layer made of sub-layers; weights are theirs, in registration order."""

    def __init__(self, name=None, seed=None):
        super().__init__(name, seed=seed)
        self._layers: list = []

    def _track(self, layer):
        self._layers.append(layer)
        return layer

    @property
    def weights(self) -> dict:
        return {f"{i}:{layer.name}/{key}": w for i, layer in enumerate(self._layers)
                for key, w in getattr(layer, "weights", {}).items()}

    def get_weights(self) -> list:
        return [w for layer in self._layers if isinstance(layer, Layer) for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if not self.built:
            raise ValueError(f"{type(self).__name__} has no weights yet: call build(input_shape) or the layer first")
        expected = len(self.get_weights())
        if len(weights) != expected:
            raise ValueError(f"{type(self).__name__} expects {expected} weights; got {len(weights)}")
        for layer in self._layers:
            if isinstance(layer, Layer):
                count = len(layer.get_weights())
                layer.set_weights(weights[:count])
                weights = weights[count:]

    def build(self, input_shape) -> None:
        self.built = True
        self.build_sublayers(input_shape)
        zeros = [np.zeros(s, np.float32) for s in input_shape] if _is_shape_list(input_shape) \
            else np.zeros(input_shape, np.float32)
        self.call(zeros, training=False)

    def build_sublayers(self, input_shape) -> None:
        """Create the sub-layers that DeepReg creates in ``build()`` (none by default)."""


def _is_shape_list(shape) -> bool:
    return isinstance(shape, (list, tuple)) and len(shape) > 0 and isinstance(shape[0], (list, tuple))


class Conv3dBlock(Block):
    """``Conv3dBlock(filters, kernel_size=3, strides=1, padding="same")``: conv3d (no bias) -> batch norm -> relu."""

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", name=None, seed=None):
        super().__init__(name, seed)
        self._conv3d = self._track(Conv3d(filters, kernel_size, strides, padding, use_bias=False, seed=self._rng))
        self._norm = self._track(Norm(seed=self._rng))
        self._act = self._track(Activation())

    def call(self, inputs, training=None):
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

    def call(self, inputs, training=None):
        return self._act(self._norm(self._deconv3d(inputs), training=training))


class Residual3dBlock(Block):
    """``Residual3dBlock(filters, kernel_size=3, strides=1)``: ``relu(norm(conv3d(conv3d_block(x))) + x)``."""

    def __init__(self, filters, kernel_size=3, strides=1, name=None, seed=None):
        super().__init__(name, seed)
        self._conv3d_block = self._track(Conv3dBlock(filters, kernel_size, strides, seed=self._rng))
        self._conv3d = self._track(Conv3d(filters, kernel_size, strides, use_bias=False, seed=self._rng))
        self._norm = self._track(Norm(seed=self._rng))
        self._act = self._track(Activation())

    def call(self, inputs, training=None):
        conved = self._conv3d(self._conv3d_block(inputs, training=training))
        return self._act(self._norm(conved, training=training) + inputs)


class DownSampleResnetBlock(Block):
    """``DownSampleResnetBlock(filters, kernel_size=3, pooling=True)``; returns ``(pooled, skip)``.

    ``skip = residual_block(conv3d_block(x))``; ``pooled`` is a 2x max pool of
    ``skip`` or, with ``pooling=False``, a stride-2 ``Conv3dBlock``.
    """

    def __init__(self, filters, kernel_size=3, pooling=True, name=None, seed=None):
        super().__init__(name, seed)
        self._pooling = bool(pooling)
        self._conv3d_block = self._track(Conv3dBlock(filters, kernel_size, seed=self._rng))
        self._residual_block = self._track(Residual3dBlock(filters, kernel_size, seed=self._rng))
        self._down = self._track(MaxPool3d((2, 2, 2), (2, 2, 2)) if pooling
                                 else Conv3dBlock(filters, kernel_size, strides=2, seed=self._rng))

    def call(self, inputs, training=None):
        skip = self._residual_block(self._conv3d_block(inputs, training=training), training=training)
        pooled = self._down(skip) if self._pooling else self._down(skip, training=training)
        return pooled, skip


class UpSampleResnetBlock(Block):
    """``UpSampleResnetBlock(filters, kernel_size=3, concat=False)`` called with ``[down_sampled, skip]``.

    ``deconv3d_block`` (stride 2 to the skip's shape, built in ``build``) then
    sum (or channel concat) with ``skip``, ``conv3d_block``, ``residual_block``.
    """

    def __init__(self, filters, kernel_size=3, concat=False, name=None, seed=None):
        super().__init__(name, seed)
        self._filters, self._concat = filters, bool(concat)
        self._conv3d_block = self._track(Conv3dBlock(filters, kernel_size, seed=self._rng))
        self._residual_block = self._track(Residual3dBlock(filters, kernel_size, seed=self._rng))
        self._deconv3d_block = None

    def build_sublayers(self, input_shape) -> None:
        skip_shape = tuple(input_shape[1][1:4])
        self._deconv3d_block = self._track(Deconv3dBlock(self._filters, skip_shape, strides=2, seed=self._rng))

    def call(self, inputs, training=None):
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

    def call(self, inputs, training=None):
        return resize3d(self._conv3d(inputs), self._output_shape)


class LocalNetResidual3dBlock(Block):
    """``LocalNetResidual3dBlock(filters, kernel_size=3, strides=1)`` on ``[x, r]``: ``relu(norm(conv3d(x)) + r)``."""

    def __init__(self, filters, kernel_size=3, strides=1, name=None, seed=None):
        super().__init__(name, seed)
        self._conv3d = self._track(Conv3d(filters, kernel_size, strides, use_bias=False, seed=self._rng))
        self._norm = self._track(Norm(seed=self._rng))
        self._act = self._track(Activation())

    def call(self, inputs, training=None):
        return self._act(self._norm(self._conv3d(inputs[0]), training=training) + inputs[1])


class LocalNetUpSampleResnetBlock(Block):
    """``LocalNetUpSampleResnetBlock(filters, use_additive_upsampling=True)`` on ``[nonskip, skip]``.

    ``h0 = deconv3d_block(nonskip) (+ additive_upsampling(nonskip))``,
    ``out = local_residual([conv3d_block(h0), h0 + skip])``; the deconv block
    and the additive up-sampling are created in ``build`` (weights last).
    """

    def __init__(self, filters, use_additive_upsampling=True, name=None, seed=None):
        super().__init__(name, seed)
        self._filters, self._additive = filters, bool(use_additive_upsampling)
        self._conv3d_block = self._track(Conv3dBlock(filters, seed=self._rng))
        self._residual_block = self._track(LocalNetResidual3dBlock(filters, strides=1, seed=self._rng))
        self._deconv3d_block = self._additive_upsampling = None

    def build_sublayers(self, input_shape) -> None:
        output_shape = tuple(input_shape[1][1:4])
        self._deconv3d_block = self._track(Deconv3dBlock(self._filters, output_shape, strides=2, seed=self._rng))
        if self._additive:
            self._additive_upsampling = AdditiveUpSampling(output_shape)

    def call(self, inputs, training=None):
        nonskip, skip = inputs[0], inputs[1]
        h0 = self._deconv3d_block(nonskip, training=training)
        if self._additive:
            h0 = h0 + self._additive_upsampling(nonskip)
        return self._residual_block([self._conv3d_block(h0, training=training), h0 + skip], training=training)
