"""Escalation when the budget cut the answer: ask once more with more room.

A routed answer whose finish reason says the output cap stopped it
(``"length"``, Anthropic's ``"max_tokens"``) is usually useless. The
:class:`EscalationPolicy` (on by default, at most one escalation) then picks the
next arm: the next larger budget of the same model, else the next eligible
candidate in utility order that is not a smaller budget of a model already
tried. :class:`Escalation` walks it the way :class:`~r2router_core.execute.fallback.AttemptLog`
walks a fallback plan, and records every truncated attempt with its cost, so
that LangChain, LlamaIndex and the gateway report the same thing.

Streams escalate only before their first byte reaches the caller: after that
the answer cannot be taken back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r2router_core.engine.config import Budget
from r2router_core.engine.decision import Candidate, RoutingDecision
from r2router_core.errors import ConfigError

__all__ = ["DEFAULT_ESCALATIONS", "TRUNCATED_REASONS", "Escalation", "EscalationPolicy", "TruncatedAttempt"]

DEFAULT_ESCALATIONS = 1
"""Escalations per call by default."""

TRUNCATED_REASONS = frozenset({"length", "max_tokens"})
"""Finish reasons meaning the output cap stopped the answer (OpenAI, Anthropic)."""


def _rank(budget: Budget) -> float:
    return float("inf") if budget is None else float(budget)


@dataclass(frozen=True)
class EscalationPolicy:
    """When and how far a truncated answer is asked again.

    Attributes:
        max_escalations: Escalations per call (0 disables escalation).
    """

    max_escalations: int = DEFAULT_ESCALATIONS

    def __post_init__(self) -> None:
        value = self.max_escalations
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"max_escalations must be an int >= 0, got {value!r}")

    @classmethod
    def coerce(cls, value: EscalationPolicy | bool | int | None) -> EscalationPolicy:
        """A policy from a policy, ``True``/``None`` (the default), ``False`` (off) or a count."""
        if isinstance(value, EscalationPolicy):
            return value
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(0)
        return cls(value)

    @staticmethod
    def truncated(finish_reason: str | None) -> bool:
        """Whether a finish reason says the output cap cut the answer."""
        return finish_reason in TRUNCATED_REASONS

    def next_arm(self, decision: RoutingDecision, tried: list[Candidate]) -> Candidate | None:
        """The arm to ask after ``tried[-1]`` was cut: a larger budget of its model, else the next candidate.

        Never an arm already tried, nor a budget no larger than one tried on the same model.
        """
        used = tried[-1]
        best: dict[str, float] = {}
        for arm in tried:
            best[arm.model] = max(best.get(arm.model, -1.0), _rank(arm.token_limit))
        larger = [
            c
            for c in decision.candidates
            if c.eligible and c.model == used.model and _rank(c.token_limit) > best[used.model]
        ]
        if larger:
            return min(larger, key=lambda c: _rank(c.token_limit))
        for c in decision.candidates:
            if c.eligible and _rank(c.token_limit) > best.get(c.model, -1.0):
                return c
        return None


@dataclass(frozen=True)
class TruncatedAttempt:
    """An answer the cap cut, which was asked again with more room.

    Attributes:
        model: Pool model name.
        token_limit: Its budget (``None`` = uncapped).
        finish_reason: The provider's finish reason.
        output_tokens: Tokens of the cut answer, when reported.
        cost_usd: What the cut answer cost.
    """

    model: str
    token_limit: Budget
    finish_reason: str | None
    output_tokens: int | None = None
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "model": self.model,
            "token_limit": self.token_limit,
            "finish_reason": self.finish_reason,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }


class Escalation:
    """Walks the escalations of one call under a policy and records the truncated attempts.

    Usage (every integration)::

        escalation = Escalation(decision, policy, first_arm)
        answer = call(first_arm)
        while (arm := escalation.after(answer_finish_reason, tokens, cost)) is not None:
            answer = call(arm)

    Args:
        decision: The call's routing decision.
        policy: The escalation policy.
        used: The arm that gave the first answer (after any fallback).
    """

    def __init__(self, decision: RoutingDecision, policy: EscalationPolicy, used: Candidate) -> None:
        self.decision = decision
        self.policy = policy
        self.tried = [used]
        self.truncated: list[TruncatedAttempt] = []

    @property
    def current(self) -> Candidate:
        """The arm of the latest answer."""
        return self.tried[-1]

    def after(
        self, finish_reason: str | None, output_tokens: int | None = None, cost_usd: float = 0.0
    ) -> Candidate | None:
        """The arm to ask next if the latest answer was cut and escalations remain, else ``None``."""
        if not self.policy.truncated(finish_reason) or len(self.truncated) >= self.policy.max_escalations:
            return None
        arm = self.policy.next_arm(self.decision, self.tried)
        if arm is None:
            return None
        used = self.current
        self.truncated.append(TruncatedAttempt(used.model, used.token_limit, finish_reason, output_tokens, cost_usd))
        self.tried.append(arm)
        return arm

    def give_up(self) -> Candidate:
        """The escalated call failed: go back to the last cut answer's arm (its answer is returned)."""
        self.tried.pop()
        self.truncated.pop()
        return self.current

    @property
    def cost_usd(self) -> float:
        """USD of the truncated attempts (add the final answer's own cost for the call's total)."""
        return sum(t.cost_usd for t in self.truncated)
