"""Exploration that keeps every arm measured, and what the log then says about other routers.

A router that always picks its best arm stops measuring the others, so its
labels go stale where the world changed. :class:`ExplorationPolicy` (off by
default) sends a share ``rate`` of the calls to a non-best arm among the
``top`` eligible candidates whose predicted cost is at most ``max_cost_ratio``
times the chosen arm's (the stated cost bound), uniformly; the probability of
the arm actually used is the *propensity* the decision log keeps.
The off-policy estimate that the propensities make possible lives in
:mod:`r2router_core.evaluation.off_policy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from r2router_core.engine.decision import Candidate, RoutingDecision
from r2router_core.errors import ConfigError

__all__ = ["ExplorationPolicy"]


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
