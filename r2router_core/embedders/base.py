"""The embedder protocol, input checks and an in-memory LRU cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import ConfigError, EmbeddingError, EmptyPromptError, InputError

__all__ = [
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "TokenCounter",
    "check_embeddings",
    "check_texts",
    "count_with_tokenizer",
    "token_counter",
]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into fixed-size vectors.

    Attributes:
        id: Stable identifier recorded in checkpoints (e.g. a Hugging Face model id).
        dim: Output dimension D.
    """

    @property
    def id(self) -> str:
        """Stable identifier recorded in checkpoints."""
        ...

    @property
    def dim(self) -> int:
        """Output dimension D."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns float32 of shape (len(texts), dim)."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """Optional for an embedder: count each text's tokens with its own tokenizer.

    The router prices a prompt's input side with it (:meth:`R2Router.count_tokens`);
    an embedder without it is priced with the fallback estimate
    (:func:`r2router_core.engine.tokens.estimate_tokens`). Counts are whole texts: no
    truncation at the embedder's window, no special tokens.
    """

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text."""
        ...


def token_counter(embedder: object) -> Callable[[Sequence[str]], list[int]] | None:
    """The embedder's ``count_tokens`` if it has one (and, for a wrapper, its wrapped embedder has one)."""
    if isinstance(embedder, CachedEmbedder | CallableEmbedder):
        return embedder.count_tokens if embedder.has_token_counter else None
    count = getattr(embedder, "count_tokens", None)
    return count if callable(count) else None


