"""DeepReg v0.1.1's reference cases (``deepreg_v011_tfkeras.npz``) and how to run each on arrayreg.

The cases come from DeepReg v0.1.1 run under tf_keras (Keras 2, the Keras it
was written for), so each layer's weights are stored in DeepReg's own order and
are set with ``set_weights`` in the file's order.  Arguments come from each
case's ``_meta`` entry, never from its name.  Shared by the parity tests on the
CPU, on the CUDA simulator and on a GPU.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import arrayreg
import arrayreg.layer_util as layer_util
import arrayreg.nn as nn

HERE = Path(__file__).parent
CANDIDATES = [
    os.environ.get("ARRAYREG_REFERENCE", ""),
    HERE.parent.parent / "shared" / "reference" / "deepreg_v011_tfkeras.npz",
    HERE / "data" / "deepreg_v011_tfkeras.npz",
]
REFERENCE = next(Path(p) for p in CANDIDATES if p and Path(p).is_file())
DATA = np.load(REFERENCE, allow_pickle=False)
CASES = json.loads(str(DATA["_meta"]))["cases"]
DEEP_BLOCKS = ("Residual3dBlock", "DownSampleResnetBlock", "UpSampleResnetBlock", "LocalNet")


def field(case, name):
    return DATA[f"{case}.{name}"]


def run_function(case, info):
    name = info["function"].split(".")[-1]
    args = info["args"]
    if name == "get_reference_grid":
        return arrayreg.get_reference_grid(args["grid_size"])
    if name == "get_n_bits_combinations":
        return np.array(layer_util.get_n_bits_combinations(args["num_bits"]))
    if name == "pyramid_combination":
        return layer_util.pyramid_combination(list(field(case, "values")), list(field(case, "weights")))
    if name == "resample":
        return layer_util.resample(field(case, "vol"), field(case, "loc"), args.get("interpolation", "linear"))
    if name == "random_transform_generator":
        return layer_util.random_transform_generator(args["batch_size"], args["scale"], args["seed"])
    if name == "warp_grid":
        return layer_util.warp_grid(field(case, "grid"), field(case, "theta"))
    if name == "warp_image_ddf":
        grid_ref = field(case, "grid_ref") if args.get("grid_ref") is not None else None
        return layer_util.warp_image_ddf(field(case, "image"), field(case, "ddf"), grid_ref)
    if name == "resize3d":
        return layer_util.resize3d(field(case, "image"), args["size"], args["method"])
    raise KeyError(name)


def run_layer(case, info):
    name = info["function"].split(".")[-1]
    args = info["args"]
    if not hasattr(nn, name):
        pytest.skip(f"layer {name} is not in arrayreg.nn yet")
    if name == "Warping":
        return nn.Warping(args["fixed_image_size"])([field(case, "ddf"), field(case, "image")])
    if name == "IntDVF":
        return nn.IntDVF(args["fixed_image_size"], args["num_steps"])(field(case, "dvf"))
    if name == "AdditiveUpSampling":
        return nn.AdditiveUpSampling(args["output_shape"], args["stride"])(field(case, "input"))
    layer = getattr(nn, name)(**args["ctor"])
    n_inputs = len(args["inputs"])
    inputs = [field(case, "input")] if n_inputs == 1 else [field(case, f"input{i}") for i in range(n_inputs)]
    weights = [DATA[w["key"]] for w in info.get("weights", [])]
    if weights:
        layer.build(inputs[0].shape if n_inputs == 1 else [x.shape for x in inputs])
        layer.set_weights(weights)
    return layer(inputs[0] if n_inputs == 1 else inputs, **args.get("call_kwargs", {}))


def expected(case, info):
    keys = [k.split(".")[-1] for k in info["keys"]]
    if "out" in keys:
        return field(case, "out")
    if "output" in keys:
        return field(case, "output")
    return tuple(field(case, f"output{i}") for i in range(sum(k.startswith("output") for k in keys)))


def check_case(case):
    """Run ``case`` on arrayreg and compare it with DeepReg's output: atol 1e-5, 1e-4 for the deep blocks."""
    info = CASES[case]
    runner = run_function if info["function"].startswith("layer_util.") else run_layer
    result = runner(case, info)
    want = expected(case, info)
    atol = 1e-4 if case.startswith(DEEP_BLOCKS) else 1e-5
    results = result if isinstance(want, tuple) else (result,)
    wants = want if isinstance(want, tuple) else (want,)
    assert len(results) == len(wants)
    for got, ref in zip(results, wants):
        got = np.asarray(got)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=atol)
