"""The host-side part of the cuDNN path (the GPU part runs in test_gpu.py)."""

import sys
import types

import pytest

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


@pytest.fixture
def fake_frontend(monkeypatch):
    """Install a stand-in ``cudnn`` module (the frontend imports fine without libcudnn; only a call can tell)."""
    def install(backend_version):
        module = types.ModuleType("cudnn")
        module.backend_version = backend_version
        monkeypatch.setitem(sys.modules, "cudnn", module)
        return module

    _cudnn.binding.cache_clear()
    yield install
    _cudnn.binding.cache_clear()


def test_binding_is_none_when_the_library_cannot_be_used(fake_frontend):
    def no_library():
        raise RuntimeError("Unable to find symbol cudnnGetVersion")  # what frontend 1.32 says without libcudnn

    fake_frontend(no_library)
    assert _cudnn.binding() is None


def test_binding_is_the_module_when_the_library_answers(fake_frontend):
    module = fake_frontend(lambda: 92800)
    assert _cudnn.binding() is module


class PlanWalk:
    """A graph whose plans ``refused`` raise when built (deselected TF32 plans, declining engines)."""

    def __init__(self, count, refused):
        self.count, self.refused, self.built = count, set(refused), []

    def get_execution_plan_count(self):
        return self.count

    def build_plan_at_index(self, index):
        if index in self.refused:
            raise RuntimeError(f"plan {index} carries a deselected numerical note")
        self.built.append(index)


def test_the_plan_walk_skips_plans_that_raise():
    graph = PlanWalk(4, refused={0, 1})
    assert _cudnn._build_first_plan(graph) == 2
    assert graph.built == [2]


def test_the_plan_walk_with_no_buildable_plan_raises():
    with pytest.raises(RuntimeError, match="no cuDNN execution plan"):
        _cudnn._build_first_plan(PlanWalk(3, refused={0, 1, 2}))
