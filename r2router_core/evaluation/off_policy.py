"""Off-policy evaluation: what another router or lambda would have scored, from the log alone.

:func:`ips_estimate` estimates (inverse propensity weighting) the mean quality a
target router would have had: ``mean(1[target arm == logged arm] * quality / propensity)``
over logged answers with a quality signal. It is unbiased when every arm the
target picks had a non-zero propensity under the logging policy
(:class:`~r2router_core.execute.exploration.ExplorationPolicy`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from r2router_core.engine.config import Budget
from r2router_core.errors import ConfigError

if TYPE_CHECKING:
    from r2router_core.engine.router import R2Router
    from r2router_core.store import OutcomeStore

__all__ = ["IPSEstimate", "ips_estimate", "ips_from_store"]


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
