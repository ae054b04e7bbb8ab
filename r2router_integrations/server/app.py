"""The ASGI app: an OpenAI-compatible gateway that routes each request to an (LLM, budget) pair.

Routes::

    POST /v1/chat/completions   route (model "r2router[:options]") or bypass (a pool model), then forward
    POST /v1/route              the routing decision as JSON, no LLM called
    GET  /v1/models             "r2router" and every pool model
    GET  /health                liveness, never behind the API key
    GET  /metrics               Prometheus text format
    POST /v1/feedback           a quality score for a logged decision (server/feedback.py)
    POST /admin/reload          rebuild the router with the logged outcomes, swap it in (server/reload.py)

A chat request is routed here (the micro-batcher embeds it with concurrent ones), then its call
plan is driven by server/execution.py: the core's CallPlan decides the attempts, fallbacks,
escalation and log rows; server/proxy.py performs each upstream call.

Every error is JSON in OpenAI's shape; an unexpected exception is a 500 and the
server keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from r2router_core import (
    DEFAULT_FALLBACKS,
    ConfigError,
    R2Router,
    R2RouterError,
    RoutingOptions,
)
from r2router_core.execute import SERVING_FIELDS, ServingSettings
from r2router_integrations.server.batching import DEFAULT_BATCH_WINDOW, DEFAULT_MAX_BATCH, Routed, RoutingBatcher
from r2router_integrations.server.dashboard import dashboard_routes
from r2router_integrations.server.errors import SERVER_ERROR, GatewayError, Redactor, error_body, from_core_error
from r2router_integrations.server.execution import Execution, count_prompt_tokens
from r2router_integrations.server.feedback import Feedback
from r2router_integrations.server.metrics import CONTENT_TYPE, GatewayMetrics
from r2router_integrations.server.protocol import (
    ROUTER_MODEL,
    last_user_text,
    parse_chat_request,
    parse_json_body,
    parse_route_request,
)
from r2router_integrations.server.proxy import CLIENT_SHARDS, Proxy
from r2router_integrations.server.reload import Reloader
from r2router_integrations.server.upstreams import Upstream, Upstreams

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_FALLBACKS", "create_app"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body accepted (413 above)."""

DEFAULT_BODY_TIMEOUT = 30.0
"""Seconds a client may take to send its whole request body (408 after)."""

RELOAD_POLL_SECONDS = 1.0
"""Seconds between a gateway's reads of its store's reload generation (one primary-key read)."""

WORKER_HEADER = "x-r2router-worker"
GENERATION_HEADER = "x-r2router-reload-generation"  # on /admin/reload: the store's generation after it

DEFAULT_MAX_FALLBACKS = DEFAULT_FALLBACKS
"""Other models tried after the routed one fails (the core's ``ServingSettings.fallbacks``)."""

OPEN_PATHS = frozenset({"/health"})
"""Paths served without the API key."""

_ROUTES = ("/v1/chat/completions", "/v1/route", "/v1/models", "/health", "/metrics", "/v1/feedback", "/admin/reload")
_CLIENT_GONE = 499  # nginx's "client closed request", recorded in metrics only

Endpoint = Callable[[Request], Awaitable[Response]]


