"""``arrayreg bench --scaling``: how W1 and W3 cost grows with the volume, and with the threads.

Two tables, arrayreg and torch in the same process on the same inputs:

- nanoseconds per voxel for W1 (warp of one channel, linear, clamp) and W3
  (IntDVF, 7 steps) at 64³, 128³, 192³ and 256³ (flat means linear cost);
- the speed-up from 1 to 2 threads at 128³ (``numba.set_num_threads`` and
  ``torch.set_num_threads``; ``NUMBA_NUM_THREADS`` bounds the first).
"""

from __future__ import annotations

import numba
import numpy as np

import arrayreg

from .bench import load_peers, median_ms, smooth_ddf, torch_int_dvf, torch_warp

EDGES = (64, 128, 192, 256)
THREADS_EDGE = 128


def _jobs(n, torch):
    """``{row: {implementation: callable}}`` for W1 and W3 on an ``n``-cube."""
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, n, n, n)).astype(np.float32)
    ddf = smooth_ddf((n, n, n), 5.0)
    dvf = smooth_ddf((n, n, n), 8.0, seed=2)
    int_dvf = arrayreg.IntDVF((n, n, n), num_steps=7)
    return {
        "W1 warp": {"arrayreg": lambda: arrayreg.warp_image_ddf(image, ddf),
                    "torch": torch and (lambda: torch_warp(torch, image, ddf))},
        "W3 IntDVF 7 steps": {"arrayreg": lambda: int_dvf(dvf),
                              "torch": torch and (lambda: torch_int_dvf(torch, dvf, 7))},
    }


def run(repeat=5):
    """Print both tables; returns ``(per_voxel, speedups)``."""
    torch = load_peers().torch
    per_voxel = {}
    for n in EDGES:
        for row, impls in _jobs(n, torch).items():
            for impl, fn in impls.items():
                if fn:
                    per_voxel[(row, impl, n)] = median_ms(fn, repeat) * 1e6 / n**3
    print("### cost per voxel (ns), medians of", repeat, "\n")
    print("| workload | implementation | " + " | ".join(f"{n}³" for n in EDGES) + " |")
    print("|---|---|" + "---|" * len(EDGES))
    for row, impl in dict.fromkeys((row, impl) for row, impl, _ in per_voxel):
        cells = " | ".join(f"{per_voxel[(row, impl, n)]:.2f}" for n in EDGES)
        print(f"| {row} | {impl} | {cells} |")
    speedups = _thread_speedups(torch, repeat)
    print(f"\n### speed-up from 1 to 2 threads at {THREADS_EDGE}³\n")
    print("| workload | implementation | 1 thread ms | 2 threads ms | speed-up |")
    print("|---|---|---|---|---|")
    for (row, impl), (one, two) in speedups.items():
        print(f"| {row} | {impl} | {one:.1f} | {two:.1f} | {one / two:.2f}x |")
    print()
    return per_voxel, speedups


def _thread_speedups(torch, repeat):
    """``{(row, impl): (ms with 1 thread, ms with 2 threads)}``."""
    jobs = _jobs(THREADS_EDGE, torch)
    numba_threads = numba.get_num_threads()
    torch_threads = torch.get_num_threads() if torch else None
    results = {}
    try:
        for row, impls in jobs.items():
            for impl, fn in impls.items():
                if not fn:
                    continue
                timings = []
                for threads in (1, 2):
                    if impl == "torch":
                        torch.set_num_threads(threads)
                    else:
                        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                    timings.append(median_ms(fn, repeat))
                results[(row, impl)] = tuple(timings)
    finally:
        numba.set_num_threads(numba_threads)
        if torch:
            torch.set_num_threads(torch_threads)
    return results
