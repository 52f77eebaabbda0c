"""arrayreg against its peers, in one process, on the same inputs.

Prints a markdown table per workload: median time, ratio to arrayreg (peer
time / arrayreg time, so > 1 means arrayreg is faster), extra memory beyond
inputs and output (tracemalloc, NumPy-based implementations only) and the
memory-bandwidth floor (bytes touched / copy bandwidth measured in this run).

    arrayreg bench                      # full size (the sizes of the issues)
    arrayreg bench --size tiny          # seconds; what CI runs
    arrayreg bench --json out.json      # also python -m bench.run from a checkout

Imported by the ``bench`` command only: Numba, SciPy and the peers load with it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from types import SimpleNamespace

import numba
import numpy as np
from scipy import ndimage

import arrayreg
from arrayreg.nn.functional import conv3d


def load_peers() -> SimpleNamespace:
    """The optional peers (the ``bench`` extra): ``torch``, ``sitk`` (SimpleITK) and ``ants`` (antspyx), None
    where not installed.

    They are imported after Numba has started its threads: where Numba runs its
    OpenMP layer (no TBB) it links the system ``libgomp.so.1.0.0`` while torch
    bundles its own ``libgomp.so.1``; imported first, torch would load its copy
    and the process would run two OpenMP runtimes; imported after, torch shares
    the one already loaded.
    """
    _parallel_copy(np.zeros(2, np.float32), np.empty(2, np.float32))  # starts Numba's threads
    peers = SimpleNamespace(torch=None, sitk=None, ants=None)
    try:
        import torch

        peers.torch = torch
    except ImportError:  # pragma: no cover - depends on the environment
        pass
    try:
        import SimpleITK

        peers.sitk = SimpleITK
    except ImportError:  # pragma: no cover
        pass
    try:
        import ants

        peers.ants = ants
    except ImportError:  # pragma: no cover
        pass
    return peers

SIZES = {
    "full": dict(w1=(160, 192, 224), w2=(128, 128, 128), w3=(128, 128, 128), w4_in=(80, 96, 112), w6=(64, 64, 64),
                 repeat=7),
    "tiny": dict(w1=(20, 24, 28), w2=(16, 16, 16), w3=(16, 16, 16), w4_in=(10, 12, 14), w6=(8, 8, 8), repeat=3),
}


def median_ms(fn, repeat):
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def extra_memory_mb(fn, output_bytes):
    """Peak traced allocation during ``fn()`` beyond its output, in MB (NumPy allocations only)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return max(peak - output_bytes, 0) / 1e6


@numba.njit(parallel=True, cache=True)
def _parallel_copy(src, dst):
    for i in numba.prange(src.shape[0]):
        dst[i] = src[i]


def copy_bandwidth_gbs(n_bytes=256 * 2**20):
    """Read + write bandwidth of a copy on all Numba threads (the floor's denominator)."""
    src = np.ones(n_bytes // 4, np.float32)
    dst = np.empty_like(src)
    ms = median_ms(lambda: _parallel_copy(src, dst), 9)
    return 2 * src.nbytes / (ms * 1e-3) / 1e9


def smooth_ddf(shape, amplitude, seed=0):
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(0, np.pi, s, dtype=np.float32) for s in shape], indexing="ij")
    ddf = np.empty(shape + (3,), np.float32)
    for c in range(3):
        phase = rng.uniform(0, np.pi, 3).astype(np.float32)
        ddf[..., c] = amplitude * np.sin(axes[0] + phase[0]) * np.cos(axes[1] + phase[1]) * np.sin(axes[2] + phase[2])
    return ddf[None]


# ---------------------------------------------------------------- peers
def scipy_warp(image, ddf):
    """map_coordinates(order=1, mode='nearest') with the coordinate array built from the DDF."""
    shape = ddf.shape[1:4]
    coords = np.indices(shape, dtype=np.float32) + np.moveaxis(ddf[0], -1, 0)
    return ndimage.map_coordinates(image[0], coords, order=1, mode="nearest")


def torch_grid(torch, ddf_t, shape):
    """DDF in voxels -> grid_sample grid in [-1, 1], (x, y, z) = (k, j, i) order, on the DDF's device."""
    axes = [torch.arange(s, dtype=torch.float32, device=ddf_t.device) for s in shape]
    ref = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    loc = ref[None] + ddf_t
    scale = torch.tensor([2.0 / (s - 1) for s in shape], dtype=torch.float32, device=ddf_t.device)
    return (loc * scale - 1.0).flip(-1)


