"""The host-side part of the cuDNN path (the GPU part runs in test_gpu.py)."""

from arrayreg.nn import _cudnn


def test_channels_last_descriptors_by_hand():
    # a C-contiguous (n=2, d1=4, d2=5, d3=6, c=3) array seen as cuDNN's logical (n, c, d1, d2, d3)
    assert _cudnn._channels_last((2, 4, 5, 6, 3)) == ([2, 3, 4, 5, 6], [360, 1, 90, 18, 3])
    # a Keras kernel transposed to (filters=7, 3, 3, 3, in=4)
    assert _cudnn._channels_last((7, 3, 3, 3, 4)) == ([7, 4, 3, 3, 3], [108, 1, 36, 12, 4])


def test_without_the_frontend_binding_is_none_and_numpy_never_asks(monkeypatch):
    import numpy as np

    from arrayreg.nn import functional as F

    def fail():
        raise AssertionError("NumPy inputs must not look for cuDNN")

    monkeypatch.setattr(_cudnn, "binding", fail)
    F.conv3d(np.ones((1, 4, 4, 4, 2), np.float32), np.ones((3, 3, 3, 2, 3), np.float32))
