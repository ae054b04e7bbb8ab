"""JSON in and out of the gateway: strict for clients, lenient for upstreams, always safe to encode.

orjson does the work (several times faster than the standard library on both
ends, and strict: it refuses ``NaN``/``Infinity``, lone surrogate escapes and
nesting deeper than 1,024 levels). When it refuses a *client* body, the standard
library reads it again to say which field is at fault (a 400 naming it). An
*upstream* answer is never refused for those: it is read leniently and written
back with ``\\uXXXX`` escapes, so a provider's lone surrogate reaches the client
as the escape it sent instead of crashing the gateway after the provider answered.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from r2router_integrations.server.errors import GatewayError

__all__ = ["MAX_DEPTH", "dumps", "loads_request", "loads_upstream"]

MAX_DEPTH = 1024
"""Deepest nesting of arrays and objects accepted (orjson's own limit)."""


class _Constant:
    """Stands for a ``NaN``/``Infinity`` literal while a refused body is diagnosed."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def loads_request(raw: bytes) -> dict[str, Any]:
    """Decode a client's JSON object body.

    Raises:
        GatewayError: 400 ``invalid_json`` for bad syntax, a non-object, a ``NaN``/``Infinity``
            literal or a lone surrogate (``param`` names the field), or nesting deeper than
            :data:`MAX_DEPTH`.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _diagnose(raw, exc) from None
    if not isinstance(data, dict):
        raise GatewayError(
            400, f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json"
        )
    return data


def loads_upstream(raw: bytes) -> Any:
    """Decode an upstream's JSON, accepting what orjson refuses but Python can hold (lone surrogates, NaN).

    Raises:
        ValueError: Not JSON at all (or nested beyond Python's recursion limit).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None


def dumps(data: Any) -> bytes:
    """Encode as compact UTF-8 JSON; strings orjson cannot encode (lone surrogates) become ``\\uXXXX`` escapes."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()


def _diagnose(raw: bytes, exc: orjson.JSONDecodeError) -> GatewayError:
    """The 400 for a body orjson refused, naming the field when the syntax was fine."""
    try:
        data = json.loads(raw, parse_constant=_Constant)
    except RecursionError:
        return _too_deep()
    except (json.JSONDecodeError, UnicodeDecodeError) as std:
        return GatewayError(400, f"the request body is not valid JSON: {std}", code="invalid_json")
    found = _find_invalid(data)
    if found is None:  # refused by orjson alone: its message says where
        return GatewayError(400, f"the request body is not valid JSON: {exc}", code="invalid_json")
    return found


def _too_deep() -> GatewayError:
    return GatewayError(
        400, f"the request body nests arrays/objects more than {MAX_DEPTH} levels deep", code="invalid_json"
    )


def _find_invalid(data: Any) -> GatewayError | None:
    """The first NaN/Infinity, lone surrogate or too-deep nesting in decoded JSON (iterative: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return _too_deep()
        where = path or "the body"
        if isinstance(value, _Constant) or (isinstance(value, float) and not math.isfinite(value)):
            literal = value.literal if isinstance(value, _Constant) else repr(value)
            return GatewayError(
                400,
                f"{where} holds {literal}, which JSON does not allow; send a finite number",
                param=path or None,
                code="invalid_json",
            )
        if isinstance(value, str) and not _encodable(value):
            return _surrogate(where, path)
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if not _encodable(key):
                    return _surrogate(f"a key of {where}", path)
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
    return None


def _surrogate(where: str, path: str) -> GatewayError:
    return GatewayError(
        400,
        f"{where} holds a lone UTF-16 surrogate escape (such as \\ud800), which is not text; "
        "send valid Unicode (pair the surrogates, or drop the escape)",
        param=path or None,
        code="invalid_json",
    )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
