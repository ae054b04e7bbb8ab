"""Sending one attempt upstream and turning the answer into what the gateway returns.

The core's :class:`~r2router_core.execute.CallPlan` decides which attempts a call makes (the
chosen arm, the fallback plan, the same-arm 429 retry, escalation); the gateway's driver
(:mod:`r2router_integrations.server.execution`) asks this module to perform each one.
:meth:`Proxy.send` makes one upstream call and returns an :class:`UpstreamAnswer`, or raises
:class:`UpstreamFailure` for what the plan judges (timeout, connection, 5xx, 429, an unreadable
body: each carries its own ``r2router_failure``) and :class:`UpstreamRefusal` for another 4xx
(the client's problem, returned as is; never a reason to try another model).

A streamed answer is a :class:`Relay`: its first bytes were read before it was returned (a
failure before them is still the plan's to handle); it rewrites each event (``model``, and the
decision id as ``id``), collects the answer's facts (finish reason, usage, text) as they pass,
and reports its end, its error or the client's leaving to ``on_end``. An interrupted stream ends
with an error event, never a silent cut.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from r2router_core import AnswerFacts, Failure, FailureKind, RouterConfig, parse_retry_after
from r2router_core.execute import Attempt
from r2router_integrations.server.errors import SERVER_ERROR, Redactor, error_body
from r2router_integrations.server.jsonio import dumps, loads_upstream
from r2router_integrations.server.metrics import GatewayMetrics
from r2router_integrations.server.protocol import ChatRequest, upstream_request_body
from r2router_integrations.server.upstreams import Upstream, Upstreams

__all__ = [
    "CLIENT_SHARDS",
    "PASSED_HEADERS",
    "Proxy",
    "Relay",
    "SSEResponse",
    "SSERewriter",
    "UpstreamAnswer",
    "UpstreamFailure",
    "UpstreamRefusal",
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


@dataclass
class UpstreamAnswer:
    """What one upstream call answered (a 2xx; a 4xx inside :class:`UpstreamRefusal`, a 429 inside
    :class:`UpstreamFailure`).

    Attributes:
        status: The upstream's HTTP status.
        headers: Its headers passed to the client (:data:`PASSED_HEADERS`).
        data: A JSON answer, decoded (``None`` for a stream or an error body).
        content: An error body as sent (keys scrubbed).
        media_type: The error body's content type.
        stream: A committed stream (``None`` for a JSON answer).
        raw: A JSON answer's body as received (kept with ``passthrough``: shadow mode answers with it).
    """

    status: int
    headers: dict[str, str]
    data: dict[str, Any] | None = None
    content: bytes = b""
    media_type: str = "application/json"
    stream: Relay | None = None
    raw: bytes = b""


class UpstreamFailure(Exception):
    """An attempt failed in a way the fallback policy judges (its ``r2router_failure``).

    Attributes:
        answer: For an upstream 429, the answer to give the client if no attempt succeeds.
    """

    def __init__(
        self,
        model: str,
        kind: FailureKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        answer: UpstreamAnswer | None = None,
    ) -> None:
        super().__init__(f"{model}: {detail}")
        self.model = model
        self.r2router_failure = Failure(kind, f"{model}: {detail}", status, retry_after)
        self.answer = answer
        self.attempt: Attempt | None = None  # set by the driver: the attempt that failed

    @property
    def reason(self) -> str:
        """The failure kind's name, as counted in metrics."""
        return self.r2router_failure.kind.value


class UpstreamRefusal(Exception):
    """The upstream answered a 4xx other than 429: the client's request is at fault; returned as is.

    Not a provider failure (no ``r2router_failure``, no ``status_code``): the plan ends the call.
    """

    def __init__(self, model: str, answer: UpstreamAnswer) -> None:
        super().__init__(f"{model}: HTTP {answer.status}")
        self.answer = answer
        self.attempt: Attempt | None = None  # set by the driver: the attempt refused