def count_with_tokenizer(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Token counts of ``texts`` with a ``tokenizers.Tokenizer``, no special tokens.

    The tokenizer should not truncate (see :func:`counting_tokenizer`).
    """
    if not texts:
        return []
    return [len(e.ids) for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def counting_tokenizer(tokenizer: Any) -> Any:
    """A copy of a ``tokenizers.Tokenizer`` that neither truncates nor pads (the embedder's own may do both)."""
    from tokenizers import Tokenizer  # installed with every embedder that has a tokenizer

    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def check_texts(texts: Sequence[str]) -> list[str]:
    """Reject non-strings and empty or whitespace-only prompts, naming the position."""
    if isinstance(texts, str):
        raise InputError("expected a sequence of prompts, got a single str; wrap it in a list")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InputError(f"prompt {i} is a {type(text).__name__}, expected str")
        if not text.strip():
            raise EmptyPromptError(f"prompt {i} is empty or whitespace only; pass the text to route")
    return out


def check_embeddings(array: Any, dim: int | None, *, what: str = "embeddings") -> NDArray[np.float32]:
    """Validate a (n, D) batch: numeric, finite, non-zero rows, expected D.

    Raises:
        EmbeddingError: naming the problem and the expected shape.
    """
    try:
        arr = np.asarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EmbeddingError(f"{what} must be numeric arrays, got {type(array).__name__} ({exc})") from exc
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise EmbeddingError(f"{what} must have shape (n, {dim or 'D'}) with n >= 1, got {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise EmbeddingError(
            f"{what} have dimension {arr.shape[1]}, but this router was trained on {dim}-dimensional "
            "embeddings; embed with the router's embedder (see router.config.embedder)"
        )
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise EmbeddingError(f"{what} row {int(np.flatnonzero(~finite)[0])} holds NaN or inf values")
    zero = ~arr.any(axis=1)
    if zero.any():
        raise EmbeddingError(f"{what} row {int(np.flatnonzero(zero)[0])} is all zeros; cosine distance is undefined")
    return arr


def _check_id_and_dim(id: Any, dim: Any, owner: str) -> None:
    if not isinstance(id, str) or not id.strip():
        raise ConfigError(f"{owner} id must be a non-empty string, got {id!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"{owner} dim must be a positive int, got {dim!r}")


class CallableEmbedder:
    """Wrap a function ``texts -> (n, D) array`` as an :class:`Embedder`.

    Args:
        fn: The embedding function.
        id: Embedder id recorded in checkpoints.
        dim: Output dimension; checked on every call.
        count_tokens: Optional ``texts -> token counts``, the embedder's tokenizer (see
            :class:`TokenCounter`); without it the router estimates prompt lengths.

    Raises:
        ConfigError: ``fn`` (or ``count_tokens``) is not callable, or ``id``/``dim`` are invalid.
    """

    def __init__(
        self,
        fn: Callable[[list[str]], Any],
        *,
        id: str,
        dim: int,
        count_tokens: Callable[[list[str]], Sequence[int]] | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableEmbedder fn must be callable (texts -> (n, dim) array), got {fn!r}")
        if count_tokens is not None and not callable(count_tokens):
            raise ConfigError(f"CallableEmbedder count_tokens must be callable (texts -> counts), got {count_tokens!r}")
        _check_id_and_dim(id, dim, "CallableEmbedder")
        self._fn = fn
        self._count = count_tokens
        self.id = id
        self.dim = dim

    @property
    def has_token_counter(self) -> bool:
        """Whether ``count_tokens`` was given."""
        return self._count is not None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts from the given ``count_tokens``.

        Raises:
            ConfigError: None was given (check :attr:`has_token_counter`).
        """
        if self._count is None:
            raise ConfigError(f"embedder {self.id} has no count_tokens; pass CallableEmbedder(..., count_tokens=fn)")
        counts = [int(c) for c in self._count(list(texts))]
        if len(counts) != len(texts) or min(counts, default=0) < 0:
            raise EmbeddingError(f"count_tokens of {self.id} must return one count >= 0 per text, got {counts}")
        return counts

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns float32 of shape (len(texts), dim)."""
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        out = check_embeddings(self._fn(texts), self.dim, what=f"embeddings from {self.id}")
        if out.shape[0] != len(texts):
            raise EmbeddingError(f"embedder {self.id} returned {out.shape[0]} rows for {len(texts)} texts")
        return out


class CachedEmbedder:
    """An in-memory LRU cache in front of another embedder, keyed by text.

    Each distinct text not in the cache is embedded once per call (in order of
    first appearance); every other occurrence counts as a hit.

    Args:
        embedder: The embedder to cache.
        maxsize: Number of texts kept (0 keeps none).

    Attributes:
        hits: Texts served from the cache (or repeated within a call).
        misses: Texts sent to the wrapped embedder.
    """

    def __init__(self, embedder: Embedder, maxsize: int = 10_000) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ConfigError(f"CachedEmbedder maxsize must be an int >= 0, got {maxsize!r}")
        self.embedder = embedder
        self.maxsize = maxsize
        self.id = embedder.id
        self.dim = embedder.dim
        self._cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def has_token_counter(self) -> bool:
        """Whether the wrapped embedder counts tokens (:class:`TokenCounter`)."""
        return token_counter(self.embedder) is not None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The wrapped embedder's token counts (not cached: counting is far cheaper than embedding).

        Raises:
            ConfigError: The wrapped embedder has no tokenizer (check :attr:`has_token_counter`).
        """
        count = token_counter(self.embedder)
        if count is None:
            raise ConfigError(f"embedder {self.id} has no count_tokens")
        return count(texts)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts, computing only those not in the cache; returns float32 (len(texts), dim)."""
        texts = check_texts(texts)
        found: dict[str, NDArray[np.float32]] = {}
        with self._lock:
            for text in dict.fromkeys(texts):
                vec = self._cache.get(text)
                if vec is not None:
                    self._cache.move_to_end(text)
                    found[text] = vec
            todo = [t for t in dict.fromkeys(texts) if t not in found]
            self.hits += len(texts) - len(todo)
            self.misses += len(todo)
        if todo:  # embed outside the lock: other threads keep reading the cache
            fresh = check_embeddings(self.embedder.embed(todo), self.dim, what=f"embeddings from {self.id}")
            if fresh.shape[0] != len(todo):
                raise EmbeddingError(f"embedder {self.id} returned {fresh.shape[0]} rows for {len(todo)} texts")
            found.update(zip(todo, fresh.copy(), strict=True))
            self._store(todo, found)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def _store(self, texts: list[str], vectors: dict[str, NDArray[np.float32]]) -> None:
        if not self.maxsize:
            return
        with self._lock:
            for text in texts:
                self._cache[text] = vectors[text]
                self._cache.move_to_end(text)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
