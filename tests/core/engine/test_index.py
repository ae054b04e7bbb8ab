"""Neighbour-search backends: ann vs exact, incremental add, saved index trust, memory maps and float16."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from r2router_core import R2Router
from r2router_core.engine.index import ExactIndex, FaissIVFIndex, resolve_index_kind
from r2router_core.engine.predictors.knn import KNNPredictor
from r2router_core.errors import ConfigError
from tests.core.conftest import build_data

AGREEMENT = 0.97  # share of decisions equal to exact search on clustered data, default nprobe


def clustered(n: int, d: int = 32, n_clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Seeded embeddings around random centres (the structure real prompt embeddings have)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, d))
    return (centres[rng.integers(0, n_clusters, n)] + 0.4 * rng.normal(size=(n, d))).astype(np.float32)


def labels_for(X: np.ndarray, n_heads: int = 6, seed: int = 1, missing: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Y = 1 / (1 + np.exp(-(X[:, :n_heads] + 0.3 * rng.normal(size=(X.shape[0], n_heads)))))
    if missing:
        Y[rng.uniform(size=Y.shape) < missing] = np.nan
        Y[:20] = 0.5  # every head keeps observed rows
    return Y


def test_ann_with_every_cell_probed_equals_exact() -> None:
    X, Q = clustered(3000), clustered(200, seed=5)
    Y = labels_for(X, missing=0.2)
    exact = KNNPredictor(20, index="exact").fit(X, Y)
    ann = KNNPredictor(20, index="ann", index_params={"nlist": 16, "nprobe": 16}).fit(X, Y)
    assert isinstance(ann.index_, FaissIVFIndex) and isinstance(exact.index_, ExactIndex)
    np.testing.assert_allclose(ann.predict(Q), exact.predict(Q), rtol=1e-4, atol=1e-6)


def test_ann_decisions_agree_with_exact_on_clustered_data() -> None:
    config, data = build_data(n=4000, d=32, n_models=3, budgets=(100, 200, None), k=30)
    X = clustered(4000)
    data = type(data)(X, data.models, data.budgets, data.quality, data.tokens)
    queries = clustered(500, seed=9)
    exact = R2Router(config.with_options(index="exact"), data)
    ann = R2Router(config.with_options(index="ann", index_params=None), data)
    same = [
        (a.model, a.token_limit) == (b.model, b.token_limit)
        for a, b in zip(exact.route_batch(queries), ann.route_batch(queries), strict=True)
    ]
    assert np.mean(same) >= AGREEMENT


@pytest.mark.parametrize("index", ["exact", "ann"])
def test_add_equals_refit_on_the_concatenated_data(index: str) -> None:
    X, Q = clustered(2000), clustered(100, seed=3)
    Y = labels_for(X, missing=0.1)
    params = {"nlist": 8, "nprobe": 8} if index == "ann" else None  # every cell probed: ann is exact here
    added = KNNPredictor(15, index=index, index_params=params).fit(X[:1500], Y[:1500])
    added.add(X[1500:1800], Y[1500:1800])
    added.add(X[1800:], Y[1800:])
    refit = KNNPredictor(15, index=index, index_params=params).fit(X, Y)
    assert added.n_samples_fit_ == 2000
    np.testing.assert_allclose(added.predict(Q), refit.predict(Q), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(added.predict(Q[:1]), refit.predict(Q[:1]), rtol=1e-4, atol=1e-6)


def test_add_regroups_heads_when_new_rows_split_a_group() -> None:
    X, Q = clustered(600), clustered(30, seed=4)
    Y = labels_for(X)
    new = Y[500:].copy()
    new[::3, 2] = np.nan  # head 2 now misses rows the others have
    added = KNNPredictor(10, index="exact").fit(X[:500], Y[:500]).add(X[500:], new)
    refit = KNNPredictor(10, index="exact").fit(X, np.concatenate([Y[:500], new]))
    assert len(added.groups_) == len(refit.groups_) == 2
    np.testing.assert_allclose(added.predict(Q), refit.predict(Q), rtol=1e-5)


def test_auto_switches_at_the_documented_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import r2router_core.engine.index as index_module

    monkeypatch.setattr(index_module, "AUTO_ANN_MIN_ROWS", 100)
    assert resolve_index_kind("auto", 99) == "exact" and resolve_index_kind("auto", 100) == "ann"
    with pytest.raises(ConfigError, match="index must be one of"):
        resolve_index_kind("hnsw", 10)
    with pytest.raises(ConfigError, match="unknown index_params"):
        KNNPredictor(3, index="ann", index_params={"efSearch": 3}).fit(np.ones((5, 2)), np.ones((5, 1)))


def _ann_checkpoint(tmp_path: Path) -> tuple[Path, R2Router, np.ndarray]:
    config, data = build_data(n=2000, d=16, k=10, index="ann", index_params={"nlist": 8, "nprobe": 8})
    data = type(data)(clustered(2000, d=16), data.models, data.budgets, data.quality, data.tokens)
    router = R2Router(config, data)
    return router.save(tmp_path / "ckpt"), router, clustered(200, d=16, seed=7)


def _decisions(router: R2Router, queries: np.ndarray) -> list[tuple[str, int | None]]:
    return [(d.model, d.token_limit) for d in router.route_batch(queries)]


def test_a_saved_index_is_reused_when_it_matches(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path, router, queries = _ann_checkpoint(tmp_path)
    assert (path / "index" / "index.faiss").is_file() and (path / "index" / "index.json").is_file()
    with caplog.at_level(logging.INFO, logger="r2router_core.engine.index"):
        loaded = R2Router.from_pretrained(path)
    assert "rebuilding" not in caplog.text
    assert isinstance(loaded._predictor.index_, FaissIVFIndex) and loaded._predictor.index_._path is not None
    assert _decisions(loaded, queries) == _decisions(router, queries)


@pytest.mark.parametrize("tamper", ["embeddings", "index", "missing"])
def test_a_stale_or_foreign_index_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture, tamper: str) -> None:
    path, _, queries = _ann_checkpoint(tmp_path)
    emb_file = path / "training_data" / "embeddings.npy"
    if tamper == "embeddings":  # other embeddings of the same shape: the saved index is stale
        X = np.load(emb_file)
        np.save(emb_file, X[::-1].copy())
    elif tamper == "index":
        (path / "index" / "index.faiss").write_bytes(b"not a faiss index")
    else:
        (path / "index" / "index.json").unlink()
    with caplog.at_level(logging.INFO, logger="r2router_core.engine.index"):
        loaded = R2Router.from_pretrained(path)
    assert "rebuilding the neighbour index" in caplog.text
    exact = R2Router.from_pretrained(path, index="exact")
    assert _decisions(loaded, queries) == _decisions(exact, queries)


def test_checkpoint_embeddings_are_memory_mapped_and_float16_halves_them(tmp_path: Path) -> None:
    config, data = build_data(n=300, d=16, k=7)
    router = R2Router(config, data)
    full = router.save(tmp_path / "f32")
    half = router.save(tmp_path / "f16", embedding_dtype="float16")
    size = lambda p: (p / "training_data" / "embeddings.npy").stat().st_size  # noqa: E731
    assert size(half) - 128 == (size(full) - 128) // 2  # .npy header of 128 bytes, then the data
    loaded = R2Router.from_pretrained(half)
    assert isinstance(loaded.training_data.embeddings, np.memmap)
    assert loaded.training_data.embeddings.dtype == np.float16
    rounded = type(data)(
        data.embeddings.astype(np.float16).astype(np.float32), data.models, data.budgets, data.quality, data.tokens
    )  # float16 rounds the embeddings: compare with the rounded ones
    queries = np.random.default_rng(3).normal(size=(50, 16)).astype(np.float32)
    a, b = R2Router(config, rounded).predict(queries).quality, loaded.predict(queries).quality
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_exact_search_on_a_large_memory_map_reads_blocks_not_a_copy(tmp_path: Path) -> None:
    X = clustered(5000, d=16)
    np.save(tmp_path / "x.npy", X.astype(np.float16))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    Y = labels_for(X)
    in_place = KNNPredictor(12, index="exact").fit(mapped, Y)
    in_place.index_ = ExactIndex(mapped, max_copy_bytes=0)  # force the block path at this small size
    assert in_place.index_._base is mapped
    reference = KNNPredictor(12, index="exact").fit(np.asarray(mapped, dtype=np.float32), Y)
    Q = clustered(40, d=16, seed=2)
    np.testing.assert_allclose(in_place.predict(Q), reference.predict(Q), rtol=1e-4)
    np.testing.assert_allclose(in_place.predict(Q[:1]), reference.predict(Q[:1]), rtol=1e-4)


def test_router_config_carries_the_index_settings_through_json() -> None:
    config, _ = build_data(n=10, d=4, index="ann", index_params={"nprobe": 4})
    assert type(config).from_dict(config.to_dict()) == config
    default, _ = build_data(n=10, d=4)
    assert "index" not in default.to_dict() and default.index == "auto"  # old readers still open it
    with pytest.raises(ConfigError, match="index must be one of"):
        default.with_options(index="flat")
    with pytest.raises(ConfigError, match="nprobe must be an int >= 1"):
        default.with_options(index_params={"nprobe": 0})
