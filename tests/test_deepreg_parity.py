"""Every case of DeepReg v0.1.1's reference outputs (computed by DeepReg itself), at atol 1e-5.

The cases come from ``deepreg_v011_tfkeras.npz``: DeepReg v0.1.1 run under
tf_keras (Keras 2, the Keras it was written for), so each layer's weights are
stored in DeepReg's own order and are set here with ``set_weights`` in the
file's order.  Arguments come from each case's ``_meta`` entry, never from its
name.  Layer cases run as soon as ``arrayreg.nn`` has the layer; until then
they skip.
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


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_case(case):
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


def test_reference_file_has_72_cases():
    assert len(CASES) == 72


def test_random_transform_matches_deepreg_published_values():
    published = np.array(
        [
            [0.94661278, -0.0038267835, 0.0036934228],
            [0.0055613145, 0.98034811, -0.018044969],
            [0.00019651605, 0.014576728, 0.96243286],
            [-0.0025107686, 0.019579126, -0.012195010],
        ]
    )
    theta = arrayreg.random_transform_generator(1, 0.1, seed=0)
    assert theta.shape == (1, 4, 3) and theta.dtype == np.float32
    np.testing.assert_allclose(theta[0], published, rtol=0, atol=1e-7)
