"""World-space transforms (ITK, ANTs, SimpleITK) and their collapse into one voxel DDF.

Conventions (DESIGN.md section 8).  Voxel ``p`` of an image sits at the RAS
point ``A @ [p, 1]`` (``A`` its NIfTI vox-to-RAS affine, nibabel's
``img.affine``).  ITK works in LPS, ``x_lps = F @ x_ras`` with
``F = diag(-1, -1, 1)``.  A transform maps a point of the reference space to
a point of the moving space (resampling pulls: ``out(x) = moving(T(x))``):

- :class:`AffineTransform`: ``y = M @ [x, 1]`` in LPS millimetres;
- :class:`FieldTransform`: ``y = x + u(x)``, ``u`` a vector field in LPS
  millimetres (world components, not along the index axes) on its own grid,
  sampled as ITK does: linearly, the edge vectors held within half a voxel
  beyond the outer voxels, zero displacement farther out.

A chain is a list in antsApplyTransforms' ``-t`` order: ``[T1, T2, ..., Tn]``
maps ``x`` to ``Tn(...T2(T1(x)))``, the first listed acting first on the point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validation as validate
from .._backend import backend_of
from .._docstrings import fill
from .._plan import coordinate_table, plan_sampling

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, its own inverse
AFFINE_STEP, FIELD_STEP, FIELD_AT_VOXEL = 0, 1, 2  # the step kinds of kernels.chain3d


def check_affine(matrix, name: str) -> np.ndarray:
    """``matrix`` as a finite, invertible ``(4, 4)`` float64 array with last row ``[0, 0, 0, 1]``."""
    try:
        matrix = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a (4, 4) array of numbers; got {type(matrix).__name__}") from error
    if matrix.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4); got {matrix.shape}")
    if not np.all(np.isfinite(matrix)) or not np.array_equal(matrix[3], [0, 0, 0, 1]):
        raise ValueError(f"{name} must be finite with last row [0, 0, 0, 1]; got\n{matrix}")
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise ValueError(f"{name} must be invertible; its 3x3 part is singular:\n{matrix}")
    return matrix


@dataclass(frozen=True, eq=False)
class AffineTransform:
    """An affine map of LPS points, ``y = matrix @ [x, 1]`` (millimetres), as ITK's ``AffineTransform``.

    Parameters
    ----------
    matrix : array, shape (4, 4)
        Finite and invertible, last row ``[0, 0, 0, 1]``; stored as float64.
    """

    matrix: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "matrix", check_affine(self.matrix, "matrix"))

    @classmethod
    def from_itk(cls, parameters, center=(0.0, 0.0, 0.0)) -> AffineTransform:
        """ITK's 12 parameters (the 3x3 matrix row by row, then the translation ``t``) and fixed parameters
        (the centre ``c``): ``y = M (x - c) + c + t``."""
        parameters = np.asarray(parameters, dtype=np.float64).reshape(-1)
        center = np.asarray(center, dtype=np.float64).reshape(-1)
        if parameters.size != 12 or center.size != 3:
            raise ValueError(f"an ITK 3-D affine has 12 parameters and a 3-value centre; got {parameters.size} "
                             f"and {center.size}")
        matrix = np.eye(4)
        matrix[:3, :3] = parameters[:9].reshape(3, 3)
        matrix[:3, 3] = parameters[9:] + center - matrix[:3, :3] @ center
        return cls(matrix)

    def itk_parameters(self) -> np.ndarray:
        """The 12 ITK parameters of this map with centre 0: the 3x3 matrix row by row, then the offset."""
        return np.concatenate([self.matrix[:3, :3].reshape(-1), self.matrix[:3, 3]])

    def inverse(self) -> AffineTransform:
        """The exact inverse map (what ANTs' ``[file,1]`` applies)."""
        return AffineTransform(np.linalg.inv(self.matrix))


@dataclass(frozen=True, eq=False)
class FieldTransform:
    """A displacement field, ``y = x + u(x)``, as ITK's ``DisplacementFieldTransform``.

    Parameters
    ----------
    field : array, shape (n1, n2, n3, 3)
        ``u`` at each voxel of its grid, LPS millimetres (NumPy or CuPy; float32 or float64).
    affine : array, shape (4, 4)
        The grid's NIfTI vox-to-RAS affine.
    """

    field: object
    affine: np.ndarray

    def __post_init__(self):
        field = self.field
        if getattr(field, "ndim", None) != 4 or field.shape[-1] != 3 or min(field.shape[:3]) < 1:
            raise ValueError(f"field must have shape (n1, n2, n3, 3); got {getattr(field, 'shape', type(field))}")
        if field.dtype not in (np.float32, np.float64):
            raise TypeError(f"field must be float32 or float64; got {field.dtype}")
        object.__setattr__(self, "affine", check_affine(self.affine, "affine"))


def _check_chain(transforms) -> list:
    if isinstance(transforms, (AffineTransform, FieldTransform)):
        return [transforms]
    transforms = list(transforms)
    for n, transform in enumerate(transforms):
        if not isinstance(transform, (AffineTransform, FieldTransform)):
            raise TypeError(f"transforms[{n}] must be an AffineTransform or a FieldTransform; "
                            f"got {type(transform).__name__}")
    return transforms


def _steps(transforms, start, finish):
    """The chain as kernel steps, with every run of affines multiplied into one matrix (float64) and the
    runs at either end folded into ``start`` and ``finish``: ``(start, [(kind, matrix, field)], finish)``."""
    steps, pending = [], np.eye(4)
    for transform in transforms:
        if isinstance(transform, AffineTransform):
            pending = transform.matrix @ pending
            continue
        if steps:
            steps.append((AFFINE_STEP, pending, None))
        else:
            start = pending @ start
        pending = np.eye(4)
        steps.append((FIELD_STEP, np.linalg.inv(transform.affine) @ LPS, transform.field))  # LPS -> field voxel
    steps = [step for step in steps if not (step[0] == AFFINE_STEP and np.array_equal(step[1], np.eye(4)))]
    return start, _read_at_voxels(start, steps), finish @ pending


def _read_at_voxels(start, steps):
    """``steps`` with the first field read at the reference voxels themselves (``FIELD_AT_VOXEL``, no
    interpolation) when its grid is the reference grid moved by whole voxels: ``matrix @ start`` is
    ``[I | o]`` with ``o`` integers, to 1e-12 in the 3x3 part and 1e-9 voxel in ``o``, and ``|o| <= 2**31``
    (the kernels' int64 index arithmetic).  ITK's linear rule at an integral point gives that voxel's own
    vector, so only the rounding of ``q`` is left out."""
    if not steps or steps[0][0] != FIELD_STEP:
        return steps
    _, matrix, field = steps[0]
    voxels = matrix @ start
    offset = np.round(voxels[:3, 3])
    if (np.abs(voxels[:3, :3] - np.eye(3)).max() > 1e-12 or np.abs(voxels[:3, 3] - offset).max() > 1e-9
            or np.abs(offset).max() > 2**31):
        return steps
    shift = np.eye(4)
    shift[:3, 3] = offset
    return [(FIELD_AT_VOXEL, shift, field)] + steps[1:]


def _chain_tables(steps, xp):
    """The kernel's arrays: step kinds, ``(n, 3, 4)`` matrices, the fields as one flat array (a single
    C-contiguous field is used as it is) and each field's ``(offset, n1, n2, n3)``."""
    fields = [field for _, _, field in steps if field is not None]
    dtype = np.float64 if any(f.dtype == np.float64 for f in fields) else np.float32
    kinds = np.array([kind for kind, _, _ in steps], np.int64)
    matrices = np.array([matrix[:3] for _, matrix, _ in steps], np.float64).reshape(len(steps), 3, 4)
    tables = np.zeros((len(steps), 4), np.int64)
    offset = 0
    for s, (_, _, field) in enumerate(steps):
        if field is not None:
            tables[s] = (offset,) + field.shape[:3]
            offset += field.size
    if not fields:
        flat = xp.zeros(3, dtype)
    elif len(fields) == 1:
        flat = xp.ascontiguousarray(fields[0], dtype=dtype).reshape(-1)
    else:
        flat = xp.concatenate([xp.asarray(f, dtype=dtype).reshape(-1) for f in fields])
    return xp.asarray(kinds), xp.asarray(matrices), flat, xp.asarray(tables)


def _field_arrays(transforms) -> dict:
    """The chain's field arrays by argument name (for the backend's choice and its messages)."""
    return {f"transforms[{n}].field": t.field for n, t in enumerate(transforms) if isinstance(t, FieldTransform)}


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64; got {dtype}")
    return dtype


def _chain_arguments(transforms, reference_affine, finish, subtract, xp) -> tuple:
    """The arguments of ``kernels.chain3d`` before ``out``."""
    start, steps, finish = _steps(transforms, LPS @ reference_affine, finish)
    kinds, matrices, fields, tables = _chain_tables(steps, xp)
    return (xp.asarray(start[:3]), kinds, matrices, fields, tables, xp.asarray(finish[:3]), xp.asarray(subtract[:3]))


def _collapse(transforms, reference_shape, reference_affine, finish, subtract, dtype):
    transforms = _check_chain(transforms)
    shape = validate.check_size3(reference_shape, "reference_shape")
    backend = backend_of(**_field_arrays(transforms))
    xp = backend.xp
    dtype = _check_dtype(dtype)
    out = xp.empty((1,) + shape + (3,), dtype=dtype)
    backend.kernels.chain3d(*_chain_arguments(transforms, reference_affine, finish, subtract, xp), out)
    return out


def _lps_to_voxels(moving_affine) -> np.ndarray:
    """LPS millimetres to the voxels of the grid whose vox-to-RAS affine is ``moving_affine``."""
    return np.linalg.inv(check_affine(moving_affine, "moving_affine")) @ LPS


def transforms_to_ddf(transforms, reference_shape, reference_affine, moving_affine, *, dtype=np.float32):
    """Collapse a chain of world transforms into one voxel DDF on the reference grid, in one pass.

    For each reference voxel ``p``: ``x = F A [p, 1]`` (LPS), ``y = Tn(...T1(x))``,
    and ``ddf(p) = B^-1 F y - p``, so that
    ``warp_image_ddf(moving[None], ddf, boundary="constant")`` resamples the
    moving image onto the reference grid as ITK and ANTs do.  Affines apply in
    float64 and fields are sampled as ITK samples them: linearly, edges
    clamped, within half a voxel beyond their outer voxels, and zero
    displacement farther out.

    Parameters
    ----------
    transforms : list of AffineTransform and FieldTransform (or one of them)
        In ``-t`` order: the first acts first on the point.
    reference_shape : 3 ints
    reference_affine, moving_affine : array, shape (4, 4)
        The NIfTI vox-to-RAS affines of the reference and moving grids.
    dtype : float32 (default) or float64
        Of the result; the arithmetic is float64 throughout.

    Returns
    -------
    array, shape (1, n1, n2, n3, 3)
        Reference voxel to moving voxel, ``ij`` order; CuPy when the fields are.

    Examples
    --------
    A 2 mm shift along L (the first RAS axis is R, so x_ras falls by 2) on 2 mm voxels:

    >>> import numpy as np
    >>> from arrayreg.io import AffineTransform, transforms_to_ddf
    >>> shift = AffineTransform(np.array([[1, 0, 0, 2.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    >>> affine = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> transforms_to_ddf([shift], (2, 2, 2), affine, affine)[0, 0, 0, 0]
    array([-1.,  0.,  0.], dtype=float32)
    """
    return transforms_to_ddf_block(transforms, reference_shape, reference_affine, moving_affine, (0, 0, 0),
                                   dtype=dtype)


def transforms_to_ddf_block(transforms, block_shape, reference_affine, moving_affine, origin, *, dtype=np.float32):
    """The block of :func:`transforms_to_ddf` whose first voxel is ``origin`` (a block of a chunked DDF).

    The block's grid has the affine ``A @ T(origin)``, ``T`` a translation, and ``p + origin`` is
    subtracted from its points, so the values are the whole grid's up to that matrix product's rounding.
    """
    shift = np.eye(4)
    shift[:3, 3] = origin
    reference_affine = check_affine(reference_affine, "reference_affine") @ shift
    return _collapse(transforms, block_shape, reference_affine, _lps_to_voxels(moving_affine), shift, dtype)


@fill
def apply_transforms(image, transforms, reference_shape, reference_affine, moving_affine, *,
                     interpolation: str = "linear", fill_value=0.0, dtype=np.float32):
    """Resample a moving image onto a reference grid through a chain of world transforms, as
    ``antsApplyTransforms`` and ITK's ``Resample`` do.

    ``out[b] = warp_image_ddf(image[b:b + 1], ddf, interpolation=interpolation,
    boundary="constant", fill_value=fill_value)`` with
    ``ddf = transforms_to_ddf(transforms, reference_shape, reference_affine,
    moving_affine, dtype=dtype)``, bit for bit; every batch element takes the
    same chain.  Linear and label warps on the CPU run in one pass that never
    stores the DDF: each row of displacements is collapsed (rounded to
    ``dtype``, as the DDF would be) and warped at once.  Nearest and cubic
    warps, and the GPU, make the DDF first.

    Parameters
    ----------
    image : array, shape (batch, m1, m2, m3) or (batch, m1, m2, m3, ch)
        The moving image (NumPy or CuPy), on the grid of ``moving_affine``.
    transforms : list of AffineTransform and FieldTransform (or one of them)
        In ``-t`` order: the first acts first on the point.
    reference_shape : 3 ints
    reference_affine, moving_affine : array, shape (4, 4)
        The NIfTI vox-to-RAS affines of the reference and moving grids.
    {{interpolation}}
    fill_value : float, default 0.0
        The value outside the moving image (ANTs' default is 0); as ``fill_value`` of
        :func:`arrayreg.warp_image_ddf` with ``boundary="constant"``.
    dtype : float32 (default) or float64
        The displacements' rounding, as in :func:`transforms_to_ddf`.

    Returns
    -------
    array, shape (batch, n1, n2, n3) or (batch, n1, n2, n3, ch)
        In the dtype of :func:`arrayreg.warp_image_ddf`'s rule (the displacements count as ``dtype``).
    """
    transforms = _check_chain(transforms)
    backend = backend_of(image=image, **_field_arrays(transforms))
    xp = backend.xp
    image = validate.as_array(image, "image", xp)
    if image.ndim not in (4, 5):
        raise ValueError(f"image must have shape (batch, m1, m2, m3) or (batch, m1, m2, m3, ch); got {image.shape}")
    shape = validate.check_size3(reference_shape, "reference_shape")
    reference_affine = check_affine(reference_affine, "reference_affine")
    finish = _lps_to_voxels(moving_affine)
    disp_type = np.empty(0, _check_dtype(dtype))
    plan = plan_sampling(backend, image, "image", 3, image.ndim == 5, (disp_type,), interpolation, "constant",
                         fill_value)
    out, _ = plan.empty_output(image.shape[0], shape)
    if out.size == 0:
        return out
    coords = coordinate_table(shape, plan.coord_dtype, xp)
    chain = _chain_arguments(transforms, reference_affine, finish, np.eye(4), xp)
    backend.kernels.apply3d(plan.vol, chain, coords, plan.mode, disp_type,
                            out.reshape(out.shape[:4] + (plan.vol.shape[-1],)))
    return out


def transforms_to_field(transforms, reference_shape, reference_affine, *, dtype=np.float32) -> FieldTransform:
    """The chain as one displacement field on the reference grid: ``u(x) = Tn(...T1(x)) - x`` in LPS mm
    at each reference voxel (what ``antsApplyTransforms -o [field.nii.gz,1]`` writes)."""
    reference_affine = check_affine(reference_affine, "reference_affine")
    start = LPS @ reference_affine
    field = _collapse(transforms, reference_shape, reference_affine, np.eye(4), start, dtype)
    return FieldTransform(field[0], reference_affine)


def ddf_to_world_field(ddf, reference_affine, moving_affine) -> FieldTransform:
    """A voxel DDF (reference voxel ``p`` to moving voxel ``p + ddf(p)``) as a world field on the reference
    grid: ``u_lps(p) = F (B [p + ddf(p), 1] - A [p, 1])``, float64 arithmetic, the DDF's float dtype.

    Parameters
    ----------
    ddf : array, shape (n1, n2, n3, 3) or (1, n1, n2, n3, 3)
    reference_affine, moving_affine : array, shape (4, 4)
        ``A`` and ``B``, the vox-to-RAS affines of the grids the DDF maps between.
    """
    backend = backend_of(ddf=ddf)
    xp = backend.xp
    ddf = validate.as_array(ddf, "ddf", xp)
    if ddf.ndim == 5 and ddf.shape[0] == 1:
        ddf = ddf[0]
    if ddf.ndim != 4 or ddf.shape[-1] != 3:
        raise ValueError(f"ddf must have shape (n1, n2, n3, 3) or (1, n1, n2, n3, 3); got {ddf.shape}")
    a = check_affine(reference_affine, "reference_affine")
    b = check_affine(moving_affine, "moving_affine")
    out_dtype = ddf.dtype if ddf.dtype.kind == "f" and ddf.dtype.itemsize >= 4 else np.dtype(np.float32)
    grid = xp.stack(xp.meshgrid(*[xp.arange(n, dtype=np.float64) for n in ddf.shape[:3]], indexing="ij"), -1)
    lps = xp.asarray((LPS @ b)[:3, :3].T)
    world = (grid + ddf.astype(np.float64)) @ lps + xp.asarray((LPS @ b)[:3, 3])
    world -= grid @ xp.asarray((LPS @ a)[:3, :3].T) + xp.asarray((LPS @ a)[:3, 3])
    return FieldTransform(world.astype(out_dtype), a)
