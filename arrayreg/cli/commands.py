"""The commands of ``arrayreg``: each ``cmd_NAME(args)`` runs one parsed command.

A user mistake raises :class:`CommandError` (or a library ``ValueError``/``TypeError``),
which :func:`arrayreg.cli.main` prints as one line with exit status 2.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np

from .. import io
from .._backend import array_module, to_host
from ..io.chunked import is_zarr_path
from . import chunked


class CommandError(Exception):
    """A user mistake reported as one line."""


# ------------------------------------------------------------------ helpers
def _output_path(out: str, default_name: str) -> Path:
    """DeepReg's rule: an --out that is not a .nii/.nii.gz file means ``dirname(out)/default_name``."""
    if not out:
        return Path(default_name)
    if out == "-":
        raise CommandError("--out - (standard output) is not supported: NIfTI needs a file; "
                           "give a path ending in .nii or .nii.gz")
    if not (out.endswith(".nii") or out.endswith(".nii.gz") or is_zarr_path(out)):
        target = Path(os.path.dirname(out)) / default_name
        print(f"arrayreg: --out should end with .nii or .nii.gz; writing {target}", file=sys.stderr)
        return target
    return Path(out)


def _load_image(path):
    data, image = io.load_nifti(path)
    if data.ndim not in (3, 4):
        raise CommandError(f"{path}: an image must have shape (m1, m2, m3) or (m1, m2, m3, ch), got {data.shape}")
    return data, image


# ----------------------------------------------------------------- commands
def cmd_warp(args) -> None:
    from .. import warp_image_ddf

    targets = _targets(args.image, args.out, _default_name(args.image))
    if chunked.uses_zarr(args.ddf, *args.image, *targets):
        chunked.warp(args, targets)
        return
    xp = array_module(args.device)
    ddf, ddf_image = io.load_ddf(args.ddf)
    ddf = xp.asarray(ddf[None])
    for path, target in _progress(list(zip(args.image, targets)), "warp", len(targets) > 1):
        data, _ = _load_image(path)
        warped = warp_image_ddf(xp.asarray(data[None]), ddf, interpolation=args.interpolation, boundary=args.boundary,
                                fill_value=args.fill_value)
        io.save_nifti(target, to_host(warped)[0], like=ddf_image)
        print(f"wrote {target}")


def cmd_apply(args) -> None:
    from ..io import FieldTransform

    targets = _targets(args.image, args.out, _default_name(args.image))
    if chunked.uses_zarr(args.reference, *args.image, *targets):
        chunked.apply(args, [t for spec in args.transform for t in _read_t_option(spec)], targets)
        return
    xp = array_module(args.device)
    reference = _load_header(args.reference)
    shape = reference.shape[:3]
    chain = [t if not isinstance(t, FieldTransform) else FieldTransform(xp.asarray(t.field), t.affine)
             for spec in args.transform for t in _read_t_option(spec)]
    if args.output_field:
        io.write_transform(Path(args.output_field), io.transforms_to_field(chain, shape, reference.affine))
        print(f"wrote {args.output_field}")
    for path, target in _progress(list(zip(args.image, targets)), "apply", len(targets) > 1):
        data, image = _load_image(path)
        warped = io.apply_transforms(xp.asarray(data[None]), chain, shape, reference.affine, image.affine,
                                     interpolation=args.interpolation, fill_value=args.fill_value)
        io.save_nifti(target, to_host(warped)[0], like=reference)
        print(f"wrote {target}")


_INVERTED = re.compile(r"^\[(?P<path>.+?),\s*(?P<flag>[01])\]$")


def _read_t_option(spec: str) -> list:
    """One ``-t`` value, antsApplyTransforms' way: ``FILE`` or ``[FILE,1]`` (the exact inverse of an affine)."""
    match = _INVERTED.match(spec.strip())
    path, invert = (match["path"], match["flag"] == "1") if match else (spec, False)
    transforms = io.read_transform(path)
    if not invert:
        return transforms
    if len(transforms) != 1 or not isinstance(transforms[0], io.AffineTransform):
        raise CommandError(f"-t [{path},1]: only an affine has an exact inverse; for a field, give its inverse "
                           "field file (ANTs writes it as *InverseWarp.nii.gz)")
    return [transforms[0].inverse()]


