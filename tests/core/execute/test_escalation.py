"""The escalation policy: next larger budget of the same model, else the next candidate; at most N times."""

from __future__ import annotations

import numpy as np
import pytest

from r2router_core import ConfigError, R2Router
from r2router_core.execute.escalation import Escalation, EscalationPolicy


def _rank(budget: int | None) -> float:
    return np.inf if budget is None else budget


def test_coerce_and_validation() -> None:
    assert EscalationPolicy.coerce(None).max_escalations == 1
    assert EscalationPolicy.coerce(True).max_escalations == 1
    assert EscalationPolicy.coerce(False).max_escalations == 0
    assert EscalationPolicy.coerce(3).max_escalations == 3
    with pytest.raises(ConfigError, match="max_escalations"):
        EscalationPolicy(-1)
    assert EscalationPolicy.truncated("length") and EscalationPolicy.truncated("max_tokens")
    assert not EscalationPolicy.truncated("stop") and not EscalationPolicy.truncated(None)


@pytest.mark.parametrize("row", range(8))
def test_next_arm_against_brute_force(make_router, row: int) -> None:  # type: ignore[no-untyped-def]
    router: R2Router = make_router()
    decision = router.route(router.training_data.embeddings[row])
    policy = EscalationPolicy(max_escalations=5)
    tried = [decision.chosen]
    while (arm := policy.next_arm(decision, tried)) is not None:
        used = tried[-1]
        same = [c for c in decision.candidates if c.eligible and c.model == used.model]
        bigger = [
            c for c in same if _rank(c.token_limit) > max(_rank(t.token_limit) for t in tried if t.model == used.model)
        ]
        if bigger:  # the smallest larger budget of the same model
            assert arm.model == used.model
            assert _rank(arm.token_limit) == min(_rank(c.token_limit) for c in bigger)
        else:  # else the best remaining candidate (never a budget already covered)
            assert arm.model != used.model or _rank(arm.token_limit) > _rank(used.token_limit)
        assert all((arm.model, arm.token_limit) != (t.model, t.token_limit) for t in tried)
        tried.append(arm)
    assert len(tried) >= 2  # an arm with room above it exists in every random decision


def test_escalation_stops_at_the_limit_and_only_on_a_cut(make_router) -> None:  # type: ignore[no-untyped-def]
    router: R2Router = make_router()
    decision = router.route(router.training_data.embeddings[0])
    escalation = Escalation(decision, EscalationPolicy(), decision.chosen)
    assert escalation.after("stop") is None
    first = escalation.after("length", 10, 0.5)
    assert first is not None and escalation.current == first
    assert escalation.after("length", 20, 0.25) is None  # at most one by default
    assert [t.cost_usd for t in escalation.truncated] == [0.5] and escalation.cost_usd == 0.5
    assert escalation.give_up() == decision.chosen and escalation.truncated == []
