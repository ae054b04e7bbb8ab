"""The house drawn from the imports: integrations use the core through its public names only, and the
core's modules form no cycle (that the core names nothing above it is tests/core/test_layering.py).

Checked statically (every import statement and every string of every module, by
``ast``), so a lazy or string import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted((ROOT / "r2router_core").rglob("*.py"))
INTEGRATIONS = sorted((ROOT / "r2router_integrations").rglob("*.py"))

PUBLIC_CORE_MODULES = (
    "r2router_core",
    "r2router_core.batch",
    "r2router_core.embedders",
    "r2router_core.evaluation",
    "r2router_core.evaluation.datasets",
    "r2router_core.store",
    "r2router_core.testing",
)
"""What the integrations may import from: the core and its public subpackages (each by its ``__all__``)."""


def _imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    return [
        n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Import | ast.ImportFrom)
    ]


@pytest.mark.parametrize("path", INTEGRATIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_integrations_use_only_what_the_core_exports(path: Path) -> None:
    for node in _imports(path):
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("r2router_core.") for a in node.names), f"line {node.lineno}"
            continue
        module = node.module or ""
        if not module.startswith("r2router_core"):
            continue
        assert module in PUBLIC_CORE_MODULES, f"line {node.lineno}: import from {module}, not a public core module"
        exported = set(importlib.import_module(module).__all__)
        private = [a.name for a in node.names if a.name not in exported]
        assert not private, f"line {node.lineno}: {private} are not in {module}.__all__"


def test_no_import_cycle_between_core_modules() -> None:
    """Module-level imports among core modules form no cycle (lazy imports inside functions aside)."""
    graph: dict[str, set[str]] = {}
    for path in CORE:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = set()
        for node in tree.body:  # top level only
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("r2router_core"):
                deps.add(node.module or "")
        graph[name] = {d for d in deps if d != name}
    done: set[str] = set()

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"import cycle: {' -> '.join((*stack, node))}"
        if node in done:
            return
        for dep in graph.get(node, ()):
            if dep == "r2router_core" or node == "r2router_core" or node.startswith(dep + "."):
                continue  # the package's own __init__ re-exports; a module importing its parent package
            visit(dep, (*stack, node))
        done.add(node)

    for module in graph:
        visit(module, ())
