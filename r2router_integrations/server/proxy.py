"""Forwarding a chat request to its upstream, with fallback and SSE pass-through.

One request becomes a short list of :class:`Attempt` s: the decision's
fallback plan (the routed (model, budget), then the best eligible arm of other
models), walked under the core's :class:`FallbackPolicy`, as LangChain and
LlamaIndex do: an attempt that times out, cannot connect, answers 5xx, 429 or an
unreadable body hands over to the next one (a 429 with a short ``Retry-After``
is retried once on the same arm); another 4xx is the client's problem and is
returned as is. When every attempt fails the last 429 goes back to the client
with its rate-limit headers, anything else as a 502 (504 if all timed out).
Failed attempts are listed in ``x-r2router-failed-attempts`` (JSON, the core's
:class:`FailedAttempt` records). A stream commits to its upstream when the first
bytes arrive: after that no fallback is possible, and an interrupted stream ends
with an error event.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from r2router_core import (
    AttemptLog,
    Budget,
    Candidate,
    Failure,
    FailureKind,
    FallbackPolicy,
    RouterConfig,
    RoutingDecision,
    format_budget,
    parse_retry_after,
)
from r2router_integrations.server.errors import SERVER_ERROR, GatewayError, Redactor, error_body
from r2router_integrations.server.jsonio import dumps, loads_upstream
from r2router_integrations.server.metrics import GatewayMetrics
from r2router_integrations.server.protocol import ChatRequest, upstream_request_body
from r2router_integrations.server.upstreams import Upstream, Upstreams

__all__ = [
    "CLIENT_SHARDS",
    "PASSED_HEADERS",
    "Attempt",
    "JSONAnswer",
    "Proxy",
    "SSERewriter",
    "bypass_attempts",
    "plan_attempts",
]

logger = logging.getLogger(__name__)

CLIENT_SHARDS = 8
"""HTTP clients the gateway creates for upstream calls, used in turn. One httpx client's pool costs
more CPU per request as its concurrent connections grow (encode/httpx#3215); a loopback client
measured here at 50 in flight: 7.0 ms CPU per request with one client, 2.6 ms with 10 of them."""

PASSED_HEADERS = re.compile(r"^(retry-after|x-ratelimit-.*|x-request-id)$", re.IGNORECASE)
"""Upstream response headers passed through to the client: rate limits and the provider's request id."""

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True)
class Attempt:
    """One upstream call to try.

    Attributes:
        model: Pool model name.
        budget: The routed budget (``None``: uncapped, or routing bypassed).
        cap: The output-token cap sent upstream (:meth:`RoutingDecision.max_tokens_for`,
            or the client's own cap when routing was bypassed).
        candidate: The candidate's predictions (``None`` when routing was bypassed).
    """

    model: str
    budget: Budget
    cap: int | None
    candidate: Candidate | None = None

    @property
    def token_limit(self) -> Budget:
        """The arm's budget (as on a :class:`Candidate`)."""
        return self.budget

    @property
    def routed(self) -> bool:
        """Whether a routing decision chose this arm (the length instruction goes only with those)."""
        return self.candidate is not None

    def headers(self, failed: Sequence[Any]) -> dict[str, str]:
        """The ``x-r2router-*`` response headers, given the attempts that failed before this one."""
        out = {
            "x-r2router-model": self.model,
            "x-r2router-budget": format_budget(self.cap),
            "x-r2router-fallbacks": str(len(failed)),
        }
        if self.candidate is not None:
            out["x-r2router-predicted-quality"] = f"{self.candidate.predicted_quality:.6g}"
            out["x-r2router-predicted-cost"] = f"{self.candidate.predicted_cost:.6g}"
        if failed:
            out["x-r2router-failed-attempts"] = json.dumps([f.to_dict() for f in failed], separators=(",", ":"))
        return out


def plan_attempts(decision: RoutingDecision, *, max_fallbacks: int) -> list[Attempt]:
    """The decision's fallback plan as upstream calls, each with the cap the decision sends for it."""
    return [
        Attempt(c.model, c.token_limit, decision.max_tokens_for(c.token_limit), c)
        for c in decision.fallback_plan(max_fallbacks)
    ]


