"""Shape, dtype and option checks shared by every public function.

Every check raises ``ValueError`` or ``TypeError`` with a message that names
the argument, what was expected and what was given.
"""

from __future__ import annotations

import numbers

import numpy as np

INTERPOLATIONS = ("linear", "nearest", "label", "cubic")
BOUNDARIES = ("clamp", "constant")


def as_array(value, name: str, xp=np):
    """Convert ``value`` (an array or nested lists) to an array of numbers of module ``xp``.

    Masked arrays are refused rather than silently unmasked (a masked 1e30
    displacement would be used), and so are floats wider than 64 bits
    (``np.longdouble``), which no kernel computes in.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array, whose mask arrayreg would ignore; "
                        f"pass {name}.filled(fill_value) (or the .data you mean) instead")
    try:
        array = xp.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of numbers; got {type(value).__name__}") from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float); got dtype {array.dtype}")
    if array.dtype.kind == "f" and array.dtype.itemsize > 8:
        raise TypeError(f"{name} must be float16, float32 or float64; got {array.dtype} (np.longdouble): "
                        f"convert it with .astype(np.float64)")
    return array


def as_coordinates(value, name: str, xp=np):
    """Convert coordinates (locations, displacements, grids, thetas) to a numeric array of module ``xp``."""
    array = as_array(value, name, xp)
    if array.dtype.kind == "b":
        raise TypeError(f"{name} must hold numbers, not booleans; got dtype bool")
    return array



def as_field(value, name: str, xp=np):
    """A displacement or velocity field ``(batch, f1, f2, f3, 3)`` of module ``xp`` (DeepReg's message)."""
    field = as_coordinates(value, name, xp)
    if not (field.ndim == 5 and field.shape[-1] == 3):
        raise ValueError(f"{name} shape must be (batch, f_dim1, f_dim2, f_dim3, 3), got {field.shape}")
    return field


def is_integer(value) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """A real number (Python or NumPy int or float), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_real(value, name: str, requirement: str, valid) -> float:
    """A real number (not a bool) for which ``valid(value)`` holds, as a float.

    Otherwise ``ValueError: {name} must be {requirement}; got {value!r}``.
    """
    if not is_real(value) or not valid(value):
        raise ValueError(f"{name} must be {requirement}; got {value!r}")
    return float(value)


def check_triple(value, name: str, minimum: int = 1) -> tuple:
    """An int, or 3 ints, each at least ``minimum`` (bools refused), as a 3-tuple."""
    values = (value,) * 3 if is_integer(value) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(values) != 3 or not all(is_integer(x) and x >= minimum for x in values):
        raise ValueError(f"{name} must be an int >= {minimum} or 3 of them; got {value!r}")
    return tuple(int(x) for x in values)


def random_source(seed):
    """A NumPy random source for ``seed`` that never touches the global random state.

    A ``Generator`` or ``RandomState`` is used as it is; None or an int makes a
    ``RandomState(seed)`` (the numbers of DeepReg's legacy seeding).
    """
    if isinstance(seed, (np.random.Generator, np.random.RandomState)):
        return seed
    if seed is None or is_integer(seed):
        return np.random.RandomState(seed)
    raise TypeError(
        f"seed must be None, an int, a numpy.random.Generator or a numpy.random.RandomState; got {seed!r}"
    )


def check_int(value, name: str, minimum: int) -> int:
    """An int (not a bool) of at least ``minimum``."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def check_fill_value(fill_value, dtype: np.dtype):
    """Return ``fill_value`` as a scalar of ``dtype``.

    Integer outputs need an exact integer of their range.  Float outputs need
    a value that stays finite in ``dtype`` (an infinite fill times a zero
    weight would turn whole neighbourhoods into NaN); NaN itself is allowed.
    """
    if not is_real(fill_value):
        raise TypeError(f"fill_value must be a real number; got {fill_value!r}")
    if dtype.kind in "biu":
        low, high = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
        value = float(fill_value)
        if not (np.isfinite(value) and value.is_integer() and low <= fill_value <= high):
            raise ValueError(
                f"fill_value must be an integer in [{low}, {high}] for a {dtype} image; got {fill_value!r}"
            )
        return dtype.type(fill_value)
    with np.errstate(over="ignore"):
        value = dtype.type(fill_value)
    if np.isinf(value):
        raise ValueError(f"fill_value must be finite in the output dtype {dtype} (|fill_value| <= "
                         f"{np.finfo(dtype).max:.6g}; NaN is allowed); got {fill_value!r}")
    return value


def check_interpolation(interpolation, caller: str) -> str:
    """One of :data:`INTERPOLATIONS`; otherwise DeepReg's message, then what arrayreg accepts."""
    if not isinstance(interpolation, str) or interpolation not in INTERPOLATIONS:
        raise ValueError(f"{caller} supports only linear interpolation in DeepReg, and arrayreg adds nearest, "
                         f"label and cubic: interpolation must be one of "
                         f"{', '.join(repr(i) for i in INTERPOLATIONS)}; got {interpolation!r}")
    return interpolation


def check_size3(size, name: str = "size", wrong_length: str = "") -> tuple:
    """A spatial size: a sequence of three positive ints.

    ``wrong_length`` replaces the start of the message for a sequence whose length is not 3
    (DeepReg's wording where DeepReg checks the same thing).
    """
    try:
        values = tuple(size)
    except TypeError as error:
        raise TypeError(f"{name} must be a tuple/list of 3 positive ints; got {size!r}") from error
    if len(values) != 3:
        raise ValueError(f"{wrong_length or f'{name} must be a tuple/list of length 3'}; got {size!r}")
    for v in values:
        if not is_integer(v) or v < 1:
            raise ValueError(f"{name} must contain 3 positive ints; got {size!r}")
    return tuple(int(v) for v in values)


def check_spatial_nonempty(shape, name: str) -> None:
    """Volumes to sample from need at least one voxel along every spatial axis."""
    if any(d == 0 for d in shape):
        raise ValueError(f"{name} must have at least one voxel along every spatial axis; "
                         f"got spatial shape {tuple(shape)}")


def check_out(out, shape: tuple, dtype, xp, **inputs) -> None:
    """``out=`` must be a writeable C-contiguous array of ``xp`` with this shape and dtype, sharing no memory
    with the named inputs."""
    if not isinstance(out, xp.ndarray):
        raise TypeError(f"out must be a {xp.__name__} array; got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"out must have shape {tuple(shape)} and dtype {np.dtype(dtype)}; "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")
    for name, array in inputs.items():
        if xp.shares_memory(out, array):
            raise ValueError(f"out must not share memory with {name}")
