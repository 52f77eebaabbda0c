"""The benchmark's workloads describe what they time."""

import numpy as np

from arrayreg.cli import bench


def test_localnet_convolutions_are_the_3x3x3_convolutions_of_a_forward_pass(monkeypatch):
    from arrayreg.nn import functional

    recorded = []
    original = functional.conv3d

    def recording(x, kernel, *args, **kwargs):
        if kernel.shape[:3] == (3, 3, 3):
            recorded.append((x.shape[1:4], kernel.shape[3], kernel.shape[4]))
        return original(x, kernel, *args, **kwargs)

    monkeypatch.setattr(functional, "conv3d", recording)
    shape = (8, 12, 16)
    bench.localnet_forward(shape)(np.zeros((1,) + shape + (2,), np.float32))
    assert recorded == bench.localnet_convolutions(shape)
