"""DeepReg's core forward layers (``deepreg.model.layer`` v0.1.1) with Keras weights.

A layer builds its weights lazily from the first input (or ``build(shape)``),
with Keras initializers seeded by ``seed`` (an int or a ``numpy.random.Generator``),
and exposes ``get_weights()`` / ``set_weights(list)`` in Keras order and
``weights`` by name.
"""

from __future__ import annotations

import numpy as np

from .. import _validation as v
from .._backend import backend_of, is_device_array
from . import functional as F

INITIALIZERS = ("glorot_uniform", "he_normal", "zeros", "ones")


def initialize(name: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Keras initializers; fans for a conv kernel ``(*receptive, in, out)`` are ``prod(receptive) * in/out``."""
    v.check_choice(name, "initializer", INITIALIZERS)
    if name == "zeros":
        return np.zeros(shape, np.float32)
    if name == "ones":
        return np.ones(shape, np.float32)
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    if name == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    stddev = np.sqrt(2.0 / fan_in) / 0.87962566103423978  # truncated normal at 2 stddev, as Keras
    values = rng.standard_normal(shape)
    while np.any(np.abs(values) > 2):
        outside = np.abs(values) > 2
        values[outside] = rng.standard_normal(int(outside.sum()))
    return (values * stddev).astype(np.float32)


class Layer:
    """Base class: lazy build, Keras-ordered weights, call as ``layer(x)``."""

    def __init__(self, name: str | None = None, seed=None):
        self.name = name or type(self).__name__.lower()
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._weights: dict[str, np.ndarray] = {}
        self._device_copies: tuple | None = None  # (array module, weights on it) for CuPy inputs
        self.built = False

    # -- weights
    @property
    def weights(self) -> dict:
        return dict(self._weights)

    def get_weights(self) -> list:
        return list(self._weights.values())

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if not self.built:
            raise ValueError(f"{type(self).__name__} has no weights yet: call build(input_shape) or the layer first")
        if len(weights) != len(self._weights):
            raise ValueError(f"{type(self).__name__} expects {len(self._weights)} weights "
                             f"({', '.join(self._weights)}); got {len(weights)}")
        for (name, current), new in zip(self._weights.items(), weights):
            new = new.get() if is_device_array(new) else np.asarray(new)
            if new.shape != current.shape:
                raise ValueError(f"weight {name!r} must have shape {current.shape}; got {new.shape}")
            self._weights[name] = new.astype(current.dtype)
        self._device_copies = None

    def save_weights(self, path) -> None:
        """Write ``get_weights()`` to an ``.npz`` file (keys ``w000``, ``w001``, ... in Keras order)."""
        if not self.built:
            raise ValueError(f"{type(self).__name__} has no weights yet: call build(input_shape) or the layer first")
        np.savez(path, **{f"w{i:03d}": w for i, w in enumerate(self.get_weights())})

    def load_weights(self, path, prefix: str = "") -> None:
        """Read weights into a built layer from ``.npz`` or a Keras HDF5 file (``.h5`` / ``.hdf5``).

        An ``.npz`` is read as :meth:`save_weights` writes it (``w000``, ``w001``, ... in Keras order).
        A Keras HDF5 file (legacy tf.keras layout, as DeepReg saves; needs h5py) is matched by layer
        path: the variables under ``prefix`` (this layer's path in the file, e.g.
        ``"local_net/down_sample_resnet_block"``; ``""`` takes them all) are paired with
        ``get_weights()`` in Keras order, and each pair must agree in name (``kernel``, ``gamma``, ...)
        and shape, or a ``ValueError`` says which does not.
        """
        if not self.built:
            raise ValueError(f"{type(self).__name__} has no weights yet: call build(input_shape) or the layer first")
        if str(path).lower().endswith((".h5", ".hdf5")):
            from . import keras

            wanted = keras.select(keras.read_keras_weights(path), prefix)
            self.set_weights(keras.match(self.weights, wanted, prefix))
            return
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(k for k in data.files if k.startswith("w") and k[1:].isdigit())
            self.set_weights([data[k] for k in keys])

    def _add_weight(self, name: str, shape: tuple, initializer: str) -> None:
        self._weights[name] = initialize(initializer, tuple(int(n) for n in shape), self._rng)
        self._device_copies = None

    def _weights_for(self, inputs) -> dict:
        """The weights as arrays of the inputs' module: NumPy as stored, CuPy copied to the GPU once
        (and again after ``set_weights``)."""
        xp = backend_of(inputs=inputs).xp
        if xp is np:
            return self._weights
        if self._device_copies is None or self._device_copies[0] is not xp:
            self._device_copies = (xp, {name: xp.asarray(w) for name, w in self._weights.items()})
        return self._device_copies[1]

    # -- calling
    def build(self, input_shape) -> None:
        self.built = True

    def __call__(self, inputs, training=None, **kwargs):
        if not self.built:
            if isinstance(inputs, (list, tuple)):
                self.build([tuple(np.shape(x)) for x in inputs])
            else:
                self.build(tuple(np.shape(inputs)))
            self.built = True
        return self.call(inputs, training=training)

    def call(self, inputs, training=None):  # pragma: no cover - abstract
        raise NotImplementedError


class Activation(Layer):
    """``Activation(identifier="relu")``: a Keras activation by name (see ``functional.ACTIVATIONS``)."""

    def __init__(self, identifier: str = "relu", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.identifier = v.check_choice(identifier, "identifier", tuple(F.ACTIVATIONS))

    def call(self, inputs, training=None):
        return F.activation(inputs, self.identifier)


class Norm(Layer):
    """``Norm(name="batch_norm" | "layer_norm", axis=-1)``: BatchNormalization or LayerNormalization, epsilon 1e-3."""

    def __init__(self, name: str = "batch_norm", axis: int = -1, seed=None, **kwargs):
        v.check_choice(name, "name", ("batch_norm", "layer_norm"))
        if axis != -1:
            raise ValueError(f"axis must be -1 (channels-last); got {axis!r}")
        super().__init__(name, seed=seed)
        self.kind = name

    def build(self, input_shape) -> None:
        channels = (input_shape,) if isinstance(input_shape, int) else (input_shape[-1],)
        self._add_weight("gamma", channels, "ones")
        self._add_weight("beta", channels, "zeros")
        if self.kind == "batch_norm":
            self._add_weight("moving_mean", channels, "zeros")
            self._add_weight("moving_variance", channels, "ones")
        self.built = True

    def call(self, inputs, training=None):
        w = self._weights_for(inputs)
        if self.kind == "layer_norm":
            return F.layer_norm(inputs, w["gamma"], w["beta"])
        return F.batch_norm(inputs, w["gamma"], w["beta"], w["moving_mean"], w["moving_variance"],
                            training=bool(training))


class MaxPool3d(Layer):
    """``MaxPool3d(pool_size, strides=None, padding="same")``."""

    def __init__(self, pool_size, strides=None, padding: str = "same", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.pool_size, self.strides = pool_size, strides
        self.padding = v.check_choice(padding, "padding", F.PADDINGS)

    def call(self, inputs, training=None):
        return F.max_pool3d(inputs, self.pool_size, self.strides, self.padding)


class Conv3d(Layer):
    """``Conv3d(filters, kernel_size=3, strides=1, padding="same", activation=None, use_bias=True,
    kernel_initializer="glorot_uniform")``; kernel ``(kd, kh, kw, in, filters)``."""

    def __init__(self, filters: int, kernel_size=3, strides=1, padding: str = "same", activation=None,
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.filters = v.check_int(filters, "filters", 1)
        self.kernel_size = F._triple(kernel_size, "kernel_size")
        self.strides = F._triple(strides, "strides")
        self.padding = v.check_choice(padding, "padding", F.PADDINGS)
        self.activation = "linear" if activation is None else v.check_choice(activation, "activation", tuple(F.ACTIVATIONS))
        self.use_bias = bool(use_bias)
        self.kernel_initializer = v.check_choice(kernel_initializer, "kernel_initializer", INITIALIZERS)

    def build(self, input_shape) -> None:
        self._add_weight("kernel", self.kernel_size + (input_shape[-1], self.filters), self.kernel_initializer)
        if self.use_bias:
            self._add_weight("bias", (self.filters,), "zeros")
        self.built = True

    def call(self, inputs, training=None):
        w = self._weights_for(inputs)
        out = F.conv3d(inputs, w["kernel"], w.get("bias"), self.strides, self.padding)
        return F.activation(out, self.activation)


class Deconv3d(Layer):
    """``Deconv3d(filters, output_shape=None, kernel_size=3, strides=1, padding="same", use_bias=True)``.

    With ``output_shape``, padding is "same" and
    ``output_padding = out - ((in - 1) * s + k - 2 * (k // 2))`` per axis (DeepReg);
    Keras then requires ``0 <= output_padding < stride``.  Kernel ``(kd, kh, kw, filters, in)``.
    """

    def __init__(self, filters: int, output_shape=None, kernel_size=3, strides=1, padding: str = "same",
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.filters = v.check_int(filters, "filters", 1)
        self.output_shape = None if output_shape is None else v.check_size3(output_shape, "output_shape")
        self.kernel_size = F._triple(kernel_size, "kernel_size")
        self.strides = F._triple(strides, "strides")
        self.padding = "same" if self.output_shape else v.check_choice(padding, "padding", F.PADDINGS)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = v.check_choice(kernel_initializer, "kernel_initializer", INITIALIZERS)
        self.output_padding = None

    def build(self, input_shape) -> None:
        if self.output_shape is not None:
            padding = tuple(out - ((n - 1) * s + k - 2 * (k // 2)) for out, n, s, k in
                            zip(self.output_shape, input_shape[1:4], self.strides, self.kernel_size))
            if any(not 0 <= p < s for p, s in zip(padding, self.strides)):
                raise ValueError(f"output_shape {self.output_shape} needs output_padding {padding}, but each must be "
                                 f"in [0, stride) for strides {self.strides} and input shape {tuple(input_shape)}")
            self.output_padding = padding
        self._add_weight("kernel", self.kernel_size + (self.filters, input_shape[-1]), self.kernel_initializer)
        if self.use_bias:
            self._add_weight("bias", (self.filters,), "zeros")
        self.built = True

    def call(self, inputs, training=None):
        w = self._weights_for(inputs)
        return F.conv3d_transpose(inputs, w["kernel"], w.get("bias"), self.strides, self.padding, self.output_padding)


class Dense(Layer):
    """``Dense(units, bias_initializer="zeros")``: flattens ``(batch, ...)`` in C order, then ``x @ kernel + bias``."""

    def __init__(self, units: int, bias_initializer: str = "zeros", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.units = v.check_int(units, "units", 1)
        self.bias_initializer = v.check_choice(bias_initializer, "bias_initializer", INITIALIZERS)

    def build(self, input_shape) -> None:
        self._add_weight("kernel", (int(np.prod(input_shape[1:])), self.units), "glorot_uniform")
        self._add_weight("bias", (self.units,), self.bias_initializer)
        self.built = True

    def call(self, inputs, training=None):
        w = self._weights_for(inputs)
        x = v.as_array(inputs, "inputs", backend_of(inputs=inputs).xp)
        return F.dense(x.reshape(x.shape[0], -1), w["kernel"], w["bias"])
