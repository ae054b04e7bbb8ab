"""Embedders: the protocol, caches, sentence-transformers models, the offline default and its faster backends.

``load_embedder(spec)`` turns an id into an embedder. The ids (each recorded in
checkpoints, so a router refuses an embedder of another id, backend included):

=====================================================  =====  ==========================================  ============
id                                                     dim    what runs                                   extra
=====================================================  =====  ==========================================  ============
``sentence-transformers/all-MiniLM-L6-v2``             384    MiniLM in PyTorch (the model card's)        embed
  (aliases ``minilm``, ``default``, ``all-MiniLM-L6-v2``)
``sentence-transformers/all-MiniLM-L6-v2@onnx``        384    MiniLM in ONNX Runtime, float32 (the CLI's  embed
                                                              default for new routers)
``sentence-transformers/all-MiniLM-L6-v2@onnx-int8``   384    MiniLM in ONNX Runtime, int8 weights        embed
``sentence-transformers/all-MiniLM-L6-v2@model2vec-N`` N      static model2vec table distilled from       embed-static
                                                              MiniLM, PCA to N dims (N = 256 tested)
``r2router-hash-embedder-<dim>``                       dim    the weightless test double                  (none)
any other string                                       model  a sentence-transformers model id or path    embed
=====================================================  =====  ==========================================  ============

``minilm@onnx`` etc. are accepted as aliases (the recorded id is always the
long one), and ``<local folder>@onnx`` / ``@onnx-int8`` / ``@model2vec-N``
converts a local sentence-transformers folder. The ``@`` backends are built
offline from the packaged weights on first use (ONNX export: seconds;
model2vec distillation: minutes) and cached under ``~/.cache/r2router/models``
(``$R2ROUTER_CACHE_DIR/models``).

:data:`TRAINING_DEFAULT` is the embedder the command line trains new routers with:
MiniLM in ONNX Runtime, which routes exactly like the PyTorch backend on both real
data sets and embeds several times faster, with no torch at run time (measured in
docs/embedders-speed.md). Python's ``default_embedder()`` stays the card's PyTorch
MiniLM, whose id the card's checkpoints record.
"""

from __future__ import annotations

import re
from pathlib import Path

from r2router_core.embedders.base import (
    CachedEmbedder,
    CallableEmbedder,
    Embedder,
    TokenCounter,
    check_embeddings,
    check_texts,
    token_counter,
)
from r2router_core.embedders.sentence_transformer import (
    MINILM_ID,
    QWEN3_EMBEDDING_ID,
    SentenceTransformerEmbedder,
    default_embedder,
)
from r2router_core.errors import ConfigError

__all__ = [
    "BACKENDS",
    "MINILM_ID",
    "QWEN3_EMBEDDING_ID",
    "TRAINING_DEFAULT",
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "SentenceTransformerEmbedder",
    "TokenCounter",
    "check_embeddings",
    "check_texts",
    "default_embedder",
    "load_embedder",
    "token_counter",
]

_MINILM_ALIASES = {"minilm", "default", MINILM_ID, "all-MiniLM-L6-v2"}

TRAINING_DEFAULT = "minilm@onnx"
"""The embedder spec ``r2router train``/``eval``/``calibrate``/``collect export`` use unless ``--embedder`` says."""

BACKENDS = ("onnx", "onnx-int8", "model2vec-<N>")
"""The ``@backend`` suffixes :func:`load_embedder` understands."""

_BACKEND = re.compile(r"(.+)@(onnx|onnx-int8|model2vec-(\d+))")


def _backend_embedder(base: str, backend: str, dims: str | None) -> Embedder:
    """``<MiniLM alias or local folder>@<backend>`` -> the ONNX or static embedder, built on first use."""
    source = None if base in _MINILM_ALIASES else base
    if source is not None and not Path(source).expanduser().is_dir():
        raise ConfigError(
            f"the @{backend} backends convert the offline MiniLM (e.g. 'minilm@{backend}') or a local "
            f"sentence-transformers folder; {base!r} is neither"
        )
    if dims is not None:
        from r2router_core.embedders.static import static_embedder

        return static_embedder(pca_dims=int(dims), source=source)
    from r2router_core.embedders.onnx import onnx_embedder

    return onnx_embedder(quantized=backend == "onnx-int8", source=source)


def _hash_embedder(spec: str) -> Embedder:
    """``"r2router-hash-embedder-<dim>"`` -> the test double :class:`r2router_core.testing.HashEmbedder`."""
    from r2router_core.embedders.hashing import HASH_EMBEDDER_ID, HashEmbedder

    dim = spec.removeprefix(f"{HASH_EMBEDDER_ID}-")
    if not dim.isdigit() or int(dim) < 1:
        raise ConfigError(f"a hash-embedder id is '{HASH_EMBEDDER_ID}-<dim>' with a positive int dim, got {spec!r}")
    return HashEmbedder(int(dim))


def load_embedder(spec: str, *, cache_size: int = 10_000) -> Embedder:
    """Build an embedder from an id or path, behind an LRU cache.

    Args:
        spec: ``"minilm"``/``"default"``/the MiniLM id for the offline default;
            ``"r2router-hash-embedder-<dim>"`` for the test double
            :class:`r2router_core.testing.HashEmbedder`; ``"<MiniLM id or alias>@onnx"``,
            ``"...@onnx-int8"`` or ``"...@model2vec-<N>"`` for a faster backend of
            the offline MiniLM (see the module's table); else a sentence-transformers
            model name or local directory.
        cache_size: Texts kept in the in-memory cache (0 disables it).

    Raises:
        ConfigError: ``spec`` is not a non-empty string, a malformed hash-embedder id, or
            an ``@backend`` of something that is neither MiniLM nor a local folder.
        MissingDependencyError: The backend's extra (``embed-onnx``, ``embed-static``) is missing.

    A model id that can be neither read from the local Hugging Face cache nor
    downloaded fails on first use, after one Hub request at most (none offline),
    with a ``ResourceUnavailableError`` listing the valid specs.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"an embedder spec must be a model id or path, got {spec!r}")
    base: Embedder
    backend = _BACKEND.fullmatch(spec)
    if backend is not None:
        base = _backend_embedder(*backend.groups())
    elif spec in _MINILM_ALIASES:
        base = default_embedder()
    elif spec.startswith("r2router-hash-embedder-"):
        base = _hash_embedder(spec)
    else:
        base = SentenceTransformerEmbedder(spec)
    return CachedEmbedder(base, maxsize=cache_size) if cache_size else base
