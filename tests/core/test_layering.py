"""The core imports nothing above it: no module of r2router_core imports, or names, r2router_integrations."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import r2router_core

CORE = Path(r2router_core.__file__).parent
UPPER = "r2router_integrations"
# a string that is a module path (importlib.import_module("r2router_integrations.x"), an entry point "pkg.mod:attr")
MODULE_NAME = re.compile(rf"\s*{UPPER}(\.\w+)*(:[\w.]+)?\s*")


def upward_references(source: str, filename: str = "<source>") -> list[str]:
    """Every import of the integrations, and every string that is an integrations module name, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.fullmatch(node.value):
            found.append(f"{filename}:{node.lineno}: string {node.value!r}")
        found += [f"{filename}:{node.lineno}: import {n}" for n in names if n.split(".")[0] == UPPER]
    return found


def test_no_core_module_imports_or_names_the_integrations() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 20 and CORE / "__main__.py" in modules
    found = [ref for path in modules for ref in upward_references(path.read_text(encoding="utf-8"), str(path))]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "import r2router_integrations",
        "import r2router_integrations.server.app as app",
        "from r2router_integrations.cli import main",
        "def f():\n    from r2router_integrations import demo",
        "COMMANDS = {'serve': 'r2router_integrations.server.cli'}",
        "importlib.import_module('r2router_integrations')",
        "ENTRY = 'r2router_integrations.cli:main'",
    ],
)
def test_the_check_catches_each_form_of_upward_reference(source: str) -> None:
    assert len(upward_references(source)) == 1


def test_the_check_allows_a_message_that_mentions_the_package() -> None:
    assert upward_references("print('the command line is python -m r2router_integrations')") == []
    assert upward_references("from r2router_core.cli_tools import x\nimport r2router_integrations_x") == []


def test_python_m_r2router_core_points_to_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "r2router_core", "route", "hi"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "'r2router' command" in done.stderr and "python -m r2router_integrations" in done.stderr