def _load_header(path):
    """The nibabel image of ``path`` (its data is not read)."""
    image = io.load_nifti_header(path)
    if len(image.shape) < 3:
        raise CommandError(f"{path}: a reference image must be 3-D; got shape {image.shape}")
    return image


def _default_name(images) -> str:
    """``warped.zarr`` when the (first) image is a zarr store, ``warped.nii.gz`` otherwise."""
    return "warped.zarr" if is_zarr_path(images[0]) else "warped.nii.gz"


def _targets(images, out, default_name) -> list:
    """One output path per input: ``out`` itself for one image, ``out/warped_NAME`` for several."""
    if len(images) == 1:
        return [_output_path(out, default_name)]
    folder = Path(out or ".")
    targets = [folder / f"warped_{Path(p).name}" for p in images]
    _refuse_collisions(images, targets)
    return targets


def _refuse_collisions(inputs, targets) -> None:
    """Several inputs with the same file name would overwrite each other's output: say which, before any work."""
    first = {}
    for source, target in zip(inputs, targets):
        if target in first:
            raise CommandError(f"{first[target]} and {source} would both be written to {target}; "
                               "give images with distinct file names, or warp them one at a time")
        first[target] = source


def _progress(items, label, show):
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="image")


def cmd_integrate(args) -> None:
    from .. import integrate_dvf

    xp = array_module(args.device)
    dvf, dvf_image = io.load_ddf(args.dvf)
    ddf = to_host(integrate_dvf(xp.asarray(dvf[None]), args.num_steps))[0]
    target = _output_path(args.out, "ddf.nii.gz")
    io.save_nifti(target, ddf, like=dvf_image)
    print(f"wrote {target}")


def cmd_resize(args) -> None:
    from .. import resize3d

    xp = array_module(args.device)
    data, image = _load_image(args.image)
    volume = data if data.ndim == 3 else data[None]
    resized = to_host(resize3d(xp.asarray(volume), tuple(args.size), args.method))
    resized = resized if data.ndim == 3 else resized[0]
    zoom = np.diag([n_in / n_out for n_in, n_out in zip(data.shape[:3], args.size)] + [1.0])
    like = image.__class__(resized, image.affine @ zoom, image.header.copy())
    target = _output_path(args.out, "resized.nii.gz")
    io.save_nifti(target, resized, like=like)
    print(f"wrote {target}")


def cmd_augment(args) -> None:
    from .. import warp_image_ddf
    from ..augment import random_deformation

    xp = array_module(args.device)
    data, image = _load_image(args.image)
    ddf = random_deformation(data.shape[:3], args.seed, args.scale, args.max_displacement, xp=xp)
    out = Path(args.out)
    warped = to_host(warp_image_ddf(xp.asarray(data[None]), ddf))[0]
    results = [(out / "image.nii.gz", warped, image)]
    if args.label:
        labels, label_image = _load_image(args.label)
        if labels.shape[:3] != data.shape[:3]:
            raise CommandError(f"--label shape {labels.shape} does not match --image shape {data.shape}")
        warped_labels = to_host(warp_image_ddf(xp.asarray(labels[None]), ddf, interpolation="nearest"))[0]
        results.append((out / "label.nii.gz", warped_labels, label_image))
    results.append((out / "ddf.nii.gz", to_host(ddf)[0], image))
    for target, array, like in results:
        io.save_nifti(target, array, like=like)
        print(f"wrote {target}")


def cmd_demo(args) -> None:
    from . import demo

    demo.run(args.out, size=args.size, seed=args.seed, device=args.device)


def cmd_bench(args) -> None:
    if args.scaling:
        from . import bench_scaling

        bench_scaling.run()
        return
    if args.dask:
        from . import bench_dask

        bench_dask.run(args.dask_size, args.dask_big)
        return
    from . import bench

    bench.run(args)