def create_app(
    router: R2Router,
    upstreams: Upstreams | Sequence[Upstream],
    *,
    serving: ServingSettings | None = None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    http_client: httpx.AsyncClient | None = None,
    batch_window: float = DEFAULT_BATCH_WINDOW,
    max_batch: int = DEFAULT_MAX_BATCH,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    reload_every: float | None = None,
    worker_header: bool = False,
    reload_poll: float = RELOAD_POLL_SECONDS,
    max_fallbacks: int | None = None,
    **settings: Any,
) -> Starlette:
    """Build the gateway.

    Args:
        router: A router with an embedder attached (it routes text).
        upstreams: The upstream of every pool model (see :func:`load_upstreams`).
        serving: How routed calls are executed (:class:`~r2router_core.execute.ServingSettings`:
            fallbacks, escalation, exploration, length instruction, store, keep_text, seed).
            ``store`` also turns on ``POST /v1/feedback`` and ``POST /admin/reload``.
        api_key: If set, every route but ``/health`` needs ``Authorization: Bearer <api_key>``.
        max_body_bytes: Largest request body accepted; larger ones get 413.
        http_client: The client used for upstream calls; by default the app creates
            :data:`CLIENT_SHARDS` clients, used in turn, and closes them with the app.
        batch_window: Seconds a routing request waits for concurrent ones still arriving,
            to embed them in one batch (see :class:`RoutingBatcher`; 0: never waits).
        max_batch: Most prompts embedded in one batch.
        body_timeout: Seconds a client may take to send its body (408 after).
        reload_every: With a store, rebuild the router with the logged outcomes every this many
            seconds (``POST /admin/reload`` does it on demand); ``None`` = on demand only.
        max_fallbacks: The serving setting ``fallbacks`` under its older name.
        **settings: Serving settings by name (``fallbacks=1``, ``store=...``, ``explore=0.05``...),
            instead of ``serving`` (not both, as in LangChain and LlamaIndex).
        worker_header: Add ``x-r2router-worker: <pid>`` to every response (``serve --workers N``
            does, so an operator sees which process answered).
        reload_poll: With a store, seconds between reads of the store's reload generation: a
            reload on any process sharing the store (another worker) is followed within this.

    Raises:
        ConfigError: No embedder, an upstream missing for a pool model, or a bad setting.
    """
    if router.embedder is None:
        raise ConfigError("the gateway routes text, so the router needs an embedder: load it with embedder='auto'")
    if max_fallbacks is not None:
        settings["fallbacks"] = max_fallbacks
    unknown = sorted(set(settings) - set(SERVING_FIELDS))
    if unknown:
        raise ConfigError(f"create_app got unknown keywords {unknown}; serving settings are {list(SERVING_FIELDS)}")
    serving = ServingSettings.fold({**settings, "serving": serving})["serving"] or ServingSettings()
    if serving.shadow is not None and serving.shadow not in router.config.model_names:
        raise ConfigError(
            f"--shadow {serving.shadow!r} is not a pool model; name the model you use today, one of "
            f"{list(router.config.model_names)}",
            field="shadow",
        )
    if not isinstance(upstreams, Upstreams):
        upstreams = Upstreams(list(upstreams), router.config)
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be a positive int, got {max_body_bytes!r}")
    if api_key is not None and not api_key:
        raise ConfigError("api_key must be a non-empty string, or None for no authentication")
    if isinstance(body_timeout, bool) or not isinstance(body_timeout, int | float) or not body_timeout > 0:
        raise ConfigError(f"body_timeout must be a number of seconds > 0, got {body_timeout!r}")
    gateway = _Gateway(router, upstreams, max_body_bytes, serving, http_client, api_key, reload_every)
    gateway.body_timeout = float(body_timeout)
    if isinstance(reload_poll, bool) or not isinstance(reload_poll, int | float) or not reload_poll > 0:
        raise ConfigError(f"reload_poll must be a number of seconds > 0, got {reload_poll!r}")
    gateway.reload_poll = float(reload_poll)
    gateway.batcher = RoutingBatcher(
        router, window=batch_window, max_batch=max_batch, on_batch=gateway.metrics.batch_size
    )
    routes = [
        Route("/v1/chat/completions", gateway.chat, methods=["POST"]),
        Route("/v1/route", gateway.route, methods=["POST"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/health", gateway.health, methods=["GET"]),
        Route("/metrics", gateway.metrics_text, methods=["GET"]),
        Route("/v1/feedback", gateway.feedback, methods=["POST"]),
        Route("/admin/reload", gateway.reload, methods=["POST"]),
        *dashboard_routes(lambda: gateway.reloader.log, pool=lambda: gateway.router.config.models),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_CloseUnreadBody, worker=os.getpid() if worker_header else None),
            Middleware(_Observe, metrics=gateway.metrics),
            Middleware(_Auth, api_key=api_key, reject=gateway.error_response),
        ],
        exception_handlers={HTTPException: gateway.http_exception},
        lifespan=gateway.lifespan,
    )
    app.state.gateway = gateway
    return app


