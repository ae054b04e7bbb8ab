"""A deadline for a client's request headers, which uvicorn does not have.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits
forever for a request whose headers never complete: a client that connects and
sends nothing, or half a request line, holds a connection and its memory as long
as it likes (a slowloris). :func:`header_timeout_protocol` wraps uvicorn's HTTP
protocol (httptools when installed, else h11, as uvicorn's ``auto`` picks) so a
connection's headers must be complete within ``seconds`` of the connection
opening or of the first byte of its next request; otherwise the client gets a
``408`` and the connection is closed. Idle time between keep-alive requests stays
under uvicorn's own keep-alive timeout.

The request *body* has its own deadline in the app (``body_timeout`` of
:func:`~r2router_integrations.server.create_app`, a JSON ``408``).

Usage::

    uvicorn.run(app, http=header_timeout_protocol(10.0))
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from typing import Any

import h11

__all__ = ["DEFAULT_HEADER_TIMEOUT", "H11HeaderTimeout", "HttpToolsHeaderTimeout", "header_timeout_protocol"]

logger = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds a client may take to send a request's headers (408 and close after)."""

_BODY_408 = b"request headers not sent in time"
_RESPONSE_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BODY_408), _BODY_408)
)


class _HeaderDeadline:
    """The timer shared by both protocols: armed while a request's headers are incomplete.

    Mixed in before uvicorn's protocol class, so ``super()`` here is that protocol; each
    subclass only says when a request begins and when its headers are complete.
    """

    header_timeout: float
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _header_timer: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]  # uvicorn's protocol, after this mixin
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        logger.debug("closing a connection whose request headers took over %g s", self.header_timeout)
        self.transport.write(_RESPONSE_408)
        self.transport.close()


def _httptools_base() -> type[Any]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    return HttpToolsProtocol


def _h11_base() -> type[Any]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


if importlib.util.find_spec("httptools") is not None:  # pragma: no branch - uvicorn's own 'auto' rule

    class HttpToolsHeaderTimeout(_HeaderDeadline, _httptools_base()):  # type: ignore[misc]
        """uvicorn's httptools protocol with a deadline on each request's headers.

        Args:
            header_timeout: Seconds from the connection opening, or from the first byte of a
                request, until its headers must be complete.
            **kwargs: uvicorn's protocol arguments.
        """

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_header_timer()

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()

else:  # pragma: no cover
    HttpToolsHeaderTimeout = None  # type: ignore[assignment,misc]


class H11HeaderTimeout(_HeaderDeadline, _h11_base()):  # type: ignore[misc]
    """uvicorn's h11 protocol with a deadline on each request's headers (see :class:`HttpToolsHeaderTimeout`)."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_header_timer()  # a request has begun; its headers are not complete
        elif self.conn.their_state is not h11.IDLE:
            self._disarm_header_timer()


def header_timeout_protocol(seconds: float = DEFAULT_HEADER_TIMEOUT, *, http: str = "auto") -> Any:
    """The ``http=`` argument of ``uvicorn.run``/``uvicorn.Config`` that enforces a header deadline.

    Args:
        seconds: Seconds a client may take to send a request's headers.
        http: ``"auto"`` (httptools when installed, else h11), ``"httptools"`` or ``"h11"``.

    Returns:
        A protocol factory (picklable, so ``workers=N`` can hand it to each worker process).

    Raises:
        ConfigError: ``seconds`` not a positive number, or an unknown ``http``.
    """
    from r2router_core import ConfigError

    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigError(f"header timeout must be a number of seconds > 0, got {seconds!r}")
    if http == "auto":
        http = "h11" if HttpToolsHeaderTimeout is None else "httptools"
    classes = {"httptools": HttpToolsHeaderTimeout, "h11": H11HeaderTimeout}
    if http not in classes or classes[http] is None:
        raise ConfigError(f"http must be 'auto', 'httptools' (installed) or 'h11', got {http!r}")
    return functools.partial(classes[http], header_timeout=float(seconds))
