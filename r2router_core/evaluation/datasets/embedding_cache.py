"""Embedding a dataset's prompts once: an on-disk cache keyed by (embedder id, text hash).

Layout: ``<cache_dir>/<embedder folder>/shard-*.npz``, one folder per embedder
(its id made file-safe, plus a hash of the id and the dimension), each shard
holding ``hashes`` (K,) (sha256 hex of the UTF-8 text) and ``vectors`` (K, D)
float32. Shards are written to a temporary name and renamed, so an interrupted
run loses at most the chunk in flight and concurrent runs never see half a
file. Arrays only, no pickles.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders.base import Embedder, check_embeddings, check_texts
from r2router_core.errors import ConfigError, EmbeddingError
from r2router_core.evaluation.datasets.fetch import default_cache_dir
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = ["embed_dataset", "embedding_cache_dir"]

logger = logging.getLogger(__name__)

_SHARD_TEXTS = 1024  # texts per shard written while embedding


def embedding_cache_dir(embedder: Embedder, cache_dir: str | Path | None = None) -> Path:
    """The folder holding one embedder's cached vectors.

    Args:
        embedder: The embedder (its ``id`` and ``dim`` name the folder).
        cache_dir: The cache root; default ``~/.cache/r2router/embeddings``.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "embeddings"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder.id).strip("._")[:80] or "embedder"
    digest = hashlib.sha256(embedder.id.encode("utf-8")).hexdigest()[:10]
    return root / f"{safe}-{digest}-{embedder.dim}d"


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_shards(folder: Path, dim: int) -> dict[str, NDArray[np.float32]]:
    cached: dict[str, NDArray[np.float32]] = {}
    for shard in sorted(folder.glob("shard-*.npz")):
        try:
            with np.load(shard, allow_pickle=False) as data:
                hashes, vectors = data["hashes"], data["vectors"]
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring unreadable embedding cache shard %s (%s)", shard, exc)
            continue
        if vectors.ndim != 2 or vectors.shape != (len(hashes), dim):
            logger.warning(
                "ignoring embedding cache shard %s: shape %s, expected (%d, %d)", shard, vectors.shape, len(hashes), dim
            )
            continue
        cached.update(zip((h.decode("ascii") for h in hashes), vectors.astype(np.float32), strict=True))
    return cached


def _write_shard(folder: Path, hashes: list[str], vectors: NDArray[np.float32]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"shard-{uuid.uuid4().hex}"
    tmp = folder / f".{name}.tmp.npz"
    np.savez(tmp, hashes=np.array([h.encode("ascii") for h in hashes], dtype="S64"), vectors=vectors)
    os.replace(tmp, folder / f"{name}.npz")


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress_bar(total: int, enabled: bool, description: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        logger.info("install tqdm (pip install 'r2router[eval]') for a progress bar")
        return None
    return tqdm(total=total, desc=description, unit="text")


def _embed_missing(
    embedder: Embedder, texts: list[str], folder: Path, batch_size: int, progress: bool
) -> dict[str, NDArray[np.float32]]:
    """Embed ``texts`` in batches, writing a shard every :data:`_SHARD_TEXTS` texts (or every batch, if larger)."""
    fresh: dict[str, NDArray[np.float32]] = {}
    bar = _progress_bar(len(texts), progress, f"embedding with {embedder.id}")
    try:
        for chunk in _chunks(texts, max(_SHARD_TEXTS, batch_size)):
            rows = []
            for batch in _chunks(chunk, batch_size):
                out = check_embeddings(embedder.embed(batch), embedder.dim, what=f"embeddings from {embedder.id}")
                if out.shape[0] != len(batch):
                    raise EmbeddingError(f"embedder {embedder.id} returned {out.shape[0]} rows for {len(batch)} texts")
                rows.append(out)
                if bar is not None:
                    bar.update(len(batch))
            vectors = np.concatenate(rows).astype(np.float32, copy=False)
            hashes = [_text_hash(t) for t in chunk]
            _write_shard(folder, hashes, vectors)
            fresh.update(zip(hashes, vectors, strict=True))
    finally:
        if bar is not None:
            bar.close()
    return fresh


def embed_dataset(
    dataset: RoutingDataset | Sequence[str],
    embedder: Embedder,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> NDArray[np.float32]:
    """Embed a dataset's prompts, reusing every vector already cached on disk.

    Only texts whose (embedder id, sha256) pair is not in the cache are sent to
    ``embedder``; a second run over the same prompts embeds nothing.

    Args:
        dataset: A :class:`RoutingDataset` (its prompts are embedded) or the texts.
        embedder: Any :class:`~r2router_core.embedders.Embedder`.
        cache_dir: The cache root; default ``~/.cache/r2router/embeddings``
            (``$R2ROUTER_CACHE_DIR`` moves it).
        batch_size: Texts per ``embedder.embed`` call (an engine that starts workers per call, such as
            ``r2router_integrations.ray.RayEmbedder``, wants them all in one).
        progress: Show a tqdm progress bar (if tqdm is installed).

    Returns:
        float32 array of shape (N, D), row i the embedding of prompt i.

    Raises:
        ConfigError: ``batch_size`` < 1.
        InputError: An empty prompt.
        EmbeddingError: The embedder returned NaN/inf, zero rows or the wrong shape.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    texts = check_texts(dataset.prompts if isinstance(dataset, RoutingDataset) else dataset)
    folder = embedding_cache_dir(embedder, cache_dir)
    cached = _read_shards(folder, embedder.dim)
    hashes = [_text_hash(t) for t in texts]
    missing = list(dict.fromkeys(t for t, h in zip(texts, hashes, strict=True) if h not in cached))
    logger.info(
        "%s: %d of %d prompts cached, embedding %d", embedder.id, len(texts) - len(missing), len(texts), len(missing)
    )
    if missing:
        cached.update(_embed_missing(embedder, missing, folder, batch_size, progress))
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([cached[h] for h in hashes]).astype(np.float32, copy=False)
