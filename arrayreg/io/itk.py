"""ITK/ANTs transform files, read and written without guessing.

======================  =========================================================================
file                    holds
======================  =========================================================================
``.nii``, ``.nii.gz``   a displacement field, shape (X, Y, Z, 1, 3): ``intent_code`` 1007
                        (vector) in LPS mm, as ITK, ANTs and SimpleITK write it; 1006
                        (displacement vector, ITK >= 5.4) in RAS mm.  No intent: a voxel DDF
                        (DeepReg, voxelmorph), read only with ``voxel_ddf=True``.
``.mat``                ANTs' ``GenericAffine``: MATLAB v4, ``AffineTransform_double_3_3`` (9
                        matrix values row by row, 3 translations) and the centre ``fixed``.
``.txt``, ``.tfm``      ITK's text format (``#Insight Transform File V1.0``).
``.h5``, ``.hdf5``      ITK's HDF5 format, single or ``CompositeTransform``; a
                        ``DisplacementFieldTransform`` holds size, origin, spacing and direction
                        (row by row) as fixed parameters and the vectors, x fastest, as parameters.
======================  =========================================================================

A chain file (``CompositeTransform``) stores ITK's list, whose last entry acts
first on a point; :func:`read_transform` returns it in ``-t`` order (first acts
first), and :func:`write_transform` writes a ``-t``-ordered list back as ITK's.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .nifti import NiftiError, _nibabel, load_nifti, write_atomically
from .world import LPS, AffineTransform, FieldTransform, check_affine, ddf_to_world_field

AFFINE_NAMES = re.compile(r"^(AffineTransform|MatrixOffsetTransformBase)_(double|float)_3_3$")
FIELD_NAMES = re.compile(r"^DisplacementFieldTransform_(double|float)_3_3$")
COMPOSITE_NAMES = re.compile(r"^CompositeTransform_(double|float)_3(_3)?$")
VECTOR, DISPLACEMENT_VECTOR = 1007, 1006
FSL_INTENTS = range(2006, 2010)  # FNIRT displacement / coefficient fields


class TransformFileError(ValueError):
    """A transform file that is missing, of an unknown kind, or not 3-D (one readable line)."""


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix.lower()


def read_transform(path, *, voxel_ddf: bool = False) -> list:
    """Read an ITK/ANTs transform file as a list of transforms in ``-t`` order (the first acts first).

    Parameters
    ----------
    path : str or path-like
        ``.nii``/``.nii.gz`` (a field), ``.mat``, ``.txt``/``.tfm`` or ``.h5``/``.hdf5``.
    voxel_ddf : bool, default False
        Read a NIfTI file with no intent and shape (X, Y, Z, 3) or (X, Y, Z, 1, 3) as a voxel DDF
        (DeepReg, voxelmorph: voxel ``p`` maps to voxel ``p + ddf(p)`` of the same grid).  Such a file
        cannot be told from millimetres by its content, so it is refused unless this is set.

    Returns
    -------
    list of AffineTransform and FieldTransform
        One entry for a single transform.

    Raises
    ------
    TransformFileError
        (a ``ValueError``) naming the file and, for an ambiguous one, the argument that settles it.
    """
    path = Path(path)
    if not path.is_file():
        raise TransformFileError(f"{path}: no such file")
    suffix = _suffix(path)
    if suffix in (".nii", ".nii.gz"):
        return [_read_nifti_field(path, voxel_ddf)]
    readers = {".mat": _read_mat, ".txt": _read_text, ".tfm": _read_text, ".h5": _read_h5, ".hdf5": _read_h5}
    if suffix not in readers:
        raise TransformFileError(f"{path}: unknown transform file type {suffix!r}; expected one of .nii, "
                                 f".nii.gz, {', '.join(readers)}")
    return readers[suffix](path)


def _read_nifti_field(path: Path, voxel_ddf: bool) -> FieldTransform:
    try:
        data, image = load_nifti(path)
    except NiftiError as error:
        raise TransformFileError(str(error)) from error
    intent = int(image.header["intent_code"]) if "intent_code" in image.header else 0
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim != 4 or data.shape[-1] != 3 or data.dtype.kind not in "fiu":
        raise TransformFileError(f"{path}: a 3-D displacement field has shape (X, Y, Z, 1, 3) or (X, Y, Z, 3); "
                                 f"got {image.shape} of {data.dtype}")
    field = data if data.dtype.kind == "f" and data.dtype.itemsize >= 4 else data.astype(np.float32)
    affine = check_affine(image.affine, f"{path}: the affine")
    if intent == VECTOR:
        return FieldTransform(field, affine)
    if intent == DISPLACEMENT_VECTOR:
        return FieldTransform(field * np.array([-1, -1, 1], field.dtype), affine)  # RAS -> LPS components
    if intent in FSL_INTENTS:
        raise TransformFileError(f"{path}: an FSL FNIRT field (intent_code {intent}) is not supported; convert it "
                                 "to an ITK field first (e.g. FSL's convertwarp --relout, then fslpy or "
                                 "nitransforms)")
    if intent != 0:
        raise TransformFileError(f"{path}: intent_code {intent} is not a displacement field (ITK writes 1007)")
    if not voxel_ddf:
        raise TransformFileError(f"{path}: no vector intent, so voxels cannot be told from millimetres; if it is a "
                                 "voxel DDF (DeepReg, voxelmorph) pass voxel_ddf=True, or warp with "
                                 "`arrayreg warp -d`")
    return ddf_to_world_field(field, affine, affine)


def _read_mat(path: Path) -> list:
    from scipy.io import loadmat

    try:
        variables = loadmat(str(path))
    except Exception as error:  # noqa: BLE001 - scipy raises several kinds; one line for the user
        raise TransformFileError(f"{path}: not a readable MATLAB transform file ({error})") from error
    names = [n for n in variables if AFFINE_NAMES.match(n)]
    if not names or "fixed" not in variables:
        found = sorted(n for n in variables if not n.startswith("__"))
        raise TransformFileError(f"{path}: expected ANTs' AffineTransform_double_3_3 and fixed; found {found}")
    return [AffineTransform.from_itk(variables[names[0]], variables["fixed"])]


def _entries_of_text(path: Path) -> list:
    """``(type, parameters, fixed parameters)`` of each transform in an ITK text file."""
    entries, current = [], None
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "Transform":
            current = [value.strip(), np.zeros(0), np.zeros(0)]
            entries.append(current)
        elif key in ("Parameters", "FixedParameters") and current is not None:
            current[1 if key == "Parameters" else 2] = np.array(value.split(), dtype=np.float64)
    if not entries:
        raise TransformFileError(f"{path}: not an ITK transform file (no 'Transform:' line)")
    return entries


def _read_text(path: Path) -> list:
    entries = _entries_of_text(path)
    if COMPOSITE_NAMES.match(entries[0][0]):
        entries = entries[1:][::-1]  # ITK's list acts last entry first
    return [_affine_entry(path, name, parameters, fixed) for name, parameters, fixed in entries]


def _affine_entry(path, name, parameters, fixed) -> AffineTransform:
    if not AFFINE_NAMES.match(name):
        raise TransformFileError(f"{path}: {name} is not supported; arrayreg reads AffineTransform_double_3_3 "
                                 "(and MatrixOffsetTransformBase) and DisplacementFieldTransform (in .h5 or NIfTI)")
    return AffineTransform.from_itk(parameters, fixed if len(fixed) else np.zeros(3))


def field_from_itk(parameters, fixed) -> FieldTransform:
    """A ``DisplacementFieldTransform`` from ITK's parameters (vectors, x fastest) and fixed parameters
    (size, origin, spacing, direction row by row)."""
    fixed = np.asarray(fixed, dtype=np.float64).reshape(-1)
    size = tuple(int(n) for n in fixed[:3])
    origin, spacing, direction = fixed[3:6], fixed[6:9], fixed[9:18].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing
    lps[:3, 3] = origin
    field = np.asarray(parameters).reshape(size[::-1] + (3,)).transpose(2, 1, 0, 3)
    return FieldTransform(np.ascontiguousarray(field), LPS @ lps)


def _read_h5(path: Path) -> list:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as handle:
            group = handle["TransformGroup"]
            entries = []
            for key in sorted(group, key=int):
                item = group[key]
                name = item["TransformType"][0]
                name = name.decode() if isinstance(name, bytes) else str(name)
                parameters = item["TransformParameters"][()] if "TransformParameters" in item else np.zeros(0)
                fixed = item["TransformFixedParameters"][()] if "TransformFixedParameters" in item else np.zeros(0)
                entries.append((name, parameters, fixed))
    except (OSError, KeyError) as error:
        raise TransformFileError(f"{path}: not an ITK HDF5 transform file ({error})") from error
    if entries and COMPOSITE_NAMES.match(entries[0][0]):
        entries = entries[1:][::-1]
    transforms = []
    for name, parameters, fixed in entries:
        if FIELD_NAMES.match(name):
            transforms.append(field_from_itk(parameters, fixed))
        else:
            transforms.append(_affine_entry(path, name, parameters, fixed))
    return transforms


def _h5py():
    try:
        import h5py
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise TransformFileError("reading ITK .h5 transforms needs h5py: pip install 'arrayreg[io]'") from error
    return h5py


# ------------------------------------------------------------------ writing
def write_transform(path, transforms) -> None:
    """Write transforms as ITK/ANTs read them back: a field to NIfTI (intent 1007, LPS mm), an affine to
    ``.mat``/``.txt``/``.tfm``, anything (a ``-t``-ordered list becomes a ``CompositeTransform``) to ``.h5``.

    The file is written under a temporary name and renamed into place.
    """
    path = Path(path)
    single = isinstance(transforms, (AffineTransform, FieldTransform))
    chain = [transforms] if single else list(transforms)
    suffix = _suffix(path)
    if suffix in (".nii", ".nii.gz"):
        if len(chain) != 1 or not isinstance(chain[0], FieldTransform):
            raise ValueError(f"{path}: a NIfTI transform file holds one FieldTransform; compose the chain first "
                             "(transforms_to_field)")
        return _write_nifti_field(path, chain[0])
    if suffix in (".mat", ".txt", ".tfm") and not all(isinstance(t, AffineTransform) for t in chain):
        raise ValueError(f"{path}: {suffix} files hold affines; write fields to .nii.gz or .h5")
    if suffix == ".mat":
        if len(chain) != 1:
            raise ValueError(f"{path}: a .mat file holds one affine; got {len(chain)} transforms")
        return write_atomically(path, lambda name: _write_mat(name, chain[0]))
    if suffix in (".txt", ".tfm"):
        return write_atomically(path, lambda name: Path(name).write_text(_text_of(chain)))
    if suffix in (".h5", ".hdf5"):
        return write_atomically(path, lambda name: _write_h5(name, chain))
    raise ValueError(f"{path}: unknown transform file type {suffix!r}; expected .nii.gz, .mat, .txt, .tfm or .h5")


def _write_nifti_field(path: Path, transform: FieldTransform) -> None:
    from .._backend import to_host
    from .nifti import save_nifti

    nib = _nibabel()
    field = to_host(transform.field)
    image = nib.Nifti1Image(field[:, :, :, None, :], transform.affine)
    image.set_qform(transform.affine, code=1)
    image.set_sform(transform.affine, code=1)
    image.header.set_xyzt_units("mm")
    save_nifti(path, field[:, :, :, None, :], like=image, intent=VECTOR)


def _write_mat(name, transform: AffineTransform) -> None:
    from scipy.io import savemat

    savemat(name, {"AffineTransform_double_3_3": transform.itk_parameters()[:, None], "fixed": np.zeros((3, 1))},
            format="4")


def _text_of(chain) -> str:
    entries = [("AffineTransform_double_3_3", t.itk_parameters()) for t in chain[::-1]]
    if len(chain) > 1:
        entries = [("CompositeTransform_double_3_3", None)] + entries
    lines = ["#Insight Transform File V1.0"]
    for n, (kind, parameters) in enumerate(entries):
        lines += [f"#Transform {n}", f"Transform: {kind}"]
        if parameters is not None:
            lines += ["Parameters: " + " ".join(repr(float(v)) for v in parameters), "FixedParameters: 0 0 0"]
    return "\n".join(lines) + "\n"


def _itk_entry(transform):
    """``(type, parameters, fixed parameters)`` of one transform in ITK's HDF5 layout."""
    if isinstance(transform, AffineTransform):
        return "AffineTransform_double_3_3", transform.itk_parameters(), np.zeros(3)
    from .._backend import to_host

    lps = LPS @ transform.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    field = to_host(transform.field)
    fixed = np.concatenate([np.array(field.shape[:3], np.float64), lps[:3, 3], spacing, direction.reshape(-1)])
    parameters = np.ascontiguousarray(field.transpose(2, 1, 0, 3), dtype=np.float64).reshape(-1)
    return "DisplacementFieldTransform_double_3_3", parameters, fixed


def _write_h5(name, chain) -> None:
    h5py = _h5py()
    entries = [_itk_entry(t) for t in chain[::-1]]
    if len(chain) > 1:
        entries = [("CompositeTransform_double_3_3", None, None)] + entries
    with h5py.File(name, "w") as handle:
        handle.create_dataset("/HDFVersion", data=np.bytes_(h5py.version.hdf5_version))
        handle.create_dataset("/ITKVersion", data=np.bytes_("5.4.0"))
        handle.create_dataset("/OSName", data=np.bytes_("Linux"))
        handle.create_dataset("/OSVersion", data=np.bytes_("arrayreg"))
        for n, (kind, parameters, fixed) in enumerate(entries):
            group = handle.create_group(f"/TransformGroup/{n}")
            group.create_dataset("TransformType", data=[np.bytes_(kind)], dtype=h5py.string_dtype("ascii"))
            if parameters is not None:
                group.create_dataset("TransformParameters", data=parameters)
                group.create_dataset("TransformFixedParameters", data=fixed)
