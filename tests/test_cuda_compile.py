"""The compile gate: every CUDA launch signature the simulator pass made, compiled by NVIDIA's real compiler.

Numba's simulator runs kernels as Python and accepts code that NVVM rejects
(``np.floor`` in a device function, for one).  The README's test command runs
``tests/test_cuda_simulator.py`` with ``ARRAYREG_LAUNCH_LOG=PATH``, which
records every ``(kernel, argument types)`` launched there (``conftest.py``).
This module then compiles each one to PTX with numba-cuda and NVVM from pip,
for sm_80 and sm_90, and assembles it with ``ptxas`` from NVIDIA's nvcc wheel.

No GPU is needed.  The only question a compile asks the driver is the current
device's compute capability (when a kernel calls a device function); it is
answered with the target capability, and nothing else is faked.  A kernel
added to ``arrayreg._kernels.cuda`` is covered without editing this file, and
one that the simulator pass never launches fails the gate.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

LOG = os.environ.get("ARRAYREG_LAUNCH_LOG")
TARGETS = [(8, 0), (9, 0)]
THREADS_PER_BLOCK = 256
REGISTERS_PER_BLOCK = 65536  # sm_80 and sm_90

pytestmark = pytest.mark.skipif(
    not LOG,
    reason="needs the launch log of the simulator pass (ARRAYREG_LAUNCH_LOG; the README's test command sets it)"
)


def numba_type(description):
    """The Numba type that ``arrayreg._kernels.device.describe_argument`` described."""
    from numba import from_dtype, types

    kind = description[0]
    if kind == "array":
        _, dtype, ndim, layout = description
        return types.Array(from_dtype(np.dtype(dtype)), ndim, layout)
    if kind == "scalar":
        return from_dtype(np.dtype(description[1]))
    if kind == "tuple":
        return types.Tuple(tuple(numba_type(item) for item in description[1:]))
    raise ValueError(f"unknown argument description {description!r}")


def ptxas() -> Path:
    """``ptxas`` from the ``nvidia-cuda-nvcc-cu12`` wheel."""
    spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("ptxas is missing: install the test extra (nvidia-cuda-nvcc-cu12)")
    return Path(list(spec.submodule_search_locations)[0]) / "bin" / "ptxas"


def assemble(ptx: str, cc, workdir: Path) -> dict:
    """Assemble ``ptx`` with ``ptxas -v`` for ``sm_<cc>``; registers, stack frame and spills of the kernel."""
    source = workdir / "kernel.ptx"
    source.write_text(ptx)
    arch = f"sm_{cc[0]}{cc[1]}"
    done = subprocess.run([str(ptxas()), f"-arch={arch}", "-v", "-o", str(workdir / "kernel.cubin"), str(source)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed for {arch}:\n{done.stderr}")
    report = done.stderr
    numbers = {
        "registers": re.search(r"Used (\d+) registers", report),
        "stack": re.search(r"(\d+) bytes stack frame", report),
        "spill_stores": re.search(r"(\d+) bytes spill stores", report),
        "spill_loads": re.search(r"(\d+) bytes spill loads", report),
    }
    if not all(numbers.values()):
        raise RuntimeError(f"unexpected ptxas report:\n{report}")
    return {name: int(match.group(1)) for name, match in numbers.items()}


def registers_per_block(registers: int, threads: int) -> int:
    """Registers a block needs: allocated per warp in units of 256 (sm_80, sm_90)."""
    per_warp = -(-registers * 32 // 256) * 256
    return per_warp * -(-threads // 32)


@pytest.fixture(scope="module")
def compiler(monkeypatch_module):
    """numba-cuda's ``compile_ptx``, with the current device's compute capability answered per target."""
    from numba import config

    if config.ENABLE_CUDASIM:
        pytest.skip("the compile gate needs the real CUDA target (run without NUMBA_ENABLE_CUDASIM)")
    from numba import cuda
    from numba.cuda import dispatcher

    if not hasattr(dispatcher, "get_current_device"):
        pytest.fail("numba-cuda changed how device functions ask for the compute capability; update the gate")
    target = {}
    monkeypatch_module.setattr(dispatcher, "get_current_device",
                               lambda: SimpleNamespace(compute_capability=target["cc"]))

    def compile_ptx(kernel, argtypes, cc):
        target["cc"] = cc
        ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=cc)
        return ptx

    return compile_ptx


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def launched():
    if not Path(LOG).is_file():
        pytest.fail(f"ARRAYREG_LAUNCH_LOG={LOG} does not exist: run the simulator pass with it first")
    with open(LOG) as file:
        return [(name, tuple(args)) for name, args in json.load(file)]


def test_every_kernel_was_launched_by_the_simulator_pass():
    from arrayreg._kernels import cuda

    kernels = {name for name, value in vars(cuda).items() if hasattr(value, "py_func") and hasattr(value, "overloads")
               and not getattr(value, "targetoptions", {}).get("device", False)}
    assert kernels, "found no kernels in arrayreg._kernels.cuda"
    missing = kernels - {name for name, _ in launched()}
    assert not missing, f"kernels the simulator pass never launched, so the gate cannot compile them: {missing}"


@pytest.mark.parametrize("cc", TARGETS, ids=[f"sm_{a}{b}" for a, b in TARGETS])
def test_every_launched_signature_compiles_and_assembles(compiler, cc, tmp_path, capsys):
    from arrayreg._kernels import cuda

    signatures = launched()
    assert signatures, "the launch log is empty"
    failures, rows = [], []
    for name, args in signatures:
        argtypes = tuple(numba_type(a) for a in args)
        label = f"{name}({', '.join(str(t) for t in argtypes)})"
        try:
            usage = assemble(compiler(getattr(cuda, name), argtypes, cc), cc, tmp_path)
        except Exception as error:  # noqa: BLE001 - every failure is collected and reported below
            failures.append(f"{label}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            continue
        rows.append((label, usage))
        if usage["spill_stores"] or usage["spill_loads"]:
            failures.append(f"{label}: spills ({usage['spill_stores']} B stores, {usage['spill_loads']} B loads)")
        if registers_per_block(usage["registers"], THREADS_PER_BLOCK) > REGISTERS_PER_BLOCK:
            failures.append(f"{label}: {usage['registers']} registers cannot launch {THREADS_PER_BLOCK} threads")
    arch = f"sm_{cc[0]}{cc[1]}"
    with capsys.disabled():
        print(f"\n{len(signatures) - len(failures)}/{len(signatures)} signatures compiled for {arch}")
        for label, usage in rows:
            print(f"  {usage['registers']:3d} registers, {usage['stack']:4d} B local  {label}")
    assert not failures, f"{len(failures)} of {len(signatures)} signatures failed for {arch}:\n" + "\n".join(failures)
