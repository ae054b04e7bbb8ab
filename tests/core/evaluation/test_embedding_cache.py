"""embed_dataset: a second run embeds nothing, new texts only embed the new ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from r2router_core.embedders import CallableEmbedder
from r2router_core.errors import ConfigError, EmbeddingError, EmptyPromptError
from r2router_core.evaluation.datasets import embed_dataset, embedding_cache_dir, make_synthetic_pool
from r2router_core.testing import HashEmbedder


class CountingEmbedder:
    """A HashEmbedder that records every text it is asked to embed."""

    def __init__(self, dim: int = 8, *, id: str = "counting/embedder") -> None:
        self._inner = HashEmbedder(dim=dim)
        self.id = id
        self.dim = dim
        self.seen: list[str] = []
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.seen.extend(texts)
        return self._inner.embed(texts)


def test_second_run_embeds_nothing_and_returns_the_same_vectors(tmp_path: Path) -> None:
    ds, _ = make_synthetic_pool(40, seed=1)
    first = CountingEmbedder()
    a = embed_dataset(ds, first, cache_dir=tmp_path, batch_size=16)
    assert sorted(first.seen) == sorted(set(ds.prompts)) and first.calls == 3  # 40 texts in batches of 16
    np.testing.assert_array_equal(a, HashEmbedder(dim=8).embed(ds.prompts))  # row i is prompt i
    assert a.dtype == np.float32 and a.shape == (40, 8)
    second = CountingEmbedder()
    b = embed_dataset(ds, second, cache_dir=tmp_path)
    assert second.seen == [] and second.calls == 0
    np.testing.assert_array_equal(a, b)


def test_only_new_texts_are_embedded_and_duplicates_once(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    embed_dataset(["alpha beta", "gamma"], embedder, cache_dir=tmp_path)
    embedder.seen.clear()
    out = embed_dataset(["gamma", "delta", "delta", "alpha beta", "epsilon"], embedder, cache_dir=tmp_path)
    assert embedder.seen == ["delta", "epsilon"]
    np.testing.assert_array_equal(out[1], out[2])
    np.testing.assert_array_equal(out, HashEmbedder(dim=8).embed(["gamma", "delta", "delta", "alpha beta", "epsilon"]))


def test_cache_is_keyed_by_embedder_id(tmp_path: Path) -> None:
    one, other = CountingEmbedder(id="model/one"), CountingEmbedder(id="model/two")
    embed_dataset(["same text"], one, cache_dir=tmp_path)
    embed_dataset(["same text"], other, cache_dir=tmp_path)
    assert other.seen == ["same text"]
    assert embedding_cache_dir(one, tmp_path) != embedding_cache_dir(other, tmp_path)
    assert embedding_cache_dir(one, tmp_path).parent == tmp_path
    assert all(p.suffix == ".npz" for p in embedding_cache_dir(one, tmp_path).iterdir())  # arrays, no pickles


def test_default_cache_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R2ROUTER_CACHE_DIR", str(tmp_path / "root"))
    embedder = CountingEmbedder()
    embed_dataset(["x y"], embedder)
    assert embedding_cache_dir(embedder).parent == tmp_path / "root" / "embeddings"
    assert list(embedding_cache_dir(embedder).glob("shard-*.npz"))


def test_unreadable_shard_is_ignored_and_rebuilt(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    folder = embedding_cache_dir(embedder, tmp_path)
    folder.mkdir(parents=True)
    (folder / "shard-broken.npz").write_bytes(b"not a zip file")
    out = embed_dataset(["one", "two"], embedder, cache_dir=tmp_path)
    assert embedder.seen == ["one", "two"] and out.shape == (2, 8)


def test_bad_embedder_output_and_bad_options_are_refused(tmp_path: Path) -> None:
    wrong_rows = CallableEmbedder(lambda texts: np.ones((1, 4)), id="wrong-rows", dim=4)
    with pytest.raises(EmbeddingError, match="1 rows for 2 texts"):
        embed_dataset(["a", "b"], wrong_rows, cache_dir=tmp_path)
    assert not list(tmp_path.rglob("shard-*.npz"))  # nothing cached from a failed call
    with pytest.raises(EmptyPromptError):
        embed_dataset(["a", "  "], CountingEmbedder(), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="batch_size"):
        embed_dataset(["a"], CountingEmbedder(), cache_dir=tmp_path, batch_size=0)
