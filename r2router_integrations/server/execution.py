"""The gateway's driver of the core's call plan: one async loop for every chat request.

What a call does after its decision (which arm first, exploration and its propensity, the
fallback plan, the same-arm 429 retry, escalation of a cut answer, the cost of each attempt,
the decision-log rows) is the core's :class:`~r2router_core.execute.CallPlan`, the same plan
LangChain, LlamaIndex and the collector drive. This module only performs what it asks::

    plan.next() -> Attempt   Proxy.send()                       -> plan.answered / failed
                -> Sleep     asyncio.sleep (a 429's short Retry-After)
                -> Done      the answer, its x-r2router-* headers, the log rows queued

A stream is committed once its first bytes arrived (:meth:`CallPlan.committed`); its relay
collects the finish reason, usage and text as the events pass and reports them with
``answered()`` at its end (``failed()`` if it broke). A client that leaves, mid-stream or while
a non-streamed upstream call runs, ends the call ``abandoned()``: the paid call is logged with
what is known (the prompt's counted tokens, the stream's usage if it came) and feedback for its
id works.

Responses keep the gateway's wire behaviour: ``x-r2router-model``, ``-budget``, ``-fallbacks``,
``-failed-attempts``, ``-predicted-quality``/``-cost``, ``-decision-id``, ``-escalations`` and,
for a non-streamed answer, ``-cost-usd``, ``-input-cost-usd``, ``-output-cost-usd`` (reported
tokens at the pool's prices; the counted prompt when the provider reports none). When every
attempt failed, the last upstream 429 goes back as the provider sent it, else a 502 (504 if
every attempt timed out); another 4xx is returned as is.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.responses import Response

from r2router_core import DecisionLog, FailureKind, R2Router, RouterConfig, RoutingDecision, format_budget
from r2router_core.execute import (
    Attempt,
    CallOutcome,
    CallPlan,
    Done,
    ServingSettings,
    Sleep,
    log_outcome,
)
from r2router_integrations.server.errors import SERVER_ERROR, GatewayError
from r2router_integrations.server.feedback import Feedback
from r2router_integrations.server.jsonio import dumps
from r2router_integrations.server.metrics import GatewayMetrics
from r2router_integrations.server.protocol import ChatRequest, conversation_text
from r2router_integrations.server.proxy import (
    Proxy,
    Relay,
    SSEResponse,
    UpstreamAnswer,
    UpstreamFailure,
    UpstreamRefusal,
    answer_facts,
)

__all__ = ["DECISION_HEADER", "SOURCE", "Execution", "count_prompt_tokens"]

logger = logging.getLogger(__name__)

DECISION_HEADER = "x-r2router-decision-id"
SOURCE = "gateway"
_STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def count_prompt_tokens(router: R2Router, messages: list[Any]) -> int:
    """The request's messages as sent (every message's text), counted by the router's tokenizer."""
    return router.count_tokens([conversation_text(messages)])[0]


