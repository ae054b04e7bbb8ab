"""Shadow mode in LangChain and LlamaIndex: the team's model answers, the router's choice is logged beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from r2router_core import ConfigError
from r2router_integrations.langchain import R2RouterChatModel
from r2router_integrations.langchain.testing import FakePoolChatModel
from r2router_integrations.llamaindex import R2RouterLLM
from r2router_integrations.llamaindex.testing import RecordingLLM

from .server.support import MATH_PROMPT, POEM_PROMPT, build_router

ROUTER = build_router()
POOL = ROUTER.config.model_names
PROMPTS = [MATH_PROMPT, POEM_PROMPT] * 4


def _check_rows(log, n: int, baseline: str) -> None:  # type: ignore[no-untyped-def]
    assert log.flush(timeout=30)
    rows = log.store.decisions()
    assert len(rows) == n
    routed = sorted((d.model, d.token_limit) for d in (ROUTER.route_text(p) for p in PROMPTS))
    assert sorted((r.model, r.budget) for r in rows) == routed  # the router's choice, not the answering model
    for row in rows:
        assert row.options["shadow"] == {**row.options["shadow"], "baseline": baseline, "answered_by": "baseline"}
        assert row.status == "ok" and row.propensity == 1.0


def test_langchain_shadow_answers_with_the_baseline_and_logs_the_routers_choice(tmp_path: Path) -> None:
    pool = {name: FakePoolChatModel(model_name=f"fake-{name}") for name in POOL}
    llm = R2RouterChatModel(router=ROUTER, models=pool, shadow="large", store=tmp_path / "log.db")
    for prompt in PROMPTS:
        llm.invoke([HumanMessage(prompt)])
    assert [len(pool[m].calls) for m in POOL] == [0, 0, len(PROMPTS)]  # only the baseline answered
    first = pool["large"].calls[0]
    assert first.max_tokens is None and first.messages[0].type == "human"  # no cap, no length instruction
    assert llm.decision_log is not None
    _check_rows(llm.decision_log, len(PROMPTS), "large")


def test_llamaindex_shadow_answers_with_the_baseline_and_logs_the_routers_choice(tmp_path: Path) -> None:
    pool = {name: RecordingLLM(name=name, is_chat=True) for name in POOL}
    llm = R2RouterLLM(ROUTER, dict(pool), shadow="small", store=tmp_path / "log.db")
    for prompt in PROMPTS:
        llm.chat([ChatMessage(role=MessageRole.USER, content=prompt)])
    assert {c.name for c in pool["small"].calls} == {"small"} and len(pool["small"].calls) == len(PROMPTS)
    assert not pool["large"].calls and not pool["medium"].calls
    assert not pool["small"].calls[0].prompt.startswith("Use at most")
    assert llm.decision_log is not None
    _check_rows(llm.decision_log, len(PROMPTS), "small")


def test_a_shadow_model_outside_the_served_pool_is_refused() -> None:
    pool = {name: FakePoolChatModel(model_name=f"fake-{name}") for name in POOL if name != "large"}
    with pytest.raises(ConfigError, match="not a served pool model"):
        R2RouterChatModel(router=ROUTER, models=pool, shadow="large")
    with pytest.raises(ConfigError, match="not a served pool model"):
        R2RouterLLM(ROUTER, {"small": RecordingLLM(name="small", is_chat=True)}, shadow="gpt-4o")
