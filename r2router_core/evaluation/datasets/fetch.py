"""Find the public routing data locally, or download it into a cache directory.

Lookup order for a dataset folder (``routerarena_sub10`` or ``alpacaeval_length``):

1. ``$R2ROUTER_DATA_DIR/<folder>`` (tests and CI point it at ``../shared/data``);
2. ``<cache_dir>/<folder>``, default ``~/.cache/r2router/datasets/<folder>``
   (``$R2ROUTER_CACHE_DIR`` or ``$XDG_CACHE_HOME`` move the cache root);
3. a download of the public files from GitHub into ``<cache_dir>/<folder>``.

Offline with no local copy, :class:`~r2router_core.errors.ResourceUnavailableError`
says where to get the files and which variable to set.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r2router_core.cache_dir import CACHE_DIR_ENV, default_cache_dir
from r2router_core.errors import DataError, ResourceUnavailableError

__all__ = [
    "ALPACAEVAL_FOLDER",
    "ALPACAEVAL_VARIANTS",
    "CACHE_DIR_ENV",
    "DATA_DIR_ENV",
    "ROUTERARENA_FOLDER",
    "ROUTERARENA_MODELS",
    "alpacaeval_dir",
    "default_cache_dir",
    "fetch_alpacaeval_length",
    "fetch_routerarena",
    "routerarena_dir",
]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "R2ROUTER_DATA_DIR"
"""Environment variable naming a directory that holds the dataset folders."""


ROUTERARENA_FOLDER = "routerarena_sub10"
ROUTERARENA_MODELS = ("claude-3-haiku-20240307", "gemini-2.0-flash-001")
"""Models whose RouterArena cached results :func:`fetch_routerarena` downloads."""
_ROUTERARENA_RAW = "https://raw.githubusercontent.com/RouteWorks/RouterArena/{revision}/"

ALPACAEVAL_FOLDER = "alpacaeval_length"
ALPACAEVAL_VARIANTS = (
    "gpt-3.5-turbo-1106",
    "gpt-3.5-turbo-1106_concise",
    "gpt-3.5-turbo-1106_verbose",
    "claude-2.1",
    "claude-2.1_concise",
    "alpaca-7b",
    "alpaca-7b_concise",
    "alpaca-7b_verbose",
)
"""AlpacaEval 2 result folders (``<model>[_<length mode>]``) that make up the length data."""
_ALPACAEVAL_RAW = (
    "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/{revision}/results/{variant}/"
    "weighted_alpaca_eval_gpt4_turbo/annotations.json"
)

_urlopen: Callable[..., Any] = urllib.request.urlopen  # tests replace this to simulate no network


@dataclass(frozen=True)
class _Source:
    folder: str
    title: str
    home: str
    complete: Callable[[Path], bool]


def _routerarena_complete(directory: Path) -> bool:
    return (directory / "cost.json").is_file() and any(directory.glob("*.jsonl"))


def _alpacaeval_complete(directory: Path) -> bool:
    return (directory / "outcomes.jsonl").is_file()


_ROUTERARENA = _Source(
    ROUTERARENA_FOLDER,
    "RouterArena cached results (one <model>.jsonl per model and cost.json)",
    "the files cached_results/<model>.jsonl and model_cost/cost.json of https://github.com/RouteWorks/RouterArena",
    _routerarena_complete,
)
_ALPACAEVAL = _Source(
    ALPACAEVAL_FOLDER,
    "AlpacaEval length outcomes (outcomes.jsonl)",
    "results/<model>[_concise|_verbose]/weighted_alpaca_eval_gpt4_turbo/annotations.json of "
    "https://github.com/tatsu-lab/alpaca_eval (fetch_alpacaeval_length() turns them into outcomes.jsonl)",
    _alpacaeval_complete,
)




def _datasets_cache(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir() / "datasets"


def _local_copy(source: _Source, cache_dir: str | Path | None) -> tuple[Path | None, list[Path]]:
    """The first complete local folder, and every folder looked at."""
    looked: list[Path] = []
    if os.environ.get(DATA_DIR_ENV):
        looked.append(Path(os.environ[DATA_DIR_ENV]) / source.folder)
    looked.append(_datasets_cache(cache_dir) / source.folder)
    for directory in looked:
        if source.complete(directory):
            return directory, looked
    return None, looked


def _download(url: str, dest: Path, *, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` through a temporary file (no half-written files)."""
    part = dest.with_name(dest.name + ".part")
    with _urlopen(url, timeout=timeout) as response, part.open("wb") as out:
        shutil.copyfileobj(response, out)
    part.replace(dest)


def _unavailable(source: _Source, url: str, exc: Exception, looked: list[Path]) -> ResourceUnavailableError:
    where = ", ".join(str(p) for p in looked)
    return ResourceUnavailableError(
        f"the {source.title} are not available: no local copy (looked in {where}) and the download of "
        f"{url} failed ({type(exc).__name__}: {exc}). Get {source.home} on a machine with network access, "
        f"put them in a folder named {source.folder}/ and set {DATA_DIR_ENV} to the folder's parent "
        "(or pass data_dir=... to the loader)"
    )