def torch_warp(torch, image, ddf, device="cpu"):
    """grid_sample(align_corners=True, padding_mode='border'), layout changes and grid build included.

    ``image`` and ``ddf`` are NumPy (or, with ``device="cuda"``, CuPy) arrays; returns a channels-last tensor.
    """
    with torch.no_grad():
        image_t = torch.as_tensor(image, device=device)
        if image_t.ndim == 4:
            image_t = image_t[..., None]
        vol = image_t.permute(0, 4, 1, 2, 3)
        grid = torch_grid(torch, torch.as_tensor(ddf, device=device), ddf.shape[1:4])
        out = torch.nn.functional.grid_sample(vol, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.permute(0, 2, 3, 4, 1).contiguous()


def torch_int_dvf(torch, dvf, steps, device="cpu"):
    """Scaling and squaring with grid_sample; returns the DDF as a tensor on ``device``."""
    with torch.no_grad():
        ddf = torch.as_tensor(dvf, device=device) / 2**steps
        shape = dvf.shape[1:4]
        for _ in range(steps):
            grid = torch_grid(torch, ddf, shape)
            warped = torch.nn.functional.grid_sample(ddf.permute(0, 4, 1, 2, 3), grid, mode="bilinear",
                                                     padding_mode="border", align_corners=True)
            ddf = ddf + warped.permute(0, 2, 3, 4, 1)
        return ddf


def torch_resize(torch, image, size):
    with torch.no_grad():
        vol = torch.from_numpy(image).permute(0, 4, 1, 2, 3)
        out = torch.nn.functional.interpolate(vol, size=size, mode="trilinear", align_corners=False)
        return out.permute(0, 2, 3, 4, 1).contiguous().numpy()


def torch_conv3d(torch, x, kernel):
    """conv3d on channels-last data: the layout changes are part of the time."""
    with torch.no_grad():
        weight = torch.from_numpy(kernel).permute(4, 3, 0, 1, 2)
        channels_first = torch.from_numpy(x).permute(0, 4, 1, 2, 3)
        out = torch.nn.functional.conv3d(channels_first, weight, padding=kernel.shape[0] // 2)
        return out.permute(0, 2, 3, 4, 1).contiguous().numpy()


def localnet_forward(shape):
    """A small LocalNet-style encoder-decoder made of arrayreg.nn blocks (2 levels)."""
    from ..nn import Conv3dWithResize, DownSampleResnetBlock, LocalNetUpSampleResnetBlock

    down1, down2 = DownSampleResnetBlock(8, seed=0), DownSampleResnetBlock(16, seed=1)
    bottom = DownSampleResnetBlock(32, seed=2)
    up2, up1 = LocalNetUpSampleResnetBlock(16, seed=3), LocalNetUpSampleResnetBlock(8, seed=4)
    head = Conv3dWithResize(shape, 3, seed=5)

    def forward(x):
        h1, skip1 = down1(x)
        h2, skip2 = down2(h1)
        _, h3 = bottom(h2)
        return head(up1([up2([h3, skip2]), skip1]))

    return forward


def localnet_convolutions(shape):
    """``(input shape, channels, filters)`` of each 3x3x3 convolution one ``localnet_forward(shape)`` pass makes,
    in order: the three down-blocks (a convolution, then the two of a residual block) at full, half and
    quarter size, the two up-blocks' residual convolutions, the head.  tests/test_bench.py records a pass and
    compares."""
    half, quarter = (tuple(n // f for n in shape) for f in (2, 4))
    return [(shape, 2, 8), (shape, 8, 8), (shape, 8, 8), (half, 8, 16), (half, 16, 16), (half, 16, 16),
            (quarter, 16, 32), (quarter, 32, 32), (quarter, 32, 32), (half, 16, 16), (half, 16, 16),
            (shape, 8, 8), (shape, 8, 8), (shape, 8, 3)]


def sitk_jacobian(sitk, ddf):
    """SimpleITK's DisplacementFieldJacobianDeterminantFilter (axes reversed for ITK's xyz)."""
    return sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(sitk_field(sitk, ddf)))


def sitk_field(sitk, ddf):
    """A (1, *shape, 3) voxel DDF as an ITK displacement field image (float64, xyz order)."""
    return sitk.GetImageFromArray(ddf[0][..., ::-1].astype(np.float64), isVector=True)


def sitk_invert(sitk, ddf, iterations):
    """SimpleITK's InvertDisplacementField (its defaults but the iteration count), back as a (1, ..., 3) DDF."""
    inverse = sitk.InvertDisplacementField(sitk_field(sitk, ddf), maximumNumberOfIterations=iterations,
                                           maxErrorToleranceThreshold=0.0, meanErrorToleranceThreshold=0.0,
                                           enforceBoundaryCondition=True)
    return sitk.GetArrayFromImage(inverse)[..., ::-1][None].astype(np.float32)


def inverse_consistency(ddf, inverse):
    """Largest ``|compose_ddf(ddf, inverse)|`` over voxels whose image stays 2 voxels inside the grid."""
    shape = np.array(ddf.shape[1:4])
    target = arrayreg.get_reference_grid(tuple(shape)) + inverse[0]
    inside = np.all((target >= 2) & (target <= shape - 3), axis=-1)
    error = np.linalg.norm(arrayreg.compose_ddf(ddf, inverse)[0], axis=-1)
    return float(error[inside].max())


def invert_step(ddf, inverse, out):
    """One fixed-point step of ``invert_ddf`` as its loop runs it: ``out = -ddf(x + inverse(x))`` (clamped)
    and the largest change, one fused pass into a buffer reused between iterations."""
    from arrayreg._backend import backend_of
    from arrayreg.fields import _combine

    return _combine(ddf, inverse, "clamp", (0, -1), np, backend_of(ddf=ddf), out=out)[0]


def scipy_cubic_warp(image, ddf):
    """map_coordinates(order=3, mode='nearest'): SciPy's prefilter (float64, 12 voxels of padding) included."""
    coords = np.indices(ddf.shape[1:4], dtype=np.float32) + np.moveaxis(ddf[0], -1, 0)
    return ndimage.map_coordinates(image[0], coords, order=3, mode="nearest")


def sitk_warp(sitk, image, ddf, interpolator=None):
    """SimpleITK DisplacementFieldTransform + Resample (default linear); ITK is xyz, so axes are reversed."""
    moving = sitk.GetImageFromArray(image[0])
    transform = sitk.DisplacementFieldTransform(sitk_field(sitk, ddf))
    out = sitk.Resample(moving, moving, transform, sitk.sitkLinear if interpolator is None else interpolator, 0.0)
    return sitk.GetArrayFromImage(out)  # a copy: a view would dangle once the image is freed


WORLD_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])  # SimpleITK's default geometry (1 mm, origin 0, identity) in RAS


def world_matrix(shape):
    """A small rotation about the volume's centre plus a shift, in LPS millimetres (W14, W15)."""
    angle = np.radians(4.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    centre = (np.array(shape) - 1) / 2.0
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre - rotation @ centre + np.array([1.5, -2.0, 0.75])
    return matrix


def world_chain(field, shape):
    """W14's chain in arrayreg: the field (LPS mm on the image's grid) acting first, then the affine."""
    from ..io import AffineTransform, FieldTransform

    return [FieldTransform(field, WORLD_AFFINE), AffineTransform(world_matrix(shape))]


def arrayreg_apply(image, chain):
    """``arrayreg apply``'s library path: ``apply_transforms``, one pass that never stores the DDF."""
    return arrayreg.apply_transforms(image, chain, image.shape[1:4], WORLD_AFFINE, WORLD_AFFINE)


def arrayreg_apply_two_passes(image, chain):
    """The chain collapsed into one DDF (``transforms_to_ddf``), then one fused warp."""
    ddf = arrayreg.transforms_to_ddf(chain, image.shape[1:4], WORLD_AFFINE, WORLD_AFFINE)
    return arrayreg.warp_image_ddf(image, ddf, boundary="constant")


def sitk_world(sitk, image, field):
    """The moving image and ``CompositeTransform([affine, field])`` (the field acts first) in SimpleITK."""
    moving = sitk.GetImageFromArray(np.ascontiguousarray(image[0].transpose(2, 1, 0)))
    vectors = sitk.GetImageFromArray(np.ascontiguousarray(field.transpose(2, 1, 0, 3), dtype=np.float64),
                                     isVector=True)
    matrix = world_matrix(image.shape[1:4])
    affine = sitk.AffineTransform(3)
    affine.SetMatrix(matrix[:3, :3].reshape(-1).tolist())
    affine.SetTranslation(matrix[:3, 3].tolist())
    return moving, sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(vectors)])