class Execution:
    """Runs each chat request's call plan.

    Args:
        settings: The serving settings (fallback, escalation, exploration, length instruction).
        proxy: Returns the proxy that performs one attempt.
        log: The decision log, or ``None``.
        feedback: Told which streamed answers are still to be logged (feedback for them waits).
        metrics: Where fallbacks and upstream failures are counted.
    """

    def __init__(
        self,
        settings: ServingSettings,
        proxy: Callable[[], Proxy],
        log: DecisionLog | None,
        feedback: Feedback,
        metrics: GatewayMetrics,
    ) -> None:
        self.settings = settings
        self._proxy = proxy
        self._log = log
        self._feedback = feedback
        self._metrics = metrics
        self._keep_text = log is not None and log.keep_text
        self._rng = np.random.default_rng(settings.seed)  # one generator: a seed gives one sequence of draws

    async def routed(
        self,
        chat: ChatRequest,
        decision: RoutingDecision,
        *,
        embedding: Any,
        text: str,
        prompt_tokens: int | None,
    ) -> Response:
        """Drive the plan of a routed request to its response."""
        plan = CallPlan.routed(
            decision,
            self.settings,
            source=SOURCE,
            stream=chat.stream,
            embedding=embedding,
            prompt=text if self._keep_text else None,
            prompt_tokens=prompt_tokens,
            rng=self._rng,
        )
        return await self._drive(chat, plan, routed=True)

    def router_answers(self) -> bool:
        """Whether the router answers this request (always, unless shadow mode draws the baseline)."""
        return self.settings.router_answers(self._rng)

    async def shadowed(
        self,
        chat: ChatRequest,
        decided: asyncio.Future[tuple[RoutingDecision, Any]],
        config: RouterConfig,
        *,
        text: str,
        prompt_tokens: int | None,
    ) -> Response:
        """Shadow mode: the baseline answers exactly as a plain proxy would, body as the upstream sent it.

        The router decides beside it (``decided``, already running); its choice is attached to the plan
        when both are done, and the row (the router's choice, the baseline's real usage and cost) queued.
        """
        plan = CallPlan.shadowed(
            self.settings,
            config.models,
            source=SOURCE,
            max_tokens=chat.client_cap,
            prompt=text if self._keep_text else None,
            prompt_tokens=prompt_tokens,
            rng=self._rng,
        )
        return await self._drive(chat, plan, routed=False, shadow=decided)

    async def bypass(self, chat: ChatRequest, config: RouterConfig, target: str, prompt_tokens: int | None) -> Response:
        """A request naming a pool model: that model only (same-arm 429 retry aside), the client's own cap,
        no length instruction, nothing logged (:meth:`CallPlan.fixed`)."""
        spec = next(m for m in config.models if m.name == target)
        plan = CallPlan.fixed(
            spec,
            None,
            cap=chat.client_cap,
            policy=self.settings.fallback,
            instruct=False,
            prompt_tokens=prompt_tokens,
            rng=self._rng,
        )
        return await self._drive(chat, plan, routed=False)

    # -- the loop ----------------------------------------------------------------------------
    async def _drive(
        self,
        chat: ChatRequest,
        plan: CallPlan,
        *,
        routed: bool,
        shadow: asyncio.Future[tuple[RoutingDecision, Any]] | None = None,
    ) -> Response:
        proxy = self._proxy()
        answers: dict[int, UpstreamAnswer] = {}
        stamp = plan.decision_id if routed else None
        ended = self._ended if shadow is None else functools.partial(self._shadow_ended, shadow)
        step = plan.next()
        try:
            while not isinstance(step, Done):
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = plan.next()
                    continue
                if step.kind == "fallback" and step.failures:
                    self._metrics.fallback(step.failures[-1].model)
                try:
                    answer = await proxy.send(
                        chat, step, completion_id=stamp, keep_text=self._keep_text, passthrough=shadow is not None
                    )
                except UpstreamFailure as failure:
                    self._metrics.upstream_error(failure.model, failure.reason)
                    logger.warning(
                        "pool model %r (budget %s) failed: %s",
                        step.model,
                        format_budget(step.token_limit),
                        failure.r2router_failure.detail,
                    )
                    failure.attempt = step
                    plan.failed(step, failure)
                except UpstreamRefusal as refusal:
                    refusal.attempt = step
                    plan.failed(step, refusal)
                else:
                    if answer.stream is not None:
                        plan.committed(step)
                        return self._streamed(plan, step, answer, answer.stream, routed=routed, ended=ended)
                    answers[step.number] = answer
                    assert answer.data is not None  # a 2xx that is not a stream: its JSON object
                    plan.answered(step, answer_facts(answer.data, keep_text=self._keep_text))
                step = plan.next()
        except asyncio.CancelledError:  # the client left while an upstream call ran: it is paid, log it
            if isinstance(step, Attempt) and not plan.done:
                plan.abandoned(step)
                ended(plan)
            raise
        ended(plan)
        if shadow is not None:
            return self._shadow_response(plan, answers)
        return self._response(step.outcome, answers, routed=routed)

    def _streamed(
        self,
        plan: CallPlan,
        attempt: Attempt,
        answer: UpstreamAnswer,
        relay: Relay,
        *,
        routed: bool,
        ended: Callable[[CallPlan], None],
    ) -> Response:
        """The SSE response of a committed stream; the relay reports its end to the plan."""
        decision_id = plan.decision_id
        logged = self._log is not None and routed  # a shadow call's row waits in _shadow_ended instead
        if logged:
            self._feedback.expect(decision_id)

        def stream_ended(relay: Relay, abandoned: bool) -> None:
            if abandoned:
                plan.abandoned(attempt, relay.facts())
            elif relay.error is not None:
                plan.failed(attempt, relay.error)
            else:
                plan.answered(attempt, relay.facts())
            ended(plan)
            if logged:
                self._feedback.queued(decision_id)

        relay.on_end = stream_ended
        headers = {**answer.headers, **_attempt_headers(attempt, routed), **_STREAM_HEADERS}
        if routed or self.settings.shadow is not None:
            headers[DECISION_HEADER] = decision_id
        return SSEResponse(relay, status_code=answer.status, headers=headers)

    def _ended(self, plan: CallPlan) -> None:
        """Every call's end, whatever its status (answered, failed, abandoned, streamed): its rows are queued."""
        self._count(plan.outcome)
        log_outcome(self._log, plan.outcome)

    def _count(self, outcome: CallOutcome) -> None:
        """/metrics: the spend of every paid answer, and the escalations."""
        for model, budget, usd in outcome.paid:
            self._metrics.spend(model, budget, usd)
        for cut in outcome.truncated:
            self._metrics.escalation(cut.model)

    def _shadow_ended(self, decided: asyncio.Future[tuple[RoutingDecision, Any]], plan: CallPlan) -> None:
        """A shadow call's end: its row waits for the router's decision (usually long there), then is queued."""
        decision_id = plan.decision_id
        self._count(plan.outcome)
        if self._log is not None:
            self._feedback.expect(decision_id)  # feedback for this id waits for its row

        def attach(done: asyncio.Future[tuple[RoutingDecision, Any]]) -> None:
            try:
                if done.cancelled() or done.exception() is not None:
                    logger.warning("shadow: the router could not decide request %s; no row logged", decision_id)
                    return
                decision, embedding = done.result()
                plan.decided(decision, embedding=embedding)
                self._metrics.shadow_decision(decision.model, decision.token_limit)
                log_outcome(self._log, plan.outcome)
            finally:
                if self._log is not None:
                    self._feedback.queued(decision_id)

        if decided.done():
            attach(decided)
        else:
            decided.add_done_callback(attach)

    def _shadow_response(self, plan: CallPlan, answers: dict[int, UpstreamAnswer]) -> Response:
        """The baseline's answer as the upstream sent it (a plain proxy's), or its error as the gateway gives it."""
        outcome = plan.outcome
        if outcome.status != "ok":
            return self._response(outcome, answers, routed=False)
        assert outcome.answered is not None
        answer = answers[outcome.answered.number]
        headers = {**answer.headers, DECISION_HEADER: outcome.decision_id, "x-r2router-shadow": "baseline"}
        return Response(answer.raw, status_code=answer.status, headers=headers, media_type="application/json")

    # -- the response ------------------------------------------------------------------------
    def _response(self, outcome: CallOutcome, answers: dict[int, UpstreamAnswer], *, routed: bool) -> Response:
        ids = {DECISION_HEADER: outcome.decision_id} if routed else {}
        if outcome.status == "ok":
            assert outcome.answered is not None
            attempt = outcome.answered
            answer = answers[attempt.number]
            assert answer.data is not None
            data = answer.data
            if routed:
                data["id"] = outcome.decision_id
            headers = {**answer.headers, **_attempt_headers(attempt, routed), **ids, **_cost_headers(outcome)}
            if outcome.truncated:
                headers["x-r2router-escalations"] = _json([t.to_dict() for t in outcome.truncated])
            return Response(dumps(data), status_code=answer.status, headers=headers, media_type="application/json")
        error = outcome.error
        last = outcome.failures[-1] if outcome.failures else None
        if isinstance(error, UpstreamRefusal | UpstreamFailure) and error.answer is not None:
            # another 4xx, as is; or the last failure an upstream 429: the provider's own answer, Retry-After and all
            headers = {**error.answer.headers, **_attempt_headers(error.attempt, routed), **ids}
            return Response(
                error.answer.content,
                status_code=error.answer.status,
                headers=headers,
                media_type=error.answer.media_type,
            )
        if last is None:  # not an upstream failure (a bug): the app answers 500
            assert error is not None
            raise error
        timeouts = all(f.kind == FailureKind.TIMEOUT.value for f in outcome.failures)
        tried = "; ".join(f.error for f in outcome.failures)
        raise GatewayError(
            504 if timeouts else 502,
            f"every upstream tried failed ({len(outcome.failures)} tried: {tried})",
            type=SERVER_ERROR,
            code="upstream_timeout" if timeouts else "upstream_unavailable",
            failed_attempts=outcome.failures,
            headers=ids,
        )


def _attempt_headers(attempt: Attempt | None, routed: bool) -> dict[str, str]:
    """The ``x-r2router-*`` headers of the attempt that answered (its arm, the cap sent, the failures before it)."""
    if attempt is None:
        return {}
    failed = attempt.failures
    out = {
        "x-r2router-model": attempt.model,
        "x-r2router-budget": format_budget(attempt.cap),
        "x-r2router-fallbacks": str(len(failed)),
    }
    if routed:
        out["x-r2router-predicted-quality"] = f"{attempt.arm.predicted_quality:.6g}"
        out["x-r2router-predicted-cost"] = f"{attempt.arm.predicted_cost:.6g}"
    if failed:
        out["x-r2router-failed-attempts"] = _json([f.to_dict() for f in failed])
    return out


def _cost_headers(outcome: CallOutcome) -> dict[str, str]:
    """USD of the call, exact (``repr``: the float the log row holds, so a client can sum them)."""
    return {
        "x-r2router-cost-usd": repr(outcome.cost_usd),
        "x-r2router-input-cost-usd": repr(outcome.input_cost_usd),
        "x-r2router-output-cost-usd": repr(outcome.output_cost_usd),
    }


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
