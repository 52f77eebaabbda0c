"""``arrayreg demo``: the main job on a bundled default.

Input: the MNI152 T1 template and its grey/white-matter maps from nilearn's
package data (read with nibabel, no download), or a phantom made in code when
nilearn is not installed.  Work: a random affine and a random smooth velocity
field integrated with ``IntDVF``, composed into one DDF, warping the image
(linear) and a label map (nearest).  Output: NIfTI files, a PNG figure and the
time of each step (CPU, and GPU when CuPy finds a device).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import io

TEMPLATE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
GREY, WHITE = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz", "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"


def load_default_volume():
    """``(image, labels, affine, source)``: the MNI152 template with labels 0/1/2, or a phantom."""
    try:
        import nilearn.datasets
    except ImportError:
        return phantom() + ("phantom (nilearn not installed)",)
    folder = Path(nilearn.datasets.__file__).parent / "data"
    image, nifti = io.load_nifti(folder / TEMPLATE)
    grey, _ = io.load_nifti(folder / GREY)
    white, _ = io.load_nifti(folder / WHITE)
    labels = np.zeros(image.shape, np.uint8)
    labels[grey > 0.5] = 1
    labels[white > 0.5] = 2
    return image.astype(np.float32), labels, nifti.affine, f"MNI152 template ({TEMPLATE}, nilearn package data)"


def phantom(shape=(96, 112, 96)):
    """Nested ellipsoids with smooth texture: an image and a 3-class label map."""
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape, np.float32) - 1) / 2
    radius = np.sqrt(sum(((g - c) / (0.42 * n)) ** 2 for g, c, n in zip(grid, centre, shape)))
    labels = np.where(radius < 0.55, 2, np.where(radius < 1.0, 1, 0)).astype(np.uint8)
    texture = 0.1 * np.sin(grid[0] / 5) * np.cos(grid[1] / 7) * np.sin(grid[2] / 4)
    image = (labels * 0.4 + texture * (labels > 0)).astype(np.float32)
    return image, labels, np.diag([2.0, 2.0, 2.0, 1.0])


def shrink(image, labels, affine, size):
    """Resize so that the largest axis has ``size`` voxels (bilinear image, nearest labels)."""
    from .. import resize3d

    factor = size / max(image.shape)
    shape = tuple(max(2, int(round(n * factor))) for n in image.shape)
    zoom = np.diag([n_in / n_out for n_in, n_out in zip(image.shape, shape)] + [1.0])
    return resize3d(image, shape), resize3d(labels, shape, "nearest"), affine @ zoom


def figure(path, image, warped, labels, warped_labels, ddf):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import jacobian_determinant

    centre = [n // 2 for n in image.shape]
    views = [lambda a, c=centre: a[c[0]], lambda a, c=centre: a[:, c[1]], lambda a, c=centre: a[:, :, c[2]]]
    magnitude = np.linalg.norm(ddf, axis=-1)
    jacobian = jacobian_determinant(ddf[None])[0]
    rows = [("moving", image, "gray"), ("warped", warped, "gray"), ("warped labels", warped_labels, "viridis"),
            ("|DDF| (voxels)", magnitude, "magma"), ("Jacobian determinant", jacobian, "coolwarm")]
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)))
    for r, (title, volume, cmap) in enumerate(rows):
        for c, view in enumerate(views):
            shown = axes[r, c].imshow(np.rot90(view(volume)), cmap=cmap)
            axes[r, c].set_axis_off()
            if c == 0:
                axes[r, c].set_title(title, loc="left")
        if title.startswith(("|DDF|", "Jacobian")):
            fig.colorbar(shown, ax=axes[r].tolist(), shrink=0.8)
    for c, view in enumerate(views):
        axes[0, c].contour(np.rot90(view(labels)), levels=[0.5, 1.5], colors=["y", "c"], linewidths=0.5)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(out, size=0, seed=0, device="cpu"):
    from .. import folding_report, warp_image_ddf
    from .._backend import array_module, to_host
    from ..augment import random_deformation

    out = Path(out)
    timings = {}

    def timed(name, fn):
        start = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - start
        return result

    image, labels, affine, source = timed("load", load_default_volume)
    if size:
        image, labels, affine = timed("resize", lambda: shrink(image, labels, affine, size))
    print(f"input: {source}, shape {image.shape}")
    backends = [("cpu", np)]
    xp = array_module(device)
    if xp is not np:
        backends.append(("gpu", xp))
    for name, module in backends:
        ddf = timed(f"{name}: random affine + IntDVF", lambda m=module: random_deformation(image.shape, seed, xp=m))
        warped = timed(f"{name}: warp image (linear)",
                       lambda m=module, d=ddf: warp_image_ddf(m.asarray(image[None]), d))
        warped_labels = timed(f"{name}: warp labels (nearest)",
                              lambda m=module, d=ddf: warp_image_ddf(m.asarray(labels[None]), d,
                                                                     interpolation="nearest"))
        if module is not np:
            module.cuda.get_current_stream().synchronize()
    ddf, warped, warped_labels = (to_host(a)[0] for a in (ddf, warped, warped_labels))
    import nibabel

    like = nibabel.Nifti1Image(image, affine)
    for name, array in [("image", image), ("labels", labels), ("warped", warped), ("warped_labels", warped_labels),
                        ("ddf", ddf)]:
        io.save_nifti(out / f"{name}.nii.gz", array, like=like)
    timed("figure", lambda: figure(out / "demo.png", image, warped, labels, warped_labels, ddf))
    for name, seconds in timings.items():
        print(f"{name:<34} {1e3 * seconds:9.1f} ms")
    print(f"deformation: {folding_report(ddf[None])}")
    print(f"wrote {out}/: image, labels, warped, warped_labels, ddf (.nii.gz) and demo.png")