def _passed_headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if PASSED_HEADERS.match(name)}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Facts:
    """What an answer reports, collected from its JSON body or as its stream's events pass."""

    __slots__ = ("finish_reason", "input_tokens", "output_tokens", "text")

    def __init__(self, keep_text: bool) -> None:
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.text: list[str] | None = [] if keep_text else None

    def observe(self, data: dict[str, Any]) -> None:
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reason = reason
            if self.text is not None:
                for key in ("message", "delta"):
                    part = choice.get(key)
                    if isinstance(part, dict) and isinstance(part.get("content"), str):
                        self.text.append(part["content"])
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = _int(usage.get("prompt_tokens"))
            self.output_tokens = _int(usage.get("completion_tokens"))

    def facts(self) -> AnswerFacts:
        text = "".join(self.text) or None if self.text is not None else None
        return AnswerFacts(self.finish_reason, self.input_tokens, self.output_tokens, text)


def answer_facts(data: dict[str, Any], *, keep_text: bool = False) -> AnswerFacts:
    """The finish reason, usage and (with ``keep_text``) text of a chat completion."""
    facts = _Facts(keep_text)
    facts.observe(data)
    return facts.facts()


class SSERewriter:
    """Splits an SSE byte stream into events; sets ``model`` (and ``id``) in each JSON data line.

    Args:
        model: The value written into each chunk's ``model`` field.
        completion_id: Written into each chunk's ``id`` (the decision id), unless ``None``.
        keep_text: Collect the answer's text too (see :meth:`facts`).
        rewrite: ``False`` passes every event through as received (its facts are still read).
    """

    def __init__(
        self, model: str, *, completion_id: str | None = None, keep_text: bool = False, rewrite: bool = True
    ) -> None:
        self._model = model
        self._id = completion_id
        self._rewrite = rewrite
        self._buffer = b""
        self._facts = _Facts(keep_text)

    def facts(self) -> AnswerFacts:
        """What the events so far reported: the last finish reason and usage, the text."""
        return self._facts.facts()

    def feed(self, chunk: bytes) -> bytes:
        """The complete events in ``chunk`` (with what was buffered), rewritten; keeps the incomplete tail."""
        self._buffer += chunk
        out = []
        while True:
            match = _EVENT_END.search(self._buffer)
            if match is None:
                break
            out.append(self._event(self._buffer[: match.start()], self._buffer[match.start() : match.end()]))
            self._buffer = self._buffer[match.end() :]
        return b"".join(out)

    def flush(self) -> bytes:
        """Whatever remains at the end of the stream (rewritten, unterminated as received)."""
        rest, self._buffer = self._buffer, b""
        return self._event(rest)[:-2] if rest else b""

    def _event(self, event: bytes, end: bytes = b"\n\n") -> bytes:
        lines = _LINE_END.split(event)
        rewritten = [self._line(line) for line in lines]  # each data line's facts are read either way
        return b"\n".join(rewritten) + b"\n\n" if self._rewrite else event + end

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
        if not isinstance(data, dict):
            return line
        self._facts.observe(data)
        if not self._rewrite or (self._id is None and "model" not in data):
            return line
        if "model" in data:
            data["model"] = self._model
        if self._id is not None:
            data["id"] = self._id
        return b"data: " + dumps(data)


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
    """Sends one attempt upstream and reads its answer.

    Args:
        upstreams: The upstream of every pool model.
        config: The router's config (for the pool's full names).
        clients: HTTP clients for upstream calls, used in turn (one is enough; several
            keep each connection pool small, see :data:`CLIENT_SHARDS`).
        metrics: Where calls are counted.
        redactor: Scrubs keys from error bodies passed through.
        instruction_template: The length instruction, with ``{budget}``.
    """

    def __init__(
        self,
        upstreams: Upstreams,
        config: RouterConfig,
        clients: Sequence[httpx.AsyncClient],
        metrics: GatewayMetrics,
        redactor: Redactor,
        *,
        instruction_template: str | None = None,
    ) -> None:
        self._upstreams = upstreams
        self._full_names = {m.name: m.full_name for m in config.models}
        self._clients = itertools.cycle(list(clients))
        self._metrics = metrics
        self._redactor = redactor
        self._template = instruction_template

    async def send(
        self,
        request: ChatRequest,
        attempt: Attempt,
        *,
        completion_id: str | None = None,
        keep_text: bool = False,
        passthrough: bool = False,
    ) -> UpstreamAnswer:
        """Make ``attempt``'s upstream call.

        Args:
            request: The client's request.
            attempt: What the call plan asks for (arm, cap, the budget to state in the instruction).
            completion_id: Written into a stream's chunks as ``id`` (the decision id).
            keep_text: Collect a stream's text for the log.
            passthrough: Leave the answer as the upstream sent it (shadow mode: a plain proxy's answer);
                its facts are still read for the log.

        Raises:
            UpstreamFailure: A failure the fallback policy judges (an upstream 429 carries its answer).
            UpstreamRefusal: Another 4xx, to return as is.
        """
        upstream = self._upstreams[attempt.model]
        body = upstream_request_body(
            request.body,
            upstream,
            cap=attempt.cap,
            instruct=attempt.instruction_budget is not None,
            template=self._template,
        )
        logger.debug(
            "forwarding to %s (%s) with %s=%s", attempt.model, upstream.model, upstream.max_tokens_param, attempt.cap
        )
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + upstream.deadline
        response = await self._open(upstream, body, deadline)
        handed_over = False
        try:
            headers = _passed_headers(response)
            status = response.status_code
            if status >= 500 or status < 200 or 300 <= status < 400:
                self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
                kind = FailureKind.SERVER_ERROR if status >= 500 else FailureKind.INVALID_RESPONSE
                raise UpstreamFailure(attempt.model, kind, f"HTTP {status}", status=status)
            content_type = response.headers.get("content-type", "application/json")
            if status >= 400:
                content = self._redactor.bytes(await self._read(response, upstream, deadline))
                self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
                answer = UpstreamAnswer(status, headers, content=content, media_type=content_type)
                if status != 429:  # the client's problem, returned as is; a 429 is counted as a failure
                    self._metrics.upstream_error(attempt.model, "http_4xx")
                    raise UpstreamRefusal(attempt.model, answer)
                raise UpstreamFailure(
                    attempt.model,
                    FailureKind.RATE_LIMITED,
                    "HTTP 429",
                    status=429,
                    retry_after=parse_retry_after(response.headers.get("retry-after")),
                    answer=answer,
                )
            if request.stream and content_type.startswith("text/event-stream"):
                first, chunks = await self._first_chunk(response, upstream, deadline)
                handed_over = True
                rewriter = SSERewriter(
                    self._full_names[attempt.model],
                    completion_id=completion_id,
                    keep_text=keep_text,
                    rewrite=not passthrough,
                )
                relay = Relay(first, chunks, response, upstream, rewriter, self._metrics, started, deadline)
                return UpstreamAnswer(status, headers, stream=relay)
            raw = await self._read(response, upstream, deadline)
            data = self._rewrite_body(raw, attempt.model, rename=not passthrough)
            self._metrics.upstream_time(attempt.model, time.perf_counter() - started)
            return UpstreamAnswer(status, headers, data=data, raw=raw if passthrough else b"")
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
            raise UpstreamFailure(
                upstream.name, FailureKind.TIMEOUT, f"no answer within {upstream.timeout:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamFailure(
                upstream.name, FailureKind.CONNECTION, f"connection failed ({type(exc).__name__})"
            ) from None

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
            raise UpstreamFailure(
                upstream.name, FailureKind.TIMEOUT, f"body stalled for {upstream.timeout:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamFailure(
                upstream.name, FailureKind.CONNECTION, f"body interrupted ({type(exc).__name__})"
            ) from None
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
            raise UpstreamFailure(
                upstream.name, FailureKind.TIMEOUT, f"stream silent for {upstream.timeout:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamFailure(
                upstream.name, FailureKind.CONNECTION, f"stream interrupted ({type(exc).__name__})"
            ) from None
        if not first:
            raise UpstreamFailure(upstream.name, FailureKind.INVALID_RESPONSE, "empty stream")
        return first, chunks

    def _rewrite_body(self, content: bytes, model: str, *, rename: bool = True) -> dict[str, Any]:
        """The upstream's JSON object with ``model`` set to the pool model's full name (unless not ``rename``)."""
        try:
            data = loads_upstream(content)
        except ValueError:
            raise UpstreamFailure(model, FailureKind.INVALID_RESPONSE, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamFailure(model, FailureKind.INVALID_RESPONSE, "the body is not a JSON object")
        if rename and "model" in data:
            data["model"] = self._full_names[model]
        return data


class Relay:
    """A committed upstream stream on its way to the client, rewritten event by event.

    Iterate it once (the SSE response does). ``on_end(relay, abandoned)`` is called once when the
    stream ends: after its last event (:attr:`error` ``None``), when it broke (:attr:`error` set;
    the client gets an error event), or when the client left (``abandoned``). :meth:`facts` says
    what the events reported.
    """

    def __init__(
        self,
        first: bytes,
        chunks: AsyncIterator[bytes],
        response: httpx.Response,
        upstream: Upstream,
        rewriter: SSERewriter,
        metrics: GatewayMetrics,
        started: float,
        deadline: float,
    ) -> None:
        self._first = first
        self._chunks = chunks
        self._response = response
        self._upstream = upstream
        self._rewriter = rewriter
        self._metrics = metrics
        self._started = started
        self._deadline = deadline
        self._iterator: Any = None
        self._ended = False
        self.error: Exception | None = None
        self.on_end: Callable[[Relay, bool], None] | None = None

    def facts(self) -> AnswerFacts:
        """What the stream reported so far."""
        return self._rewriter.facts()

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._iterator = self._relay()
        return self._iterator

    async def aclose(self) -> None:
        """Stop the stream (the client left, or the response is done); a stream never started is abandoned."""
        if self._iterator is not None:
            await self._iterator.aclose()
        if not self._ended:
            self._end(abandoned=True)
            with anyio.CancelScope(shield=True):
                await self._response.aclose()

    def _end(self, *, abandoned: bool) -> None:
        if self._ended:
            return
        self._ended = True
        if self.on_end is not None:
            try:
                self.on_end(self, abandoned)
            except Exception:  # the stream's bytes matter more than its bookkeeping
                logger.exception("ending the stream of %s failed", self._upstream.name)

    def _broke(self, error: Exception) -> None:
        self.error = error
        self._end(abandoned=False)

    async def _relay(self) -> AsyncIterator[bytes]:
        """The rewritten stream; whatever ends it early, the client gets an error event, never a silent cut."""
        upstream, chunks, rewriter = self._upstream, self._chunks, self._rewriter
        model = upstream.name
        size = len(self._first)
        try:
            out = rewriter.feed(self._first)
            if out:
                yield out
            while True:
                try:
                    async with asyncio.timeout_at(self._deadline):
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
            self._metrics.upstream_time(model, time.perf_counter() - self._started)
            self._end(abandoned=False)
            if tail:
                yield tail
        except _StreamEnd as end:
            self._metrics.upstream_error(model, "stream_" + end.reason)
            logger.warning("stream from %s stopped: it %s", model, end)
            kind = FailureKind.TIMEOUT if end.reason == "timeout" else FailureKind.INVALID_RESPONSE
            self._broke(UpstreamFailure(model, kind, f"stream {end}"))
            yield _error_event(f"the upstream stream of {model} was stopped: it {end}", "stream_" + end.reason)
        except httpx.HTTPError as exc:  # the stream broke after we committed to it
            self._metrics.upstream_error(model, "stream_interrupted")
            logger.warning("stream from %s interrupted (%s)", model, type(exc).__name__)
            self._broke(UpstreamFailure(model, FailureKind.CONNECTION, f"stream interrupted ({type(exc).__name__})"))
            yield _error_event(f"the upstream stream of {model} was interrupted", "stream_interrupted")
        except (GeneratorExit, asyncio.CancelledError):  # the client left
            self._end(abandoned=True)
            raise
        except Exception as exc:
            self._metrics.upstream_error(model, "stream_error")
            logger.exception("relaying the stream of %s failed", model)
            self._broke(exc)
            yield _error_event(f"relaying the upstream stream of {model} failed", "stream_error")
        finally:
            with anyio.CancelScope(shield=True):
                await self._response.aclose()


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


def _deadline(upstream: Upstream) -> UpstreamFailure:
    return UpstreamFailure(
        upstream.name, FailureKind.TIMEOUT, f"no complete answer within its deadline of {upstream.deadline:g} s"
    )


def _too_large(upstream: Upstream) -> UpstreamFailure:
    return UpstreamFailure(
        upstream.name, FailureKind.INVALID_RESPONSE, f"answer over its limit of {upstream.max_response_bytes} bytes"
    )
