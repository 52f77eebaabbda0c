"""DeepReg's ``deepreg.model.layer`` names, re-exported from :mod:`arrayreg.nn`."""

from .nn import AdditiveUpSampling, IntDVF, Warping

__all__ = ["AdditiveUpSampling", "IntDVF", "Warping"]
