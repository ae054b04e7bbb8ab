"""Errors of the gateway, rendered in OpenAI's error shape.

Every error response has the body OpenAI clients parse::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}

``GatewayError`` carries the HTTP status with those four fields; core
``R2RouterError``s map onto it through :func:`from_core_error`. The
:class:`Redactor` scrubs upstream keys from any text leaving the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from r2router_core import (
    ConfigError,
    ConstraintError,
    FailedAttempt,
    InputError,
    NoCandidateError,
    R2RouterError,
    UnknownModelError,
)

__all__ = ["GatewayError", "Redactor", "error_body", "from_core_error"]

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"
REDACTED = "[redacted]"


class GatewayError(Exception):
    """An error answered to the client as JSON in OpenAI's shape.

    Args:
        status: HTTP status code.
        message: Human-readable message (never holds a key).
        type: OpenAI error type (``invalid_request_error``, ``server_error``, ...).
        param: The request field at fault, if any.
        code: A short machine-readable code, if any.
        failed_attempts: The upstream attempts that failed, when every one did (for the decision log).
        headers: Extra response headers (the decision id of a routed request).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        failed_attempts: Sequence[FailedAttempt] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.failed_attempts = tuple(failed_attempts)
        self.headers = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON body."""
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def from_core_error(exc: R2RouterError, *, param: str | None = None) -> GatewayError:
    """Map a core error raised while routing a request onto a client-facing error.

    Usage errors (bad options, empty prompt, unknown model) are 400s; any other
    core error is the server's fault (500).
    """
    message = str(exc)
    if isinstance(exc, UnknownModelError):
        return GatewayError(400, message, param=param or "r2router.allowed_models", code="model_not_found")
    if isinstance(exc, NoCandidateError):
        return GatewayError(400, message, param=param or "r2router", code="no_candidate")
    if isinstance(exc, ConstraintError | ConfigError):
        return GatewayError(400, message, param=param or "r2router", code="invalid_value")
    if isinstance(exc, InputError):
        return GatewayError(400, message, param="messages", code="invalid_prompt")
    return GatewayError(500, f"routing failed: {message}", type=SERVER_ERROR, code="routing_error")


class Redactor:
    """Replaces known secrets in text with ``[redacted]``.

    Args:
        secrets: Key values to scrub (empty strings are ignored).
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # longest first, so a key that contains another is scrubbed whole
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._encoded = [(s.encode(), json.dumps(s)[1:-1].encode()) for s in self._secrets]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return value

    def bytes(self, value: bytes) -> bytes:
        """``value`` with every secret (raw or JSON-escaped) replaced."""
        for raw, escaped in self._encoded:
            value = value.replace(raw, REDACTED.encode()).replace(escaped, REDACTED.encode())
        return value
