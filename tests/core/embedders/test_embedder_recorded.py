"""An embedder attached to a router whose config names none is recorded, so save() writes it (issue 10, 7b)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r2router_core import R2Router
from r2router_core.errors import EmbedderMismatchError
from r2router_core.testing import HashEmbedder


@pytest.fixture
def unnamed(text_router: R2Router) -> R2Router:
    """The text router's data and config, with the config naming no embedder (as one built by hand)."""
    return R2Router(text_router.config.with_options(embedder=None), text_router.training_data)


PROMPTS = ["math question number 3", "code question number 7", "poem question number 1", "write a poem about code"]


def test_an_attached_embedder_is_saved_and_reloaded_by_auto(unnamed: R2Router, tmp_path: Path) -> None:
    embedder = HashEmbedder(dim=32)
    router = R2Router(unnamed.config, unnamed.training_data, embedder=embedder)
    assert router.config.embedder == embedder.id and router.config.embedding_dim == 32
    assert f"embedder={embedder.id!r}" in repr(router)
    router.save(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text(encoding="utf-8"))
    assert (saved["embedder"], saved["embedding_dim"]) == (embedder.id, 32)
    loaded = R2Router.from_pretrained(tmp_path / "ckpt", embedder="auto")
    assert loaded.embedder is not None and loaded.embedder.id == embedder.id
    for a, b in zip(loaded.route_texts(PROMPTS), router.route_texts(PROMPTS), strict=True):
        assert (a.model, a.token_limit, a.utility) == (b.model, b.token_limit, b.utility)
    with pytest.raises(EmbedderMismatchError, match=r"r2router-hash-embedder-32"):
        R2Router.from_pretrained(tmp_path / "ckpt", embedder=HashEmbedder(dim=16))


def test_an_embedder_attached_later_is_recorded_too(unnamed: R2Router, tmp_path: Path) -> None:
    assert "embedder=None" in repr(unnamed)
    unnamed.embedder = HashEmbedder(dim=32)
    assert unnamed.config.embedder == "r2router-hash-embedder-32"
    assert "embedder='r2router-hash-embedder-32'" in repr(unnamed)
    unnamed.save(tmp_path / "ckpt")
    with pytest.raises(EmbedderMismatchError):  # same dim, other id: the recorded id now catches it
        R2Router.from_pretrained(tmp_path / "ckpt", embedder=HashEmbedder(dim=32, id="other-hash"))
