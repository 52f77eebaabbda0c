"""Weights from Keras HDF5 files (``model.save_weights("w.h5")`` in TensorFlow 2 / tf.keras, as DeepReg writes).

The legacy Keras HDF5 layout: the root (or its ``model_weights`` group, in a
whole-model file) lists the top-level layers in the attribute ``layer_names``;
each layer's group lists its variables in ``weight_names`` (paths such as
``"local_net/conv3d_block/conv3d/conv3d_1/kernel:0"``, in Keras 2 order), and
stores each at that path inside the group.  Keras 3 ``.weights.h5`` files
(``layers/.../vars/0``) are a different layout and are refused.

Variables are paired with a layer's weights by name, never by position
(:func:`pair`): Keras numbers layer names model-wide in creation order
(``conv3d_block_4``, ``norm_7``), so each name is renumbered within its parent
before it is compared with the layer's own paths.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

MAX_PROBLEMS = 12


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_keras_weights(path) -> list:
    """Every variable of a Keras HDF5 weights file as ``(path, array)`` pairs, in the file's order.

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
    """The ``(path, array)`` pairs under the layer path ``prefix``, with ``prefix/`` removed from each path.

    ``""`` selects them all.
    """
    prefix = prefix.strip("/")
    if not prefix:
        return list(weights)
    return [(name[len(prefix) + 1:], array) for name, array in weights if name.startswith(prefix + "/")]


def _split_counter(name: str) -> tuple:
    """``"conv3d_block_4"`` -> ``("conv3d_block", 4)``; a name without a counter counts as -1 (created first)."""
    match = re.fullmatch(r"(.+)_(\d+)", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def local_paths(names: list) -> list:
    """Renumber each layer name within its parent, in the order of Keras's counters.

    ``"residual3d_block_1/conv3d_block_3/conv3d_8/conv3d_9/kernel:0"`` becomes
    ``"residual3d_block/conv3d_block/conv3d/conv3d/kernel"``; siblings of one
    base name become ``base``, ``base_1``, ... by their counters (creation
    order).  The last part, the variable, keeps its name without ``":0"``.
    """
    parts = [name.split(":")[0].split("/") for name in names]
    local = [[] for _ in parts]
    for depth in range(max((len(p) for p in parts), default=0)):
        siblings = defaultdict(set)  # local parent path -> the original names at this depth
        for path, done in zip(parts, local):
            if depth < len(path) - 1:
                siblings[tuple(done)].add(path[depth])
        renamed = {}
        for parent, originals in siblings.items():
            by_base = defaultdict(list)
            for original in originals:
                base, counter = _split_counter(original)
                by_base[base].append((counter, original))
            for base, numbered in by_base.items():
                for rank, (_, original) in enumerate(sorted(numbered)):
                    renamed[parent, original] = base if rank == 0 else f"{base}_{rank}"
        for path, done in zip(parts, local):
            if depth < len(path) - 1:
                done.append(renamed[tuple(done), path[depth]])
            elif depth == len(path) - 1:
                done.append(path[depth])
    return ["/".join(p) for p in local]


def _readings(file_weights: list) -> list:
    """The ways to read the file's paths: as they are, then without each leading part that all share
    (the layer's own name, when the file holds this one layer and ``prefix`` stops above it)."""
    names = [name for name, _ in file_weights]
    readings = [local_paths(names)]
    while names and all("/" in n for n in names) and len({n.split("/", 1)[0] for n in names}) == 1:
        names = [n.split("/", 1)[1] for n in names]
        readings.append(local_paths(names))
    return readings


def pair(layer, file_weights: list, prefix: str = "") -> list:
    """The file's arrays for ``layer.get_weights()``, paired by name and checked by shape.

    ``file_weights`` are ``(path, array)`` pairs relative to the layer (see
    :func:`select`).  Each path is renumbered by :func:`local_paths` and must
    equal one of ``layer.weights``' keys; when the file's paths all start with
    one more name (the layer's own), it is dropped.

    Raises
    ------
    ValueError
        naming every weight the file lacks, every variable the layer does not
        have, and every pair whose shapes differ (both names and shapes).
    """
    ours = layer.weights
    readings = _readings(file_weights)
    local = max(readings, key=lambda paths: len(set(paths) & set(ours)))
    theirs = {path: (name, array) for path, (name, array) in zip(local, file_weights)}
    problems = [f"missing: the file has no variable for {path!r} {current.shape}"
                for path, current in ours.items() if path not in theirs]
    problems += [f"extra: the file's {name!r} {array.shape} is not a weight of {type(layer).__name__}"
                 for path, (name, array) in theirs.items() if path not in ours]
    problems += [f"shape: {path!r} is {current.shape} but the file's {theirs[path][0]!r} is {theirs[path][1].shape}"
                 for path, current in ours.items() if path in theirs and theirs[path][1].shape != current.shape]
    if problems:
        where = f" under prefix {prefix!r}" if prefix else ""
        hint = "" if set(local) & set(ours) else "; pass prefix= the layer's path in the file"
        shown = problems[:MAX_PROBLEMS] + ([f"... and {len(problems) - MAX_PROBLEMS} more"]
                                           if len(problems) > MAX_PROBLEMS else [])
        raise ValueError(f"{type(layer).__name__}'s {len(ours)} weights do not match the file's "
                         f"{len(file_weights)} variables{where}{hint}:\n  " + "\n  ".join(shown))
    return [theirs[path][1] for path in ours]
