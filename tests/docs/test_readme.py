"""Every code block of README.md and of each docs/*.md page runs, page by page, offline, so the docs cannot rot.

Each page runs on its own: its blocks in document order, in a fresh scratch directory, Python blocks
sharing one namespace (a page reads top to bottom); shell blocks run with this environment's
``r2router`` on PATH in the same directory. A page never depends on another page's files or names.
Blocks that cannot run inside the suite (the install command, the test command, a long-running server)
carry ``<!-- not-run: ... -->`` naming the test that covers them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs.markdown_blocks import Block, code_blocks

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
RUNNABLE = {"python", "bash", "yaml"}
MAX_README_LINES = 250


def _name(page: Path) -> str:
    return str(page.relative_to(REPO))


def _run_shell(block: Block, page: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"{page}:{block.line} shell block failed ({result.returncode}):\n{block.code}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_block_of_the_page_runs(
    page: Path, tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _name(page)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "R2ROUTER_DATA_DIR": str(shared_data_dir),
        "HF_HUB_OFFLINE": "1",
        "R2ROUTER_REPO": str(REPO),
    }
    for key in ("OPENAI_API_KEY", "R2ROUTER_ROUTER"):
        env.pop(key, None)
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    for key in ("R2ROUTER_DATA_DIR", "HF_HUB_OFFLINE", "R2ROUTER_REPO"):
        monkeypatch.setenv(key, env[key])
    namespace: dict[str, object] = {"__name__": f"__docs_{page.stem}__"}
    ran = 0
    for block in code_blocks(page):
        if block.not_run is not None or block.language not in RUNNABLE:
            continue
        if block.language == "python":
            exec(compile(block.code, f"{name}:{block.line}", "exec"), namespace)
        elif block.language == "bash":
            _run_shell(block, name, tmp_path, env)
        else:
            assert yaml.safe_load(block.code) is not None, f"{name}:{block.line} YAML block is empty"
        ran += 1
    runnable = [b for b in code_blocks(page) if b.language in RUNNABLE and b.not_run is None]
    assert ran == len(runnable)


def test_readme_shows_python_usage() -> None:
    assert sum(b.language == "python" for b in code_blocks(README)) >= 3, "the README should show Python usage"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_block_runs_or_names_the_test_that_covers_it(page: Path) -> None:
    for block in code_blocks(page):
        if block.language in RUNNABLE and block.not_run is not None:
            assert "test" in block.not_run, f"{_name(page)}:{block.line}: a not-run marker must name the covering test"
        assert block.language in RUNNABLE | {"text", "console", ""}, (
            f"{_name(page)}:{block.line}: unknown block language {block.language!r}"
        )


def test_setup_commands_open_the_readme() -> None:
    """The README's first code block installs everything, the second runs the suite; CI runs the same."""
    first, second = code_blocks(README)[:2]
    assert 'pip install -e ".[all,dev]"' in first.code
    assert second.code.split("#")[0].strip() == "python -m pytest"
    ci = (REPO / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[all,dev]"' in ci
    assert "python -m pytest\n" in ci


def test_readme_is_a_front_page_that_links_every_docs_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < MAX_README_LINES
    linked = {Path(target).name for target in _relative_links(README)}
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages - {"README.md"} <= linked, f"docs pages not linked from README.md: {sorted(pages - linked)}"
    index = {Path(target).name for target in _relative_links(DOCS / "README.md")}
    assert pages - {"README.md"} <= index, f"docs pages missing from docs/README.md: {sorted(pages - index)}"


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _relative_links(page: Path, *, anchors: bool = False) -> list[str]:
    """Relative link targets of a page outside code blocks (images included), without their #anchor."""
    out, fence = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for match in _LINK.finditer(line):
            target = match.group(1)
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            out.append(target if anchors else target.split("#", 1)[0])
    return out


def _slugs(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    out, fence = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves(page: Path) -> None:
    missing = [t for t in _relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{_name(page)} links to files that do not exist: {missing}"
    for target in _relative_links(page, anchors=True):
        path, _, anchor = target.partition("#")
        if anchor and path.endswith(".md"):
            assert anchor in _slugs(page.parent / path), f"{_name(page)}: no heading for #{anchor} in {path}"
