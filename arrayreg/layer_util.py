"""DeepReg's ``deepreg.model.layer_util`` names, re-exported: port by changing the import."""

from .affine import random_transform_generator
from .ddf import warp_image_ddf
from .grid import get_n_bits_combinations, get_reference_grid, warp_grid
from .resample import pyramid_combination, resample
from .resize import resize3d

__all__ = [
    "get_n_bits_combinations",
    "get_reference_grid",
    "pyramid_combination",
    "random_transform_generator",
    "resample",
    "resize3d",
    "warp_grid",
    "warp_image_ddf",
]
