"""Weights from Keras HDF5 files: the genuine LocalNet file DeepReg v0.1.1 saved, and synthetic files for errors."""

import hashlib
import re

import numpy as np
import pytest

from arrayreg import nn
from arrayreg.nn.keras import local_paths

from . import reference_cases as parity
from .keras_files import DATA_DIR, LOCALNET_H5, MD5, localnet_io, write_keras_h5

h5py = pytest.importorskip("h5py")


@pytest.mark.parametrize("name", sorted(MD5))
def test_the_bundled_files_are_the_ones_deepreg_wrote(name):
    assert hashlib.md5((DATA_DIR / name).read_bytes()).hexdigest() == MD5[name]


def localnet_from_file():
    """DeepReg's LocalNet (``backbone/local_net.py`` v0.1.1) as arrayreg blocks, each loaded by its prefix."""
    io = localnet_io()
    config, prefixes = io["config"], {attr: path for attr, (path, _) in zip(io["layer_attrs"], io["layer_paths"])}
    channels = config["num_channel_initial"]
    size, levels = tuple(config["image_size"]), config["extract_levels"]
    top = max(levels)
    down = [nn.DownSampleResnetBlock(channels * 2**level, kernel_size=7 if level == 0 else 3) for level in range(top)]
    bottom = nn.Conv3dBlock(channels * 2**top)
    up = [nn.LocalNetUpSampleResnetBlock(channels * 2**level) for level in range(top - 1, min(levels) - 1, -1)]
    extract = [nn.Conv3dWithResize(size, config["out_channels"], kernel_initializer=config["out_kernel_initializer"],
                                   activation=config["out_activation"]) for _ in levels]

    def forward(x):
        skips = []
        for block in down:
            x, skip = block(x, training=False)
            skips.append(skip)
        decoded = [bottom(x, training=False)]
        for block, level in zip(up, range(top - 1, min(levels) - 1, -1)):
            decoded.append(block([decoded[-1], skips[level]], training=False))
        return np.mean([layer(decoded[top - level]) for layer, level in zip(extract, levels)], axis=0)

    forward(np.zeros((1, *size, io["input"].shape[-1]), np.float32))  # builds every block from the shapes
    named = {f"_downsample_blocks[{i}]": b for i, b in enumerate(down)} | {"_conv3d_block": bottom} \
        | {f"_upsample_blocks[{i}]": b for i, b in enumerate(up)} \
        | {f"_extract_layers[{i}]": b for i, b in enumerate(extract)}
    for attr, block in named.items():
        block.load_weights(LOCALNET_H5, prefix=prefixes[attr])
    return forward, named


def test_the_genuine_localnet_file_reproduces_deepregs_output():
    io = localnet_io()
    forward, _ = localnet_from_file()
    got = forward(io["input"])
    assert got.shape == io["output"].shape
    np.testing.assert_allclose(got, io["output"], rtol=0, atol=1e-5)


def test_every_variable_of_the_genuine_file_lands_in_exactly_one_weight():
    with h5py.File(LOCALNET_H5, "r") as handle:
        in_file = {str(name): np.asarray(handle[layer][name]) for layer in handle.attrs["layer_names"]
                   for name in handle[layer].attrs["weight_names"]}
    _, blocks = localnet_from_file()
    io = localnet_io()
    for attr, (prefix, kind) in zip(io["layer_attrs"], io["layer_paths"]):
        block = blocks[str(attr)]
        assert type(block).__name__ == kind
        under = {name: array for name, array in in_file.items() if name.startswith(prefix + "/")}
        loaded = block.get_weights()
        assert len(loaded) == len(under)
        for name, array in under.items():
            assert sum(w.shape == array.shape and np.array_equal(w, array) for w in loaded) == 1, name


def case_variables(case):
    """A reference case's (Keras 2 name, array) pairs, in the file's order."""
    info = parity.CASES[case]
    names = parity.DATA[f"{case}.weight_names"]
    return [(str(name), parity.DATA[w["key"]]) for name, w in zip(names, info["weights"])]


def built_case_layer(case):
    info = parity.CASES[case]
    layer = getattr(nn, info["function"].split(".")[-1])(**info["args"]["ctor"])
    shapes = [tuple(s) for s in info["args"]["inputs"]]
    layer.build(shapes[0] if len(shapes) == 1 else shapes)
    return layer


def _outputs(case, layer):
    n_inputs = len(parity.CASES[case]["args"]["inputs"])
    names = [f"input{i}" for i in range(n_inputs)] if n_inputs > 1 else ["input"]
    inputs = [parity.field(case, name) for name in names]
    out = layer(inputs[0] if n_inputs == 1 else inputs, training=False)
    return out if isinstance(out, tuple) else (out,)


def shift_counters(name, offset):
    """Keras's names as in a model with ``offset`` layers of each kind created before: ``x`` -> ``x_20``,
    ``x_2`` -> ``x_22`` (the layers between the first and the variable)."""
    def shifted(part):
        match = re.fullmatch(r"(.+?)(?:_(\d+))?", part)
        return f"{match.group(1)}_{offset + int(match.group(2) or 0)}"

    first, *middle, variable = name.split("/")
    return "/".join([first, *map(shifted, middle), variable])


MULTI_NORM = ["Residual3dBlock.f4", "DownSampleResnetBlock.conv", "UpSampleResnetBlock.concat",
              "LocalNetUpSampleResnetBlock.additive"]


