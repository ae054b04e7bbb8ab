"""R2-Router inside LlamaIndex: a RouterQueryEngine that picks the LLM *and* its output budget.

Runs offline in a few seconds: the router is fitted on a tiny synthetic
training set (hash embeddings, no model weights) and the pool LLMs are
``RecordingLLM`` fakes that answer with as many words as their ``max_tokens``
allows. With ``OPENAI_API_KEY`` set, the pool is gpt-4o-mini / gpt-4o instead.

    python examples/llamaindex_router_query_engine.py
"""

from __future__ import annotations

import os

import numpy as np
from llama_index.core import Document, SummaryIndex
from llama_index.core.llms import LLM, MockLLM
from llama_index.core.query_engine import RouterQueryEngine

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.testing import HashEmbedder
from r2router_integrations.llamaindex import (
    R2RouterLLM,
    R2RouterSelector,
    R2RouterSelectorResult,
    budgeted_query_engine_tools,
    routing_query,
)
from r2router_integrations.llamaindex.testing import RecordingLLM

BUDGETS = (100, 400, None)
QUESTIONS = ["Prove the algebra identity step by step", "Write a short poem about the sea"]


def build_router() -> R2Router:
    """Math-like prompts need the big model at 400 tokens; poems are fine with the small one at 100."""
    embedder = HashEmbedder(dim=64)
    prompts = [f"math algebra proof question {i}" for i in range(10)] + [f"poem about the sea {i}" for i in range(10)]
    quality = np.empty((20, 2, 3))
    quality[:10] = [[0.1, 0.2, 0.3], [0.3, 0.95, 0.95]]  # (model, budget) for math
    quality[10:] = 0.9  # poems: every arm is as good, so the cheapest wins
    config = RouterConfig(
        models=(
            ModelSpec("small", output_price=0.6, input_price=0.15, full_name="gpt-4o-mini"),
            ModelSpec("big", output_price=10.0, input_price=2.5, full_name="gpt-4o"),
        ),
        budgets=BUDGETS,
        lambda_=0.9,
        k=5,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), config.model_names, BUDGETS, quality, np.full((20, 2), 300.0))
    return R2Router(config, data, embedder=embedder)


def build_pool() -> dict[str, LLM]:
    if os.environ.get("OPENAI_API_KEY"):
        from llama_index.llms.openai import OpenAI

        return {"small": OpenAI(model="gpt-4o-mini"), "big": OpenAI(model="gpt-4o")}
    return {"small": RecordingLLM(name="small", answer_words=600), "big": RecordingLLM(name="big", answer_words=600)}


def main() -> None:
    router = build_router()
    pool = build_pool()
    index = SummaryIndex.from_documents(
        [
            Document(text="An identity holds for every value of its variables; prove it by expanding both sides."),
            Document(text="The sea is a favourite subject of poets: waves, salt, horizon and light."),
        ]
    )

    # 1. RouterQueryEngine: one engine per (model, budget), named "model@budget".
    tools = budgeted_query_engine_tools(pool, BUDGETS, lambda llm: index.as_query_engine(llm=llm))
    engine = RouterQueryEngine(selector=R2RouterSelector(router), query_engine_tools=tools, llm=MockLLM())
    print("== RouterQueryEngine + R2RouterSelector ==")
    for question in QUESTIONS:
        response = engine.query(question)
        result = R2RouterSelectorResult.from_response(response)
        print(f"Q: {question}")
        print(
            f"   engine {result.choice_name}: model={result.model} budget={result.token_limit} "
            f"(predicted quality {result.predicted_quality:.2f}, cost ${result.predicted_cost:.6f})"
        )
        print(f"   answer ({len(str(response).split())} words): {str(response)[:70]}...")

    # 2. R2RouterLLM: one engine, the LLM routes every call; route on the user's question.
    routed = R2RouterLLM(router, pool, route_on="query")
    single = index.as_query_engine(llm=routed)
    print("== one engine over R2RouterLLM (route_on='query') ==")
    for question in QUESTIONS:
        with routing_query(question):
            response = single.query(question)
        print(f"Q: {question}")
        print(f"   routed to {router.route_text(question)}")  # the decision R2RouterLLM made on the question
        print(f"   answer ({len(str(response).split())} words): {str(response)[:70]}...")
    big = pool["big"]
    if isinstance(big, RecordingLLM):
        print("max_tokens seen by the big model's calls:", sorted({c.max_tokens for c in big.calls}, key=str))


if __name__ == "__main__":
    main()
