"""Prometheus metrics of the gateway (one registry per app, so apps and tests do not share counters).

Exposed at ``GET /metrics`` in the Prometheus text format::

    r2router_requests_total{route, status}            HTTP requests answered
    r2router_decisions_total{model, budget}           routing decisions (chat and /v1/route)
    r2router_routing_latency_seconds                  embedding + routing time (histogram)
    r2router_upstream_latency_seconds{model}          upstream call time, to the end of the body (histogram)
    r2router_routing_batch_size                       prompts embedded and routed per batch (histogram)
    r2router_upstream_errors_total{model, reason}     timeout, connection, http_5xx, http_429, http_4xx,
                                                      invalid_response, stream_interrupted, stream_timeout,
                                                      stream_response_too_large, stream_error
    r2router_fallbacks_total{model}                   moves from a failed model to the next candidate
    r2router_errors_total{type, code}                 error responses the gateway produced itself
    r2router_spend_usd_total{model, budget}           USD of the upstream calls, at the pool's prices
    r2router_escalations_total{model}                 answers the cap cut, asked again with more room (from model)
    r2router_feedback_total{source}                   feedback scores stored (sources past the first 50: "other")
    r2router_reloads_total                            router reloads (on demand, scheduled, or following another worker)
    r2router_reload_duration_seconds                  time to rebuild the router (histogram)
    r2router_shadow_decisions_total{model, budget}    decisions the router made in shadow mode (not answered)
    r2router_decision_log_total{outcome}              log rows: queued, written, dropped, failed, rejected
    r2router_decision_log_pending                     log rows waiting for the writer (gauge)

With ``--workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set before the workers start),
every counter and histogram is summed over the workers, the pending gauge too
(``livesum``: live processes only).
"""

from __future__ import annotations

import os
from typing import Any

from r2router_core import Budget, format_budget, missing_dependency

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_ROUTING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_RELOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

MAX_FEEDBACK_SOURCES = 50
"""Distinct feedback sources with their own label per process; later ones are counted as ``other``
(a source is client text: unbounded labels would grow the exposition without limit)."""


