"""Decision ids, the decision log (store=) and feedback on the LangChain chat model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from r2router_core import ConfigError, R2Router, UnknownDecisionError
from r2router_integrations.langchain import R2RouterChatModel
from tests.integrations.langchain.conftest import CHAT, MATH


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
