"""Where r2router caches what it downloads or builds (datasets, exported embedders, embeddings)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_DIR_ENV", "default_cache_dir"]

CACHE_DIR_ENV = "R2ROUTER_CACHE_DIR"
"""The environment variable that names the cache root."""


def default_cache_dir() -> Path:
    """r2router's cache root: ``$R2ROUTER_CACHE_DIR``, else ``$XDG_CACHE_HOME/r2router``, else ``~/.cache/r2router``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "r2router"
