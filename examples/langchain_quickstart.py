"""Quickstart: R2RouterChatModel as a drop-in LangChain chat model.

Offline (default): the pool is two fake chat models, so this runs anywhere in a
second. With OPENAI_API_KEY set (and optionally OPENAI_BASE_URL for an
OpenAI-compatible server), the pool is two real ChatOpenAI models, named by
R2ROUTER_SMALL_MODEL / R2ROUTER_LARGE_MODEL (default gpt-4o-mini / gpt-4o).

The router here is the tiny demo router of ``r2router_integrations.langchain.testing``
(greetings -> small model, short budget; maths -> large model, long budget).
Use your own trained router instead: ``R2Router.from_pretrained(path, embedder="auto")``.

Run:  python examples/langchain_quickstart.py
"""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from r2router_integrations.langchain import R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel, demo_router


def pool_models(names: tuple[str, ...]) -> dict[str, BaseChatModel]:
    """Real ChatOpenAI models when OPENAI_API_KEY is set, fake ones otherwise."""
    if not os.environ.get("OPENAI_API_KEY"):
        return {name: FakePoolChatModel(model_name=f"fake-{name}") for name in names}
    from langchain_openai import ChatOpenAI

    ids = {
        "small": os.environ.get("R2ROUTER_SMALL_MODEL", "gpt-4o-mini"),
        "large": os.environ.get("R2ROUTER_LARGE_MODEL", "gpt-4o"),
    }
    return {name: ChatOpenAI(model=ids[name], max_retries=1) for name in names}


def show(label: str, message: object) -> None:
    meta = getattr(message, "response_metadata", {})
    decision = meta.get("r2router", {})
    print(f"--- {label}")
    print(f"answer    : {getattr(message, 'text', message)!s:.200}")
    print(
        f"routed to : {decision.get('model')} @ {decision.get('token_limit')} tokens "
        f"(model_name={meta.get('model_name')}, finish={meta.get('finish_reason')}, "
        f"budget_exhausted={decision.get('budget_exhausted')})"
    )
    print(
        f"predicted : quality {decision.get('predicted_quality', float('nan')):.3f}, "
        f"cost ${decision.get('predicted_cost', float('nan')):.6f}, lambda {decision.get('lambda')}"
    )
    print(f"usage     : {getattr(message, 'usage_metadata', None)}")


def main() -> None:
    router = demo_router()
    llm = R2RouterChatModel(router=router, models=pool_models(router.config.model_names))
    mode = "real ChatOpenAI pool" if os.environ.get("OPENAI_API_KEY") else "offline fake pool"
    print(f"R2RouterChatModel over {list(router.config.model_names)} ({mode})\n")

    # 1. Drop-in: the chain is the same as with a fixed ChatOpenAI(...).
    prompt = ChatPromptTemplate.from_messages([("system", "You are concise."), ("human", "{question}")])
    chain = prompt | llm | StrOutputParser()
    print("chain     :", chain.invoke({"question": "hello there, how are you?"}), "\n")

    # 2. The decision rides on every answer.
    show("greeting", llm.invoke("hello there, how are you?"))
    show("maths", llm.invoke("prove the theorem about the integral"))

    # 3. Per-call control: cheapest arm, a hard cap, a forced model.
    show("maths, lambda_=1 (cheapest)", llm.invoke("prove the theorem about the integral", lambda_=1.0))
    show("maths, max_tokens=100", llm.invoke("prove the theorem about the integral", max_tokens=100))
    show("greeting, force_model='large'", llm.invoke("hello there, how are you?", force_model="large"))

    # 4. Streaming: the decision is on the first chunk.
    chunks = list(llm.stream("solve the equation 2x + 3 = 7"))
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    print(f"\nstreamed {len(chunks)} chunks; first chunk carries: {sorted(chunks[0].response_metadata['r2router'])}")
    show("streamed maths", full)


if __name__ == "__main__":
    main()
