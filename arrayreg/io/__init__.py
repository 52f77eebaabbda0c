"""Files in and out: NIfTI images and voxel DDFs, and the transforms of ITK, ANTs and SimpleITK.

- :mod:`.nifti`: ``load_nifti``, ``load_nifti_header``, ``load_ddf``, ``save_nifti`` (atomic; the intent
  is set, never inherited);
- :mod:`.world`: ``AffineTransform``, ``FieldTransform`` and the collapse of a chain of them
  into one voxel DDF (``transforms_to_ddf``) or one world field (``transforms_to_field``), and
  ``apply_transforms``, the resampling through a chain in one pass;
- :mod:`.itk`: ``read_transform`` and ``write_transform`` for ITK/ANTs files.
"""

from .itk import TransformFileError, read_transform, write_transform
from .nifti import NiftiError, load_ddf, load_nifti, load_nifti_header, save_nifti
from .world import (
    AffineTransform,
    FieldTransform,
    apply_transforms,
    ddf_to_world_field,
    transforms_to_ddf,
    transforms_to_field,
)

__all__ = [
    "AffineTransform",
    "FieldTransform",
    "NiftiError",
    "TransformFileError",
    "apply_transforms",
    "ddf_to_world_field",
    "load_ddf",
    "load_nifti",
    "load_nifti_header",
    "read_transform",
    "save_nifti",
    "transforms_to_ddf",
    "transforms_to_field",
    "write_transform",
]
