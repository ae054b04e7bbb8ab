"""The demo behind ``r2router demo``: a router built in seconds, prompts routed, answered through LangChain.

Offline by default. The router is trained on the real AlpacaEval length outcomes
when a data directory is configured (``--data-dir`` or ``$R2ROUTER_DATA_DIR``),
otherwise on the documented synthetic pool (and says so). Answers come from
local fake chat models, or from real ones when ``OPENAI_API_KEY`` is set (any
OpenAI-compatible endpoint via ``OPENAI_BASE_URL``; map pool models to endpoint
model ids with ``R2ROUTER_DEMO_MODELS="pool-name=endpoint-id,..."``).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from r2router_core import MissingDependencyError, R2Router, format_budget
from r2router_core.embedders import Embedder, default_embedder
from r2router_core.evaluation.datasets import (
    DATA_DIR_ENV,
    embed_dataset,
    load_alpacaeval_length,
    make_synthetic_pool,
)
from r2router_core.testing import HashEmbedder

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

__all__ = ["DEMO_PROMPTS", "DemoRouter", "build_demo_router", "show_demo"]

DEMO_PROMPTS: tuple[str, ...] = (
    "Arithmetic: what is 17 times 23?",
    "Coding: write a Python function that reverses a linked list.",
    "Trivia: who painted the Mona Lisa?",
    "Poetry: write a haiku about autumn rain.",
    "Law: can my landlord keep my deposit for normal wear and tear?",
    "Chemistry: explain step by step why ice floats on water.",
)
"""Varied prompts; each names its topic so the synthetic pool's topics are recognisable too."""

DEMO_LAMBDA = {"alpacaeval_length": 0.97, "synthetic": 0.99}
"""Default lambda per data source, chosen so the demo shows a spread of (model, budget) choices."""


@dataclass(frozen=True)
class DemoRouter:
    """A router built for the demo, with where its data came from."""

    router: R2Router
    source: str
    synthetic: bool


def _embedder(kind: str) -> Embedder:
    if kind == "hash":
        return HashEmbedder(dim=256)
    try:
        return default_embedder()
    except MissingDependencyError:
        if kind == "minilm":
            raise
        return HashEmbedder(dim=256)


def build_demo_router(
    data_dir: str | Path | None = None,
    *,
    embedder: str = "auto",
    synthetic: bool = False,
    lambda_: float | None = None,
    progress: bool = False,
) -> DemoRouter:
    """Train the demo's router.

    Args:
        data_dir: Folder holding ``alpacaeval_length/`` (default ``$R2ROUTER_DATA_DIR``).
        embedder: ``"auto"`` (MiniLM if installed, else the hash embedder),
            ``"minilm"`` or ``"hash"``.
        synthetic: Use the synthetic pool even if data is configured.
        lambda_: Cost weight; default per source (:data:`DEMO_LAMBDA`).
        progress: Progress bar while embedding.
    """
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    emb = _embedder(embedder)
    real = not synthetic and data_dir is not None and (Path(data_dir) / "alpacaeval_length").is_dir()
    if real:
        dataset = load_alpacaeval_length(data_dir)
        source = f"AlpacaEval length outcomes (real, {dataset.n_queries} instructions) from {data_dir}"
        key = "alpacaeval_length"
    else:
        dataset, _ = make_synthetic_pool(n_queries=600, n_topics=6, seed=0)
        source = "the SYNTHETIC pool of r2router_core.evaluation.datasets.make_synthetic_pool (no real data configured)"
        key = "synthetic"
    vectors = embed_dataset(dataset, emb, progress=progress)
    config = dataset.config(lambda_=DEMO_LAMBDA[key] if lambda_ is None else lambda_, k=20, embedder=emb.id)
    router = R2Router(config, dataset.training_data(vectors), embedder=emb)
    return DemoRouter(router=router, source=source + f"; embedder {emb.id}", synthetic=not real)


_FAKE_ANSWER = "This offline stand-in answer grows as long as its budget allows; set OPENAI_API_KEY for real ones. "


def _chat_models(router: R2Router) -> tuple[dict[str, BaseChatModel], str]:
    """Pool name -> LangChain chat model: real ones when OPENAI_API_KEY is set, else offline fakes."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        mapping = dict(
            pair.split("=", 1) for pair in os.environ.get("R2ROUTER_DEMO_MODELS", "").split(",") if "=" in pair
        )
        real: dict[str, BaseChatModel] = {
            m.name: ChatOpenAI(model=mapping.get(m.name, m.full_name), max_retries=1) for m in router.config.models
        }
        return real, "real models through an OpenAI-compatible endpoint"
    from r2router_integrations.langchain.testing import FakePoolChatModel

    fakes: dict[str, BaseChatModel] = {
        m.name: FakePoolChatModel(model_name=m.full_name, response=f"[{m.full_name}] " + _FAKE_ANSWER * 16)
        for m in router.config.models
    }
    return fakes, "local fake chat models (set OPENAI_API_KEY to use real ones)"


def _print_decisions(demo: DemoRouter, prompts: tuple[str, ...]) -> None:
    print(f"Router trained on {demo.source}.")
    print(
        f"Pool: {', '.join(f'{m.name} (${m.output_price}/M out)' for m in demo.router.config.models)}; "
        f"budgets: {', '.join(format_budget(b) for b in demo.router.config.budgets)}; "
        f"lambda = {demo.router.config.lambda_}\n"
    )
    for prompt, decision in zip(prompts, demo.router.route_texts(list(prompts)), strict=True):
        print(f"> {prompt}")
        print(
            f"  -> {decision.model} @ {format_budget(decision.token_limit)} tokens: "
            f"predicted quality {decision.predicted_quality:.3f}, cost ${decision.predicted_cost:.6f}"
        )
        for alt in decision.alternatives(2):
            print(
                f"     runner-up {alt.model} @ {format_budget(alt.token_limit)}: "
                f"quality {alt.predicted_quality:.3f}, cost ${alt.predicted_cost:.6f}"
            )
    print()


def _print_answers(demo: DemoRouter, prompts: tuple[str, ...]) -> None:
    from r2router_integrations.langchain import R2RouterChatModel

    models, kind = _chat_models(demo.router)
    chat = R2RouterChatModel(router=demo.router, models=models)
    print(f"The same prompts through R2RouterChatModel over {kind}:\n")
    for prompt in prompts:
        message = chat.invoke(prompt)
        meta = message.response_metadata.get("r2router", {})
        print(f"> {prompt}")
        print(textwrap.indent(textwrap.fill(textwrap.shorten(str(message.content), 180), 96), "  "))
        print(
            f"  [model {meta.get('model')}, budget {format_budget(meta.get('token_limit'))}, "
            f"finish {message.response_metadata.get('finish_reason')}, usage {message.usage_metadata}]"
        )


def show_demo(demo: DemoRouter, prompts: tuple[str, ...] = DEMO_PROMPTS, *, chat: bool = True) -> None:
    """Print the router's decisions for ``prompts``, then (``chat``) their answers through LangChain."""
    _print_decisions(demo, prompts)
    if chat:
        _print_answers(demo, prompts)