def _json_errors(
    endpoint: Callable[[_Gateway, Request], Awaitable[Response]],
) -> Callable[[_Gateway, Request], Awaitable[Response]]:
    """Turn every exception of an endpoint into an OpenAI-shaped error response."""

    @functools.wraps(endpoint)
    async def wrapper(self: _Gateway, request: Request) -> Response:
        try:
            return await endpoint(self, request)
        except GatewayError as exc:
            return self.error_response(exc)
        except _ClientGone:
            logger.debug("client disconnected during %s %s", request.method, request.url.path)
            return Response(status_code=_CLIENT_GONE)
        except R2RouterError as exc:
            return self.error_response(from_core_error(exc))
        except Exception:
            logger.exception("unexpected error while serving %s %s", request.method, request.url.path)
            return self.error_response(
                GatewayError(
                    500, "internal error of the gateway; see its log", type=SERVER_ERROR, code="internal_error"
                )
            )

    return wrapper


class _ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class _Gateway:
    """The state and endpoints of one app."""

    def __init__(
        self,
        router: R2Router,
        upstreams: Upstreams,
        max_body_bytes: int,
        serving: ServingSettings,
        http_client: httpx.AsyncClient | None,
        api_key: str | None,
        reload_every: float | None,
    ) -> None:
        self.router = router
        self.upstreams = upstreams
        self.max_body_bytes = max_body_bytes
        self.serving = serving
        self.metrics = GatewayMetrics()
        self.batcher = RoutingBatcher(router, on_batch=self.metrics.batch_size)
        self.body_timeout = DEFAULT_BODY_TIMEOUT
        self.redactor = Redactor([*upstreams.secrets(), api_key])
        self._clients: list[httpx.AsyncClient] = [] if http_client is None else [http_client]
        self._owns_clients = http_client is None
        self._proxy: Proxy | None = None
        log = serving.open_log()
        self.reloader = Reloader(router, log, swap=self.use_router, reload_every=reload_every)  # server/reload.py
        self.feedbacks = Feedback(log)  # server/feedback.py
        if log is not None:
            self.metrics.watch_log(log)  # the log's rows and queue depth, summed over workers
        self.reloader.on_reload = self.metrics.reload
        self.execution = Execution(serving, self.proxy, log, self.feedbacks, self.metrics)  # server/execution.py
        # the input side is priced only when some model has an input price: else counting is wasted work
        self._count_input = any(m.input_price for m in router.config.models)
        self.reload_poll = RELOAD_POLL_SECONDS
        self.generation = 0  # the store's reload generation this process's router follows
        self._generation_lock = asyncio.Lock()

    def use_router(self, router: R2Router) -> None:
        """Swap in a reloaded router: each a single assignment, so a request sees the old one or the new one."""
        self.batcher.router = router
        self.router = router

    # -- lifecycle -------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        logger.info("r2router gateway up: %d pool models %s", len(self.upstreams), list(self.upstreams))
        self.proxy()  # create the HTTP clients now, not on the first request
        self.reloader.start()
        follow = None
        if self.reloader.log is not None:
            store = self.reloader.log.store
            self.generation = await anyio.to_thread.run_sync(store.reload_generation)
            follow = asyncio.get_running_loop().create_task(self._follow_reloads())
        try:
            yield
        finally:
            if follow is not None:
                follow.cancel()
            self.batcher.close()
            if self._owns_clients:
                for client in self._clients:
                    await client.aclose()
                self._clients = []
                self._proxy = None
            self.reloader.stop()
            self.feedbacks.close()

    def proxy(self) -> Proxy:
        """The forwarder and its HTTP clients, created at startup (or on first use without a lifespan)."""
        if self._proxy is None:
            if not self._clients:
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
                tls = httpx.create_ssl_context()  # one context for all: building one takes ~70 ms
                self._clients = [httpx.AsyncClient(limits=limits, verify=tls) for _ in range(CLIENT_SHARDS)]
            self._proxy = Proxy(
                self.upstreams,
                self.router.config,
                self._clients,
                self.metrics,
                self.redactor,
                instruction_template=self.serving.length_instruction_template,
            )
        return self._proxy

    # -- endpoints -------------------------------------------------------------------
    @_json_errors
    async def chat(self, request: Request) -> Response:
        with self.batcher.arriving():
            chat = parse_chat_request(await self._read_json(request), self.router.config)
            messages = chat.messages
            tokens = count_prompt_tokens(self.router, messages) if self._count_input else None
            if chat.target is not None:
                logger.debug("routing bypassed: the client named %s", chat.target)
                work = self.execution.bypass(chat, self.router.config, chat.target, tokens)
                return await _until_disconnect(request, work)
            text = last_user_text(messages)
            options = chat.options
            if tokens is not None and options.input_tokens is None:  # price the prompt when routing
                options = options.merged(RoutingOptions(input_tokens=tokens))
            if not self.execution.router_answers():  # shadow mode: the baseline answers, routing runs beside it
                decided = asyncio.ensure_future(self._decide(text, options))
                work = self.execution.shadowed(chat, decided, self.router.config, text=text, prompt_tokens=tokens)
                return await _until_disconnect(request, work)
            decision, embedding = await self._decide(text, options)
        work = self.execution.routed(chat, decision, embedding=embedding, text=text, prompt_tokens=tokens)
        return await _until_disconnect(request, work)

    @_json_errors
    async def route(self, request: Request) -> Response:
        with self.batcher.arriving():
            data = await self._read_json(request)
            text, options = parse_route_request(data, self.router.config)
            if self._count_input and options.input_tokens is None:  # priced as a chat request would be
                messages = data.get("messages") if data.get("prompt") is None else None
                tokens = count_prompt_tokens(self.router, messages or [{"content": text}])
                options = options.merged(RoutingOptions(input_tokens=tokens))
            decision, _ = await self._decide(text, options)
        return JSONResponse(decision.to_dict(with_candidates=True))

    @_json_errors
    async def models(self, request: Request) -> Response:
        ids = [ROUTER_MODEL, *self.router.config.model_names]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "r2router"} for i in ids]
        return JSONResponse({"object": "list", "data": data})

    @_json_errors
    async def feedback(self, request: Request) -> Response:
        body = await self._read_json(request)
        response = await self.feedbacks.feedback(request, body)
        if response.status_code == 204:
            self.metrics.feedback(str(body.get("source", "api")))
        return response

    @_json_errors
    async def reload(self, request: Request) -> Response:
        async with self._generation_lock:
            result = await self.reloader.reload()
            log = self.reloader.log
            if log is not None:  # tell every process sharing the store (the other workers)
                self.generation = await anyio.to_thread.run_sync(log.store.bump_reload_generation)
        return JSONResponse(result, headers={GENERATION_HEADER: str(self.generation)})

    async def _follow_reloads(self) -> None:
        """Reload when another process sharing the store did (its generation grew); runs for the app's life.

        One primary-key read per ``reload_poll`` seconds, in a worker thread. Each process
        rebuilds from the same store, so all route alike once they followed.
        """
        log = self.reloader.log
        assert log is not None
        while True:
            await asyncio.sleep(self.reload_poll)
            try:
                async with self._generation_lock:
                    generation = await anyio.to_thread.run_sync(log.store.reload_generation)
                    if generation > self.generation:
                        logger.info("reload generation %d -> %d: reloading", self.generation, generation)
                        self.generation = generation  # a failed reload is logged once, not every second
                        await self.reloader.reload()
            except Exception:
                logger.exception("following the store's reloads failed; the router in use is kept")

    @_json_errors
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": list(self.router.config.model_names)})

    @_json_errors
    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # -- helpers ---------------------------------------------------------------------
    async def _decide(self, text: str, options: RoutingOptions) -> Routed:
        started = time.perf_counter()
        decision, embedding = await self.batcher.route_embedded(text, options)
        self.metrics.routing_time(time.perf_counter() - started)
        self.metrics.decision(decision.model, decision.token_limit)
        logger.debug(
            "routed to %s @ %s tokens (quality %.3f, cost $%.6f)",
            decision.model,
            decision.token_limit,
            decision.predicted_quality,
            decision.predicted_cost,
        )
        return decision, embedding

    async def _read_json(self, request: Request) -> dict[str, Any]:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise GatewayError(
                415,
                f"send the body as JSON with 'Content-Type: application/json', got {media or 'none'!r}",
                code="unsupported_media_type",
            )
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise self._too_large(int(length))
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise self._too_large(size)
                    chunks.append(chunk)
        except TimeoutError:
            raise GatewayError(
                408, f"the request body did not arrive within {self.body_timeout:g} s", code="request_timeout"
            ) from None
        except ClientDisconnect:
            raise _ClientGone from None
        return parse_json_body(b"".join(chunks))

    def _too_large(self, size: int) -> GatewayError:
        return GatewayError(
            413,
            f"the request body has {size} bytes or more, over this gateway's limit of {self.max_body_bytes} bytes",
            code="request_too_large",
        )

    def error_response(self, exc: GatewayError) -> JSONResponse:
        """The JSON error response; keys are scrubbed and the error is counted."""
        self.metrics.error(exc.type, exc.code)
        if exc.status >= 500:
            logger.warning("%d %s: %s", exc.status, exc.code, self.redactor.text(exc.message))
        else:
            logger.debug("%d %s: %s", exc.status, exc.code, self.redactor.text(exc.message))
        body = error_body(self.redactor.text(exc.message), type=exc.type, param=exc.param, code=exc.code)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)

    async def http_exception(self, request: Request, exc: Exception) -> Response:
        """404 / 405 and other Starlette HTTP errors, in OpenAI's shape."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = f"{request.method} {request.url.path}: {exc.detail if isinstance(exc, HTTPException) else 'error'}"
        code = {404: "not_found", 405: "method_not_allowed"}.get(status)
        return self.error_response(GatewayError(status, detail, code=code))


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


async def _until_disconnect(request: Request, work: Awaitable[Response]) -> Response:
    """Await ``work`` unless the client disconnects first, which cancels it.

    ``work`` runs in the request's own task; one watcher task cancels that task if
    the client goes away (no second task for the work, no ``asyncio.wait``).

    Raises:
        _ClientGone: The client went away first.
    """
    task = asyncio.current_task()
    if task is None:  # not in a task (never under uvicorn): nothing to cancel
        return await work
    watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(request.receive, task))
    try:
        return await work
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled() and task.uncancel() == 0:
            raise _ClientGone from None  # cancelled by the watcher alone: the client left
        raise
    finally:
        watcher.cancel()


class _Observe:
    """Counts every answered request by route and status (pure ASGI, so streams stay unbuffered)."""

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            path = scope["path"]
            self.metrics.request(path if path in _ROUTES else "other", status or 500)


class _CloseUnreadBody:
    """Closes the connection after any response sent before the request body was read to its end.

    A response can go out while the client is still sending its body: a 401 (no key),
    413, 415, 404, or the body timeout's 408. uvicorn would then keep the connection
    and discard the rest of the body for as long as the client trickles it (a 100 MB
    body at a few bytes a second held a connection for hours). ``connection: close``
    on such a response makes uvicorn close the connection once it is sent, whatever
    the status. Pure ASGI, so streams stay unbuffered.

    Args:
        worker: A process id to add as ``x-r2router-worker`` on every response, or ``None``.
    """

    def __init__(self, app: ASGIApp, *, worker: int | None = None) -> None:
        self.app = app
        self._worker = None if worker is None else (WORKER_HEADER.encode(), str(worker).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        unread = True

        async def reading() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False  # the body ended (or the client left)
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [self._worker] if self._worker is not None else []
                if unread and not _bodyless(scope):
                    extra.append((b"connection", b"close"))
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, reading, sending)


def _bodyless(scope: Scope) -> bool:
    """A request that announced no body (no content-length or a zero one, not chunked): nothing left to read."""
    headers = dict(scope["headers"])
    if b"transfer-encoding" in headers:
        return False
    return headers.get(b"content-length", b"0").strip() in (b"0", b"")


class _Auth:
    """Requires ``Authorization: Bearer <api_key>`` on every path but :data:`OPEN_PATHS`."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, reject: Callable[[GatewayError], Response]) -> None:
        self.app = app
        self._key = api_key.encode() if api_key else None
        self._reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._key is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key):
            await self.app(scope, receive, send)
            return
        message = "missing API key: send 'Authorization: Bearer <key>'" if not given else "invalid API key"
        response = self._reject(GatewayError(401, message, code="invalid_api_key"))
        await response(scope, receive, send)
