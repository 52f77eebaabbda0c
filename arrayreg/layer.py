"""DeepReg's ``deepreg.model.layer`` names, re-exported from :mod:`arrayreg.nn`."""

from .nn import Activation, AdditiveUpSampling, Conv3d, Deconv3d, Dense, IntDVF, MaxPool3d, Norm, Warping

__all__ = ["Activation", "AdditiveUpSampling", "Conv3d", "Deconv3d", "Dense", "IntDVF", "MaxPool3d", "Norm", "Warping"]
