"""LangChainEmbedder: a LangChain Embeddings object as the router's embedder."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from r2router_core import ConfigError, EmbedderMismatchError, ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_integrations.langchain import LangChainEmbedder, R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel

PROMPTS = ["solve the integral", "prove the lemma", "say hello", "greet a friend"]


class NamedEmbeddings(Embeddings):
    """A tiny custom LangChain embeddings class that names its model."""

    model = "acme/embed-4"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [[float(len(t)), float(t.count(" ")) + 1.0, 1.0, float("o" in t)] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def test_id_comes_from_the_model_attribute_and_dim_from_a_probe() -> None:
    embeddings = NamedEmbeddings()
    embedder = LangChainEmbedder(embeddings)
    assert (embedder.id, embedder.dim) == ("acme/embed-4", 4)
    assert len(embeddings.calls) == 1  # one probe
    out = embedder.embed(PROMPTS)
    assert out.dtype == np.float32 and out.shape == (4, 4)
    np.testing.assert_array_equal(out, np.asarray(embeddings.embed_documents(PROMPTS), dtype=np.float32))


def test_an_unnamed_object_needs_an_id_and_a_given_dim_skips_the_probe() -> None:
    fake = DeterministicFakeEmbedding(size=8)
    with pytest.raises(ConfigError, match="pass id="):
        LangChainEmbedder(fake)
    embedder = LangChainEmbedder(fake, id="fake-8", dim=8)
    assert embedder.embed(["a b"]).shape == (1, 8)
    with pytest.raises(ConfigError, match="Embeddings object"):
        LangChainEmbedder("not embeddings", id="x")  # type: ignore[arg-type]


def router_over(embedder: LangChainEmbedder) -> R2Router:
    config = RouterConfig(
        models=(ModelSpec("small", output_price=1.0), ModelSpec("large", output_price=20.0)),
        budgets=(50, 500),
        lambda_=0.5,
        k=1,
        embedder=embedder.id,
    )
    quality = [[[0.1, 0.2], [0.9, 0.95]], [[0.1, 0.2], [0.9, 0.95]], [[0.9, 0.9], [0.9, 0.9]], [[0.9, 0.9], [0.9, 0.9]]]
    tokens = [[40.0, 40.0]] * 4
    return R2Router(
        config,
        TrainingData(embedder.embed(PROMPTS), ("small", "large"), (50, 500), np.asarray(quality), np.asarray(tokens)),
        embedder=embedder,
    )


def test_a_langchain_embeddings_object_routes_the_chat_model() -> None:
    embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=16), id="fake-16")
    router = router_over(embedder)
    llm = R2RouterChatModel(router=router, models={n: FakePoolChatModel(model_name=n) for n in ("small", "large")})
    for prompt in PROMPTS:
        # k = 1 and DeterministicFakeEmbedding is a function of the text: each prompt finds itself
        expected = "large" if prompt in PROMPTS[:2] else "small"
        assert llm.invoke(prompt).response_metadata["r2router"]["model"] == expected


def test_the_router_refuses_an_embedder_with_another_id() -> None:
    router = router_over(LangChainEmbedder(DeterministicFakeEmbedding(size=16), id="fake-16"))
    with pytest.raises(EmbedderMismatchError, match="other-16"):
        router.embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=16), id="other-16")