def sitk_apply(sitk, moving, transform):
    out = sitk.Resample(moving, moving, transform, sitk.sitkLinear, 0.0)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def world_files(folder, image, field):
    """W15's files: the moving image, the field (ITK NIfTI, 1007) and the affine (.mat), uncompressed."""
    import nibabel

    from ..io import write_transform

    chain = world_chain(field, image.shape[1:4])
    paths = SimpleNamespace(moving=os.path.join(folder, "moving.nii"), field=os.path.join(folder, "warp.nii"),
                            affine=os.path.join(folder, "affine.mat"))
    nibabel.save(nibabel.Nifti1Image(image[0], WORLD_AFFINE), paths.moving)
    write_transform(paths.field, chain[0])
    write_transform(paths.affine, chain[1])
    return paths


def arrayreg_apply_files(paths):
    from ..io import load_nifti, read_transform

    moving, image = load_nifti(paths.moving)
    chain = read_transform(paths.field) + read_transform(paths.affine)
    return arrayreg.apply_transforms(moving[None], chain, moving.shape, image.affine, image.affine)


def sitk_apply_files(sitk, paths):
    moving = sitk.ReadImage(paths.moving)
    field = sitk.DisplacementFieldTransform(sitk.Cast(sitk.ReadImage(paths.field), sitk.sitkVectorFloat64))
    return sitk_apply(sitk, moving, sitk.CompositeTransform([sitk.ReadTransform(paths.affine), field]))


