"""The package's shape: imports flow one way, applications load lazily, the two kernel targets agree."""

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "arrayreg"

# DESIGN.md section 5, bottom up: a module may import modules of its own rank or lower, never higher.
RANKS = [
    ("arrayreg._kernels.device", "arrayreg._kernels.threads", "arrayreg._kernels.jit", "arrayreg._kernels.stack",
     "arrayreg._kernels.cache", "arrayreg._kernels.window", "arrayreg._kernels.microkernel",
     "arrayreg._kernels.formulas",
     "arrayreg._docstrings"),
    ("arrayreg._kernels.cpu", "arrayreg._kernels.cuda", "arrayreg._kernels.conv", "arrayreg._kernels"),
    ("arrayreg._backend",),
    ("arrayreg._validation",),
    ("arrayreg._plan",),
    ("arrayreg.grid", "arrayreg.affine", "arrayreg.resample", "arrayreg.ddf", "arrayreg.resize"),
    ("arrayreg.fields",),
    ("arrayreg.augment", "arrayreg.io", "arrayreg.testing"),
    ("arrayreg.dask",),  # chunked versions on dask arrays, above the io package
    ("arrayreg.nn",),  # and its submodules
    ("arrayreg.layer", "arrayreg.layer_util", "arrayreg"),
    ("arrayreg.cli", "arrayreg.__main__"),  # and its submodules: the application wing
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set:
    """Every arrayreg module ``name`` imports anywhere in its source (lazy imports in functions included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            assert not node.level or target in MODULES, f"{name}: 'from {'.' * node.level}{node.module or ''}' " \
                                                        f"names no module of the package"
            for alias in node.names:  # "from . import io" names a module; "from . import resample" may name one
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def rank(name: str) -> int:
    for level, names in enumerate(RANKS):
        if name in names or any(name.startswith(owner + ".") for owner in names
                                if owner in ("arrayreg.nn", "arrayreg.io", "arrayreg.cli")):
            return level
    raise AssertionError(f"{name} has no place in RANKS: add it where DESIGN.md section 5 puts it")


def test_the_import_graph_has_no_cycle():
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_imports_point_down_the_layers():
    upward = [f"{source} (rank {rank(source)}) imports {target} (rank {rank(target)})"
              for source, targets in GRAPH.items() for target in targets
              if rank(target) > rank(source) and not (source.startswith("arrayreg.") and target == "arrayreg.nn")]
    assert not upward, "\n".join(upward)


def test_the_graph_sees_the_imports_it_should():
    assert "arrayreg._plan" in GRAPH["arrayreg.resample"] and "arrayreg._backend" in GRAPH["arrayreg.ddf"]
    assert "arrayreg.cli.bench" in GRAPH["arrayreg.cli.commands"]  # a lazy import counts


def test_help_imports_neither_numba_nor_scipy():
    code = ("import sys\nfrom arrayreg.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'scipy', 'torch')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_bench_sizes_offered_by_the_parser_are_the_benchmarks_sizes():
    from arrayreg.cli import BENCH_SIZES
    from arrayreg.cli.bench import SIZES

    assert sorted(BENCH_SIZES) == sorted(SIZES)


KERNEL_NAMES = ("resample3d", "resample2d", "warp3d", "warp_grid3d", "resize3d_linear",
                "resize3d_nearest", "linear_axis_table", "nearest_axis_table", "jacobian3d", "compose3d",
                "spline_prefilter", "chain3d", "apply3d", "scale")


def test_every_cpu_kernel_and_its_cuda_launcher_take_the_same_arguments():
    pytest.importorskip("numba.cuda")
    from arrayreg._kernels import cpu, cuda

    for name in KERNEL_NAMES:
        cpu_kernel, launcher = getattr(cpu, name), getattr(cuda, name)
        cpu_function = getattr(cpu_kernel, "py_func", cpu_kernel)
        assert inspect.signature(cpu_function) == inspect.signature(launcher), name
        assert launcher.__doc__, f"cuda.{name} has no docstring"
    public = {n for n, f in vars(cuda).items() if inspect.isfunction(f) and not n.startswith("_")
              and f.__module__ == cuda.__name__}
    assert public == set(KERNEL_NAMES)


def test_the_readme_layout_names_every_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```")[1]
    named = set(re.findall(r"[\w]+\.py", block))
    present = {p.name for p in PACKAGE.rglob("*.py")}
    assert present - named == set(), f"modules missing from the README's layout: {sorted(present - named)}"
    helpers = {p.name for p in (PACKAGE.parent / "tests").glob("*.py")} | {"run.py"}
    assert named - present - helpers == set(), f"the README names modules that do not exist: {named - present}"
