"""The package's import structure: no cycles, imports only downward, no torch in search.

The graph is read from the source (``ast``), so it sees every import, including
the ones inside functions that run only on some paths (the lazy imports of the
CLI, of the ``hashsearch`` facade, of the evaluation's checkpoint loading). A
cycle there is a cycle of design even when Python happens to resolve it at run
time, so lazy imports count too. The layers are the ones docs/architecture.md
describes; a module may import its own layer and the layers below it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Import roots of the tree: hashsearch/ and training/ (installed as hashsearch.training).
PACKAGES = ((ROOT / "hashsearch", "hashsearch"), (ROOT / "training", "hashsearch.training"))

#: Compiled extension modules (no .py source): an import of one is an edge to nothing.
EXTENSIONS = {"hashsearch._core", "hashsearch._cuda"}

#: Layers from the bottom up, by module-name prefix (the longest matching prefix wins).
#: A module may import modules of its own layer or lower ones, never higher ones.
LAYERS: list[tuple[str, ...]] = [
    # 0: the base: no hashsearch imports beyond each other.
    ("hashsearch.packing", "hashsearch.errors", "hashsearch._validate", "hashsearch._ids",
     "hashsearch._system", "hashsearch._version", "hashsearch._paths", "hashsearch.synthetic"),
    # 1: kernels.
    ("hashsearch.backends",),
    # 2: kernel-level conveniences and the engine side of out-of-core search.
    ("hashsearch.functional", "hashsearch.search.plan", "hashsearch.search.outofcore"),
    # 3: codes on disk.
    ("hashsearch.store",),
    # 4: in-memory index types (persisted in stores).
    ("hashsearch.index",),
    # 5: drivers over stores and indexes: Dask distribution, resumable batch querying.
    ("hashsearch.search",),
    # 6: datasets (torch-free readers and recipes).
    ("hashsearch.data",),
    # 7: evaluation over computed codes (torch-free).
    ("hashsearch.eval",),
    # 8: training (torch); may use the evaluation to report.
    ("hashsearch.training",),
    # 9: what needs trained models: encoding for evaluation, reports, query by image, demos.
    ("hashsearch.eval.encoders", "hashsearch.eval.report", "hashsearch.retrieval", "hashsearch.demo"),
    # 10: the command line.
    ("hashsearch.cli",),
]


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for base, package in PACKAGES:
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([package, *parts])] = path
    return mods


MODULES = _modules()


def _known(name: str) -> str | None:
    """The module of ours that importing ``name`` executes (longest known prefix)."""
    while name:
        if name in MODULES or name in EXTENSIONS:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")
            if path.name != "__init__.py":
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        submodules = [f"{source}.{a.name}" for a in node.names if _known(f"{source}.{a.name}") == f"{source}.{a.name}"]
        # `from pkg import submodule` executes pkg/__init__ and the submodule;
        # `from hashsearch import _core` only the extension (hashsearch itself is
        # always initialised first, being the parent).
        names = submodules if submodules else [source]
    return [t for t in (_known(n) for n in names) if t is not None]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run (``if TYPE_CHECKING:`` blocks excluded)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            walk(child)

    walk(tree)
    return found


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = edges.setdefault(module, set())
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            for target in _targets(module, path, node):
                # An import from a parent package is an edge to its __init__ (which
                # may import this module back: a cycle); `from pkg import submodule`
                # was resolved to the submodule above.
                if target != module:
                    targets.add(target)
    return edges


GRAPH = _graph()


#: The ``hashsearch`` facade (the public API, re-exporting lazily from every layer)
#: sits just below the command line: only the CLI imports from it.
FACADE_LAYER = len(LAYERS) - 1.5


def _layer(module: str) -> float | None:
    if module == "hashsearch":
        return FACADE_LAYER
    best, layer = "", None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, layer = prefix, i
    return layer


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges)))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    # The reader must see the edges everything else here relies on; if these go
    # missing, the checks below would pass vacuously.
    assert "hashsearch.backends" in GRAPH["hashsearch.index.flat"]
    assert "hashsearch._core" in GRAPH["hashsearch.backends.native"]
    assert "hashsearch.training.config" in GRAPH["hashsearch.training.trainer"]
    assert any(t.startswith("hashsearch.training") for t in GRAPH["hashsearch.cli.train"])


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if m != "hashsearch.__main__" and _layer(m) is None)
    assert missing == [], "add these modules to LAYERS (and to docs/architecture.md)"


def test_imports_only_go_down():
    upward = []
    for module, targets in GRAPH.items():
        here = _layer(module)
        if here is None or module == "hashsearch":  # __main__; the facade re-exports (lazily)
            continue
        for target in targets:
            there = _layer(target)
            if target in EXTENSIONS or there is None:
                continue
            if there > here:
                upward.append(f"{module} (layer {here}) -> {target} (layer {there})")
    assert upward == []


def test_no_torch_below_training():
    torch_layer = _layer("hashsearch.training")
    assert torch_layer is not None
    offenders = []
    for module, path in MODULES.items():
        layer = _layer(module)
        if layer is None or layer >= torch_layer:
            continue
        for node in _imports(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n == "torch" or n.startswith("torch.") for n in names):
                offenders.append(module)
    assert offenders == []


def test_searching_does_not_import_torch():
    # A fresh interpreter: build an index, search it, open a store and search it.
    code = """
import sys, tempfile
import numpy as np
import hashsearch
from hashsearch import BinaryIndex, CodeStore
import hashsearch.search.batch, hashsearch.search.distributed, hashsearch.eval.metrics
rng = np.random.default_rng(0)
codes = rng.integers(0, 256, (100, 8), dtype=np.uint8)
index = BinaryIndex(64)
index.add(codes)
index.search(codes[:3], 5)
with tempfile.TemporaryDirectory() as d:
    store = CodeStore.create(d + "/s.zarr", nbits=64)
    store.append(codes)
    store.flush()
    store.search(codes[:3], 5)
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("module", ["hashsearch.index.flat", "hashsearch.store", "hashsearch.search.outofcore"])
def test_a_module_imports_alone(module):
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