class GatewayMetrics:
    """Counters and histograms of one gateway, in their own registry."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as exc:
            raise missing_dependency("prometheus_client", "server", "the gateway's /metrics") from exc
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._requests = Counter(
            "r2router_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=reg
        )
        self._decisions = Counter(
            "r2router_decisions",
            "Routing decisions, by chosen model and token budget",
            ["model", "budget"],
            registry=reg,
        )
        self._routing = Histogram(
            "r2router_routing_latency_seconds",
            "Time to embed and route one prompt",
            buckets=_ROUTING_BUCKETS,
            registry=reg,
        )
        self._batch = Histogram(
            "r2router_routing_batch_size",
            "Prompts embedded and routed together in one batch",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self._upstream = Histogram(
            "r2router_upstream_latency_seconds",
            "Upstream call time, from sending the request to the end of the response body",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self._upstream_errors = Counter(
            "r2router_upstream_errors", "Failed upstream calls, by model and reason", ["model", "reason"], registry=reg
        )
        self._fallbacks = Counter(
            "r2router_fallbacks", "Fallbacks from a failed model to the next candidate", ["model"], registry=reg
        )
        self._errors = Counter(
            "r2router_errors",
            "Error responses produced by the gateway, by OpenAI error type and code",
            ["type", "code"],
            registry=reg,
        )
        self._spend = Counter(
            "r2router_spend_usd",
            "USD of upstream calls at the pool's prices, by model and budget",
            ["model", "budget"],
            registry=reg,
        )
        self._escalations = Counter(
            "r2router_escalations",
            "Answers the cap cut, asked again with more room, by the model cut",
            ["model"],
            registry=reg,
        )
        self._feedback = Counter("r2router_feedback", "Feedback scores stored, by source", ["source"], registry=reg)
        self._reloads = Counter("r2router_reloads", "Router reloads", registry=reg)
        self._reload_time = Histogram(
            "r2router_reload_duration_seconds",
            "Time to rebuild the router on a reload",
            buckets=_RELOAD_BUCKETS,
            registry=reg,
        )
        self._shadow = Counter(
            "r2router_shadow_decisions",
            "Routing decisions made in shadow mode (logged, not answered)",
            ["model", "budget"],
            registry=reg,
        )
        self._log_rows = Counter(
            "r2router_decision_log",
            "Decision log rows by outcome (dropped/failed/rejected: lost, the answer still went out)",
            ["outcome"],
            registry=reg,
        )
        self._log_pending = Gauge(
            "r2router_decision_log_pending",
            "Decision log rows waiting for the writer",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self._sources: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: Any) -> Any:
        """``metric.labels(*values)``, looked up once per label set (prometheus_client's own lookup
        takes a lock and rebuilds the key on every call)."""
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*(str(v) for v in values))
        return child

    def request(self, route: str, status: int) -> None:
        """Count one answered HTTP request."""
        self._child(self._requests, route, status).inc()

    def decision(self, model: str, budget: Budget) -> None:
        """Count one routing decision."""
        self._child(self._decisions, model, format_budget(budget)).inc()

    def routing_time(self, seconds: float) -> None:
        """Observe the time one routing call took."""
        self._routing.observe(seconds)

    def batch_size(self, size: int) -> None:
        """Observe the size of one routing batch."""
        self._batch.observe(size)

    def upstream_time(self, model: str, seconds: float) -> None:
        """Observe one completed upstream call."""
        self._child(self._upstream, model).observe(seconds)

    def upstream_error(self, model: str, reason: str) -> None:
        """Count one failed upstream call."""
        self._child(self._upstream_errors, model, reason).inc()

    def fallback(self, model: str) -> None:
        """Count one fallback away from ``model``."""
        self._child(self._fallbacks, model).inc()

    def error(self, type: str, code: str | None) -> None:
        """Count one error response of the gateway."""
        self._child(self._errors, type, code or "none").inc()

    def spend(self, model: str, budget: Budget, usd: float) -> None:
        """Add the USD of one upstream call (every attempt that was paid, escalations included)."""
        if usd > 0:
            self._child(self._spend, model, format_budget(budget)).inc(usd)

    def escalation(self, model: str) -> None:
        """Count one escalation away from ``model``'s cut answer."""
        self._child(self._escalations, model).inc()

    def feedback(self, source: str) -> None:
        """Count one stored feedback score (the first :data:`MAX_FEEDBACK_SOURCES` sources by name)."""
        if source not in self._sources:
            if len(self._sources) >= MAX_FEEDBACK_SOURCES:
                source = "other"
            else:
                self._sources.add(source)
        self._child(self._feedback, source).inc()

    def reload(self, seconds: float) -> None:
        """Count one router reload and observe how long it took."""
        self._reloads.inc()
        self._reload_time.observe(seconds)

    def shadow_decision(self, model: str, budget: Budget) -> None:
        """Count one decision the router made in shadow mode (logged, not answered)."""
        self._child(self._shadow, model, format_budget(budget)).inc()

    def log_count(self, outcome: str, n: int) -> None:
        """Count decision log rows (``DecisionLog.observe``'s ``counts``)."""
        self._child(self._log_rows, outcome).inc(n)

    def log_pending(self, n: int) -> None:
        """Set the decision log's queue depth (``DecisionLog.observe``'s ``pending``)."""
        self._log_pending.set(n)

    def watch_log(self, log: Any) -> None:
        """Count a :class:`~r2router_core.DecisionLog`'s rows and queue depth (every outcome shown from 0)."""
        for outcome in ("queued", "written", "dropped", "failed", "rejected"):
            self._child(self._log_rows, outcome)
        log.observe(counts=self.log_count, pending=self.log_pending)

    def render(self) -> bytes:
        """The Prometheus text exposition; under ``PROMETHEUS_MULTIPROC_DIR``, summed over every worker process."""
        from prometheus_client import CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
