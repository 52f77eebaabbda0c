"""DeepReg's core forward layers (``deepreg.model.layer`` v0.1.1) with Keras weights.

A layer creates its weights from the input shape alone, in ``build(input_shape)``
or lazily at the first call, with Keras initializers seeded by ``seed`` (an int
or a ``numpy.random.Generator``).  Like Keras, ``layer(x)`` and
``layer.call(x)`` both run the forward pass.

Weights come in Keras 2 order, the order of DeepReg v0.1.1 (TensorFlow 2.3)
and of its ``.h5`` files: every trainable weight (kernel, bias, gamma, beta),
sub-layer by sub-layer depth first, then every non-trainable one
(``moving_mean``, ``moving_variance``) in the same sub-layer order.
``weights`` maps each weight's Keras path relative to the layer (for example
``"conv3d_block/norm/batch_normalization/moving_mean"``: DeepReg's layer names,
with Keras's name counters renumbered within each parent) to its array.
"""

from __future__ import annotations

import re

import numpy as np

from .. import _validation as validate
from .._backend import backend_of, is_device_array
from . import functional as F

INITIALIZERS = ("glorot_uniform", "he_normal", "zeros", "ones")
NON_TRAINABLE = ("moving_mean", "moving_variance")


def keras_name(class_name: str) -> str:
    """The default Keras layer name of a class: ``"Conv3dBlock"`` -> ``"conv3d_block"`` (Keras's snake case)."""
    words = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


