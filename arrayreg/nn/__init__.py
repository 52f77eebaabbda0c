"""Forward layers with DeepReg's constructors and call conventions."""

from .geometric import AdditiveUpSampling, IntDVF, Warping

__all__ = ["AdditiveUpSampling", "IntDVF", "Warping"]
