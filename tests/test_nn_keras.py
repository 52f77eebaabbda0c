"""Loading weights from legacy Keras HDF5 files (the layout tf.keras ``save_weights("*.h5")`` writes)."""

import numpy as np
import pytest

from arrayreg import nn

from . import test_deepreg_parity as parity

h5py = pytest.importorskip("h5py")

BATCH_NORM = ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"]


def conv3d_block_names(path):
    """The variable names tf.keras gives a DeepReg Conv3dBlock at ``path``: conv kernel, then batch norm."""
    return [f"{path}/conv3d/kernel:0"] + [f"{path}/batch_norm/{name}" for name in BATCH_NORM]


def down_sample_block_names(path):
    """DownSampleResnetBlock(pooling=False): conv3d_block, residual (conv3d_block, conv3d, norm), strided block."""
    residual = f"{path}/residual3d_block"
    return (conv3d_block_names(f"{path}/conv3d_block") + conv3d_block_names(f"{residual}/conv3d_block")
            + [f"{residual}/conv3d/kernel:0"] + [f"{residual}/batch_norm/{name}" for name in BATCH_NORM]
            + conv3d_block_names(f"{path}/conv3d_block_1"))


def write_keras_h5(path, layers, whole_model=False):
    """A legacy Keras HDF5 file: ``layers`` maps each top-level layer name to its (name, array) pairs."""
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


def reference_weights(case):
    return [parity.DATA[w["key"]] for w in parity.CASES[case]["weights"]]


@pytest.mark.parametrize("whole_model", [False, True])
def test_a_block_loaded_by_its_path_reproduces_deepreg(tmp_path, whole_model):
    case = "DownSampleResnetBlock.conv"
    names = down_sample_block_names("local_net/down_sample_resnet_block_1")
    decoy = [(name, np.zeros_like(a)) for name, a in
             zip(down_sample_block_names("local_net/down_sample_resnet_block"), reference_weights(case))]
    write_keras_h5(tmp_path / "model.h5", {
        "input_1": [],
        "local_net": decoy + list(zip(names, reference_weights(case))),
    }, whole_model=whole_model)
    block = nn.DownSampleResnetBlock(**parity.CASES[case]["args"]["ctor"])
    x = parity.DATA[f"{case}.input"]
    block.build(x.shape)
    block.load_weights(tmp_path / "model.h5", prefix="local_net/down_sample_resnet_block_1")
    for got, want in zip(block(x), parity.expected(case, parity.CASES[case])):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_a_single_layer_file_without_prefix(tmp_path, rng):
    kernel, bias = rng.standard_normal((120, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    write_keras_h5(tmp_path / "dense.hdf5", {"dense": [("dense/kernel:0", kernel), ("dense/bias:0", bias)]})
    layer = nn.Dense(5)
    layer.build((2, 4, 5, 6))
    layer.load_weights(tmp_path / "dense.hdf5")
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(x), x.reshape(2, -1) @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_mismatches_are_named(tmp_path, rng):
    block = nn.Conv3dBlock(4)
    block.build((1, 5, 5, 5, 3))
    weights = block.get_weights()
    write_keras_h5(tmp_path / "w.h5", {"net": list(zip(conv3d_block_names("net/conv3d_block"), weights))})
    with pytest.raises(ValueError, match="has 5 weights but the file has 0 under 'net/other'"):
        block.load_weights(tmp_path / "w.h5", prefix="net/other")
    swapped = list(zip(conv3d_block_names("net/conv3d_block"), weights))
    swapped[1], swapped[2] = (swapped[1][0], weights[2]), (swapped[2][0], weights[1])
    write_keras_h5(tmp_path / "ok_shapes.h5", {"net": swapped})
    block.load_weights(tmp_path / "ok_shapes.h5")  # same names and shapes: loads (values are the file's)
    np.testing.assert_array_equal(block.get_weights()[1], weights[2])
    wrong = [(n.replace("gamma", "scale"), w) for n, w in zip(conv3d_block_names("net/b"), weights)]
    write_keras_h5(tmp_path / "bad.h5", {"net": wrong})
    with pytest.raises(ValueError, match="does not match the file's 'net/b/batch_norm/scale:0'"):
        block.load_weights(tmp_path / "bad.h5")
    other = nn.Conv3dBlock(4)
    with pytest.raises(ValueError, match="no weights yet"):
        other.load_weights(tmp_path / "w.h5")


def test_a_keras3_file_is_refused(tmp_path):
    with h5py.File(tmp_path / "k3.weights.h5", "w") as handle:
        handle.create_group("layers/dense/vars").create_dataset("0", data=np.zeros((2, 2)))
    layer = nn.Dense(2)
    layer.build((1, 2))
    with pytest.raises(ValueError, match="not a Keras HDF5 weights file"):
        layer.load_weights(tmp_path / "k3.weights.h5")
