"""Forwarding a chat request to its upstream, with fallback and SSE pass-through.

One request becomes a short list of :class:`Attempt` s: the routed (model,
budget) first, then the next-best eligible candidates of other models. An
attempt that times out, cannot connect, answers 5xx or an unreadable body
hands over to the next one; a 4xx is the client's problem and is returned as
is. A stream commits to its upstream when the first bytes arrive: after that
no fallback is possible, and an interrupted stream ends with an error event.
"""

from __future__ import annotations

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

from r2router_core.config import Budget, RouterConfig, format_budget
from r2router_core.decision import Candidate, RoutingDecision
from r2router_integrations.server.errors import SERVER_ERROR, GatewayError, Redactor, error_body
from r2router_integrations.server.metrics import GatewayMetrics
from r2router_integrations.server.protocol import ChatRequest, upstream_request_body
from r2router_integrations.server.upstreams import Upstream, Upstreams

__all__ = ["CLIENT_SHARDS", "Attempt", "Proxy", "SSERewriter", "bypass_attempts", "plan_attempts"]

logger = logging.getLogger(__name__)

CLIENT_SHARDS = 8
"""HTTP clients the gateway creates for upstream calls, used in turn. One httpx client's pool costs
more CPU per request as its concurrent connections grow (encode/httpx#3215); a loopback client
measured here at 50 in flight: 7.0 ms CPU per request with one client, 2.6 ms with 10 of them."""

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True)
class Attempt:
    """One upstream call to try.

    Attributes:
        model: Pool model name.
        budget: The routed budget (``None``: uncapped, or routing bypassed).
        cap: The output-token cap sent upstream: the budget, bounded by the client's own cap.
        candidate: The candidate's predictions (``None`` when routing was bypassed).
    """

    model: str
    budget: Budget
    cap: int | None
    candidate: Candidate | None = None

    def headers(self, fallbacks: int) -> dict[str, str]:
        """The ``x-r2router-*`` response headers."""
        out = {
            "x-r2router-model": self.model,
            "x-r2router-budget": format_budget(self.cap),
            "x-r2router-fallbacks": str(fallbacks),
        }
        if self.candidate is not None:
            out["x-r2router-predicted-quality"] = f"{self.candidate.predicted_quality:.6g}"
            out["x-r2router-predicted-cost"] = f"{self.candidate.predicted_cost:.6g}"
        return out


def _cap(budget: Budget, client_cap: int | None) -> int | None:
    caps = [c for c in (budget, client_cap) if c is not None]
    return min(caps) if caps else None


def plan_attempts(decision: RoutingDecision, *, client_cap: int | None, max_fallbacks: int) -> list[Attempt]:
    """The chosen arm, then the best eligible arm of each other model, best first.

    Args:
        decision: The routing decision.
        client_cap: The client's own token cap (an upper bound on every budget).
        max_fallbacks: How many other models may be tried after the first.
    """
    attempts: list[Attempt] = []
    seen: set[str] = set()
    for cand in decision.candidates:
        if len(attempts) > max_fallbacks:
            break
        if not cand.eligible or cand.model in seen:
            continue
        seen.add(cand.model)
        attempts.append(Attempt(cand.model, cand.token_limit, _cap(cand.token_limit, client_cap), cand))
    return attempts


def bypass_attempts(model: str, *, client_cap: int | None) -> list[Attempt]:
    """A request naming a pool model: that model only, with the client's own cap."""
    return [Attempt(model, None, client_cap)]