def fetch_routerarena(cache_dir: str | Path | None = None, *, revision: str = "main") -> Path:
    """The folder of RouterArena's cached results: local if present, else downloaded.

    Downloads ``cached_results/<model>.jsonl`` for :data:`ROUTERARENA_MODELS` and
    ``model_cost/cost.json`` from github.com/RouteWorks/RouterArena (Apache-2.0).

    Args:
        cache_dir: Where downloads go; default ``~/.cache/r2router/datasets``.
        revision: Git branch, tag or commit to download from.

    Returns:
        The directory holding ``<model>.jsonl`` files and ``cost.json``.

    Raises:
        ResourceUnavailableError: No local copy and the download failed.
    """
    found, looked = _local_copy(_ROUTERARENA, cache_dir)
    if found is not None:
        return found
    target = looked[-1]
    base = _ROUTERARENA_RAW.format(revision=revision)
    files = {f"{m}.jsonl": f"{base}cached_results/{m}.jsonl" for m in ROUTERARENA_MODELS}
    files["cost.json"] = f"{base}model_cost/cost.json"
    target.mkdir(parents=True, exist_ok=True)
    for name, url in files.items():
        if (target / name).is_file():
            continue
        logger.info("downloading %s", url)
        try:
            _download(url, target / name)
        except OSError as exc:
            raise _unavailable(_ROUTERARENA, url, exc, looked) from exc
    return target


def fetch_alpacaeval_length(cache_dir: str | Path | None = None, *, revision: str = "main") -> Path:
    """The folder of the AlpacaEval length outcomes: local if present, else downloaded.

    Downloads the weighted GPT-4-turbo annotations of :data:`ALPACAEVAL_VARIANTS`
    from github.com/tatsu-lab/alpaca_eval (Apache-2.0) and writes them as
    ``outcomes.jsonl``: one line per (instruction, model, length mode) with
    ``instruction``, ``dataset``, ``model``, ``length_mode``, ``generator``,
    ``output``, ``preference`` and ``quality = preference - 1``. Annotations
    without a preference are left out.

    Args:
        cache_dir: Where downloads go; default ``~/.cache/r2router/datasets``.
        revision: Git branch, tag or commit to download from.

    Returns:
        The directory holding ``outcomes.jsonl``.

    Raises:
        ResourceUnavailableError: No local copy and the download failed.
    """
    found, looked = _local_copy(_ALPACAEVAL, cache_dir)
    if found is not None:
        return found
    target = looked[-1]
    target.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=target) as tmp:
        for variant in ALPACAEVAL_VARIANTS:
            url = _ALPACAEVAL_RAW.format(revision=revision, variant=variant)
            logger.info("downloading %s", url)
            try:
                _download(url, Path(tmp) / "annotations.json")
            except OSError as exc:
                raise _unavailable(_ALPACAEVAL, url, exc, looked) from exc
            rows.extend(_outcomes(variant, Path(tmp) / "annotations.json"))
    part = target / "outcomes.jsonl.part"
    part.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    part.replace(target / "outcomes.jsonl")
    return target


def _outcomes(variant: str, path: Path) -> list[dict[str, Any]]:
    """Rows of ``outcomes.jsonl`` from one AlpacaEval ``annotations.json``."""
    try:
        annotations = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"the AlpacaEval annotations of {variant} are not valid JSON ({exc.msg})") from exc
    model, _, mode = variant.partition("_")
    rows, skipped = [], 0
    for i, ann in enumerate(annotations):
        if ann.get("generator_2") != variant:
            raise DataError(f"annotation {i} of {variant} judges {ann.get('generator_2')!r}, expected {variant!r}")
        if ann.get("preference") is None:
            skipped += 1
            continue
        preference = float(ann["preference"])
        rows.append(
            {
                "instruction": ann["instruction"],
                "dataset": ann.get("dataset"),
                "model": model,
                "length_mode": mode or "default",
                "generator": variant,
                "output": ann["output_2"],
                "preference": preference,
                "quality": preference - 1.0,
            }
        )
    if skipped:
        logger.info("%s: left out %d annotations without a preference", variant, skipped)
    return rows


def _explicit(source: _Source, data_dir: str | Path) -> Path:
    directory = Path(data_dir)
    for candidate in (directory, directory / source.folder):
        if source.complete(candidate):
            return candidate
    raise DataError(
        f"{directory} holds no {source.title}, and neither does {directory / source.folder}; "
        f"pass the folder holding them, or data_dir=None to use ${DATA_DIR_ENV}, the cache or a download"
    )


def routerarena_dir(data_dir: str | Path | None = None) -> Path:
    """The RouterArena folder: ``data_dir`` or its ``routerarena_sub10/``; ``None``: :func:`fetch_routerarena`."""
    return fetch_routerarena() if data_dir is None else _explicit(_ROUTERARENA, data_dir)


def alpacaeval_dir(data_dir: str | Path | None = None) -> Path:
    """The AlpacaEval folder: ``data_dir`` or its ``alpacaeval_length/``; ``None``: :func:`fetch_alpacaeval_length`."""
    return fetch_alpacaeval_length() if data_dir is None else _explicit(_ALPACAEVAL, data_dir)
