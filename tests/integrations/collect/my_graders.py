"""A user's grader module for the ``python:MODULE:FUNCTION`` tests."""

from __future__ import annotations

from typing import Any


def starts_with_reference(answer: str, reference: str | None, prompt: Any) -> float:
    return 1.0 if reference and answer.startswith(reference) else 0.0


def judge_model() -> Any:
    from r2router_integrations.langchain.testing import FakePoolChatModel

    return FakePoolChatModel(model_name="judge", response="SCORE: 0.75")