def ants_apply_files(ants, paths):
    """``ants.apply_transforms`` with ``-t warp -t affine`` (``whichtoinvert`` always given)."""
    moving = ants.image_read(paths.moving)
    out = ants.apply_transforms(moving, moving, [paths.field, paths.affine], interpolator="linear",
                                whichtoinvert=[False, False])
    return out.numpy()


# ---------------------------------------------------------------- workloads
def workloads(size, peers, folder):
    torch, sitk, ants = peers.torch, peers.sitk, peers.ants
    s = SIZES[size]
    rng = np.random.default_rng(0)
    w1_img = rng.standard_normal((1,) + s["w1"]).astype(np.float32)
    w1_ddf = smooth_ddf(s["w1"], 5.0)
    w8_inner = smooth_ddf(s["w1"], 3.0, seed=4)
    w2_img = rng.standard_normal((1,) + s["w2"] + (4,)).astype(np.float32)
    w2_ddf = smooth_ddf(s["w2"], 5.0, seed=1)
    w3_dvf = smooth_ddf(s["w3"], 8.0, seed=2)
    w4_img = rng.standard_normal((1,) + s["w4_in"] + (1,)).astype(np.float32)
    w4_size = tuple(2 * n for n in s["w4_in"])
    w6_x = rng.standard_normal((1,) + s["w6"] + (16,)).astype(np.float32)
    w6_kernel = (0.1 * rng.standard_normal((3, 3, 3, 16, 32))).astype(np.float32)
    w7_x = rng.standard_normal((1,) + s["w6"] + (2,)).astype(np.float32)
    localnet = localnet_forward(s["w6"])
    w7_convolutions = [(rng.standard_normal((1,) + shape + (c_in,)).astype(np.float32),
                        (0.1 * rng.standard_normal((3, 3, 3, c_in, c_out))).astype(np.float32))
                       for shape, c_in, c_out in localnet_convolutions(s["w6"])]
    grid = arrayreg.get_reference_grid(s["w1"])
    theta = arrayreg.random_transform_generator(1, 0.1, seed=0)
    w5_out = np.empty((1,) + grid.shape, np.result_type(grid, theta, np.float32))
    int_dvf = arrayreg.IntDVF(s["w3"], num_steps=7)
    w10_buffer = np.empty_like(w1_ddf)
    coarse_labels = rng.integers(0, 200, (1,) + tuple(n // 8 for n in s["w1"])).astype(np.uint16)
    labels = arrayreg.resize3d(coarse_labels, s["w1"], "nearest")
    w14_chain = world_chain(w1_ddf[0], s["w1"])
    w14_sitk = sitk_world(sitk, w1_img, w1_ddf[0]) if sitk else None
    w15_files = world_files(folder, w1_img, w1_ddf[0])

    table = {
        f"W1 warp_image_ddf {(1,) + s['w1']}": dict(
            touched=w1_img.nbytes * 2 + w1_ddf.nbytes,
            out_bytes=w1_img.nbytes,
            impls={
                "arrayreg": lambda: arrayreg.warp_image_ddf(w1_img, w1_ddf),
                "scipy map_coordinates (+coords)": lambda: scipy_warp(w1_img, w1_ddf),
                "torch grid_sample (+grid, layout)": torch and (lambda: torch_warp(torch, w1_img, w1_ddf).numpy()),
                "SimpleITK Resample": sitk and (lambda: sitk_warp(sitk, w1_img, w1_ddf)),
            },
        ),
        f"W2 warp_image_ddf {(1,) + s['w2'] + (4,)}": dict(
            touched=w2_img.nbytes * 2 + w2_ddf.nbytes,
            out_bytes=w2_img.nbytes,
            impls={
                "arrayreg": lambda: arrayreg.warp_image_ddf(w2_img, w2_ddf),
                "torch grid_sample (+grid, layout)": torch and (lambda: torch_warp(torch, w2_img, w2_ddf).numpy()),
            },
        ),
        f"W3 IntDVF {(1,) + s['w3'] + (3,)} 7 steps": dict(
            touched=w3_dvf.nbytes * (2 * 7 + 2),
            out_bytes=w3_dvf.nbytes * 2,
            impls={
                "arrayreg": lambda: int_dvf(w3_dvf),
                "torch grid_sample loop": torch and (lambda: torch_int_dvf(torch, w3_dvf, 7).numpy()),
            },
        ),
        f"W4 resize3d {(1,) + s['w4_in'] + (1,)} -> {w4_size}": dict(
            touched=w4_img.nbytes * 9,
            out_bytes=w4_img.nbytes * 8,
            impls={
                "arrayreg": lambda: arrayreg.resize3d(w4_img, w4_size),
                "torch interpolate (+layout)": torch and (lambda: torch_resize(torch, w4_img, w4_size)),
                "scipy zoom (grid_mode)": lambda: ndimage.zoom(w4_img[0, ..., 0], 2, order=1, grid_mode=True,
                                                               mode="nearest"),
            },
        ),
        f"W5 warp_grid {s['w1']} batch 1": dict(
            touched=grid.nbytes * 2,
            out_bytes=grid.nbytes,
            impls={
                "arrayreg": lambda: arrayreg.warp_grid(grid, theta),
                "arrayreg out= (one reused buffer)": lambda: arrayreg.warp_grid(grid, theta, out=w5_out),
                "numpy (homogeneous grid @ theta)": lambda: np.concatenate(
                    [grid, np.ones(grid.shape[:3] + (1,), np.float32)], -1) @ theta[0],
            },
        ),
        f"W6 conv3d {(1,) + s['w6'] + (16,)} -> 32 filters, 3x3x3 same": dict(
            touched=w6_x.nbytes * 3,
            out_bytes=w6_x.nbytes * 2,
            impls={
                "arrayreg nn.functional.conv3d": lambda: conv3d(w6_x, w6_kernel),
                "torch conv3d (+layout)": torch and (lambda: torch_conv3d(torch, w6_x, w6_kernel)),
            },
        ),
        f"W7 LocalNet-style encoder-decoder {(1,) + s['w6'] + (2,)}": dict(
            touched=w7_x.nbytes,
            out_bytes=w7_x.nbytes * 3 // 2,
            impls={"arrayreg nn blocks": lambda: localnet(w7_x)},
        ),
        f"W7c the 3x3x3 convolutions of W7, one after another ({len(w7_convolutions)})": dict(
            touched=sum(x.nbytes for x, _ in w7_convolutions) * 3,
            out_bytes=sum(x.nbytes // x.shape[-1] * k.shape[-1] for x, k in w7_convolutions),
            impls={
                "arrayreg nn.functional.conv3d": lambda: [conv3d(x, k) for x, k in w7_convolutions],
                "torch conv3d (+layout)": torch and (lambda: [torch_conv3d(torch, x, k) for x, k in w7_convolutions]),
            },
        ),
        f"W8 compose_ddf {(1,) + s['w1'] + (3,)}": dict(
            touched=w1_ddf.nbytes * 3,
            out_bytes=w1_ddf.nbytes,
            impls={
                "arrayreg compose_ddf": lambda: arrayreg.compose_ddf(w1_ddf, w8_inner),
                "arrayreg 3-channel warp (the target's unit)": lambda: arrayreg.warp_image_ddf(w1_ddf, w8_inner),
            },
        ),
        f"W9 jacobian_determinant {(1,) + s['w1'] + (3,)}": dict(
            touched=w1_ddf.nbytes + w1_ddf.nbytes // 3,
            out_bytes=w1_ddf.nbytes // 3,
            impls={
                "arrayreg jacobian_determinant": lambda: arrayreg.jacobian_determinant(w1_ddf),
                "arrayreg 3-channel warp (the target's unit)": lambda: arrayreg.warp_image_ddf(w1_ddf, w8_inner),
                "SimpleITK DisplacementFieldJacobianDeterminant": sitk and (lambda: sitk_jacobian(sitk, w1_ddf)),
            },
        ),
        f"W10 invert_ddf, one iteration {(1,) + s['w1'] + (3,)}": dict(
            touched=w1_ddf.nbytes * 3,
            out_bytes=w1_ddf.nbytes,
            impls={
                "arrayreg invert_ddf(iterations=1)": lambda: arrayreg.invert_ddf(w1_ddf, iterations=1),
                "arrayreg 3-channel warp (the target's unit)": lambda: arrayreg.warp_image_ddf(w1_ddf, w8_inner),
                "arrayreg the pass each further iteration makes (into a reused buffer)": lambda: invert_step(
                    w1_ddf, w8_inner, w10_buffer),
            },
        ),
        f"W11 invert_ddf to its tolerance vs SimpleITK {(1,) + s['w1'] + (3,)}": dict(
            touched=w1_ddf.nbytes * 3 * 20,
            out_bytes=w1_ddf.nbytes,
            impls={
                "arrayreg invert_ddf (defaults)": lambda: arrayreg.invert_ddf(w1_ddf),
                "SimpleITK InvertDisplacementField (10 iterations)": sitk and (lambda: sitk_invert(sitk, w1_ddf, 10)),
            },
            notes=lambda: [
                f"inverse-consistency error (max |compose_ddf(ddf, inverse)|, 2 voxels inside): arrayreg "
                f"{inverse_consistency(w1_ddf, arrayreg.invert_ddf(w1_ddf)):.1e} voxel"
                + (f", SimpleITK {inverse_consistency(w1_ddf, sitk_invert(sitk, w1_ddf, 10)):.1e} voxel"
                   if sitk else "")],
        ),
        f"W12 warp_image_ddf interpolation='label' {(1,) + s['w1']} uint16, 200 ids": dict(
            touched=labels.nbytes * 2 + w1_ddf.nbytes,
            out_bytes=labels.nbytes,
            impls={
                "arrayreg label": lambda: arrayreg.warp_image_ddf(labels, w1_ddf, interpolation="label"),
                "arrayreg linear warp of a float32 image (the target's unit)": lambda: arrayreg.warp_image_ddf(
                    w1_img, w1_ddf),
                "arrayreg nearest": lambda: arrayreg.warp_image_ddf(labels, w1_ddf, interpolation="nearest"),
            },
        ),
        f"W13 warp_image_ddf interpolation='cubic' {(1,) + s['w1']}": dict(
            touched=w1_img.nbytes * 4 + w1_ddf.nbytes,
            out_bytes=w1_img.nbytes,
            impls={
                "arrayreg cubic (prefilter included)": lambda: arrayreg.warp_image_ddf(w1_img, w1_ddf,
                                                                                       interpolation="cubic"),
                "scipy map_coordinates order=3 (prefilter, +coords)": lambda: scipy_cubic_warp(w1_img, w1_ddf),
                "SimpleITK Resample sitkBSpline (prefilter included)": sitk and (
                    lambda: sitk_warp(sitk, w1_img, w1_ddf, sitk.sitkBSpline)),
            },
        ),
        f"W14 apply a field + an affine in world space {(1,) + s['w1']}": dict(
            touched=w1_img.nbytes * 2 + w1_ddf.nbytes * 2,
            out_bytes=w1_img.nbytes,
            impls={
                "arrayreg apply_transforms (one pass)": lambda: arrayreg_apply(w1_img, w14_chain)[0],
                "arrayreg transforms_to_ddf + warp_image_ddf": lambda: arrayreg_apply_two_passes(w1_img, w14_chain)[0],
                "SimpleITK Resample (CompositeTransform)": sitk and (lambda: sitk_apply(sitk, *w14_sitk)),
            },
        ),
        f"W15 the same from files (.nii field, .mat, .nii image) {(1,) + s['w1']}": dict(
            touched=w1_img.nbytes * 2 + w1_ddf.nbytes * 2,
            out_bytes=w1_img.nbytes,
            impls={
                "arrayreg (read_transform, load_nifti, apply)": lambda: arrayreg_apply_files(w15_files)[0],
                "SimpleITK (ReadImage, ReadTransform, Resample)": sitk and (lambda: sitk_apply_files(sitk, w15_files)),
                "ANTs ants.apply_transforms (antspyx)": ants and (lambda: ants_apply_files(ants, w15_files)),
            },
        ),
    }
    return table


# ---------------------------------------------------------------- GPU rows
def cupy_with_device():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy
    except Exception:  # noqa: BLE001 - no CuPy, driver or device
        return None


def gpu_median_ms(cp, fn, repeat):
    """Median device time of ``fn`` between CUDA events on the current stream (after a warm-up call)."""
    fn()
    cp.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return float(np.median(times))


def gpu_workloads(cp, size, peers):
    """W1 and W3 on CuPy arrays against cupyx map_coordinates and torch CUDA (layout and grid included)."""
    from cupyx.scipy import ndimage as cundimage

    s = SIZES[size]
    rng = np.random.default_rng(0)
    image = cp.asarray(rng.standard_normal((1,) + s["w1"]).astype(np.float32))
    ddf = cp.asarray(smooth_ddf(s["w1"], 5.0))
    dvf = cp.asarray(smooth_ddf(s["w3"], 8.0, seed=2))
    int_dvf = arrayreg.IntDVF(s["w3"], num_steps=7)

    def cupyx_warp():
        coords = cp.indices(s["w1"], dtype=cp.float32) + cp.moveaxis(ddf[0], -1, 0)
        return cundimage.map_coordinates(image[0], coords, order=1, mode="nearest")

    torch = peers.torch
    torch_cuda = torch is not None and torch.cuda.is_available()

    return {
        f"GPU W1 warp_image_ddf {(1,) + s['w1']}": dict(
            touched=image.nbytes * 2 + ddf.nbytes,
            impls={
                "arrayreg (CuPy)": lambda: arrayreg.warp_image_ddf(image, ddf),
                "cupyx map_coordinates (+coords)": cupyx_warp,
                "torch CUDA grid_sample (+grid, layout)":
                    torch_cuda and (lambda: torch_warp(torch, image, ddf, "cuda")),
            },
        ),
        f"GPU W3 IntDVF {(1,) + s['w3'] + (3,)} 7 steps": dict(
            touched=dvf.nbytes * (2 * 7 + 2),
            impls={
                "arrayreg (CuPy)": lambda: int_dvf(dvf),
                "torch CUDA grid_sample loop": torch_cuda and (lambda: torch_int_dvf(torch, dvf, 7, "cuda")),
            },
        ),
    }


def print_gpu_tables(cp, size, repeat, results, peers):
    source = cp.ones(64 * 2**20, cp.float32)
    target = cp.empty_like(source)
    copy_ms = gpu_median_ms(cp, lambda: target.__setitem__(Ellipsis, source), 9)
    bandwidth = 2 * source.nbytes / (copy_ms * 1e-3) / 1e9
    name = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    print(f"GPU: {name}, device copy bandwidth {bandwidth:.0f} GB/s\n")
    start = time.perf_counter()
    first = cp.zeros((1, 8, 8, 8), cp.float32)
    arrayreg.warp_image_ddf(first, cp.zeros((1, 8, 8, 8, 3), cp.float32))
    cp.cuda.get_current_stream().synchronize()
    print(f"first CUDA warp in this process (kernel compile for one signature): {time.perf_counter() - start:.2f} s\n")
    for title, work in gpu_workloads(cp, size, peers).items():
        floor_ms = work["touched"] / (bandwidth * 1e9) * 1e3
        rows = [(impl, gpu_median_ms(cp, fn, repeat)) for impl, fn in work["impls"].items() if fn]
        print(f"### {title}  (bandwidth floor {floor_ms:.3f} ms)\n")
        print("| implementation | median ms | ratio (peer / arrayreg) | times the floor |")
        print("|---|---|---|---|")
        for impl, ms in rows:
            print(f"| {impl} | {ms:.3f} | {ms / rows[0][1]:.2f} | {ms / floor_ms:.1f} |")
        print()
        results["workloads"][title] = {"floor_ms": floor_ms, "rows": rows}


def latency(size):
    """First call in a fresh process: with the Numba cache warm, and cold (empty cache dir)."""
    code = (
        "import time, numpy as np; t0 = time.perf_counter(); import arrayreg; "
        "img = np.zeros((1, 8, 8, 8), np.float32); ddf = np.zeros((1, 8, 8, 8, 3), np.float32); "
        "arrayreg.warp_image_ddf(img, ddf); print(time.perf_counter() - t0)"
    )
    env = dict(os.environ)
    warm = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                check=True).stdout)
    with tempfile.TemporaryDirectory() as cache:
        env["NUMBA_CACHE_DIR"] = cache
        cold = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    check=True).stdout)
    return warm, cold


