"""fetch_*: local copies first, downloads through a fake opener, a clear error offline. No real network."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from r2router_core.errors import DataError, ResourceUnavailableError
from r2router_core.evaluation.datasets import fetch as fetch_module
from r2router_core.evaluation.datasets import (
    fetch_alpacaeval_length,
    fetch_routerarena,
    load_alpacaeval_length,
    load_routerarena,
    routerarena_dir,
)


def _offline(url: str, timeout: float = 0) -> Any:
    raise OSError(f"network is unreachable: {url}")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL opened is recorded, then the open fails."""
    opened: list[str] = []

    def opener(url: str, timeout: float = 0) -> Any:
        opened.append(url)
        return _offline(url)

    monkeypatch.setattr(fetch_module, "_urlopen", opener)
    return opened


@pytest.fixture
def empty_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$R2ROUTER_DATA_DIR and the cache root point at empty directories."""
    monkeypatch.setenv("R2ROUTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("R2ROUTER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "data").mkdir()
    return tmp_path


def _serve(files: dict[str, bytes], opened: list[str]) -> Callable[..., Any]:
    def opener(url: str, timeout: float = 0) -> io.BytesIO:
        opened.append(url)
        for suffix, content in files.items():
            if url.endswith(suffix):
                return io.BytesIO(content)
        raise OSError(f"404 {url}")

    return opener


def test_data_dir_variable_is_used_without_network(
    shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    monkeypatch.setenv("R2ROUTER_DATA_DIR", str(shared_data_dir))
    assert fetch_routerarena() == shared_data_dir / "routerarena_sub10"
    assert fetch_alpacaeval_length() == shared_data_dir / "alpacaeval_length"
    assert load_routerarena().n_queries == 809
    assert load_alpacaeval_length(tokenizer="regex").n_queries == 805
    assert no_network == []


@pytest.mark.parametrize(
    ("fetch", "folder", "home"),
    [
        (fetch_routerarena, "routerarena_sub10", "github.com/RouteWorks/RouterArena"),
        (fetch_alpacaeval_length, "alpacaeval_length", "github.com/tatsu-lab/alpaca_eval"),
    ],
)
def test_offline_without_local_copy_says_where_to_get_the_data(
    empty_places: Path, no_network: list[str], fetch: Callable[..., Path], folder: str, home: str
) -> None:
    with pytest.raises(ResourceUnavailableError) as caught:
        fetch()
    message = str(caught.value)
    assert home in message and "R2ROUTER_DATA_DIR" in message and f"{folder}/" in message
    assert (
        str(empty_places / "data" / folder) in message and str(empty_places / "cache" / "datasets" / folder) in message
    )
    assert len(no_network) == 1 and no_network[0].startswith("https://raw.githubusercontent.com/")
    assert not list((empty_places / "cache").rglob("*.part"))  # no half-written file left behind


def test_loaders_with_no_data_dir_raise_the_same_error_offline(empty_places: Path, no_network: list[str]) -> None:
    with pytest.raises(ResourceUnavailableError, match="RouterArena"):
        load_routerarena()
    with pytest.raises(ResourceUnavailableError, match="AlpacaEval"):
        load_alpacaeval_length(tokenizer="regex")


def test_routerarena_download_into_the_cache_then_cache_hit(
    shared_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("R2ROUTER_DATA_DIR", raising=False)
    source = shared_data_dir / "routerarena_sub10"
    files = {p.name: p.read_bytes() for p in source.iterdir() if p.suffix in (".jsonl", ".json")}
    opened: list[str] = []
    monkeypatch.setattr(fetch_module, "_urlopen", _serve(files, opened))
    folder = fetch_routerarena(tmp_path / "cache")
    assert folder == tmp_path / "cache" / "routerarena_sub10"
    base = "https://raw.githubusercontent.com/RouteWorks/RouterArena/main/"
    assert sorted(opened) == sorted(
        [
            f"{base}cached_results/claude-3-haiku-20240307.jsonl",
            f"{base}cached_results/gemini-2.0-flash-001.jsonl",
            f"{base}model_cost/cost.json",
        ]
    )
    assert load_routerarena(folder).n_queries == 809
    opened.clear()
    assert fetch_routerarena(tmp_path / "cache") == folder and opened == []  # the cache is used


def _annotation(variant: str, instruction: str, output: str, preference: float | None) -> dict[str, Any]:
    return {
        "instruction": instruction,
        "output_1": "reference answer",
        "generator_1": "gpt4_1106_preview",
        "dataset": "helpful_base",
        "output_2": output,
        "generator_2": variant,
        "annotator": "weighted_alpaca_eval_gpt4_turbo",
        "preference": preference,
    }


def test_alpacaeval_download_is_turned_into_outcomes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2ROUTER_DATA_DIR", raising=False)
    files = {}
    for variant in fetch_module.ALPACAEVAL_VARIANTS:
        annotations = [
            _annotation(variant, "Say hi.", f"hi from {variant}", 1.25),
            _annotation(variant, "Count to 3.", "1 2 3", None if variant == "alpaca-7b_verbose" else 2.0),
        ]
        files[f"/{variant}/weighted_alpaca_eval_gpt4_turbo/annotations.json"] = json.dumps(annotations).encode()
    opened: list[str] = []
    monkeypatch.setattr(fetch_module, "_urlopen", _serve(files, opened))
    folder = fetch_alpacaeval_length(tmp_path / "cache", revision="v0.6")
    assert len(opened) == 8 and all("/tatsu-lab/alpaca_eval/v0.6/results/" in u for u in opened)
    rows = [json.loads(line) for line in (folder / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 15  # 16 annotations, one without a preference
    first = rows[0]
    assert (first["model"], first["length_mode"], first["quality"]) == ("gpt-3.5-turbo-1106", "default", 0.25)
    concise = next(r for r in rows if r["generator"] == "claude-2.1_concise")
    assert (concise["model"], concise["length_mode"], concise["output"]) == (
        "claude-2.1",
        "concise",
        "hi from claude-2.1_concise",
    )
    ds = load_alpacaeval_length(folder, tokenizer="regex")
    assert ds.n_queries == 2 and ds.model_names == ("gpt-3.5-turbo-1106", "claude-2.1", "alpaca-7b")
    assert not list(folder.glob("tmp*"))  # the raw annotations are not kept


def test_explicit_data_dir_without_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no RouterArena cached results"):
        routerarena_dir(tmp_path)
    with pytest.raises(DataError, match=r"holds no AlpacaEval length outcomes \(outcomes\.jsonl\)"):
        load_alpacaeval_length(tmp_path)
