"""Where converted embedder models live: one folder per (embedder id, source weights), built once.

Layout: ``<root>/<file-safe id>-<hash>/`` with the converted files and a
``meta.json`` naming the id, the source and the library versions. ``<root>`` is
``$R2ROUTER_CACHE_DIR/models``, else ``~/.cache/r2router/models`` (the same
root as the dataset and embedding caches). A folder is built in a temporary
sibling and renamed into place, so a crash never leaves half a model and two
processes building the same model at once both end with a complete one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

__all__ = ["converted_model_dir", "default_models_dir", "source_fingerprint"]

logger = logging.getLogger(__name__)

META_FILE = "meta.json"


def default_models_dir() -> Path:
    """``$R2ROUTER_CACHE_DIR/models``, else ``$XDG_CACHE_HOME/r2router/models``, else ``~/.cache/r2router/models``."""
    from r2router_core.cache_dir import default_cache_dir

    return default_cache_dir() / "models"


def source_fingerprint(source: Path) -> str:
    """A short hash of a model folder's file names and sizes (cheap; changes when the weights do)."""
    parts = sorted(f"{p.relative_to(source)}:{p.stat().st_size}" for p in source.rglob("*") if p.is_file())
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:10]


def _versions(packages: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def converted_model_dir(
    embedder_id: str,
    source: Path,
    build: Callable[[Path], object],
    *,
    cache_dir: str | Path | None = None,
    packages: tuple[str, ...] = (),
) -> Path:
    """The folder of a converted model, building it with ``build(folder)`` on first use.

    Args:
        embedder_id: The embedder id the folder serves (part of its name).
        source: The source model folder (its fingerprint is part of the name).
        build: Writes the converted model into the (empty, temporary) folder it is given.
        cache_dir: The root; default :func:`default_models_dir`.
        packages: Distributions whose versions are recorded in ``meta.json``.
    """
    root = Path(cache_dir) if cache_dir is not None else default_models_dir()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id).strip("._")[:80] or "model"
    digest = hashlib.sha256(f"{embedder_id}\n{source_fingerprint(source)}".encode()).hexdigest()[:10]
    folder = root / f"{safe}-{digest}"
    if (folder / META_FILE).is_file():
        return folder
    tmp = root / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    logger.info("building %s from %s into %s (once; cached afterwards)", embedder_id, source, folder)
    try:
        build(tmp)
        meta = {"embedder_id": embedder_id, "source": str(source), "versions": _versions(packages)}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first: keep its folder
            if not (folder / META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built %s in %.1f s", embedder_id, time.perf_counter() - start)
    return folder
