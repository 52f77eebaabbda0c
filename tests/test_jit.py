"""The kernels' Numba setup: fork safety through TBB, and a disk cache that never breaks a call.

Each scenario runs in a fresh Python process, since the threading layer and
the cache are chosen once per process.
"""

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

WARP_GRID = textwrap.dedent("""
    import warnings
    warnings.simplefilter("always")
    import numpy as np, arrayreg
    with warnings.catch_warnings(record=True) as caught:
        out = arrayreg.warp_grid(arrayreg.get_reference_grid((3, 4, 5)), np.eye(4, 3, dtype=np.float32)[None])
    assert np.array_equal(out[0], arrayreg.get_reference_grid((3, 4, 5))), "wrong result"
    print("warnings:", len(caught))
    for w in caught:
        print(w.category.__name__, w.message)
""")


def run_python(code, timeout=300, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=environment, cwd=Path(__file__).parent.parent)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and the tbb wheel: Linux")
def test_forked_children_run_kernels_after_the_parent_did():
    code = textwrap.dedent("""
        import multiprocessing, numba, numpy as np, arrayreg

        def warp(shift):
            image = np.arange(4 * 5 * 6, dtype=np.float32).reshape(1, 4, 5, 6)
            ddf = np.zeros((1, 4, 5, 6, 3), np.float32)
            ddf[..., 2] = shift
            return float(arrayreg.warp_image_ddf(image, ddf)[0, 1, 1, 1])

        if __name__ == "__main__":
            parent = warp(1.0)  # the parent starts the threading layer first
            with multiprocessing.get_context("fork").Pool(2) as pool:
                children = pool.map(warp, [1.0, 0.0, 2.0])
            process = multiprocessing.get_context("fork").Process(target=warp, args=(0.5,))
            process.start()
            process.join(60)
            print(numba.threading_layer(), parent, children, process.exitcode)
    """)
    result = run_python(code, timeout=120)
    assert result.returncode == 0, result.stderr
    layer, *values = result.stdout.split()
    assert layer == "tbb"
    # image[0, 1, 1, 1 + shift] = 30 + 6 + 1 + shift
    assert " ".join(values) == "38.0 [38.0, 37.0, 39.0] 0"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_spawned_children_run_kernels_after_the_parent_did(method):
    code = textwrap.dedent(f"""
        import multiprocessing, numpy as np, arrayreg

        def shifted(shift):
            image = np.arange(4 * 5 * 6, dtype=np.float32).reshape(1, 4, 5, 6)
            ddf = np.zeros((1, 4, 5, 6, 3), np.float32)
            ddf[..., 2] = shift
            return float(arrayreg.warp_image_ddf(image, ddf)[0, 1, 1, 1])

        if __name__ == "__main__":
            parent = shifted(1.0)
            with multiprocessing.get_context("{method}").Pool(2) as pool:
                print(parent, pool.map(shifted, [0.0, 2.0]))
    """)
    script = Path(tempfile.mkdtemp()) / "spawned.py"  # spawn re-imports the main module from a file
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "38.0 [37.0, 39.0]"


def test_no_writable_cache_folder_compiles_in_memory_with_one_warning(tmp_path):
    result = run_python(WARP_GRID, NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator",
                        NUMBA_CACHE_DIR="/proc/arrayreg-cannot-create-this")
    assert result.returncode == 0, result.stderr
    assert "warnings: 1" in result.stdout and "no writable Numba cache folder" in result.stdout, result.stdout


def test_a_corrupt_cache_is_recompiled_and_rewritten(tmp_path):
    cache = tmp_path / "cache"
    first = run_python(WARP_GRID, NUMBA_CACHE_DIR=str(cache))
    assert first.returncode == 0 and "warnings: 0" in first.stdout, first.stdout + first.stderr
    files = [f for f in cache.rglob("*") if f.suffix in (".nbi", ".nbc")]
    assert any(f.suffix == ".nbi" for f in files) and any(f.suffix == ".nbc" for f in files)
    for number, path in enumerate(files):
        path.write_bytes(os.urandom(64 + number))
    second = run_python(WARP_GRID, NUMBA_CACHE_DIR=str(cache))
    assert second.returncode == 0, second.stderr
    assert "warnings: 1" in second.stdout and "unreadable Numba cache file" in second.stdout, second.stdout
    third = run_python(WARP_GRID, NUMBA_CACHE_DIR=str(cache))
    assert third.returncode == 0 and "warnings: 0" in third.stdout, third.stdout + third.stderr
