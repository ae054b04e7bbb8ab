"""The gateway's side of learning from traffic: decision ids, the decision log, feedback.

Hooks in the app (kept apart from the forwarding code)::

    chat()        after routing, ``Learning.finish(response, ...)`` stamps the decision id on the
                  answer (completion ``id`` and ``x-r2router-decision-id``, in every stream chunk
                  too) and, with a store, queues the log row once the answer is out
    /v1/feedback  ``{"id": ..., "quality": 0.0-1.0}``: 204; unknown id 404; bad score 400
    /metrics      ``r2router_decision_log_total{outcome}``: queued, written, dropped, failed
    /admin/reload the router as loaded plus every logged answer with a quality signal
                  (``training_data_from_decisions``), built in a worker thread and swapped in with
                  one assignment: requests keep routing on the old router meanwhile, none waits or
                  fails; also every ``reload_every`` seconds
    escalate()    a non-streamed answer the cap cut (finish reason ``length``) is asked again under
                  the core's EscalationPolicy; ``x-r2router-escalations`` lists the cut attempts and
                  ``x-r2router-cost-usd`` sums every attempt. Streams are not escalated: the cut
                  shows at their end, after the bytes went out. A request whose every upstream
                  attempt failed is logged too (status and finish reason ``error``, its failed
                  attempts, cost 0) and its error response carries ``x-r2router-decision-id``.

The log row is built after the last byte went to the client (a Starlette
background task, or the end of the stream) and written by the core's
:class:`~r2router_core.store.decision_log.DecisionLog` thread: logging never delays or
fails an answer. The row stores the embedding the request was routed on (the
micro-batcher hands it out: the prompt is embedded once); text is kept only with
``keep_text``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio.to_thread
import numpy as np
from numpy.typing import NDArray
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from r2router_core import (
    Candidate,
    ConfigError,
    DataError,
    DecisionLog,
    Escalation,
    EscalationPolicy,
    ExplorationPolicy,
    FailedAttempt,
    FailureKind,
    R2Router,
    RoutingDecision,
    UnknownDecisionError,
    call_cost,
    decision_record,
    format_budget,
    new_decision_id,
)
from r2router_core.store import check_client_source, check_decision_id, training_data_from_decisions
from r2router_integrations.server.errors import GatewayError
from r2router_integrations.server.jsonio import dumps, loads_upstream
from r2router_integrations.server.proxy import Attempt, JSONAnswer, plan_attempts

__all__ = ["DECISION_HEADER", "CallContext", "Learning"]

logger = logging.getLogger(__name__)

DECISION_HEADER = "x-r2router-decision-id"
SOURCE = "gateway"


@dataclass
class CallContext:
    """One routed chat request on its way to the log."""

    decision: RoutingDecision
    text: str
    decision_id: str = field(default_factory=new_decision_id)
    started: float = field(default_factory=time.perf_counter)
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    answer: list[str] = field(default_factory=list)
    propensity: float = 1.0
    escalation: Escalation | None = None
    cut: list[tuple[Candidate, dict[str, Any], str | None]] = field(default_factory=list)
    embedding: NDArray[np.float32] | None = None  # the row routed on, shape (D,)


class Learning:
    """Decision ids always; the decision log and feedback when the gateway has a store.

    Args:
        router: The gateway's router (its embedder embeds logged prompts).
        log: The decision log, or ``None`` (ids only; feedback answers 404).
    """

    def __init__(
        self,
        router: R2Router,
        log: DecisionLog | None,
        escalation: EscalationPolicy | None = None,
        *,
        swap: Callable[[R2Router], None] | None = None,
        reload_every: float | None = None,
        explore: ExplorationPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        if reload_every and not router.has_training_data:
            raise ConfigError(
                "--reload-every needs a router with training rows; this one was converted from fitted weights. "
                "Build one from the store with 'r2router train --store URL' and serve that"
            )
        self.router = router
        self.base = router
        self.log = log
        self.escalation = escalation or EscalationPolicy()
        self._swap = swap
        self.reload_every = reload_every
        self._reload_lock: asyncio.Lock | None = None
        self._schedule: asyncio.Task[None] | None = None
        self.reloads = 0
        self.on_reload: Callable[[float], None] | None = None  # told each reload's seconds (the gateway's metrics)
        self.exploration = explore or ExplorationPolicy()
        self._rng = np.random.default_rng(seed)
        self._unqueued: set[str] = set()  # answered, row not yet queued (feedback for them waits)

    # -- exploration -------------------------------------------------------------------
    def plan(self, decision: RoutingDecision, max_fallbacks: int) -> tuple[list[Attempt], float]:
        """The attempts of a routed request and the propensity of its first arm (exploration aside: 1.0)."""
        attempts = plan_attempts(decision, max_fallbacks=max_fallbacks)
        arm, propensity = self.exploration.choose(decision, self._rng)
        if arm is decision.chosen or arm == decision.chosen:
            return attempts, propensity
        first = Attempt(arm.model, arm.token_limit, decision.max_tokens_for(arm.token_limit), arm)
        return [first, *(a for a in attempts if a.model != arm.model)][: max_fallbacks + 1], propensity

    # -- reload ----------------------------------------------------------------------
    async def reload(self) -> dict[str, int]:
        """Rebuild the router from the loaded one plus the logged outcomes, then swap it in.

        Returns:
            ``{"logged_rows": ..., "training_rows": ...}`` of the new router.
        """
        log = self.log
        if log is None:
            raise GatewayError(404, "this gateway keeps no decision log (start it with --store)", code="not_found")
        if not self.base.has_training_data:
            raise GatewayError(
                409,
                "this gateway's router was converted from fitted weights and has no training rows to add logged "
                "outcomes to; build one from the store with 'r2router train --store URL' and serve that",
                code="conflict",
            )
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:  # one rebuild at a time; requests never take this lock
            started = time.perf_counter()
            router = await anyio.to_thread.run_sync(self._rebuilt, log)
            if router is not self.router:
                self.router = router
                if self._swap is not None:
                    self._swap(router)
            self.reloads += 1
            if self.on_reload is not None:
                self.on_reload(time.perf_counter() - started)
        n_base = self.base.training_data.n_queries
        return {"logged_rows": router.training_data.n_queries - n_base, "training_rows": router.training_data.n_queries}

    def _rebuilt(self, log: DecisionLog) -> R2Router:
        base = self.base
        data = training_data_from_decisions(
            log.store,
            base.config.model_names,
            base.config.budgets,
            token_axes=base.training_data.tokens.ndim,
            embedder_id=base.config.embedder,
        )
        if data is None:
            return self.router
        fresh = R2Router(base.config, base.training_data, embedder=base.embedder)
        logger.info("reload: %d logged rows added to %d", data.n_queries, base.training_data.n_queries)
        return fresh.add_outcomes(data)

    def start(self) -> None:
        """Start the reload schedule (inside the app's event loop)."""
        if self.log is not None and self.reload_every and self._schedule is None:
            self._schedule = asyncio.get_running_loop().create_task(self._every(self.reload_every))

    async def _every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.reload()
            except Exception:
                logger.exception("scheduled reload failed; the router in use is kept")

    async def escalate(
        self, first: Awaitable[Response], ctx: CallContext, again: Callable[[list[Attempt]], Awaitable[Response]]
    ) -> Response:
        """The answer, asked again with more room while the cap cut it (non-streamed answers only).

        Raises:
            GatewayError: Every upstream attempt failed (the request is logged first, with its id on the error).
        """
        try:
            response = await first
        except GatewayError as exc:
            if exc.failed_attempts:
                exc.headers[DECISION_HEADER] = ctx.decision_id
                self._record_failure(ctx, exc.failed_attempts)
            raise
        if (
            isinstance(response, StreamingResponse)
            or response.status_code != 200
            or self.escalation.max_escalations == 0
        ):
            return response
        escalation = ctx.escalation = Escalation(
            ctx.decision, self.escalation, _used_arm(ctx.decision, response.headers)
        )
        while True:
            reason, usage = _facts(response)
            arm = escalation.after(
                reason, _int(usage.get("completion_tokens")), _cost(ctx.decision, escalation.current, usage)
            )
            if arm is None:
                break
            cap = ctx.decision.max_tokens_for(arm.token_limit)
            try:
                retry = await again([Attempt(arm.model, arm.token_limit, cap, arm)])
            except Exception:
                logger.warning("escalation to %s failed; the cut answer is returned", arm, exc_info=True)
                escalation.give_up()
                break
            if retry.status_code != 200:
                escalation.give_up()
                break
            ctx.cut.append((escalation.tried[-2], usage, reason))
            response = retry
        if escalation.truncated:
            _, usage = _facts(response)
            total = escalation.cost_usd + _cost(ctx.decision, escalation.current, usage)
            response.headers["x-r2router-escalations"] = json.dumps(
                [t.to_dict() for t in escalation.truncated], separators=(",", ":")
            )
            response.headers["x-r2router-cost-usd"] = f"{total:.6g}"
        return response

    def close(self) -> None:
        """Stop the schedule, write what is queued and close the store."""
        if self._schedule is not None:
            self._schedule.cancel()
            self._schedule = None
        if self.log is not None:
            self.log.close()

    # -- chat ------------------------------------------------------------------------
    def finish(self, response: Response, ctx: CallContext) -> Response:
        """Stamp the decision id on a routed answer and log it once it is out."""
        response.headers[DECISION_HEADER] = ctx.decision_id
        if self.log is not None:
            self._unqueued.add(ctx.decision_id)
        if isinstance(response, StreamingResponse):
            response.body_iterator = self._stream(response.body_iterator, response, ctx)
            return response
        if response.status_code == 200 and response.body:
            body = _stamp(bytes(response.body), ctx, response.parsed() if isinstance(response, JSONAnswer) else None)
            response.body = body
            response.headers["content-length"] = str(len(body))
        if self.log is not None:
            response.background = BackgroundTask(self._record, ctx, dict(response.headers), response.status_code)
        return response

    async def _stream(self, chunks: AsyncIterable[Any], response: Response, ctx: CallContext) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in chunks:
            buffer += chunk if isinstance(chunk, bytes) else str(chunk).encode()
            cut = buffer.rfind(b"\n\n")
            if cut < 0:
                continue
            done, buffer = buffer[: cut + 2], buffer[cut + 2 :]
            yield _stamp_events(done, ctx)
        if buffer:
            yield _stamp_events(buffer, ctx)
        if self.log is not None:
            await self._record(ctx, dict(response.headers), response.status_code)

    async def _record(self, ctx: CallContext, headers: dict[str, str], status: int) -> None:
        """Build the log row and queue it; never raises."""
        log = self.log
        if log is None:
            return
        try:
            await self._queue_row(log, ctx, headers, status)
        finally:
            self._unqueued.discard(ctx.decision_id)

    async def _queue_row(self, log: DecisionLog, ctx: CallContext, headers: dict[str, str], status: int) -> None:
        try:
            if ctx.embedding is None:  # a context built without the router's embedding
                ctx.embedding = (await anyio.to_thread.run_sync(self.router.embed, [ctx.text]))[0]
            embedding = ctx.embedding
            used = _used_arm(ctx.decision, headers)
            failed = json.loads(headers.get("x-r2router-failed-attempts", "[]"))
            previous: str | None = None
            for arm, usage, reason in ctx.cut:  # each cut answer: a quality signal for its arm
                row_id = new_decision_id()
                cut = decision_record(
                    ctx.decision,
                    arm,
                    decision_id=row_id,
                    source=SOURCE,
                    embedding=embedding,
                    prompt=ctx.text,
                    finish_reason=reason,
                    input_tokens=_int(usage.get("prompt_tokens")),
                    output_tokens=_int(usage.get("completion_tokens")),
                    escalated_from=previous,
                )
                log.record(replace(cut, failed_attempts=tuple(failed)))
                previous = row_id
            if status == 429:  # every attempt failed, the last rate-limited: its 429 went back as is
                last = FailedAttempt(used.model, used.token_limit, FailureKind.RATE_LIMITED.value, "HTTP 429", 429)
                failed.append(last.to_dict())
            extra = ctx.escalation.cost_usd if ctx.escalation is not None else 0.0
            own = _cost(ctx.decision, used, ctx.usage)
            record = decision_record(
                ctx.decision,
                used,
                decision_id=ctx.decision_id,
                source=SOURCE,
                embedding=embedding,
                prompt=ctx.text,
                answer="".join(ctx.answer) or None,
                finish_reason=ctx.finish_reason or ("error" if status >= 400 else None),
                input_tokens=_int(ctx.usage.get("prompt_tokens")),
                output_tokens=_int(ctx.usage.get("completion_tokens")),
                latency_s=time.perf_counter() - ctx.started,
                status="ok" if status < 400 else "error",
                propensity=ctx.propensity,
                escalated_from=previous,
                cost_usd=own + extra,
            )
            log.record(replace(record, failed_attempts=tuple(failed)))
        except Exception:  # the answer is out; a log row is not worth an error
            logger.exception("decision log: could not build the row of decision %s", ctx.decision_id)

    def _record_failure(self, ctx: CallContext, failures: Sequence[FailedAttempt]) -> None:
        """Queue the row of a request whose every upstream attempt failed; never raises, never waits.

        The row names the last arm tried, finish reason ``error``, no output tokens and
        cost 0 (a failed attempt reports no usage), and lists every failed attempt.
        """
        if self.log is None:
            return
        try:
            last = failures[-1]
            tried = (c for c in ctx.decision.candidates if (c.model, c.token_limit) == (last.model, last.token_limit))
            record = decision_record(
                ctx.decision,
                next(tried, ctx.decision.chosen),
                decision_id=ctx.decision_id,
                source=SOURCE,
                failures=failures,
                embedding=ctx.embedding,
                prompt=ctx.text,
                finish_reason="error",
                latency_s=time.perf_counter() - ctx.started,
                cost_usd=0.0,
                status="error",
                propensity=ctx.propensity,
            )
            self.log.record(record)
        except Exception:  # the client gets its error response either way
            logger.exception("decision log: could not build the row of failed decision %s", ctx.decision_id)

    # -- feedback --------------------------------------------------------------------
    async def feedback(self, request: Request, body: dict[str, Any]) -> Response:
        """``POST /v1/feedback``: record a quality score for a logged decision."""
        if self.log is None:
            raise GatewayError(404, "this gateway keeps no decision log (start it with --store)", code="not_found")
        decision_id, quality = body.get("id"), body.get("quality", "missing")
        if not isinstance(decision_id, str) or not decision_id:
            raise GatewayError(400, "feedback needs 'id': the decision id of an answer", param="id")
        source = body.get("source", "api")
        for param, check, value in (("id", check_decision_id, decision_id), ("source", check_client_source, source)):
            try:  # the core's rules: an id of <= 64 characters, a source of 1-200, no NUL, not grader:*
                check(value)
            except DataError as exc:
                raise GatewayError(400, str(exc), param=param) from None
        log = self.log
        for _ in range(500):  # an answer just sent: its row is queued within moments
            if decision_id not in self._unqueued:
                break
            await asyncio.sleep(0.01)
        try:
            await anyio.to_thread.run_sync(lambda: log.feedback(decision_id, quality, source=source))
        except UnknownDecisionError as exc:
            raise GatewayError(404, str(exc), param="id", code="decision_not_found") from None
        except DataError as exc:
            raise GatewayError(400, str(exc), param="quality") from None
        return Response(status_code=204)


def _parsed(response: Response) -> Any:
    """The decoded JSON body of a non-streamed answer: the proxy's object when it has one, else read
    leniently (:func:`loads_upstream`: lone surrogates survive); ``None`` when it is not JSON."""
    data = response.parsed() if isinstance(response, JSONAnswer) else None
    if data is None:
        try:
            data = loads_upstream(bytes(response.body))
        except ValueError:
            return None
    return data


def _facts(response: Response) -> tuple[str | None, dict[str, Any]]:
    """``(finish_reason, usage)`` of a chat completion answer."""
    ctx = CallContext.__new__(CallContext)
    ctx.finish_reason, ctx.usage, ctx.answer = None, {}, []
    data = _parsed(response)
    if isinstance(data, dict):
        _observe(data, ctx)
    return ctx.finish_reason, ctx.usage


def _cost(decision: RoutingDecision, used: Candidate, usage: dict[str, Any]) -> float:
    spec = next(m for m in decision._table.config.models if m.name == used.model)
    return call_cost(spec, _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _used_arm(decision: RoutingDecision, headers: Mapping[str, str]) -> Candidate:
    """The candidate that answered: ``x-r2router-model`` at the budget ``x-r2router-budget`` names."""
    model = headers.get("x-r2router-model", decision.model)
    cap = headers.get("x-r2router-budget")
    if model == decision.model and format_budget(decision.max_tokens) == cap:
        # the chosen arm answered (the common case): it is the first eligible candidate, so the loop
        # below would pick it too, after building every candidate
        return decision.chosen
    arms = [c for c in decision.candidates if c.model == model and c.eligible]
    for arm in arms:
        if format_budget(decision.max_tokens_for(arm.token_limit)) == cap:
            return arm
    return decision.chosen if model == decision.model else arms[0]


def _observe(data: dict[str, Any], ctx: CallContext) -> None:
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            ctx.finish_reason = reason
        for key in ("message", "delta"):
            part = choice.get(key)
            if isinstance(part, dict) and isinstance(part.get("content"), str):
                ctx.answer.append(part["content"])
    if isinstance(data.get("usage"), dict):
        ctx.usage = data["usage"]


def _stamp(content: bytes, ctx: CallContext, data: Any = None) -> bytes:
    """``content`` with the decision id as its ``id``; ``data`` is its decoded JSON if already read."""
    if data is None:
        try:
            data = loads_upstream(content)  # the gateway's one JSON reader and writer (lone surrogates survive)
        except ValueError:
            return content
    if not isinstance(data, dict):
        return content
    data["id"] = ctx.decision_id
    _observe(data, ctx)
    return dumps(data)


def _stamp_events(events: bytes, ctx: CallContext) -> bytes:
    return b"\n".join(_stamp_line(line, ctx) for line in events.split(b"\n"))


def _stamp_line(line: bytes, ctx: CallContext) -> bytes:
    if not line.startswith(b"data:") or not line[5:].strip().startswith(b"{"):
        return line
    stamped = _stamp(line[5:].strip(), ctx)
    return b"data: " + stamped
