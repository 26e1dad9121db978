"""The package's import structure (issue 19): no module imports, at module level or inside a
function, a module that imports it back, and the layers below import nothing from above.

Read from the source with ``ast`` (every ``import`` statement, wherever it stands), so an import
hidden in a function counts. Nodes are modules: ``micronet_tf.convert`` is the package's
``__init__``, ``micronet_tf.convert._encoder`` one of its modules; ``from micronet_tf.x import
name`` is an import of ``micronet_tf.x.name`` where that is a module, else of ``micronet_tf.x``.
Importing a module runs its packages' ``__init__`` first, so a module outside a package that
imports one of its modules imports the package too (``micronet_tf.weights`` ->
``micronet_tf.torch_weights.assign`` is also ``-> micronet_tf.torch_weights``); inside the
package the ``__init__`` is already running and is not counted.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "micronet_tf"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``{module: the micronet_tf modules it imports}`` over every ``.py`` of the package."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}

    def known(name: str) -> str:  # the module that defines ``name``
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("micronet_tf")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                if base.startswith("micronet_tf"):
                    imported |= {known(f"{base}.{a.name}") for a in node.names}
        targets = {known(name) for name in imported}
        graph[module] = (targets | _outside_parents(module, targets, modules)) - {module}
    return graph


def _outside_parents(module: str, targets: set[str], modules: dict[str, Path]) -> set[str]:
    """The packages (below ``micronet_tf`` itself) whose ``__init__`` importing ``targets`` from
    ``module`` runs: each target's parent packages that do not contain ``module``."""
    parents = set()
    for target in targets:
        parts = target.split(".")
        for end in range(2, len(parts)):
            parent = ".".join(parts[:end])
            if parent in modules and not module.startswith(parent + "."):
                parents.add(parent)
    return parents


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = import_graph()
    assert len(graph) > 80  # the walk found the package
    assert "micronet_tf.encoders._registry" in graph["micronet_tf.encoders"]
    found = cycles(graph)
    details = [
        f"{' <-> '.join(c)}: " + "; ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c)
        for c in found
    ]
    assert not found, "import cycles:\n" + "\n".join(details)


def test_the_cycle_check_can_fail() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_importing_a_module_of_a_package_from_outside_imports_the_package() -> None:
    modules = dict.fromkeys(["micronet_tf", "micronet_tf.p", "micronet_tf.p.m", "micronet_tf.q"])
    assert _outside_parents("micronet_tf.q", {"micronet_tf.p.m"}, modules) == {"micronet_tf.p"}
    assert _outside_parents("micronet_tf.p.x", {"micronet_tf.p.m"}, modules) == set()


def test_each_subpackage_imports_first_in_a_fresh_process() -> None:
    """Each subpackage imported first, alone (as tools and workers do): what a loop through a
    package ``__init__`` would break with "partially initialized module". One process each
    (about 6 s); the static check above covers every module."""
    names = sorted(_module_name(path.parent) for path in PACKAGE.glob("*/__init__.py")) + [
        "micronet_tf.weights"
    ]
    code = (
        "import importlib, sys\n"
        "import micronet_tf.torch_reference\n"  # torch before TensorFlow, as the package says
        "importlib.import_module(sys.argv[1])\n"
    )
    failed = {}
    for name in [n for n in names if n != "micronet_tf.torch_reference"]:
        result = subprocess.run(
            [sys.executable, "-c", code, name], capture_output=True, text=True, check=False
        )
        if result.returncode:
            failed[name] = result.stderr.strip().splitlines()[-1]
    assert not failed, failed


def test_encoders_and_models_stay_below_training_data_cli_and_tools() -> None:
    graph = import_graph()
    above = ("micronet_tf.training", "micronet_tf.data", "micronet_tf.cli", "tools")
    for module, imported in graph.items():
        if module.startswith(("micronet_tf.encoders", "micronet_tf.models")):
            wrong = sorted(name for name in imported if name.startswith(above))
            assert not wrong, f"{module} imports {wrong}"
