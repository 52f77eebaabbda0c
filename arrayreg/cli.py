"""The ``arrayreg`` command: warp, integrate, resize, augment, demo and bench on NIfTI files.

Bad input exits with status 2 and one readable line on stderr, never a
traceback; outputs are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from . import io

EXAMPLES = {
    "warp": """examples:
  arrayreg warp -i moving.nii.gz -d ddf.nii.gz -o warped.nii.gz
  arrayreg warp -i labels.nii.gz -d ddf.nii.gz -o warped_labels.nii.gz --interpolation nearest
  arrayreg warp -i a.nii.gz -i b.nii.gz -d ddf.nii.gz -o out_dir/   # several images: --out is a folder""",
    "integrate": """examples:
  arrayreg integrate -i dvf.nii.gz -o ddf.nii.gz --num-steps 7""",
    "resize": """examples:
  arrayreg resize -i image.nii.gz -o small.nii.gz --size 64 64 64
  arrayreg resize -i labels.nii.gz -o small_labels.nii.gz --size 64 64 64 --method nearest""",
    "augment": """examples:
  arrayreg augment -i image.nii.gz -l labels.nii.gz -o augmented/ --seed 3""",
    "demo": """examples:
  arrayreg demo                         # MNI152 template (nilearn's package data) or a phantom
  arrayreg demo --size 64 -o demo_out/  # smaller and faster""",
    "bench": """examples:
  arrayreg bench --size tiny
  arrayreg bench --json results.json""",
}


class CommandError(Exception):
    """A user mistake reported as one line."""


# ------------------------------------------------------------------ helpers
def _array_module(device: str):
    """NumPy, or CuPy for ``--device gpu`` (and for ``auto`` when a CUDA device is present)."""
    if device == "cpu":
        return np
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception as error:  # noqa: BLE001 - any failure means: no usable GPU
        if device == "gpu":
            raise CommandError(f"--device gpu needs CuPy and a CUDA device ({error.__class__.__name__})") from error
        return np


def _to_host(array):
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array


def _output_path(out: str, default_name: str) -> Path:
    """DeepReg's rule: an --out that is not a .nii/.nii.gz file means ``dirname(out)/default_name``."""
    if not out:
        return Path(default_name)
    if out == "-":
        raise CommandError("--out - (standard output) is not supported: NIfTI needs a file; "
                           "give a path ending in .nii or .nii.gz")
    if not (out.endswith(".nii") or out.endswith(".nii.gz")):
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
    from . import warp_image_ddf

    xp = _array_module(args.device)
    ddf, ddf_image = io.load_ddf(args.ddf)
    several = len(args.image) > 1
    if several:
        folder = Path(args.out or ".")
        targets = [folder / f"warped_{Path(p).name}" for p in args.image]
        _refuse_collisions(args.image, targets)
    else:
        targets = [_output_path(args.out, "warped.nii.gz")]
    images = [_load_image(path) for path in args.image]
    results = []
    progress = _progress(list(zip(args.image, images)), "warp", several)
    for path, (data, _) in progress:
        warped = warp_image_ddf(xp.asarray(data[None]), xp.asarray(ddf[None]), interpolation=args.interpolation,
                                boundary=args.boundary, fill_value=args.fill_value)
        results.append(_to_host(warped)[0])
    for target, result in zip(targets, results):
        io.save_nifti(target, result, like=ddf_image)
        print(f"wrote {target}")


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
    from . import integrate_dvf

    xp = _array_module(args.device)
    dvf, dvf_image = io.load_ddf(args.dvf)
    ddf = _to_host(integrate_dvf(xp.asarray(dvf[None]), args.num_steps))[0]
    target = _output_path(args.out, "ddf.nii.gz")
    io.save_nifti(target, ddf, like=dvf_image)
    print(f"wrote {target}")


def cmd_resize(args) -> None:
    from . import resize3d

    xp = _array_module(args.device)
    data, image = _load_image(args.image)
    volume = data if data.ndim == 3 else data[None]
    resized = _to_host(resize3d(xp.asarray(volume), tuple(args.size), args.method))
    resized = resized if data.ndim == 3 else resized[0]
    zoom = np.diag([n_in / n_out for n_in, n_out in zip(data.shape[:3], args.size)] + [1.0])
    like = image.__class__(resized, image.affine @ zoom, image.header.copy())
    target = _output_path(args.out, "resized.nii.gz")
    io.save_nifti(target, resized, like=like)
    print(f"wrote {target}")


def affine_ddf(shape, theta):
    """The DDF of the affine ``theta`` acting on coordinates normalised to [-1, 1] about the volume centre."""
    from . import get_reference_grid, warp_grid

    grid = get_reference_grid(shape).astype(np.float64)
    centre = (np.array(shape) - 1) / 2.0
    half = np.maximum(centre, 1.0)
    normalised = (grid - centre) / half
    moved = warp_grid(normalised, theta)
    return (moved * half + centre - grid).astype(np.float32)


def random_deformation(shape, seed, scale=0.1, max_velocity=4.0, smoothness=None, xp=np):
    """An affine followed by a diffeomorphic deformation, composed into one DDF ``(1, *shape, 3)``."""
    from . import IntDVF, random_ddf, random_transform_generator, warp_image_ddf

    rng = np.random.default_rng(seed)
    theta = random_transform_generator(1, scale, seed=rng)
    affine = xp.asarray(affine_ddf(shape, theta))
    velocity = random_ddf(shape, max_velocity, smoothness or max(shape) / 4, seed=rng, xp=xp if xp is not np else None)
    deformation = IntDVF(shape)(velocity)
    # x -> x + d(x) -> then the affine: total(x) = d(x) + affine(x + d(x))
    return deformation + warp_image_ddf(affine, deformation)


