"""Test helpers: the genuine DeepReg files in ``tests/data`` and a writer of legacy Keras HDF5 files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
LOCALNET_H5 = DATA_DIR / "deepreg_localnet_v011.h5"
LOCALNET_IO = DATA_DIR / "deepreg_localnet_v011_io.npz"
# As stated in shared/reference/README.md, next to the files DeepReg wrote.
MD5 = {
    "deepreg_v011_tfkeras.npz": "77e840466d87e4be2c2cc7088f9753f1",
    "deepreg_localnet_v011.h5": "0204da5d4a903057810a68b2eedde71b",
    "deepreg_localnet_v011_io.npz": "5f516cad3c1296e53bb0f9e9201b86a6",
}


def localnet_io() -> dict:
    with np.load(LOCALNET_IO, allow_pickle=False) as data:
        io = {key: data[key] for key in data.files}
    io["config"] = json.loads(str(io["config"]))
    return io


def write_keras_h5(path, layers: dict, whole_model: bool = False) -> None:
    """A legacy Keras HDF5 file: ``layers`` maps each top-level layer name to its ``(name, array)`` pairs."""
    import h5py

    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if whole_model else handle
        if whole_model:
            handle.create_group("optimizer_weights").create_dataset("iter:0", data=np.int64(3))
        root.attrs["layer_names"] = [name.encode() for name in layers]
        root.attrs["backend"], root.attrs["keras_version"] = b"tensorflow", b"2.3.0"
        for layer_name, weights in layers.items():
            group = root.create_group(layer_name)
            group.attrs["weight_names"] = [name.encode() for name, _ in weights]
            for name, array in weights:
                group.create_dataset(name, data=array)
