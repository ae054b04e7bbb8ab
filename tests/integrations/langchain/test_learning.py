"""Decision ids, the decision log (store=) and feedback on the LangChain chat model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from r2router_core import ConfigError, R2Router, UnknownDecisionError
from r2router_core.execute.records import call_cost
from r2router_integrations.langchain import R2RouterChatModel
from tests.integrations.langchain.conftest import CHAT, LONG_ANSWER, MATH, fake_pool


def _id(message: object) -> str:
    return message.response_metadata["r2router"]["decision_id"]  # type: ignore[attr-defined]


def test_every_call_gets_its_own_id_without_a_store(llm: R2RouterChatModel) -> None:
    ids = {_id(llm.invoke(CHAT)) for _ in range(3)}
    assert len(ids) == 3
    with pytest.raises(ConfigError, match="store="):
        llm.feedback(ids.pop(), 1.0)


def test_invoke_and_stream_are_logged_with_their_ids(
    make_llm: Callable[..., R2RouterChatModel], router: R2Router, tmp_path: Path
) -> None:
    llm = make_llm(store=tmp_path / "log.db")
    answer = llm.invoke(MATH)
    chunks = list(llm.stream(CHAT))
    streamed = chunks[0]
    for chunk in chunks[1:]:
        streamed = streamed + chunk
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    row = log.store.decision(_id(answer))
    assert row is not None and row.source == "langchain"
    meta = answer.response_metadata["r2router"]
    assert (row.model, row.budget, row.lambda_) == (meta["model"], meta["token_limit"], meta["lambda"])
    assert row.output_tokens == answer.usage_metadata["output_tokens"]  # type: ignore[index]
    np.testing.assert_allclose(row.embedding, router.embed([MATH])[0], rtol=1e-6)
    assert row.prompt is None and row.answer is None  # privacy by default
    streamed_row = log.store.decision(_id(streamed))
    assert streamed_row is not None and streamed_row.model == streamed.response_metadata["r2router"]["model"]
    llm.feedback(_id(answer), 0.9)
    assert [f.quality for f in log.store.feedback(_id(answer))] == [0.9]
    with pytest.raises(UnknownDecisionError):
        llm.feedback("0" * 32, 0.5)
    log.close()


def test_text_is_kept_only_when_opted_in(make_llm: Callable[..., R2RouterChatModel], tmp_path: Path) -> None:
    llm = make_llm(store=tmp_path / "log.db", keep_text=True)
    answer = llm.invoke(MATH)
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    row = log.store.decision(_id(answer))
    assert row is not None and (row.prompt, row.answer) == (MATH, answer.text)
    log.close()


def test_a_cut_answer_is_asked_again_at_the_next_budget_and_both_are_logged(
    router: R2Router, tmp_path: Path
) -> None:
    pool = fake_pool(router, response=LONG_ANSWER)  # 100 words: cut at 32, whole at 256
    llm = R2RouterChatModel(router=router, models=pool, store=tmp_path / "log.db")
    answer = llm.invoke(CHAT)  # small @ 32
    assert answer.text == LONG_ANSWER
    info = answer.response_metadata["r2router"]
    assert (info["model"], info["token_limit"], info["budget_exhausted"]) == ("small", 256, False)
    (cut,) = info["escalations"]
    assert (cut["model"], cut["token_limit"], cut["finish_reason"], cut["output_tokens"]) == ("small", 32, "length", 32)
    assert [c.max_tokens for c in pool["small"].calls] == [32, 256]
    n_in = pool["small"].calls[0].messages
    spec = router.config.models[router.config.model_names.index("small")]
    tokens_in = sum(len(m.text.split()) for m in n_in)
    want = call_cost(spec, tokens_in, 32) + call_cost(spec, tokens_in, 100)
    assert info["cost_usd"] == pytest.approx(want) and cut["cost_usd"] == pytest.approx(call_cost(spec, tokens_in, 32))
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    final = log.store.decision(info["decision_id"])
    assert final is not None and final.escalated_from is not None
    first = log.store.decision(final.escalated_from)
    assert first is not None and (first.budget, first.finish_reason) == (32, "length")  # a signal for that arm
    assert final.cost_usd == pytest.approx(want)
    log.close()


def test_escalation_can_be_switched_off_and_stops_after_one(router: R2Router) -> None:
    pool = fake_pool(router, response=" ".join(["w"] * 300))  # cut at 32 and at 256
    off = R2RouterChatModel(router=router, models=pool, escalation=False).invoke(CHAT)
    assert off.response_metadata["r2router"]["escalations"] == [] and len(off.text.split()) == 32
    once = R2RouterChatModel(router=router, models=pool).invoke(CHAT)
    info = once.response_metadata["r2router"]
    assert len(info["escalations"]) == 1 and info["token_limit"] == 256 and info["budget_exhausted"] is True


def test_exploration_sends_a_share_elsewhere_and_logs_its_propensity(router: R2Router, tmp_path: Path) -> None:
    pool = fake_pool(router)
    llm = R2RouterChatModel(router=router, models=pool, explore=0.5, store=tmp_path / "log.db")
    answers = [llm.invoke(MATH) for _ in range(40)]
    log = llm.decision_log
    assert log is not None and log.flush(timeout=30)
    rows = [log.store.decision(_id(a)) for a in answers]
    chosen = router.route_text(MATH).chosen
    explored = [r for r in rows if r is not None and (r.model, r.budget) != (chosen.model, chosen.token_limit)]
    assert 5 <= len(explored) <= 35
    assert all(r.propensity < 0.5 for r in explored)
    assert {r.propensity for r in rows if r is not None and r not in explored} == {0.5}
    log.close()
