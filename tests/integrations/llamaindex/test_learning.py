"""Decision ids, the decision log (store=) and feedback on R2RouterLLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from r2router_core import ConfigError, UnknownDecisionError
from r2router_core.execute.records import call_cost
from r2router_integrations.llamaindex import R2RouterLLM
from r2router_integrations.llamaindex.testing import RecordingLLM
from tests.integrations.server.support import MATH_PROMPT, build_router

ROUTER = build_router()


def _llm(**settings: object) -> R2RouterLLM:
    pool = {name: RecordingLLM(name=name, is_chat=True) for name in ROUTER.config.model_names}
    return R2RouterLLM(ROUTER, pool, **settings)


def _chat(llm: R2RouterLLM) -> str:
    response = llm.chat([ChatMessage(role=MessageRole.USER, content=MATH_PROMPT)])
    return str(response.additional_kwargs["r2router"]["decision_id"])


def test_calls_are_logged_with_their_ids_and_take_feedback(tmp_path: Path) -> None:
    llm = _llm(store=tmp_path / "log.db")
    decision_id = _chat(llm)
    streamed = list(llm.stream_complete(MATH_PROMPT))
    stream_id = streamed[-1].additional_kwargs["r2router"]["decision_id"]
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    row = log.store.decision(decision_id)
    expected = ROUTER.route_text(MATH_PROMPT)
    assert row is not None
    assert (row.source, row.model, row.budget) == ("llamaindex", expected.model, expected.token_limit)
    np.testing.assert_allclose(row.embedding, ROUTER.embed([MATH_PROMPT])[0], rtol=1e-6)
    assert row.prompt is None and row.answer is None
    assert log.store.decision(stream_id) is not None and stream_id != decision_id
    llm.feedback(decision_id, 0.3)
    assert [f.quality for f in log.store.feedback(decision_id)] == [0.3]
    with pytest.raises(UnknownDecisionError):
        llm.feedback("f" * 32, 0.3)
    log.close()


def test_text_only_with_keep_text_and_feedback_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="store="):
        _llm().feedback("x", 1.0)
    llm = _llm(store=tmp_path / "log.db", keep_text=True)
    decision_id = _chat(llm)
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    row = log.store.decision(decision_id)
    assert row is not None and row.prompt == MATH_PROMPT and row.answer
    log.close()


def test_a_cut_answer_is_asked_again_with_more_room(tmp_path: Path) -> None:
    # the stub answers 300 words and says "length" when its cap cut them: cut at 100, whole at 400
    names = ROUTER.config.model_names
    pool = {n: RecordingLLM(name=n, is_chat=True, answer_words=300, finish_reasons=True) for n in names}
    llm = R2RouterLLM(ROUTER, pool, lambda_=1.0, store=tmp_path / "log.db")  # the cheapest arm: small @ 100
    response = llm.chat([ChatMessage(role=MessageRole.USER, content=MATH_PROMPT)])
    info = response.additional_kwargs["r2router"]
    assert (info["model"], info["token_limit"]) == ("small", 400)
    assert len((response.message.content or "").split()) == 300
    (cut,) = info["escalations"]
    assert (cut["model"], cut["token_limit"], cut["finish_reason"]) == ("small", 100, "length")
    assert cut["output_tokens"] == 100
    assert [c.max_tokens for c in pool["small"].calls] == [100, 400]
    spec = ROUTER.config.models[0]
    tokens_in = len(pool["small"].calls[0].prompt.split())
    want = call_cost(spec, tokens_in, 100) + call_cost(spec, len(pool["small"].calls[1].prompt.split()), 300)
    assert info["cost_usd"] == pytest.approx(want)
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    final = log.store.decision(info["decision_id"])
    assert final is not None and final.escalated_from is not None and final.cost_usd == pytest.approx(want)
    log.close()


def test_exploration_sends_a_share_elsewhere_and_logs_its_propensity(tmp_path: Path) -> None:
    llm = _llm(explore=0.5, store=tmp_path / "log.db")
    ids = [_chat(llm) for _ in range(40)]
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    rows = [log.store.decision(i) for i in ids]
    chosen = ROUTER.route_text(MATH_PROMPT).chosen
    explored = [r for r in rows if r is not None and (r.model, r.budget) != (chosen.model, chosen.token_limit)]
    assert 5 <= len(explored) <= 35 and all(r.propensity < 0.5 for r in explored)
    assert {r.propensity for r in rows if r is not None and r not in explored} == {0.5}
    log.close()
