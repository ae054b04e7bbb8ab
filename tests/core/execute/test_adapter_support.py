"""What the plan and the settings give the framework adapters: the failed-attempts note, folded keywords."""

from __future__ import annotations

import traceback

import pytest

from r2router_core import ConfigError, R2Router
from r2router_core.execute import CallPlan, Done, ServingSettings, drive


def test_when_every_attempt_fails_the_raised_error_lists_them(make_router) -> None:  # type: ignore[no-untyped-def]
    router: R2Router = make_router()
    decision = router.route(router.training_data.embeddings[0])
    plan = CallPlan.routed(decision, ServingSettings(fallbacks=1), source="test")

    def down(attempt: object) -> str:
        raise ConnectionError(f"{attempt} is down")

    with pytest.raises(ConnectionError) as caught:
        drive(plan, down, lambda _: None)  # type: ignore[arg-type,return-value]
    text = "".join(traceback.format_exception(caught.value))
    assert "r2router: all 2 attempts failed, in order: " in text
    assert isinstance(plan.next(), Done) and len(plan.outcome.failures) == 2


def test_one_failure_adds_no_note(make_router) -> None:  # type: ignore[no-untyped-def]
    router: R2Router = make_router()
    decision = router.route(router.training_data.embeddings[0])
    plan = CallPlan.routed(decision, ServingSettings(fallbacks=0), source="test")

    def down(attempt: object) -> str:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError) as caught:
        drive(plan, down, lambda _: None)  # type: ignore[arg-type,return-value]
    assert not getattr(caught.value, "__notes__", None)


def test_flat_keywords_fold_into_one_settings_object() -> None:
    folded = ServingSettings.fold({"router": "r", "fallbacks": 1, "explore": 0.1, "keep_text": True})
    assert folded["router"] == "r" and set(folded) == {"router", "serving"}
    assert folded["serving"] == ServingSettings(fallbacks=1, explore=0.1, keep_text=True)
    given = ServingSettings(fallbacks=0)
    assert ServingSettings.fold({"serving": given, "x": 1}) == {"serving": given, "x": 1}
    with pytest.raises(ConfigError, match=r"either as serving=ServingSettings\(...\) or as keywords, not both"):
        ServingSettings.fold({"serving": given, "fallbacks": 1})
    with pytest.raises(ConfigError, match="fallbacks"):
        ServingSettings.fold({"fallbacks": -1})
