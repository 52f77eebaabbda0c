"""The ``arrayreg`` command: warp, apply, integrate, resize, augment, demo and bench on NIfTI files.

Bad input exits with status 2 and one readable line on stderr, never a
traceback; outputs are written atomically (temporary file, then rename).
``arrayreg --help`` imports neither Numba nor SciPy: the commands import the
library when they run, and the benchmarks (:mod:`arrayreg.cli.bench`, with its
peers) only for ``arrayreg bench``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .commands import (
    CommandError,
    cmd_apply,
    cmd_augment,
    cmd_bench,
    cmd_demo,
    cmd_integrate,
    cmd_resize,
    cmd_warp,
)

BENCH_SIZES = ("full", "tiny")  # the keys of arrayreg.cli.bench.SIZES

EXAMPLES = {
    "warp": """examples:
  arrayreg warp -i moving.nii.gz -d ddf.nii.gz -o warped.nii.gz
  arrayreg warp -i labels.nii.gz -d ddf.nii.gz -o warped_labels.nii.gz --interpolation label
  arrayreg warp -i a.nii.gz -i b.nii.gz -d ddf.nii.gz -o out_dir/   # several images: --out is a folder
  arrayreg warp -i big.zarr -d ddf.zarr -o warped.zarr --memory-limit 2GiB   # chunked, on dask.distributed
  arrayreg warp -i big.zarr -d ddf.zarr -o warped.zarr --scheduler tcp://scheduler:8786""",
    "apply": """examples:
  arrayreg apply -i moving.nii.gz -r fixed.nii.gz -t sub1Warp.nii.gz -t sub0GenericAffine.mat -o warped.nii.gz
  arrayreg apply -i fixed.nii.gz -r moving.nii.gz -t [sub0GenericAffine.mat,1] -t sub1InverseWarp.nii.gz
  arrayreg apply -i labels.nii.gz -r fixed.nii.gz -t chain.h5 --interpolation label --output-field field.nii.gz
  arrayreg apply -i big.zarr -r fixed.nii.gz -t sub1Warp.nii.gz -o warped.zarr   # stores carry attrs['affine']

  -t order is antsApplyTransforms': a reference point goes through the first -t first, so
  '-t warp -t affine' maps x to affine(x + u(x)); [file,1] puts the inverse of an affine in its place.""",
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



class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (``arrayreg warp: error: ...``), exit status 2; ``--help`` unchanged."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="arrayreg",
        description="DeepReg's geometric core on NIfTI files: warp, apply, integrate, resize, augment, demo, bench.",
        epilog="""examples:
  arrayreg demo --size 64
  arrayreg warp -i moving.nii.gz -d ddf.nii.gz -o warped.nii.gz
  arrayreg warp -i labels.nii.gz -d ddf.nii.gz -o warped_labels.nii.gz --interpolation label
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
    warp.add_argument("--out", "-o", default="",
                      help="output file (default warped.nii.gz); a folder for several images")
    warp.add_argument("--interpolation", choices=["linear", "nearest", "label", "cubic"], default="linear",
                      help="label: label maps with any integer ids (votes of the linear weights); "
                           "cubic: B-spline with prefilter")
    warp.add_argument("--boundary", choices=["clamp", "constant"], default="clamp")
    warp.add_argument("--fill-value", type=float, default=0.0, help="value outside the image with --boundary constant")
    _add_dask_options(warp)

    apply = command("apply", "resample images through ITK/ANTs transforms in world space (antsApplyTransforms' "
                    "flags)", cmd_apply)
    apply.add_argument("--image", "-i", action="append", required=True, help="moving image; repeat for several")
    apply.add_argument("--reference", "-r", required=True, help="the image whose grid the output takes")
    apply.add_argument("--transform", "-t", action="append", required=True, metavar="T",
                       help="a field (.nii.gz, ITK/ANTs intent 1007 or 1006), an affine (.mat, .txt, .tfm) or a "
                            ".h5 (also composite); [file,1] inverts an affine; repeat, first acts first on a point")
    apply.add_argument("--out", "-o", default="",
                       help="output file (default warped.nii.gz); a folder for several images")
    apply.add_argument("--interpolation", choices=["linear", "nearest", "label", "cubic"], default="linear")
    apply.add_argument("--fill-value", type=float, default=0.0, help="value outside the moving image (default 0)")
    apply.add_argument("--output-field", metavar="FIELD",
                       help="also write the composed chain as one ITK/ANTs field (1007, LPS mm) on the reference "
                            "grid, as antsApplyTransforms -o [FIELD,1] does")
    _add_dask_options(apply)

    integrate = command("integrate", "integrate a velocity field (DVF) into a DDF by scaling and squaring",
                        cmd_integrate)
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

    bench = command("bench", "time arrayreg against scipy, torch and SimpleITK (markdown table)", cmd_bench)
    bench.add_argument("--size", choices=BENCH_SIZES, default="full", help="workload sizes (default: full)")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--only", nargs="+", metavar="W", help="run only these workloads (e.g. W1 W6)")
    bench.add_argument("--scaling", action="store_true",
                       help="only the scaling tables: W1 and W3 per voxel at 64-256^3, and 1 -> 2 threads")
    bench.add_argument("--dask", action="store_true",
                       help="only the dask run: a zarr-to-zarr warp on 2 workers of 1 GiB against the in-memory "
                            "kernel (needs the dask extra)")
    bench.add_argument("--dask-size", type=int, default=512, metavar="N", help="--dask: the float32 volume's edge")
    bench.add_argument("--dask-big", type=int, default=1024, metavar="N",
                       help="--dask: the uint16 volume's edge (0 skips it)")
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


def _add_dask_options(parser) -> None:
    """The options of the zarr path (any -i, -d, -r or -o ending in .zarr runs on dask.distributed)."""
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="with .zarr paths: the dask.distributed scheduler to use (default: a LocalCluster "
                             "with one worker per core)")
    parser.add_argument("--memory-limit", metavar="LIMIT",
                        help="with .zarr paths: memory per LocalCluster worker, e.g. 1GiB (default: dask's auto)")


def main(argv=None) -> int:
    _tolerate_any_terminal()
    _exit_on_sigterm()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        args.handler(args)
    except (CommandError, ValueError, TypeError, OSError, MemoryError) as error:  # NiftiError is a ValueError
        print(f"arrayreg {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"arrayreg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - an unexpected failure is still one line, with its kind
        print(f"arrayreg {args.command}: unexpected {error.__class__.__name__}: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0