class _Failure(Exception):
    """An attempt failed in a way that allows the next one."""

    def __init__(self, model: str, reason: str, detail: str) -> None:
        super().__init__(f"{model}: {detail}")
        self.model = model
        self.reason = reason
        self.detail = detail


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
            data = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return line
        if not isinstance(data, dict) or "model" not in data:
            return line
        data["model"] = self._model
        return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


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
    ) -> None:
        self._upstreams = upstreams
        self._full_names = {m.name: m.full_name for m in config.models}
        self._clients = itertools.cycle(list(clients))
        self._metrics = metrics
        self._redactor = redactor
        self._instruct = instruct

    async def forward(self, request: ChatRequest, attempts: Sequence[Attempt]) -> Response:
        """Try the attempts in order; the first usable answer wins.

        Raises:
            GatewayError: 502 (504 if every attempt timed out) when all attempts failed.
        """
        failures: list[_Failure] = []
        for i, attempt in enumerate(attempts):
            if i:
                self._metrics.fallback(attempts[i - 1].model)
            try:
                return await self._attempt(request, attempt, fallbacks=i)
            except _Failure as failure:
                self._metrics.upstream_error(failure.model, failure.reason)
                logger.warning(
                    "upstream %s failed (%s); %s",
                    failure.model,
                    failure.detail,
                    "trying the next candidate" if i + 1 < len(attempts) else "no candidate left",
                )
                failures.append(failure)
        timeouts = all(f.reason == "timeout" for f in failures)
        tried = "; ".join(str(f) for f in failures)
        raise GatewayError(
            504 if timeouts else 502,
            f"every upstream tried failed ({len(failures)} tried: {tried})",
            type=SERVER_ERROR,
            code="upstream_timeout" if timeouts else "upstream_unavailable",
        )

    async def _attempt(self, request: ChatRequest, attempt: Attempt, *, fallbacks: int) -> Response:
        upstream = self._upstreams[attempt.model]
        body = upstream_request_body(
            request.body, upstream, cap=attempt.cap, instruct=self._instruct and attempt.budget is not None
        )
        logger.debug(
            "forwarding to %s (%s) with %s=%s", attempt.model, upstream.model, upstream.max_tokens_param, attempt.cap
        )
        started = time.perf_counter()
        response = await self._open(upstream, body)
        handed_over = False
        try:
            headers = attempt.headers(fallbacks)
            status = response.status_code
            if status >= 500 or status < 200 or 300 <= status < 400:
                self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
                raise _Failure(attempt.model, "http_5xx" if status >= 500 else "invalid_response", f"HTTP {status}")
            content_type = response.headers.get("content-type", "application/json")
            if status >= 400:
                content = self._redactor.bytes(await self._read(response, upstream))
                self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
                return Response(content, status_code=status, headers=headers, media_type=content_type)
            if request.stream and content_type.startswith("text/event-stream"):
                first, chunks = await self._first_chunk(response, upstream)
                handed_over = True
                stream = self._relay(first, chunks, response, attempt.model, started)
                return SSEResponse(stream, headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
            content = self._rewrite_body(await self._read(response, upstream), attempt.model)
            self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
            return Response(content, status_code=status, headers=headers, media_type="application/json")
        finally:
            if not handed_over:
                with anyio.CancelScope(shield=True):
                    await response.aclose()

    async def _open(self, upstream: Upstream, body: dict[str, Any]) -> httpx.Response:
        client = next(self._clients)
        request = client.build_request(
            "POST", upstream.url, json=body, headers=upstream.request_headers(), timeout=upstream.timeout
        )
        try:
            return await client.send(request, stream=True)
        except httpx.TimeoutException:
            raise _Failure(upstream.name, "timeout", f"no answer within {upstream.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure(upstream.name, "connection", f"connection failed ({type(exc).__name__})") from None

    async def _read(self, response: httpx.Response, upstream: Upstream) -> bytes:
        try:
            return await response.aread()
        except httpx.TimeoutException:
            raise _Failure(upstream.name, "timeout", f"body stalled for {upstream.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure(upstream.name, "connection", f"body interrupted ({type(exc).__name__})") from None

    async def _first_chunk(self, response: httpx.Response, upstream: Upstream) -> tuple[bytes, AsyncIterator[bytes]]:
        chunks = response.aiter_bytes()
        try:
            first = await anext(chunks, b"")
        except httpx.TimeoutException:
            raise _Failure(upstream.name, "timeout", f"stream silent for {upstream.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Failure(upstream.name, "connection", f"stream interrupted ({type(exc).__name__})") from None
        if not first:
            raise _Failure(upstream.name, "invalid_response", "empty stream")
        return first, chunks

    def _rewrite_body(self, content: bytes, model: str) -> bytes:
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Failure(model, "invalid_response", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise _Failure(model, "invalid_response", "the body is not a JSON object")
        if "model" in data:
            data["model"] = self._full_names[model]
        return json.dumps(data, ensure_ascii=False).encode()

    async def _relay(
        self, first: bytes, chunks: AsyncIterator[bytes], response: httpx.Response, model: str, started: float
    ) -> AsyncIterator[bytes]:
        rewriter = SSERewriter(self._full_names[model])
        try:
            out = rewriter.feed(first)
            if out:
                yield out
            async for chunk in chunks:
                out = rewriter.feed(chunk)
                if out:
                    yield out
            tail = rewriter.flush()
            if tail:
                yield tail
            self._metrics.upstream_time(model, time.perf_counter() - started)
        except httpx.HTTPError as exc:  # the stream broke after we committed to it
            self._metrics.upstream_error(model, "stream_interrupted")
            logger.warning("stream from %s interrupted (%s)", model, type(exc).__name__)
            body = error_body(
                f"the upstream stream of {model} was interrupted", type=SERVER_ERROR, code="stream_interrupted"
            )
            yield b"data: " + json.dumps(body).encode() + b"\n\n"
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()
