"""Forward layers with DeepReg's constructors and call conventions, and their primitives (``functional``)."""

from . import functional
from .geometric import AdditiveUpSampling, IntDVF, Warping
from .layers import Activation, Conv3d, Deconv3d, Dense, MaxPool3d, Norm

__all__ = [
    "Activation",
    "AdditiveUpSampling",
    "Conv3d",
    "Deconv3d",
    "Dense",
    "IntDVF",
    "MaxPool3d",
    "Norm",
    "Warping",
    "functional",
]