def initialize(name: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Keras initializers; fans for a conv kernel ``(*receptive, in, out)`` are ``prod(receptive) * in/out``."""
    validate.check_choice(name, "initializer", INITIALIZERS)
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


def conv_output_length(length, kernel: int, stride: int, padding: str):
    """Keras's convolution and pooling output length: ``ceil(n / s)`` ("same"), ``ceil((n - k + 1) / s)`` ("valid")."""
    if length is None:
        return None
    return -(-length // stride) if padding == "same" else -(-(length - kernel + 1) // stride)


def deconv_output_length(length, kernel: int, stride: int, padding: str):
    """Keras's transposed-convolution output length without output padding:
    ``n * s`` ("same"), ``n * s + max(k - s, 0)`` ("valid")."""
    if length is None:
        return None
    return length * stride if padding == "same" else length * stride + max(kernel - stride, 0)


class Slot:
    """One weight of a layer tree: its Keras path, the leaf layer that holds it, and its key there."""

    __slots__ = ("path", "owner", "key")

    def __init__(self, path: str, owner: Layer, key: str):
        self.path, self.owner, self.key = path, owner, key

    @property
    def trainable(self) -> bool:
        return self.key not in NON_TRAINABLE

    @property
    def value(self) -> np.ndarray:
        return self.owner._weights[self.key]


def keras_order(slots: list) -> list:
    """Keras 2 order: the trainable slots, then the non-trainable ones, each in sub-layer order."""
    return [s for s in slots if s.trainable] + [s for s in slots if not s.trainable]


class Layer:
    """Base class: weights built from shapes, Keras 2 weight order, call as ``layer(x)`` or ``layer.call(x)``.

    ``keras_layer`` names the Keras layer that DeepReg's layer wraps (``"conv3d"``
    for ``Conv3D``); it is the middle part of a weight's path.
    """

    keras_layer = ""

    def __init__(self, name: str | None = None, seed=None):
        self.name = name or keras_name(type(self).__name__)
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._weights: dict[str, np.ndarray] = {}
        self._device_copies: tuple | None = None  # (array module, weights on it) for CuPy inputs
        self.built = False

    # -- weights
    def _slots(self) -> list:
        """This layer's weights as slots, in creation order (sub-layer by sub-layer for blocks)."""
        base = f"{self.keras_layer}/" if self.keras_layer else ""
        return [Slot(base + key, self, key) for key in self._weights]

    @property
    def weights(self) -> dict:
        """``{keras path: array}`` in Keras 2 order (trainable first)."""
        return {slot.path: slot.value for slot in keras_order(self._slots())}

    def get_weights(self) -> list:
        """The weights in Keras 2 order: every trainable one, then every non-trainable one."""
        return [slot.value for slot in keras_order(self._slots())]

    def set_weights(self, weights) -> None:
        """Set the weights from a list in Keras 2 order (as :meth:`get_weights` returns and DeepReg saves).

        Every shape is checked before any weight changes; values are cast to the layer's dtype (float32).
        """
        self._require_built()
        weights = [w.get() if is_device_array(w) else np.asarray(w) for w in weights]
        slots = keras_order(self._slots())
        if len(weights) != len(slots):
            raise ValueError(f"{type(self).__name__} expects {len(slots)} weights "
                             f"({', '.join(s.path for s in slots)}); got {len(weights)}")
        for slot, new in zip(slots, weights):
            if new.shape != slot.value.shape:
                raise ValueError(f"weight {slot.path!r} must have shape {slot.value.shape}; got {new.shape}")
        for slot, new in zip(slots, weights):
            slot.owner._weights[slot.key] = new.astype(slot.value.dtype)
            slot.owner._device_copies = None

    def save_weights(self, path) -> None:
        """Write the weights to an ``.npz`` file: ``w000``, ``w001``, ... in Keras 2 order, and their
        paths in ``weight_names``."""
        self._require_built()
        weights = self.weights
        np.savez(path, weight_names=np.array(list(weights), dtype=str),
                 **{f"w{i:03d}": w for i, w in enumerate(weights.values())})

    def load_weights(self, path, prefix: str = "") -> None:
        """Read weights into a built layer from ``.npz`` or a Keras HDF5 file (``.h5`` / ``.hdf5``).

        A Keras HDF5 file (the legacy layout that DeepReg's ``model.save_weights("w.h5")`` writes;
        needs h5py) is read under ``prefix``, this layer's path in the file (for example
        ``"local_net/down_sample_resnet_block"``; ``""`` takes every variable).  The file's variables
        are paired with this layer's weights by name and shape, not by position; see
        :func:`arrayreg.nn.keras.pair`.  A missing, extra or mismatched variable raises a
        ``ValueError`` naming each.

        An ``.npz`` written by :meth:`save_weights` is paired by its ``weight_names`` the same
        way; one with only ``w000``, ``w001``, ... is read in Keras 2 order.
        """
        from . import keras

        self._require_built()
        if str(path).lower().endswith((".h5", ".hdf5")):
            self.set_weights(keras.pair(self, keras.select(keras.read_keras_weights(path), prefix), prefix))
            return
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(k for k in data.files if k.startswith("w") and k[1:].isdigit())
            if "weight_names" in data.files:
                named = list(zip((str(n) for n in data["weight_names"]), (data[k] for k in keys)))
                self.set_weights(keras.pair(self, named, ""))
            else:
                self.set_weights([data[k] for k in keys])

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(f"{type(self).__name__} has no weights yet: call build(input_shape) or the layer first")

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

    # -- building and calling
    def build(self, input_shape) -> None:
        """Create the weights from the input shape (a tuple, or a list of tuples for list inputs)."""
        self.built = True

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape, without computing anything (Keras's rule)."""
        return tuple(input_shape)

    def call(self, inputs, training=None, **kwargs):
        """The forward pass; builds the layer from the inputs' shapes first if needed.  ``layer(x)`` is the same."""
        if not self.built:
            if isinstance(inputs, (list, tuple)):
                self.build([tuple(np.shape(x)) for x in inputs])
            else:
                self.build(tuple(np.shape(inputs)))
            self.built = True
        return self.forward(inputs, training=training)

    __call__ = call

    def forward(self, inputs, training=None):  # pragma: no cover - abstract
        raise NotImplementedError


class Activation(Layer):
    """``Activation(identifier="relu")``: a Keras activation by name (see ``functional.ACTIVATIONS``)."""

    def __init__(self, identifier: str = "relu", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.identifier = validate.check_choice(identifier, "identifier", tuple(F.ACTIVATIONS))

    def forward(self, inputs, training=None):
        return F.activation(inputs, self.identifier)


class Norm(Layer):
    """``Norm(name="batch_norm" | "layer_norm", axis=-1)``: BatchNormalization or LayerNormalization, epsilon 1e-3.

    As in DeepReg, ``name`` picks the normalization; the layer itself is called ``"norm"``.

    Parameters
    ----------
    name : {"batch_norm", "layer_norm"}, default "batch_norm"
    axis : -1
        Channels-last only.

    Weights: ``batch_normalization/gamma``, ``beta`` (trainable), ``moving_mean``,
    ``moving_variance`` (not trainable), each of shape (channels,); or
    ``layer_normalization/gamma`` and ``beta``.
    """

    def __init__(self, name: str = "batch_norm", axis: int = -1, seed=None, **kwargs):
        validate.check_choice(name, "name", ("batch_norm", "layer_norm"))
        if axis != -1:
            raise ValueError(f"axis must be -1 (channels-last); got {axis!r}")
        super().__init__("norm", seed=seed)
        self.kind = name
        self.keras_layer = "batch_normalization" if name == "batch_norm" else "layer_normalization"

    def build(self, input_shape) -> None:
        channels = (input_shape,) if isinstance(input_shape, int) else (input_shape[-1],)
        self._add_weight("gamma", channels, "ones")
        self._add_weight("beta", channels, "zeros")
        if self.kind == "batch_norm":
            self._add_weight("moving_mean", channels, "zeros")
            self._add_weight("moving_variance", channels, "ones")
        self.built = True

    def forward(self, inputs, training=None):
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
        self.padding = validate.check_choice(padding, "padding", F.PADDINGS)

    def compute_output_shape(self, input_shape):
        pool = validate.check_triple(self.pool_size, "pool_size")
        strides = pool if self.strides is None else validate.check_triple(self.strides, "strides")
        spatial = (conv_output_length(n, k, s, self.padding) for n, k, s in zip(input_shape[1:4], pool, strides))
        return (input_shape[0], *spatial, input_shape[-1])

    def forward(self, inputs, training=None):
        return F.max_pool3d(inputs, self.pool_size, self.strides, self.padding)


class Conv3d(Layer):
    """DeepReg's ``Conv3d``: Keras ``Conv3D`` on channels-last volumes (:func:`arrayreg.nn.functional.conv3d`).

    Parameters
    ----------
    filters : int >= 1
    kernel_size, strides : int or 3 ints, default 3 and 1
    padding : {"same", "valid"}, default "same"
    activation : str, optional
        A key of ``functional.ACTIVATIONS``; None is linear.
    use_bias : bool, default True
    kernel_initializer : {"glorot_uniform", "he_normal", "zeros", "ones"}, default "glorot_uniform"

    Weights: ``conv3d/kernel``, shape (kd, kh, kw, in, filters), and ``conv3d/bias``, shape (filters,).
    """

    keras_layer = "conv3d"

    def __init__(self, filters: int, kernel_size=3, strides=1, padding: str = "same", activation=None,
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.filters = validate.check_int(filters, "filters", 1)
        self.kernel_size = validate.check_triple(kernel_size, "kernel_size")
        self.strides = validate.check_triple(strides, "strides")
        self.padding = validate.check_choice(padding, "padding", F.PADDINGS)
        self.activation = ("linear" if activation is None
                           else validate.check_choice(activation, "activation", tuple(F.ACTIVATIONS)))
        self.use_bias = bool(use_bias)
        self.kernel_initializer = validate.check_choice(kernel_initializer, "kernel_initializer", INITIALIZERS)

    def build(self, input_shape) -> None:
        self._add_weight("kernel", self.kernel_size + (input_shape[-1], self.filters), self.kernel_initializer)
        if self.use_bias:
            self._add_weight("bias", (self.filters,), "zeros")
        self.built = True

    def compute_output_shape(self, input_shape):
        spatial = (conv_output_length(n, k, s, self.padding)
                   for n, k, s in zip(input_shape[1:4], self.kernel_size, self.strides))
        return (input_shape[0], *spatial, self.filters)

    def forward(self, inputs, training=None):
        w = self._weights_for(inputs)
        out = F.conv3d(inputs, w["kernel"], w.get("bias"), self.strides, self.padding)
        return F.activation(out, self.activation)


class Deconv3d(Layer):
    """``Deconv3d(filters, output_shape=None, kernel_size=3, strides=1, padding="same", use_bias=True)``.

    With ``output_shape``, padding is "same" and
    ``output_padding = out - ((in - 1) * s + k - 2 * (k // 2))`` per axis (DeepReg);
    Keras then requires ``0 <= output_padding < stride``.

    Parameters
    ----------
    filters : int >= 1
    output_shape : tuple of 3 positive ints, optional
    kernel_size, strides : int or 3 ints, default 3 and 1
    padding : {"same", "valid"}, default "same"
    use_bias : bool, default True
    kernel_initializer : str, default "glorot_uniform"

    Weights: ``conv3d_transpose/kernel``, shape (kd, kh, kw, filters, in), and ``conv3d_transpose/bias``.
    """

    keras_layer = "conv3d_transpose"

    def __init__(self, filters: int, output_shape=None, kernel_size=3, strides=1, padding: str = "same",
                 use_bias: bool = True, kernel_initializer: str = "glorot_uniform", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.filters = validate.check_int(filters, "filters", 1)
        self.output_shape = None if output_shape is None else validate.check_size3(output_shape, "output_shape")
        self.kernel_size = validate.check_triple(kernel_size, "kernel_size")
        self.strides = validate.check_triple(strides, "strides")
        self.padding = "same" if self.output_shape else validate.check_choice(padding, "padding", F.PADDINGS)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = validate.check_choice(kernel_initializer, "kernel_initializer", INITIALIZERS)
        self.output_padding = None

    def build(self, input_shape) -> None:
        """Only the channels (``input_shape[-1]``) are needed, and with ``output_shape`` the spatial
        sizes ``input_shape[1:4]`` too, for the output padding."""
        if self.output_shape is not None:
            if len(input_shape) != 5:
                raise ValueError(f"with output_shape, the input shape must be (batch, d1, d2, d3, channels); "
                                 f"got {tuple(input_shape)}")
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

    def compute_output_shape(self, input_shape):
        if self.output_shape is not None:
            return (input_shape[0], *self.output_shape, self.filters)
        spatial = (deconv_output_length(n, k, s, self.padding)
                   for n, k, s in zip(input_shape[1:4], self.kernel_size, self.strides))
        return (input_shape[0], *spatial, self.filters)

    def forward(self, inputs, training=None):
        w = self._weights_for(inputs)
        return F.conv3d_transpose(inputs, w["kernel"], w.get("bias"), self.strides, self.padding, self.output_padding)


class Dense(Layer):
    """DeepReg's ``Dense``: flattens ``(batch, ...)`` in C order, then ``x @ kernel + bias``.

    Parameters
    ----------
    units : int >= 1
    bias_initializer : str, default "zeros"

    Weights: ``dense/kernel``, shape (prod(input_shape[1:]), units), and ``dense/bias``, shape (units,).
    """

    keras_layer = "dense"

    def __init__(self, units: int, bias_initializer: str = "zeros", name: str | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.units = validate.check_int(units, "units", 1)
        self.bias_initializer = validate.check_choice(bias_initializer, "bias_initializer", INITIALIZERS)

    def build(self, input_shape) -> None:
        self._add_weight("kernel", (int(np.prod(input_shape[1:])), self.units), "glorot_uniform")
        self._add_weight("bias", (self.units,), self.bias_initializer)
        self.built = True

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def forward(self, inputs, training=None):
        w = self._weights_for(inputs)
        x = validate.as_array(inputs, "inputs", backend_of(inputs=inputs).xp)
        return F.dense(x.reshape(x.shape[0], -1), w["kernel"], w["bias"])
