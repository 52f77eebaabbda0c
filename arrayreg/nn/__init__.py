"""Forward layers with DeepReg's constructors and call conventions, and their primitives (``functional``)."""

from . import functional
from .blocks import (
    Conv3dBlock,
    Conv3dWithResize,
    Deconv3dBlock,
    DownSampleResnetBlock,
    LocalNetResidual3dBlock,
    LocalNetUpSampleResnetBlock,
    Residual3dBlock,
    UpSampleResnetBlock,
)
from .geometric import AdditiveUpSampling, IntDVF, Warping
from .layers import Activation, Conv3d, Deconv3d, Dense, MaxPool3d, Norm

__all__ = [
    "Activation",
    "AdditiveUpSampling",
    "Conv3d",
    "Conv3dBlock",
    "Conv3dWithResize",
    "Deconv3d",
    "Deconv3dBlock",
    "DownSampleResnetBlock",
    "LocalNetResidual3dBlock",
    "LocalNetUpSampleResnetBlock",
    "Residual3dBlock",
    "UpSampleResnetBlock",
    "Dense",
    "IntDVF",
    "MaxPool3d",
    "Norm",
    "Warping",
    "functional",
]
