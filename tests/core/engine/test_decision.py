"""RoutingDecision's candidates, chosen arm and fallback plan against a brute-force oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from r2router_core import ModelSpec, RouterConfig, RoutingOptions
from r2router_core.engine.decision import ArmTable, Candidate, RoutingDecision

CONFIG = RouterConfig(models=tuple(ModelSpec(f"m{i}", 1.0 + i) for i in range(4)), budgets=(100, 200, 400, None))


def _table(seed: int) -> ArmTable:
    """Two rows of 4 models x 4 budgets with tied, NaN and ineligible utilities."""
    rng = np.random.default_rng(seed)
    shape = (2, 4, 4)
    utility = rng.choice([0.1, 0.2, -0.0, 0.0, np.nan, 0.3], size=shape)
    eligible = rng.random(shape) > 0.3
    eligible[:, 0, 0] = True  # every row keeps an eligible arm to choose
    return ArmTable(
        CONFIG, RoutingOptions(lambda_=0.5), CONFIG.candidate_budgets, rng.random(shape), rng.random(shape) * 100,
        rng.random(shape), utility, eligible,
    )  # fmt: skip


def _oracle_candidates(t: ArmTable, row: int) -> list[Candidate]:
    """Every arm from per-element reads, sorted as the docs say: eligible first, best utility first, stable."""
    arms = [
        Candidate(
            model=spec.name,
            model_full_name=spec.full_name,
            token_limit=budget,
            predicted_quality=float(t.quality[row, mi, bi]),
            predicted_tokens=float(t.tokens[row, mi, bi]),
            predicted_cost=float(t.cost[row, mi, bi]),
            utility=float(t.utility[row, mi, bi]),
            eligible=bool(t.eligible[row, mi, bi]),
            predicted_input_cost=0.0,  # the table prices no prompt
            predicted_output_cost=float(t.tokens[row, mi, bi]) * spec.output_price / 1e6,
        )
        for mi, spec in enumerate(t.config.models)
        for bi, budget in enumerate(t.budgets)
    ]
    return sorted(arms, key=lambda c: (not c.eligible, math.inf if math.isnan(c.utility) else -c.utility))


def _same(a: Candidate, b: Candidate) -> bool:
    """Field-wise equality with NaN equal to NaN."""
    return all(x == y or (x != x and y != y) for x, y in zip(a.to_dict().values(), b.to_dict().values(), strict=True))


def _decision(t: ArmTable, row: int, arm: Candidate) -> RoutingDecision:
    return RoutingDecision(
        model=arm.model,
        model_full_name=arm.model_full_name,
        token_limit=arm.token_limit,
        predicted_quality=arm.predicted_quality,
        predicted_tokens=arm.predicted_tokens,
        predicted_cost=arm.predicted_cost,
        utility=arm.utility,
        lambda_=0.5,
        _table=t,
        _row=row,
    )


@pytest.mark.parametrize("seed", range(40))
def test_candidates_chosen_and_fallback_plan_match_the_oracle(seed: int) -> None:
    t = _table(seed)
    for row in range(2):
        want = _oracle_candidates(t, row)
        chosen = want[int(np.random.default_rng(seed + row).integers(5))] if seed % 2 else want[0]
        decision = _decision(t, row, chosen)
        got = decision.candidates
        assert len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
        assert all(type(c.predicted_quality) is float and type(c.eligible) is bool for c in got)
        assert _same(decision.chosen, chosen)
        for fallbacks in (0, 1, 2, 5):
            plan, seen = [chosen], {chosen.model}
            for c in want:  # the documented plan: the chosen arm, then each other model's best eligible arm
                if len(plan) > fallbacks:
                    break
                if c.eligible and c.model not in seen:
                    plan.append(c)
                    seen.add(c.model)
            got_plan = decision.fallback_plan(fallbacks)
            assert len(got_plan) == len(plan) and all(_same(g, w) for g, w in zip(got_plan, plan, strict=True))


def test_candidates_are_frozen_hashable_and_cached() -> None:
    decision = _decision(_table(0), 0, _oracle_candidates(_table(0), 0)[0])
    first = decision.candidates[0]
    with pytest.raises(AttributeError):
        first.utility = 1.0  # type: ignore[misc]
    assert hash(first) == hash(Candidate(**first.to_dict()))
    assert decision.candidates is decision.candidates
