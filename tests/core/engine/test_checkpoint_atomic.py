"""Checkpoints are saved atomically: a crash mid-save leaves the old router, a re-save replaces it whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.errors import CheckpointError


def _ridge_router(tmp_seed: int = 0) -> R2Router:
    rng = np.random.default_rng(tmp_seed)
    config = RouterConfig(models=(ModelSpec("a", output_price=1.0), ModelSpec("b", output_price=5.0)), budgets=(None,))
    data = TrainingData(
        rng.normal(size=(30, 4)).astype(np.float32), ("a", "b"), (None,), rng.random((30, 2, 1)), np.full((30, 2), 50.0)
    )
    return R2Router(config.with_options(predictor="ridge"), data)


def test_a_crash_mid_save_leaves_the_old_router_loadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import r2router_core.engine.router as router_module

    old = _ridge_router(0)
    target = old.save(tmp_path / "ckpt")
    before = sorted(p.relative_to(target) for p in target.rglob("*"))

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full (injected)")

    monkeypatch.setattr(router_module, "save_predictor", crash)  # after training_data/ and config.json are written
    with pytest.raises(OSError, match="injected"):
        _ridge_router(1).save(target)
    monkeypatch.undo()
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    again = R2Router.from_pretrained(target, embedder=None)
    np.testing.assert_array_equal(again.training_data.embeddings, old.training_data.embeddings)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary directory left behind


def test_saving_over_a_router_replaces_it_whole(tmp_path: Path) -> None:
    """A kNN saved over a ridge router leaves no stale predictor/ behind (it made the checkpoint unloadable)."""
    ridge = _ridge_router(0)
    target = ridge.save(tmp_path / "ckpt")
    assert (target / "predictor").is_dir()
    knn = ridge.with_settings(predictor="knn", k=10)
    knn.save(target)
    assert not (target / "predictor").exists()
    assert R2Router.from_pretrained(target, embedder=None).config.predictor == "knn"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_save_never_replaces_a_directory_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        _ridge_router().save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
