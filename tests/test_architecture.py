"""The house drawn from the imports.

- The integrations use the core through its public names only.
- The core's modules form no import cycle, counting every import: top-level ones and the lazy
  ones inside functions (only ``if TYPE_CHECKING:`` blocks, which never run, are left out).
- The stages import one way: the engine (``engine/``, ``embedders/``) imports nothing of
  execution, the store, evaluation or the integrations; execution (which writes the decision log)
  imports nothing of evaluation or the integrations; the store nothing of execution or evaluation.
  That the core as a whole names nothing above it is ``tests/core/test_layering.py``.

Checked statically (every import statement of every module, by ``ast``), so a lazy import counts
as much as a top-level one. The checks are functions of a source tree, and the tests at the end
plant a cycle and an engine -> evaluation import in a copy of the core to show that they fail.
"""

from __future__ import annotations

import ast
import importlib
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE_DIR = ROOT / "r2router_core"
INTEGRATIONS = sorted((ROOT / "r2router_integrations").rglob("*.py"))

PUBLIC_CORE_MODULES = (
    "r2router_core",
    "r2router_core.engine.batch",
    "r2router_core.embedders",
    "r2router_core.evaluation",
    "r2router_core.evaluation.datasets",
    "r2router_core.execute",
    "r2router_core.interop.routerarena",
    "r2router_core.store",
    "r2router_core.testing",
)
"""What the integrations may import from: the core and its public subpackages (each by its ``__all__``)."""

ENGINE = ("r2router_core.engine", "r2router_core.embedders")
FORBIDDEN_BELOW: dict[tuple[str, ...], tuple[str, ...]] = {
    ENGINE: (
        "r2router_core.execute",
        "r2router_core.store",
        "r2router_core.evaluation",
        "r2router_integrations",
    ),
    ("r2router_core.execute",): ("r2router_core.evaluation", "r2router_integrations"),
    ("r2router_core.store",): ("r2router_core.evaluation", "r2router_core.execute", "r2router_integrations"),
}
"""Per stage, the packages its modules must never import, at any depth of a function."""


def _imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    return [
        n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Import | ast.ImportFrom)
    ]


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``if TYPE_CHECKING:`` blocks (never executed)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        lines.add(sub.lineno)
    return lines


def module_name(path: Path, root: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def import_graph(core_dir: Path) -> dict[str, set[str]]:
    """Every core module -> the r2router modules it imports anywhere in its body (TYPE_CHECKING aside).

    ``from package import name`` counts as an import of ``package.name`` when that is a module,
    else of ``package``; every package above an imported module counts too (its ``__init__`` runs).
    """
    root = core_dir.parent
    modules = {module_name(p, root) for p in core_dir.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in core_dir.rglob("*.py"):
        name = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        deps: set[str] = set()
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("r2router")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("r2router"):
                base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    deps.add(sub if sub in modules else base)
        # importing a.b.c runs a/__init__ and a/b/__init__ first: those count too (but not the
        # importer's own packages, whose __init__ is already running when it is imported)
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        parents = {".".join(d.split(".")[:i]) for d in deps for i in range(2, d.count(".") + 1)}
        graph[name] = {d for d in deps | (parents & modules) if d != name and d not in own}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports among core modules, or ``None``.

    Importing a package runs its ``__init__``; a module importing the package it sits in (or the
    root package, which re-exports the public API) only reads names that package defined before
    it, so those edges are left out: every other edge counts.
    """
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep == "r2router_core" or node.startswith(dep + ".") or dep not in graph:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if state.get(dep) is None and (found := visit(dep, stack)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if state.get(module) is None and (found := visit(module, [])):
            return found
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a stage's module into a package that stage must not import."""
    found = []
    for module, deps in sorted(graph.items()):
        for stages, forbidden in FORBIDDEN_BELOW.items():
            if not any(module == s or module.startswith(s + ".") for s in stages):
                continue
            for dep in sorted(deps):
                if any(dep == f or dep.startswith(f + ".") for f in forbidden):
                    found.append(f"{module} imports {dep}")
    return found


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


def test_no_import_cycle_between_core_modules_lazy_imports_included() -> None:
    graph = import_graph(CORE_DIR)
    assert len(graph) > 60
    assert find_cycle(graph) is None


def test_each_stage_imports_only_the_stages_before_it() -> None:
    assert layer_violations(import_graph(CORE_DIR)) == []


def test_the_engine_no_longer_reaches_evaluation_for_auto() -> None:
    """``predictor='auto'`` is resolved by ``evaluation.train_router``, above the engine."""
    graph = import_graph(CORE_DIR)
    engine_deps = {d for m, deps in graph.items() if m.startswith(ENGINE) for d in deps}
    assert not any(d.startswith("r2router_core.evaluation") for d in engine_deps)


@pytest.fixture
def core_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "r2router_core"
    shutil.copytree(CORE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_planted_lazy_cycle_is_found(core_copy: Path) -> None:
    scoring = core_copy / "engine" / "scoring.py"
    scoring.write_text(
        scoring.read_text(encoding="utf-8")
        + "\n\ndef _plant():\n    from r2router_core.engine.router import R2Router\n    return R2Router\n",
        encoding="utf-8",
    )
    cycle = find_cycle(import_graph(core_copy))
    assert cycle is not None and "r2router_core.engine.scoring" in cycle and "r2router_core.engine.router" in cycle


def test_a_planted_engine_to_evaluation_import_is_found(core_copy: Path) -> None:
    router = core_copy / "engine" / "router.py"
    router.write_text(
        router.read_text(encoding="utf-8") + "\n\ndef _plant():\n    from r2router_core.evaluation import metrics\n",
        encoding="utf-8",
    )
    assert layer_violations(import_graph(core_copy)) == [
        "r2router_core.engine.router imports r2router_core.evaluation",  # its __init__ runs first
        "r2router_core.engine.router imports r2router_core.evaluation.metrics",
    ]
