"""Exploration that keeps every arm measured, and what the log then says about other routers.

A router that always picks its best arm stops measuring the others, so its
labels go stale where the world changed. :class:`ExplorationPolicy` (off by
default) sends a share ``rate`` of the calls to a non-best arm among the
``top`` eligible candidates whose predicted cost is at most ``max_cost_ratio``
times the chosen arm's (the stated cost bound), uniformly; the probability of
the arm actually used is the *propensity* the decision log keeps.

:func:`ips_estimate` then estimates, from the log alone (inverse propensity
weighting), the mean quality another router or lambda would have had:
``mean(1[target arm == logged arm] * quality / propensity)`` over logged answers
with a quality signal. It is unbiased when every arm the target picks had a
non-zero propensity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from r2router_core.config import Budget
from r2router_core.decision import Candidate, RoutingDecision
from r2router_core.errors import ConfigError

if TYPE_CHECKING:
    from r2router_core.router import R2Router
    from r2router_core.store import OutcomeStore

__all__ = ["ExplorationPolicy", "IPSEstimate", "ips_estimate", "ips_from_store"]


@dataclass(frozen=True)
class ExplorationPolicy:
    """Which share of calls explores, among which arms.

    Attributes:
        rate: Share of calls sent to a non-best arm, in [0, 1) (0 = off, the default).
        top: Explore among the ``top`` best eligible arms after the chosen one.
        max_cost_ratio: Only arms predicted to cost at most this times the chosen arm
            (the cost bound; ``inf`` = any).
    """

    rate: float = 0.0
    top: int = 3
    max_cost_ratio: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float) or not 0.0 <= self.rate < 1.0:
            raise ConfigError(f"explore rate must be a number in [0, 1), got {self.rate!r}")
        if isinstance(self.top, bool) or not isinstance(self.top, int) or self.top < 1:
            raise ConfigError(f"explore top must be an int >= 1, got {self.top!r}")
        if not isinstance(self.max_cost_ratio, int | float) or not self.max_cost_ratio >= 1.0:
            raise ConfigError(f"max_cost_ratio must be a number >= 1, got {self.max_cost_ratio!r}")

    @classmethod
    def coerce(cls, value: ExplorationPolicy | float | None) -> ExplorationPolicy:
        """A policy from a policy, a rate, or ``None`` (off)."""
        if isinstance(value, ExplorationPolicy):
            return value
        return cls() if value is None else cls(float(value))

    def alternatives(self, decision: RoutingDecision) -> tuple[Candidate, ...]:
        """The arms exploration may send a call to (never the chosen one)."""
        chosen = decision.chosen
        bound = chosen.predicted_cost * self.max_cost_ratio
        out = [
            c
            for c in decision.candidates
            if c.eligible and c is not chosen and c != chosen and (math.isinf(bound) or c.predicted_cost <= bound)
        ]
        return tuple(out[: self.top])

    def choose(self, decision: RoutingDecision, rng: np.random.Generator) -> tuple[Candidate, float]:
        """The arm to use and its propensity (the probability this policy picks it)."""
        options = self.alternatives(decision) if self.rate > 0 else ()
        if not options:
            return decision.chosen, 1.0
        if rng.random() >= self.rate:
            return decision.chosen, 1.0 - self.rate
        return options[int(rng.integers(len(options)))], self.rate / len(options)


@dataclass(frozen=True)
class IPSEstimate:
    """An off-policy estimate of a target router's mean quality.

    Attributes:
        value: The IPS estimate of the mean quality.
        stderr: Its standard error (from the spread of the weighted terms).
        n: Logged answers used.
        matched: How many of them the target would have routed to the logged arm.
    """

    value: float
    stderr: float
    n: int
    matched: int


def ips_estimate(
    arms: Sequence[tuple[str, Budget]],
    qualities: Sequence[float],
    propensities: Sequence[float],
    target: Sequence[tuple[str, Budget]] | Callable[[int], tuple[str, Budget]],
) -> IPSEstimate:
    """Inverse-propensity estimate of the mean quality of ``target`` from logged answers.

    Args:
        arms: The logged (model, budget) of each answer.
        qualities: Its quality signal in [0, 1].
        propensities: The probability the logging policy had of choosing that arm.
        target: The target's (model, budget) for each logged answer (or a function of its index).

    Raises:
        ConfigError: Lengths differ, no answers, or a propensity outside (0, 1].
    """
    n = len(arms)
    if n == 0 or len(qualities) != n or len(propensities) != n:
        raise ConfigError(f"ips_estimate needs as many qualities and propensities as arms (> 0), got {n}")
    p = np.asarray(propensities, dtype=np.float64)
    if not np.all((p > 0) & (p <= 1)):
        raise ConfigError("propensities must be in (0, 1]")
    pick = target if callable(target) else target.__getitem__
    match = np.array([pick(i) == tuple(arms[i]) for i in range(n)])
    terms = np.where(match, np.asarray(qualities, dtype=np.float64) / p, 0.0)
    stderr = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return IPSEstimate(float(terms.mean()), stderr, n, int(match.sum()))


def ips_from_store(store: OutcomeStore, router: R2Router, lambda_: float | None = None) -> IPSEstimate:
    """:func:`ips_estimate` of ``router`` at ``lambda_`` (default: its own) from a store's decision log.

    Uses every logged answer with an embedding of the router's embedder and a quality
    signal (feedback, or a cut answer = 0); the target routes each logged embedding
    with its default options at ``lambda_``.

    Raises:
        ConfigError: The log holds no such answer.
    """
    from r2router_core.store import logged_outcomes

    rows = logged_outcomes(store, router.config.embedder)
    if not rows:
        raise ConfigError(f"the decision log of {store!r} holds no answer with an embedding and feedback yet")
    embeddings = np.stack([np.asarray(d.embedding, dtype=np.float32) for d, _ in rows])
    target = [(t.model, t.token_limit) for t in router.route_batch(embeddings, lambda_=lambda_)]
    return ips_estimate(
        [(d.model, d.budget) for d, _ in rows], [q for _, q in rows], [d.propensity for d, _ in rows], target
    )
