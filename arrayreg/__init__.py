"""arrayreg: DeepReg's geometric core on plain NumPy arrays, with Numba kernels.

Conventions: channels-last, batch-first volumes ``(batch, d1, d2, d3[, ch])``;
DDFs ``(batch, f1, f2, f3, 3)`` in voxels on the fixed grid, ``ij`` order:
``warped[b, x] = image[b, x + ddf[b, x]]``.  CuPy is never imported here.
"""

from ._kernels.threads import load_tbb
from .affine import random_transform_generator
from .ddf import integrate_dvf, random_ddf, warp_image_ddf
from .fields import (
    FoldingReport,
    affine_to_ddf,
    compose_ddf,
    ddf_to_affine,
    folding_report,
    invert_ddf,
    jacobian_determinant,
)
from .grid import get_n_bits_combinations, get_reference_grid, warp_grid
from .io.world import apply_transforms, transforms_to_ddf
from .nn import AdditiveUpSampling, IntDVF, Warping
from .resample import pyramid_combination, resample
from .resize import resize3d

__version__ = "0.1.0"

load_tbb()  # before any parallel kernel runs, so that Numba picks its fork-safe TBB layer

__all__ = [
    "AdditiveUpSampling",
    "FoldingReport",
    "IntDVF",
    "Warping",
    "affine_to_ddf",
    "apply_transforms",
    "compose_ddf",
    "ddf_to_affine",
    "folding_report",
    "get_n_bits_combinations",
    "get_reference_grid",
    "integrate_dvf",
    "invert_ddf",
    "jacobian_determinant",
    "pyramid_combination",
    "random_ddf",
    "random_transform_generator",
    "resample",
    "resize3d",
    "transforms_to_ddf",
    "warp_grid",
    "warp_image_ddf",
]
