"""Fixtures of the LlamaIndex integration tests: a router whose decisions are known by design.

The training data has two topics. For "math" prompts the big model is far
better and needs 400 tokens (quality small 0.1/0.2/0.3, big 0.3/0.95/0.95 at
100/400/uncapped), so with lambda 0.9 the router picks big@400 (400 ties with
uncapped and comes first). For "poem" prompts every arm scores 0.9, so the
cheapest wins: small@100.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from llama_index.core import Document, Settings, SummaryIndex, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from numpy.typing import NDArray

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.testing import HashEmbedder
from r2router_integrations.llamaindex.testing import RecordingLLM

BUDGETS = (100, 400, None)
MATH = "math question about algebra"
POEM = "poem question about the sea"


class RecordingEmbedder(HashEmbedder):
    """HashEmbedder that remembers every text it embedded (what the router routed on)."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__(dim)
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.texts.extend(texts)
        return super().embed(texts)


def build_router(embedder: HashEmbedder) -> R2Router:
    prompts = [f"{topic} question number {i}" for topic in ("math", "poem") for i in range(10)]
    quality = np.empty((20, 2, 3))
    quality[:10] = [[0.1, 0.2, 0.3], [0.3, 0.95, 0.95]]
    quality[10:] = 0.9
    config = RouterConfig(
        models=(
            ModelSpec("small", output_price=0.5, input_price=0),
            ModelSpec("big", output_price=10.0, input_price=0),
        ),
        budgets=BUDGETS,
        lambda_=0.9,
        k=5,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), config.model_names, BUDGETS, quality, np.full((20, 2), 300.0))
    return R2Router(config, data, embedder=embedder)


@pytest.fixture
def embedder() -> RecordingEmbedder:
    return RecordingEmbedder()


@pytest.fixture
def router(embedder: RecordingEmbedder) -> R2Router:
    router = build_router(embedder)
    embedder.texts.clear()
    return router


@pytest.fixture
def pool() -> dict[str, RecordingLLM]:
    return {"small": RecordingLLM(name="small", answer_words=600), "big": RecordingLLM(name="big", answer_words=600)}


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return [
        Document(text="Algebra studies symbols and the rules for manipulating them."),
        Document(text="The sea covers most of the planet and inspires many poems."),
        Document(text="Paris is the capital of France."),
    ]


@pytest.fixture
def vector_index(documents: list[Document]) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


@pytest.fixture
def summary_index(documents: list[Document]) -> SummaryIndex:
    return SummaryIndex.from_documents(documents)


@pytest.fixture
def clean_settings() -> Iterator[None]:
    """Restore LlamaIndex's global Settings after a test that sets them."""
    saved = (Settings._llm, Settings._embed_model, Settings._callback_manager)
    yield
    Settings._llm, Settings._embed_model, Settings._callback_manager = saved
