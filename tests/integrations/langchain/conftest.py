"""Fixtures for the LangChain integration: the demo router and a pool of fake chat models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from r2router_core import R2Router
from r2router_integrations.langchain import R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel, demo_router

CHAT = "hello there, how are you?"
"""Routed by the demo router to small @ 32 tokens."""

MATH = "prove the theorem about the integral"
"""Routed by the demo router to large @ 256 tokens."""

LONG_ANSWER = " ".join(f"w{i}" for i in range(100))
"""A 100-token answer: longer than 32, shorter than 256."""


def fake_pool(router: R2Router, **settings: Any) -> dict[str, FakePoolChatModel]:
    """One fake chat model per pool model, named ``fake-<pool name>``."""
    return {name: FakePoolChatModel(model_name=f"fake-{name}", **settings) for name in router.config.model_names}


@pytest.fixture
def router() -> R2Router:
    return demo_router()


@pytest.fixture
def pool(router: R2Router) -> dict[str, FakePoolChatModel]:
    return fake_pool(router)


@pytest.fixture
def make_llm(router: R2Router, pool: dict[str, FakePoolChatModel]) -> Callable[..., R2RouterChatModel]:
    def make(**settings: Any) -> R2RouterChatModel:
        return R2RouterChatModel(**{"router": router, "models": pool, **settings})

    return make


@pytest.fixture
def llm(make_llm: Callable[..., R2RouterChatModel]) -> R2RouterChatModel:
    return make_llm()