def measure(name, work, repeat, bandwidth):
    """Time each implementation of one workload, print its table (and notes), return its results."""
    floor_ms = work["touched"] / (bandwidth * 1e9) * 1e3
    rows = []
    reference = None
    for impl, fn in work["impls"].items():
        if not fn:
            continue
        ms = median_ms(fn, repeat)
        extra = extra_memory_mb(fn, work["out_bytes"]) if not impl.startswith(("torch", "SimpleITK", "ANTs")) else None
        output = fn()  # a list of arrays (a sequence of calls) is compared as one
        result = np.concatenate([np.ravel(part) for part in output]) if isinstance(output, list) else output
        result = np.asarray(result, dtype=np.float64)
        reference = result if reference is None else reference
        comparable = result.size == reference.size and "target's unit" not in impl
        diff = float(np.abs(result.reshape(reference.shape) - reference).max()) if comparable else float("nan")
        rows.append((impl, ms, extra, diff))
    base = rows[0][1]
    print(f"### {name}  (bandwidth floor {floor_ms:.2f} ms)\n")
    print("| implementation | median ms | ratio (peer / arrayreg) | extra memory MB | max abs diff to arrayreg |")
    print("|---|---|---|---|---|")
    for impl, ms, extra, diff in rows:
        extra_text = "-" if extra is None else f"{extra:.1f}"
        print(f"| {impl} | {ms:.2f} | {ms / base:.2f} | {extra_text} | {diff:.1e} |")
    print()
    for note in work.get("notes", lambda: [])():
        print(f"{note}\n")
    return {"floor_ms": floor_ms, "rows": rows}


