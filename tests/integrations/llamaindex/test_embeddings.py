"""LlamaIndexEmbedder: a LlamaIndex BaseEmbedding serving as the router's embedder."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.embeddings import MockEmbedding

from r2router_core import R2Router
from r2router_core.errors import ConfigError, EmbedderMismatchError
from r2router_core.testing import HashEmbedder
from r2router_integrations.llamaindex import LlamaIndexEmbedder, R2RouterSelector

from .conftest import MATH, POEM


class HashEmbedding(BaseEmbedding):
    """The test HashEmbedder behind LlamaIndex's BaseEmbedding interface; counts query calls."""

    _inner: HashEmbedder = PrivateAttr()
    _query_calls: int = PrivateAttr(default=0)

    def __init__(self, dim: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._inner = HashEmbedder(dim)

    def _get_query_embedding(self, query: str) -> list[float]:
        self._query_calls += 1
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return [float(x) for x in self._inner.embed([text])[0]]


def test_adapter_embeds_like_the_wrapped_model() -> None:
    adapter = LlamaIndexEmbedder(HashEmbedding(model_name="hash"), dim=32)
    texts = [MATH, POEM, "a third prompt"]
    np.testing.assert_allclose(adapter.embed(texts), HashEmbedder(32).embed(texts), rtol=1e-6)
    assert adapter.embed(texts).dtype == np.float32 and adapter.id == "hash"


def test_dimension_is_probed_when_not_given() -> None:
    assert LlamaIndexEmbedder(MockEmbedding(embed_dim=7), id="mock").dim == 7


def test_query_mode_uses_get_query_embedding() -> None:
    model = HashEmbedding(model_name="hash")
    LlamaIndexEmbedder(model, mode="query", dim=32).embed([MATH, POEM])
    assert model._query_calls == 2
    LlamaIndexEmbedder(model, dim=32).embed([MATH])
    assert model._query_calls == 2


def test_router_routes_the_same_through_the_adapter(router: R2Router) -> None:
    """Oracle: the same router with its native HashEmbedder."""
    adapter = LlamaIndexEmbedder(HashEmbedding(model_name="hash"), id=router.config.embedder)
    via_llamaindex = R2Router(router.config, router.training_data, embedder=adapter)
    for question in (MATH, POEM):
        a, b = via_llamaindex.route_text(question), router.route_text(question)
        assert (a.model, a.token_limit) == (b.model, b.token_limit)
    result = R2RouterSelector(via_llamaindex).select(["small@100", "big@400"], MATH)
    assert result.model == router.route_text(MATH).model


def test_checkpoint_mismatch_is_caught_by_the_router(router: R2Router) -> None:
    with pytest.raises(EmbedderMismatchError, match="'some-other-model'"):
        router.embedder = LlamaIndexEmbedder(HashEmbedding(model_name="some-other-model"))


def test_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="has no model_name; pass id="):
        LlamaIndexEmbedder(MockEmbedding(embed_dim=4))
    with pytest.raises(ConfigError, match="BaseEmbedding"):
        LlamaIndexEmbedder(HashEmbedder(4))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dim must be"):
        LlamaIndexEmbedder(MockEmbedding(embed_dim=4), id="m", dim=0)
