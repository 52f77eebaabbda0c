"""NIfTI in and out (nibabel), with atomic writes: a failed command never leaves a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

WORLD_FIELD_INTENTS = (1006, 1007, 2006, 2007, 2008, 2009)  # ITK displacement/vector, FSL FNIRT fields


class NiftiError(ValueError):
    """A file that is missing, not NIfTI, or of the wrong shape (one readable line)."""


def _nibabel():
    try:
        import nibabel
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise NiftiError("reading NIfTI needs nibabel: pip install 'arrayreg[io]'") from error
    return nibabel


def load_nifti(path):
    """Read a NIfTI file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    data : numpy.ndarray
        The array as stored, in native byte order and C order (NIfTI stores x fastest; a volume of
        shape ``(X, Y, Z)``, ``(X, Y, Z, C)`` or ``(X, Y, Z, 1, C)`` is reordered by a parallel tiled copy,
        which the kernels would otherwise make with NumPy's much slower strided one).
    image : nibabel.Nifti1Image or nibabel.Nifti2Image
        Its affine and header.

    Raises
    ------
    NiftiError
        (a ``ValueError``) for a missing or unreadable file, in one line.
    """
    image = load_nifti_header(path)
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # noqa: BLE001 - nibabel raises many kinds; the user needs one line
        raise NiftiError(f"{path}: not a readable NIfTI file ({error.__class__.__name__}: {error})") from error
    return _c_order(np.asarray(data, dtype=data.dtype.newbyteorder("="))), image


_TILED_KINDS = {np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                      np.uint64, np.float32, np.float64)}


def _c_order(data):
    """``data`` C-contiguous; a volume stored x fastest takes ``kernels.cpu.reverse_axes_copy``."""
    volume = data.ndim in (3, 4) or (data.ndim == 5 and data.shape[3] == 1)
    if data.flags.c_contiguous or not data.flags.f_contiguous or not volume or data.dtype not in _TILED_KINDS:
        return np.ascontiguousarray(data)
    from .._kernels import cpu

    shape = data.shape
    channels = data.reshape(shape[:3] + (-1,), order="F")  # (X, Y, Z, C), still x fastest: a view
    out = np.empty(channels.shape, data.dtype)
    cpu.reverse_axes_copy(channels.T, out)
    return out.reshape(shape)


def load_nifti_header(path):
    """The nibabel image of a NIfTI file, its data not read (for its shape, affine and header).

    Raises
    ------
    NiftiError
        for a missing or unreadable file, in one line.
    """
    nib = _nibabel()
    path = Path(path)
    if not path.is_file():
        raise NiftiError(f"{path}: no such file")
    try:
        image = nib.load(str(path))
    except Exception as error:  # noqa: BLE001 - nibabel raises many kinds; the user needs one line
        raise NiftiError(f"{path}: not a readable NIfTI file ({error.__class__.__name__}: {error})") from error
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise NiftiError(f"{path}: not a NIfTI file (nibabel read it as {type(image).__name__})")
    return image


def load_ddf(path) -> tuple:
    """A voxel DDF file as ``(ddf, image)`` with ``ddf`` of shape ``(f1, f2, f3, 3)``, float32 or float64.

    Accepts DeepReg's ``(f1, f2, f3, 3)`` layout and the ``(f1, f2, f3, 1, 3)``
    layout.  A file whose intent marks a world-space field (ITK/ANTs 1007 and
    1006, FSL 2006-2009) is refused: its values are millimetres, not voxels
    (``arrayreg.io.read_transform`` and ``arrayreg apply`` read it).

    Returns
    -------
    ddf : numpy.ndarray, shape (f1, f2, f3, 3)
        float32 or float64 (integer files become float32).
    image : nibabel image

    Raises
    ------
    NiftiError
        for another shape, complex values, a world-space field, or an unreadable file.
    """
    data, image = load_nifti(path)
    intent = int(image.header["intent_code"]) if "intent_code" in image.header else 0
    if intent in WORLD_FIELD_INTENTS:
        raise NiftiError(f"{path}: a world-space displacement field (intent_code {intent}: millimetres, ITK/ANTs/FSL), "
                         f"not a voxel DDF; apply it with `arrayreg apply -i MOVING -r REFERENCE -t {path}` "
                         "(arrayreg.io.read_transform)")
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if not (data.ndim == 4 and data.shape[-1] == 3):
        raise NiftiError(f"{path}: a DDF must have shape (f1, f2, f3, 3) or (f1, f2, f3, 1, 3), got {data.shape}")
    if data.dtype.kind == "c":
        raise NiftiError(f"{path}: a DDF must hold real numbers; got complex values ({data.dtype})")
    if data.dtype.kind != "f":
        data = data.astype(np.float32)
    return data, image


def save_nifti(path, data: np.ndarray, like=None, *, intent="none") -> None:
    """Write ``data`` to ``path`` with the affine and header of the nibabel image ``like`` (if given).

    The file is written to a temporary name in the same folder and renamed
    into place, so readers never see a partial file.

    Parameters
    ----------
    path : str or path-like
        ``.nii`` or ``.nii.gz``; missing folders are created.
    data : numpy.ndarray
    like : nibabel image, optional
        Whose affine and header to copy (the data dtype is updated).
    intent : str or int, default "none"
        The header's ``intent_code`` (nibabel's ``set_intent``): a warped image written
        like a DDF file never carries the field's vector intent (1007), which ITK,
        SimpleITK and ANTs would read as a one-component vector image.
    """
    nib = _nibabel()
    if like is not None:
        header = like.header.copy()
        header.set_data_dtype(data.dtype)
        image = type(like)(data, like.affine, header)
    else:
        image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_intent(intent)
    write_atomically(path, lambda temporary: nib.save(image, temporary))


def write_atomically(path, write) -> None:
    """``write(temporary)`` to a temporary file beside ``path`` (same suffix), then rename it into place with
    the usual permissions; on any failure the temporary file is removed.  Missing folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
