"""The core's layers import one way only, and no module imports itself back through a cycle.

Every import counts: module-level, function-local and ``TYPE_CHECKING`` ones alike, because a
lazy import still couples the layers (and a lazy cycle still fails when the path runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "pollinator_core"
#: each layer may import itself and the layers before it
LAYERS = [
    "errors",
    "colonies",
    "project",
    "storage",
    "sync",
    "execution",
    "executor",
    "plugins",
    "runs",
    "api",
    "builtin",
    "testing",
    "cli",
]
#: the plugins shipped in this repository import the core only through its public API
PLUGIN_PACKAGES = [
    ROOT / "plugins" / "local_docker" / "pollinator_local_docker",
    ROOT / "plugins" / "slurm" / "pollinator_slurm",
    ROOT / "plugins" / "k8s" / "pollinator_k8s",
    ROOT / "examples" / "spool-plugin" / "pollinator_spool",
]


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, resolved to dotted names (relative imports included)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from pkg import module` imports a module, not only a name
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _core_modules() -> dict[str, Path]:
    return {_module_name(p, CORE): p for p in CORE.rglob("*.py")}


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return -1  # the package itself: holds only the version
    return LAYERS.index(parts[1])


def test_every_subpackage_is_a_known_layer() -> None:
    for module in _core_modules():
        parts = module.split(".")
        if len(parts) > 1:
            assert parts[1] in LAYERS, f"{module} is in no layer; add it to LAYERS and the docs"


def test_layers_import_downwards_only() -> None:
    modules = _core_modules()
    wrong = []
    for module, path in modules.items():
        for target in _imports(path, module):
            if target in modules and _layer(target) > _layer(module):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    modules = _core_modules()
    graph = {m: {t for t in _imports(p, m) if t in modules and t != m} for m, p in modules.items()}
    # Importing a submodule imports its package first: that edge is not a cycle of ours.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "package", [p for p in PLUGIN_PACKAGES if p.is_dir()], ids=lambda p: p.name
)
def test_shipped_plugins_import_only_the_public_api(package: Path) -> None:
    wrong = []
    for path in package.rglob("*.py"):
        module = _module_name(path, package)
        for target in _imports(path, module):
            if target.startswith("pollinator_core") and not (
                target == "pollinator_core" or target.startswith("pollinator_core.api")
            ):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "use pollinator_core.api instead:\n" + "\n".join(sorted(wrong))


def test_builtin_plugins_import_only_the_public_api() -> None:
    wrong = []
    for module, path in _core_modules().items():
        if module.startswith("pollinator_core.builtin"):
            for target in _imports(path, module):
                if target.startswith("pollinator_core.") and not (
                    target.startswith("pollinator_core.api")
                    or target.startswith("pollinator_core.builtin")
                ):
                    wrong.append(f"{module} imports {target}")
    assert not wrong, "use pollinator_core.api instead:\n" + "\n".join(sorted(wrong))
