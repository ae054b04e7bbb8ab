"""Shadow-mode decision logs generated from a known truth (the format the gateway's shadow mode writes).

Each request has a router arm (small or medium) and the baseline (large); the truth is
each side's expected cost and quality per request. The logged row carries the router's
choice and predictions (predictions = the truth plus zero-mean noise), the answering
side's realised cost (the expectation times mean-1 noise) and feedback drawn from the
answering side's quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from r2router_core import ModelSpec
from r2router_core.store import DecisionRecord, OutcomeStore

POOL = (
    ModelSpec("small", output_price=0.6, input_price=0.15),
    ModelSpec("medium", output_price=4.0, input_price=1.0),
    ModelSpec("large", output_price=10.0, input_price=2.5),
)
PRICES = {m.name: m for m in POOL}
BASELINE = "large"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Truth:
    """What the generator knows.

    Attributes:
        router_cost: Expected total USD had the router answered every request.
        baseline_cost: Expected total USD had the baseline answered every request.
        router_quality: Mean expected quality of the router's arms.
        baseline_quality: Mean expected quality of the baseline.
        records: The logged rows.
        feedback: ``(decision id, quality)`` pairs written.
    """

    router_cost: float
    baseline_cost: float
    router_quality: float
    baseline_quality: float
    records: list[DecisionRecord]
    feedback: list[tuple[str, float]]


def _cost(model: str, tokens_in: int, tokens_out: int) -> float:
    spec = PRICES[model]
    return (tokens_in * spec.input_price + tokens_out * spec.output_price) / 1e6


def shadow_log(n: int, sample: float, seed: int, *, feedback_share: float = 1.0) -> Truth:
    """``n`` shadow rows; the router answers a share ``sample`` (propensity ``sample``, else ``1 - sample``)."""
    rng = np.random.default_rng(seed)
    records, feedback = [], []
    exp_r, exp_b, q_r, q_b = [], [], [], []
    for i in range(n):
        arm = "small" if rng.random() < 0.6 else "medium"
        tokens_in = int(rng.integers(50, 400))
        out_r, out_b = int(rng.integers(50, 600)), int(rng.integers(100, 800))
        cost_r, cost_b = _cost(arm, tokens_in, out_r), _cost(BASELINE, tokens_in, out_b)
        quality_r = 0.55 if arm == "small" else 0.75
        quality_b = 0.8
        exp_r.append(cost_r)
        exp_b.append(cost_b)
        q_r.append(quality_r)
        q_b.append(quality_b)
        by_router = rng.random() < sample
        noise = float(rng.uniform(0.5, 1.5))  # realised tokens around the expectation (mean 1)
        expected = cost_r if by_router else cost_b
        shadow = {
            "baseline": BASELINE,
            "answered_by": "router" if by_router else "baseline",
            "baseline_predicted_quality": quality_b + float(rng.normal(0, 0.05)),
            "baseline_predicted_cost": cost_b * float(rng.uniform(0.8, 1.2)),
        }
        out_tokens = out_r if by_router else out_b
        record = DecisionRecord(
            id=f"d{seed}-{i:06d}",
            source="gateway",
            model=arm,
            budget=512,
            options={"lambda": 1.0, "shadow": shadow},
            predicted_quality=quality_r + float(rng.normal(0, 0.05)),
            predicted_cost=cost_r * float(rng.uniform(0.8, 1.2)),
            lambda_=1.0,
            propensity=sample if by_router else 1.0 - sample,
            status="ok",
            input_tokens=tokens_in,
            output_tokens=int(out_tokens * noise),
            finish_reason="stop",
            latency_s=float(rng.uniform(0.2, 2.0)),
            cost_usd=expected * noise,
            created_at=(START + timedelta(seconds=30 * i)).isoformat(timespec="milliseconds"),
        )
        records.append(record)
        if rng.random() < feedback_share:
            good = rng.random() < (quality_r if by_router else quality_b)
            feedback.append((record.id, 1.0 if good else 0.0))
    return Truth(
        router_cost=float(sum(exp_r)),
        baseline_cost=float(sum(exp_b)),
        router_quality=float(np.mean(q_r)),
        baseline_quality=float(np.mean(q_b)),
        records=records,
        feedback=feedback,
    )


def write_log(store: OutcomeStore, truth: Truth, *, feedback_source: str = "api") -> None:
    """Store the pool, the rows and their feedback."""
    store.set_models(POOL)
    store.record_decisions(truth.records)
    for decision_id, quality in truth.feedback:
        store.record_feedback(decision_id, quality, source=feedback_source)