def bypass_attempts(model: str, *, client_cap: int | None) -> list[Attempt]:
    """A request naming a pool model: that model only, with the client's own cap."""
    return [Attempt(model, None, client_cap)]


class _Failure(Exception):
    """An attempt failed in a way the fallback policy judges (its ``r2router_failure``).

    Attributes:
        response: For an upstream 429, the answer to give the client if no attempt succeeds.
    """

    def __init__(
        self,
        model: str,
        kind: FailureKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        response: Response | None = None,
    ) -> None:
        super().__init__(f"{model}: {detail}")
        self.model = model
        self.r2router_failure = Failure(kind, f"{model}: {detail}", status, retry_after)
        self.response = response

    @property
    def reason(self) -> str:
        """The failure kind's name, as counted in metrics."""
        return self.r2router_failure.kind.value


def _passed_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if PASSED_HEADERS.match(name)}


class SSERewriter:
    """Splits an SSE byte stream into events and sets ``model`` in each JSON data line.

    Args:
        model: The value written into each chunk's ``model`` field.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        """The complete events in ``chunk`` (with what was buffered), rewritten; keeps the incomplete tail."""
        self._buffer += chunk
        out = []
        while True:
            match = _EVENT_END.search(self._buffer)
            if match is None:
                break
            out.append(self._event(self._buffer[: match.start()]))
            self._buffer = self._buffer[match.end() :]
        return b"".join(out)

    def flush(self) -> bytes:
        """Whatever remains at the end of the stream (rewritten, unterminated as received)."""
        rest, self._buffer = self._buffer, b""
        return self._event(rest)[:-2] if rest else b""

    def _event(self, event: bytes) -> bytes:
        lines = _LINE_END.split(event)
        return b"\n".join(self._line(line) for line in lines) + b"\n\n"

    def _line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return line
        payload = line[5:].strip()
        if not payload.startswith(b"{"):
            return line
        try:
            data = loads_upstream(payload)
        except ValueError:
            return line
        if not isinstance(data, dict) or "model" not in data:
            return line
        data["model"] = self._model
        return b"data: " + dumps(data)


class JSONAnswer(Response):
    """An upstream's non-streamed JSON answer that keeps the object its body was written from.

    The gateway's learning hooks read the answer's finish reason and usage, and stamp the
    decision id, from :meth:`parsed` instead of decoding the body again.
    """

    media_type = "application/json"

    def __init__(self, data: dict[str, Any], *, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(dumps(data), status_code=status_code, headers=headers)
        self._data = data
        self._written = self.body

    def parsed(self) -> dict[str, Any] | None:
        """The decoded body, or ``None`` once the body was replaced (it may no longer match)."""
        return self._data if self.body is self._written else None


class SSEResponse(StreamingResponse):
    """A streaming response that always watches for the client going away, and then cancels the stream."""

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:
                        logger.debug("client went away while streaming")
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


class Proxy:
    """Sends requests upstream and turns the answers into responses.

    Args:
        upstreams: The upstream of every pool model.
        config: The router's config (for the pool's full names).
        clients: HTTP clients for upstream calls, used in turn (one is enough; several
            keep each connection pool small, see :data:`CLIENT_SHARDS`).
        metrics: Where calls are counted.
        redactor: Scrubs keys from error bodies passed through.
        instruct: Add the length instruction to routed requests.
        policy: Which failures move on to the next attempt.
    """

    def __init__(
        self,
        upstreams: Upstreams,
        config: RouterConfig,
        clients: Sequence[httpx.AsyncClient],
        metrics: GatewayMetrics,
        redactor: Redactor,
        *,
        instruct: bool,
        policy: FallbackPolicy | None = None,
    ) -> None:
        self._upstreams = upstreams
        self._policy = policy or FallbackPolicy()
        self._full_names = {m.name: m.full_name for m in config.models}
        self._clients = itertools.cycle(list(clients))
        self._metrics = metrics
        self._redactor = redactor
        self._instruct = instruct

    async def forward(self, request: ChatRequest, attempts: Sequence[Attempt]) -> Response:
        """Try the attempts in order under the fallback policy; the first usable answer wins.

        Raises:
            GatewayError: 502 (504 if every attempt timed out) when all attempts failed,
                unless the last failure was an upstream 429, which is returned as is.
        """
        log = AttemptLog(attempts, self._policy)
        failures: list[_Failure] = []
        async for attempt in log:
            if failures and failures[-1].model != attempt.model:
                self._metrics.fallback(failures[-1].model)
            try:
                return await self._attempt(request, attempt, log.failures)
            except _Failure as failure:
                self._metrics.upstream_error(failure.model, failure.reason)
                log.failed(attempt, failure)
                failures.append(failure)
        last = failures[-1]
        if last.response is not None:  # the provider's own 429, Retry-After and all
            return last.response
        timeouts = all(f.reason == FailureKind.TIMEOUT.value for f in failures)
        tried = "; ".join(str(f) for f in failures)
        raise GatewayError(
            504 if timeouts else 502,
            f"every upstream tried failed ({len(failures)} tried: {tried})",
            type=SERVER_ERROR,
            code="upstream_timeout" if timeouts else "upstream_unavailable",
            failed_attempts=log.failures,
        )

    async def _attempt(self, request: ChatRequest, attempt: Attempt, failed: Sequence[Any]) -> Response:
        upstream = self._upstreams[attempt.model]
        body = upstream_request_body(
            request.body, upstream, cap=attempt.cap, instruct=self._instruct and attempt.routed
        )
        logger.debug(
            "forwarding to %s (%s) with %s=%s", attempt.model, upstream.model, upstream.max_tokens_param, attempt.cap
        )
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + upstream.deadline
        response = await self._open(upstream, body, deadline)
        handed_over = False
        try:
            headers = {**_passed_headers(response), **attempt.headers(failed)}
            status = response.status_code
            if status >= 500 or status < 200 or 300 <= status < 400:
                self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
                kind = FailureKind.SERVER_ERROR if status >= 500 else FailureKind.INVALID_RESPONSE
                raise _Failure(attempt.model, kind, f"HTTP {status}", status=status)
            content_type = response.headers.get("content-type", "application/json")
            if status >= 400:
                content = self._redactor.bytes(await self._read(response, upstream, deadline))
                self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
                answer = Response(content, status_code=status, headers=headers, media_type=content_type)
                if status != 429:  # the client's problem, returned as is; a 429 is counted as a failure
                    self._metrics.upstream_error(attempt.model, "http_4xx")
                if status == 429:
                    raise _Failure(
                        attempt.model,
                        FailureKind.RATE_LIMITED,
                        "HTTP 429",
                        status=429,
                        retry_after=parse_retry_after(response.headers.get("retry-after")),
                        response=answer,
                    )
                return answer
            if request.stream and content_type.startswith("text/event-stream"):
                first, chunks = await self._first_chunk(response, upstream, deadline)
                handed_over = True
                stream = self._relay(first, chunks, response, upstream, started, deadline)
                return SSEResponse(stream, headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
            data = self._rewrite_body(await self._read(response, upstream, deadline), attempt.model)
            self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
            return JSONAnswer(data, status_code=status, headers=headers)
        finally:
            if not handed_over:
                with anyio.CancelScope(shield=True):
                    await response.aclose()

    async def _open(self, upstream: Upstream, body: dict[str, Any], deadline: float) -> httpx.Response:
        client = next(self._clients)
        request = client.build_request(
            "POST", upstream.url, content=dumps(body), headers=upstream.json_headers, timeout=upstream.timeout
        )
        try:
            async with asyncio.timeout_at(deadline):
                return await client.send(request, stream=True)
        except TimeoutError:
            raise _deadline(upstream) from None
        except httpx.TimeoutException:
            raise _Failure(upstream.name, FailureKind.TIMEOUT, f"no answer within {upstream.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure(upstream.name, FailureKind.CONNECTION, f"connection failed ({type(exc).__name__})") from None

    async def _read(self, response: httpx.Response, upstream: Upstream, deadline: float) -> bytes:
        """The whole body, within the call's deadline and the upstream's size limit."""
        limit = upstream.max_response_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise _too_large(upstream)
        chunks, size = [], 0
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(upstream)
                    chunks.append(chunk)
        except TimeoutError:
            raise _deadline(upstream) from None
        except httpx.TimeoutException:
            raise _Failure(upstream.name, FailureKind.TIMEOUT, f"body stalled for {upstream.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure(upstream.name, FailureKind.CONNECTION, f"body interrupted ({type(exc).__name__})") from None
        return b"".join(chunks)

    async def _first_chunk(
        self, response: httpx.Response, upstream: Upstream, deadline: float
    ) -> tuple[bytes, AsyncIterator[bytes]]:
        chunks = response.aiter_bytes()
        try:
            async with asyncio.timeout_at(deadline):
                first = await anext(chunks, b"")
        except TimeoutError:
            raise _deadline(upstream) from None
        except httpx.TimeoutException:
            raise _Failure(upstream.name, FailureKind.TIMEOUT, f"stream silent for {upstream.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure(
                upstream.name, FailureKind.CONNECTION, f"stream interrupted ({type(exc).__name__})"
            ) from None
        if not first:
            raise _Failure(upstream.name, FailureKind.INVALID_RESPONSE, "empty stream")
        return first, chunks

    def _rewrite_body(self, content: bytes, model: str) -> dict[str, Any]:
        """The upstream's JSON object with ``model`` set to the pool model's full name."""
        try:
            data = loads_upstream(content)
        except ValueError:
            raise _Failure(model, FailureKind.INVALID_RESPONSE, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _Failure(model, FailureKind.INVALID_RESPONSE, "the body is not a JSON object")
        if "model" in data:
            data["model"] = self._full_names[model]
        return data

    async def _relay(
        self,
        first: bytes,
        chunks: AsyncIterator[bytes],
        response: httpx.Response,
        upstream: Upstream,
        started: float,
        deadline: float,
    ) -> AsyncIterator[bytes]:
        """The rewritten stream; whatever ends it early, the client gets an error event, never a silent cut."""
        model = upstream.name
        rewriter = SSERewriter(self._full_names[model])
        size = len(first)
        try:
            out = rewriter.feed(first)
            if out:
                yield out
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks, None)
                except TimeoutError:
                    raise _StreamEnd("timeout", f"passed its deadline of {upstream.deadline:g} s") from None
                if chunk is None:
                    break
                size += len(chunk)
                if size > upstream.max_response_bytes:
                    raise _StreamEnd("response_too_large", f"passed {upstream.max_response_bytes} bytes")
                out = rewriter.feed(chunk)
                if out:
                    yield out
            tail = rewriter.flush()
            if tail:
                yield tail
            self._metrics.upstream_time(model, time.perf_counter() - started)
        except _StreamEnd as end:
            self._metrics.upstream_error(model, "stream_" + end.reason)
            logger.warning("stream from %s stopped: it %s", model, end)
            yield _error_event(f"the upstream stream of {model} was stopped: it {end}", "stream_" + end.reason)
        except httpx.HTTPError as exc:  # the stream broke after we committed to it
            self._metrics.upstream_error(model, "stream_interrupted")
            logger.warning("stream from %s interrupted (%s)", model, type(exc).__name__)
            yield _error_event(f"the upstream stream of {model} was interrupted", "stream_interrupted")
        except Exception:
            self._metrics.upstream_error(model, "stream_error")
            logger.exception("relaying the stream of %s failed", model)
            yield _error_event(f"relaying the upstream stream of {model} failed", "stream_error")
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()


class _StreamEnd(Exception):
    """A committed stream stopped by the gateway's own limits.

    Attributes:
        reason: The metrics label (``timeout``, ``response_too_large``).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _error_event(message: str, code: str) -> bytes:
    """An SSE ``data:`` event holding an OpenAI error body."""
    return b"data: " + json.dumps(error_body(message, type=SERVER_ERROR, code=code)).encode() + b"\n\n"


def _deadline(upstream: Upstream) -> _Failure:
    return _Failure(
        upstream.name, FailureKind.TIMEOUT, f"no complete answer within its deadline of {upstream.deadline:g} s"
    )


def _too_large(upstream: Upstream) -> _Failure:
    return _Failure(
        upstream.name, FailureKind.INVALID_RESPONSE, f"answer over its limit of {upstream.max_response_bytes} bytes"
    )
