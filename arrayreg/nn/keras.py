"""Weights from Keras HDF5 files (``model.save_weights("w.h5")`` in TensorFlow 2 / tf.keras, as DeepReg writes).

The legacy Keras HDF5 layout: the root (or its ``model_weights`` group, in a
whole-model file) lists the top-level layers in the attribute ``layer_names``;
each layer's group lists its variables in Keras order in ``weight_names``
(paths such as ``"local_net/conv3d_block/conv3d/kernel:0"``), and stores each
at that path inside the group.  Keras 3 ``.weights.h5`` files (``layers/.../vars/0``)
are a different layout and are refused.
"""

from __future__ import annotations

import numpy as np


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras_weights(path) -> list:
    """Every variable of a Keras HDF5 weights file as ``(path, array)`` pairs, in Keras order.

    ``path`` is the variable's name as Keras wrote it (``"<layer path>/<weight>:0"``).

    Raises
    ------
    ImportError
        if h5py is not installed (``pip install arrayreg[keras]``).
    ValueError
        if the file is not in the legacy Keras HDF5 layout.
    """
    try:
        import h5py
    except ImportError as error:
        raise ImportError("reading Keras HDF5 weights needs h5py: pip install 'arrayreg[keras]'") from error
    with h5py.File(path, "r") as handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path} is not a Keras HDF5 weights file: no 'layer_names' attribute "
                             "(Keras 3 '.weights.h5' files are not supported)")
        weights = []
        for layer_name in map(_text, root.attrs["layer_names"]):
            group = root[layer_name]
            for weight_name in map(_text, group.attrs.get("weight_names", [])):
                weights.append((weight_name, np.asarray(group[weight_name])))
    return weights


def select(weights: list, prefix: str) -> list:
    """The ``(path, array)`` pairs under the layer path ``prefix`` (all of them for ``""``)."""
    prefix = prefix.strip("/")
    if not prefix:
        return list(weights)
    return [(name, array) for name, array in weights if name.startswith(prefix + "/")]


def match(layer_weights: dict, file_weights: list, prefix: str) -> list:
    """Pair a layer's weights with a file's, in Keras order, checking each name and shape.

    ``layer_weights`` maps the layer's weight paths (ending in ``kernel``,
    ``bias``, ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``) to
    arrays; the i-th file variable must end in the same name (``":0"``
    dropped) and have the same shape.
    """
    where = f" under {prefix!r}" if prefix else ""
    if len(file_weights) != len(layer_weights):
        found = ", ".join(name for name, _ in file_weights[:6]) + (" ..." if len(file_weights) > 6 else "")
        raise ValueError(f"the layer has {len(layer_weights)} weights but the file has {len(file_weights)}{where}"
                         f" ({found or 'none'}); pass prefix= the layer's path in the file")
    arrays = []
    for (ours, current), (theirs, array) in zip(layer_weights.items(), file_weights):
        base = theirs.rsplit("/", 1)[-1].split(":")[0]
        if base != ours.rsplit("/", 1)[-1] or array.shape != current.shape:
            raise ValueError(f"weight {ours!r} {current.shape} does not match the file's {theirs!r} {array.shape}")
        arrays.append(array)
    return arrays