def cmd_augment(args) -> None:
    from . import warp_image_ddf

    xp = _array_module(args.device)
    data, image = _load_image(args.image)
    ddf = random_deformation(data.shape[:3], args.seed, args.scale, args.max_displacement, xp=xp)
    out = Path(args.out)
    warped = _to_host(warp_image_ddf(xp.asarray(data[None]), ddf))[0]
    results = [(out / "image.nii.gz", warped, image)]
    if args.label:
        labels, label_image = _load_image(args.label)
        if labels.shape[:3] != data.shape[:3]:
            raise CommandError(f"--label shape {labels.shape} does not match --image shape {data.shape}")
        warped_labels = _to_host(warp_image_ddf(xp.asarray(labels[None]), ddf, interpolation="nearest"))[0]
        results.append((out / "label.nii.gz", warped_labels, label_image))
    results.append((out / "ddf.nii.gz", _to_host(ddf)[0], image))
    for target, array, like in results:
        io.save_nifti(target, array, like=like)
        print(f"wrote {target}")


def cmd_demo(args) -> None:
    from . import demo

    demo.run(args.out, size=args.size, seed=args.seed, device=args.device)


def cmd_bench(args) -> None:
    from . import _bench

    _bench.run(args)


# ------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``arrayreg warp: error: ...``), exit status 2; ``--help`` unchanged."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="arrayreg",
        description="DeepReg's geometric core on NIfTI files: warp, integrate, resize, augment, demo, bench.",
        epilog="""examples:
  arrayreg demo --size 64
  arrayreg warp -i moving.nii.gz -d ddf.nii.gz -o warped.nii.gz
  arrayreg warp -i labels.nii.gz -d ddf.nii.gz -o warped_labels.nii.gz --interpolation nearest
  arrayreg bench --size tiny
Run 'arrayreg COMMAND --help' for the examples of each command.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text, handler):
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES[name],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler, parser=sub)
        if name != "bench":
            sub.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu",
                             help="where to compute (default: cpu; auto uses a GPU when CuPy finds one)")
        return sub

    warp = command("warp", "warp images with a DDF (accepts every flag of DeepReg's deepreg_warp)", cmd_warp)
    warp.add_argument("--image", "-i", action="append", required=True, help="image file; repeat for several")
    warp.add_argument("--ddf", "-d", required=True, help="DDF file, (f1, f2, f3, 3) or (f1, f2, f3, 1, 3), voxels")
    warp.add_argument("--out", "-o", default="", help="output file (default warped.nii.gz); a folder for several images")
    warp.add_argument("--interpolation", choices=["linear", "nearest"], default="linear")
    warp.add_argument("--boundary", choices=["clamp", "constant"], default="clamp")
    warp.add_argument("--fill-value", type=float, default=0.0, help="value outside the image with --boundary constant")

    integrate = command("integrate", "integrate a velocity field (DVF) into a DDF by scaling and squaring", cmd_integrate)
    integrate.add_argument("--dvf", "-i", required=True, help="velocity field file, (f1, f2, f3, 3)")
    integrate.add_argument("--out", "-o", default="", help="output file (default ddf.nii.gz)")
    integrate.add_argument("--num-steps", type=int, default=7)

    resize = command("resize", "resize a volume (tf.image.resize numbers, half-pixel centres)", cmd_resize)
    resize.add_argument("--image", "-i", required=True)
    resize.add_argument("--out", "-o", default="", help="output file (default resized.nii.gz)")
    resize.add_argument("--size", type=int, nargs=3, required=True, metavar=("D1", "D2", "D3"))
    resize.add_argument("--method", choices=["bilinear", "nearest"], default="bilinear")

    augment = command("augment", "apply one random affine + smooth deformation to an image and its labels", cmd_augment)
    augment.add_argument("--image", "-i", required=True)
    augment.add_argument("--label", "-l", help="label map warped with nearest interpolation")
    augment.add_argument("--out", "-o", default="augmented", help="output folder (default augmented/)")
    augment.add_argument("--seed", type=int, default=0)
    augment.add_argument("--scale", type=float, default=0.1, help="affine scale in [0, 1]")
    augment.add_argument("--max-displacement", type=float, default=4.0, help="largest velocity component, voxels")

    demo = command("demo", "the main job: warp a brain volume and its labels, write NIfTI files and a figure", cmd_demo)
    demo.add_argument("--out", "-o", default="arrayreg_demo", help="output folder (default arrayreg_demo/)")
    demo.add_argument("--size", type=int, default=0, help="largest axis in voxels (default: the volume's own)")
    demo.add_argument("--seed", type=int, default=0)

    from ._bench import add_arguments

    bench = command("bench", "time arrayreg against scipy, torch and SimpleITK (markdown table)", cmd_bench)
    add_arguments(bench)
    return parser


def _one_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def _tolerate_any_terminal() -> None:
    """Print paths a terminal cannot encode as escapes: a file that was written must not fail the command."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _exit_on_sigterm() -> None:
    """SIGTERM ends the command like SIGINT does, through the clean-up of a write in progress (exit 143)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main(argv=None) -> int:
    _tolerate_any_terminal()
    _exit_on_sigterm()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        args.handler(args)
    except (CommandError, io.NiftiError, ValueError, TypeError, OSError, MemoryError) as error:
        print(f"arrayreg {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"arrayreg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - an unexpected failure is still one line, with its kind
        print(f"arrayreg {args.command}: unexpected {error.__class__.__name__}: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0