def run(args):
    peers = load_peers()
    bandwidth = copy_bandwidth_gbs()
    repeat = SIZES[args.size]["repeat"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"numba threads {numba.get_num_threads()} ({numba.threading_layer()}); "
          f"torch {peers.torch.__version__ if peers.torch else 'absent'}; "
          f"SimpleITK {peers.sitk.Version_VersionString() if peers.sitk else 'absent'}; "
          f"copy bandwidth {bandwidth:.1f} GB/s\n")
    results = {"bandwidth_gbs": bandwidth, "workloads": {}}
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        print(f"BLAS: {'; '.join(blas) or 'unknown'}\n")
    except ImportError:
        print("BLAS: threadpoolctl not installed\n")
    with tempfile.TemporaryDirectory(prefix="arrayreg_bench_") as folder:  # W15's files
        for name, work in workloads(args.size, peers, folder).items():
            if not args.only or name.split()[0] in args.only:
                results["workloads"][name] = measure(name, work, repeat, bandwidth)
    cp = cupy_with_device()
    if cp is not None:
        print_gpu_tables(cp, args.size, repeat, results, peers)
    else:
        print("GPU rows: skipped (no CuPy or no CUDA device)\n")
    warm, cold = latency(args.size)
    print(f"first call in a fresh process (import + warp): {warm:.2f} s with a warm Numba cache, "
          f"{cold:.2f} s cold (empty cache)")
    results["latency_s"] = {"warm_cache": warm, "cold": cold}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)