@pytest.mark.parametrize("case", MULTI_NORM)
def test_variables_pair_by_name_whatever_their_position_and_counters(tmp_path, case, rng):
    """The case's variables, shuffled and renumbered as in a bigger model, still load where they belong."""
    variables = case_variables(case)
    renumbered = [("net/" + shift_counters(name, 20), array) for name, array in variables]
    shuffled = [renumbered[i] for i in rng.permutation(len(renumbered))]
    write_keras_h5(tmp_path / "w.h5", {"input_1": [], "net": shuffled})
    layer = built_case_layer(case)
    layer.load_weights(tmp_path / "w.h5", prefix="net")
    for got, want in zip(_outputs(case, layer), _expected(case)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def _expected(case):
    want = parity.expected(case, parity.CASES[case])
    return want if isinstance(want, tuple) else (want,)


@pytest.mark.parametrize("whole_model", [False, True])
def test_a_block_loaded_by_its_path_beside_a_decoy(tmp_path, whole_model):
    case = "DownSampleResnetBlock.conv"
    variables = case_variables(case)
    decoy = [(name.replace("down_sample_resnet_block", "local_net/down_sample_resnet_block"), np.zeros_like(a))
             for name, a in variables]
    real = [(name.replace("down_sample_resnet_block", "local_net/down_sample_resnet_block_1"), a)
            for name, a in variables]
    write_keras_h5(tmp_path / "model.h5", {"input_1": [], "local_net": decoy + real}, whole_model=whole_model)
    block = built_case_layer(case)
    block.load_weights(tmp_path / "model.h5", prefix="local_net/down_sample_resnet_block_1")
    for got, want in zip(_outputs(case, block), _expected(case)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_a_single_layer_file_without_prefix(tmp_path, rng):
    kernel, bias = rng.standard_normal((120, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    write_keras_h5(tmp_path / "dense.hdf5", {"dense": [("dense/kernel:0", kernel), ("dense/bias:0", bias)]})
    layer = nn.Dense(5)
    layer.build((2, 4, 5, 6))
    layer.load_weights(tmp_path / "dense.hdf5")
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(x), x.reshape(2, -1) @ kernel + bias, rtol=1e-5, atol=1e-5)
    # DeepReg's own Dense wraps a Keras Dense: "dense/dense_1/kernel:0" loads the same way.
    write_keras_h5(tmp_path / "deepreg.h5",
                   {"dense": [("dense/dense_1/kernel:0", kernel), ("dense/dense_1/bias:0", bias)]})
    other = nn.Dense(5)
    other.build((2, 4, 5, 6))
    other.load_weights(tmp_path / "deepreg.h5")
    np.testing.assert_array_equal(other.get_weights()[0], kernel)


def test_missing_extra_and_mismatched_variables_are_named(tmp_path):
    case = "Residual3dBlock.f4"
    variables = case_variables(case)
    block = built_case_layer(case)
    write_keras_h5(tmp_path / "missing.h5", {"r": variables[:-1]})
    with pytest.raises(ValueError, match=r"missing: the file has no variable for "
                                         r"'norm/batch_normalization/moving_variance' \(4,\)"):
        block.load_weights(tmp_path / "missing.h5")
    extra = ("residual3d_block/norm_1/batch_normalization_1/scale:0", np.ones(4, np.float32))
    write_keras_h5(tmp_path / "extra.h5", {"r": variables + [extra]})
    with pytest.raises(ValueError, match=r"extra: the file's 'residual3d_block/norm_1/batch_normalization_1/scale:0' "
                                         r"\(4,\) is not a weight of Residual3dBlock"):
        block.load_weights(tmp_path / "extra.h5")
    wrong = [(name, array[..., :3] if name.endswith("conv3d_3/kernel:0") else array) for name, array in variables]
    write_keras_h5(tmp_path / "shape.h5", {"r": wrong})
    with pytest.raises(ValueError, match=r"shape: 'conv3d/conv3d/kernel' is \(3, 3, 3, 4, 4\) but the file's "
                                         r"'residual3d_block/conv3d_2/conv3d_3/kernel:0' is \(3, 3, 3, 4, 3\)"):
        block.load_weights(tmp_path / "shape.h5")
    with pytest.raises(ValueError, match="Residual3dBlock's 10 weights do not match the file's 0 variables under "
                                         "prefix 'r/other'; pass prefix= the layer's path in the file"):
        block.load_weights(tmp_path / "missing.h5", prefix="r/other")
    with pytest.raises(ValueError, match="no weights yet"):
        nn.Conv3dBlock(4).load_weights(tmp_path / "missing.h5")


def test_a_keras3_file_is_refused(tmp_path):
    with h5py.File(tmp_path / "k3.weights.h5", "w") as handle:
        handle.create_group("layers/dense/vars").create_dataset("0", data=np.zeros((2, 2)))
    layer = nn.Dense(2)
    layer.build((1, 2))
    with pytest.raises(ValueError, match="not a Keras HDF5 weights file"):
        layer.load_weights(tmp_path / "k3.weights.h5")


def test_local_paths_renumber_keras_counters_within_each_parent():
    names = ["m/conv3d_block_4/conv3d_12/conv3d_13/kernel:0", "m/residual3d_block_1/conv3d_block_3/norm_4/x:0",
             "m/conv3d_block_9/norm_2/batch_normalization_2/gamma:0", "m/conv3d_block_4/norm_6/beta:0"]
    assert local_paths(names) == ["m/conv3d_block/conv3d/conv3d/kernel", "m/residual3d_block/conv3d_block/norm/x",
                                  "m/conv3d_block_1/norm/batch_normalization/gamma", "m/conv3d_block/norm/beta"]
