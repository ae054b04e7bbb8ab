"""The OpenAI chat-completions request as the gateway reads and rewrites it.

Reading: :func:`parse_chat_request` validates a client body once and returns a
:class:`ChatRequest` (the routing options from ``model`` and the ``r2router``
object, the client's own token cap, the text to route on). Writing:
:func:`upstream_body` builds the body sent to one upstream (its model id, the
cap under its parameter name, the length instruction).

Routing options come from two places; the body object wins on a key given in both::

    "model": "r2router:lambda=0.99,max_budget=400,allowed_models=small|big"
    "r2router": {"lambda": 0.99, "max_budget": 400, "max_cost": 0.001, "allowed_models": ["small", "big"]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from r2router_core import OPENAI_MESSAGES, RouterConfig, add_length_instruction
from r2router_integrations.server.errors import GatewayError
from r2router_integrations.server.upstreams import Upstream

__all__ = [
    "ROUTER_MODEL",
    "ChatRequest",
    "RouteOptions",
    "last_user_text",
    "parse_chat_request",
    "parse_json_body",
    "parse_route_request",
    "upstream_request_body",
]

ROUTER_MODEL = "r2router"
"""The ``model`` value that asks the gateway to route."""

OPTIONS_FIELD = "r2router"
_CAP_FIELDS = ("max_completion_tokens", "max_tokens")
_OPTION_KEYS = ("lambda", "allowed_models", "max_budget", "max_cost")


@dataclass(frozen=True)
class RouteOptions:
    """Per-request routing options (``None`` = the router's default / no limit)."""

    lambda_: float | None = None
    allowed_models: tuple[str, ...] | None = None
    max_budget: int | None = None
    max_cost: float | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``R2Router.route_text``."""
        return {
            "lambda_": self.lambda_,
            "allowed_models": self.allowed_models,
            "max_budget": self.max_budget,
            "max_cost": self.max_cost,
        }


@dataclass(frozen=True)
class ChatRequest:
    """A validated client request.

    Attributes:
        body: The client's body without ``model``, ``r2router`` and its token-cap fields.
        target: The pool model the client named (routing bypassed), or ``None`` to route.
        options: Routing options.
        client_cap: The client's ``max_completion_tokens``/``max_tokens`` (the smaller if both).
        stream: Whether the client asked for server-sent events.
    """

    body: Mapping[str, Any]
    target: str | None
    options: RouteOptions
    client_cap: int | None
    stream: bool

    @property
    def messages(self) -> list[Any]:
        """The conversation."""
        return list(self.body["messages"])


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body, or raise a 400 naming the problem."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"the request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise GatewayError(
            400, f"the request body must be a JSON object, got {type(data).__name__}", code="invalid_json"
        )
    return data


def parse_chat_request(data: Mapping[str, Any], config: RouterConfig) -> ChatRequest:
    """Validate a chat-completions body.

    Raises:
        GatewayError: 400 for a bad field, 404 for a ``model`` that is neither
            ``r2router[:options]`` nor a pool model.
    """
    _check_messages(data.get("messages"))
    stream = data.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise GatewayError(400, f"'stream' must be true or false, got {stream!r}", param="stream")
    target, options = parse_model(data.get("model"), config)
    if OPTIONS_FIELD in data:
        options = _merge(options, _parse_options_object(data[OPTIONS_FIELD]))
    body = {k: v for k, v in data.items() if k not in ("model", OPTIONS_FIELD, *_CAP_FIELDS)}
    return ChatRequest(body=body, target=target, options=options, client_cap=_client_cap(data), stream=bool(stream))


def parse_route_request(data: Mapping[str, Any], config: RouterConfig) -> tuple[str, RouteOptions]:
    """Read a ``/v1/route`` body: ``prompt`` (a string) or chat ``messages``, plus the routing options.

    Returns:
        The text to route on and the options.
    """
    model = data.get("model", ROUTER_MODEL)
    target, options = parse_model(model, config)
    if target is not None:
        raise GatewayError(
            400, f"/v1/route decides the model; send model {ROUTER_MODEL!r} (or omit it), not {model!r}", param="model"
        )
    if OPTIONS_FIELD in data:
        options = _merge(options, _parse_options_object(data[OPTIONS_FIELD]))
    prompt = data.get("prompt")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise GatewayError(400, "'prompt' must be a non-empty string", param="prompt")
        return prompt, options
    _check_messages(data.get("messages"))
    return last_user_text(data["messages"]), options


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise GatewayError(400, "'messages' is required: a non-empty list of chat messages", param="messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError(
            400, f"'messages' must be a non-empty list of chat messages, got {messages!r}"[:300], param="messages"
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise GatewayError(400, f"messages[{i}] must be an object with a 'role' string", param=f"messages[{i}]")


def _client_cap(data: Mapping[str, Any]) -> int | None:
    caps = []
    for name in _CAP_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GatewayError(400, f"'{name}' must be a positive integer, got {value!r}", param=name)
        caps.append(value)
    return min(caps) if caps else None


def parse_model(model: Any, config: RouterConfig) -> tuple[str | None, RouteOptions]:
    """Split ``model`` into a bypass target or the routing options it carries.

    Returns:
        ``(pool model name, default options)`` for a concrete pool model (its
        name or full name), else ``(None, options)`` for ``r2router[:k=v,...]``.
    """
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, f"'model' is required: {ROUTER_MODEL!r} to route, or a pool model name", param="model")
    for spec in config.models:
        if model in (spec.name, spec.full_name):
            return spec.name, RouteOptions()
    head, sep, tail = model.partition(":")
    if head != ROUTER_MODEL:
        raise GatewayError(
            404,
            f"unknown model {model!r}; use {ROUTER_MODEL!r} (optionally '{ROUTER_MODEL}:lambda=0.99,max_budget=400') "
            f"or one of the pool models {list(config.model_names)}",
            param="model",
            code="model_not_found",
        )
    if not sep:
        return None, RouteOptions()
    raw: dict[str, Any] = {}
    for item in tail.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in _OPTION_KEYS:
            raise GatewayError(
                400,
                f"cannot read option {item!r} in model {model!r}; write key=value pairs separated by commas, "
                f"keys among {list(_OPTION_KEYS)} (allowed_models separated by '|')",
                param="model",
            )
        raw[key] = _option_from_text(key, value.strip(), model)
    return None, _build_options(raw, "model")


def _option_from_text(key: str, value: str, model: str) -> Any:
    if key == "allowed_models":
        return [m.strip() for m in value.split("|")]
    if value.lower() in ("none", "null", ""):
        return None
    try:
        return int(value) if key == "max_budget" else float(value)
    except ValueError:
        raise GatewayError(400, f"option {key}={value!r} in model {model!r} is not a number", param="model") from None


def _parse_options_object(raw: Any) -> RouteOptions:
    if not isinstance(raw, dict):
        raise GatewayError(
            400, f"'{OPTIONS_FIELD}' must be an object with keys among {list(_OPTION_KEYS)}", param=OPTIONS_FIELD
        )
    unknown = sorted(set(raw) - set(_OPTION_KEYS))
    if unknown:
        raise GatewayError(
            400, f"unknown '{OPTIONS_FIELD}' keys {unknown}; allowed keys are {list(_OPTION_KEYS)}", param=OPTIONS_FIELD
        )
    return _build_options(raw, OPTIONS_FIELD)


def _build_options(raw: Mapping[str, Any], where: str) -> RouteOptions:
    def param(key: str) -> str:
        return where if where == "model" else f"{where}.{key}"

    lam, budget, cost, allowed = (raw.get(k) for k in ("lambda", "max_budget", "max_cost", "allowed_models"))
    if lam is not None and (isinstance(lam, bool) or not isinstance(lam, int | float) or not 0.0 <= lam <= 1.0):
        raise GatewayError(400, f"lambda must be a number in [0, 1], got {lam!r}", param=param("lambda"))
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise GatewayError(400, f"max_budget must be a positive integer, got {budget!r}", param=param("max_budget"))
    if cost is not None and (
        isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost) or cost < 0
    ):
        raise GatewayError(400, f"max_cost must be a number of USD >= 0, got {cost!r}", param=param("max_cost"))
    if allowed is not None and (
        not isinstance(allowed, list) or not allowed or not all(isinstance(m, str) and m for m in allowed)
    ):
        raise GatewayError(
            400,
            f"allowed_models must be a non-empty list of pool model names, got {allowed!r}",
            param=param("allowed_models"),
        )
    return RouteOptions(
        lambda_=None if lam is None else float(lam),
        allowed_models=None if allowed is None else tuple(allowed),
        max_budget=budget,
        max_cost=None if cost is None else float(cost),
    )


def _merge(base: RouteOptions, override: RouteOptions) -> RouteOptions:
    return RouteOptions(
        lambda_=override.lambda_ if override.lambda_ is not None else base.lambda_,
        allowed_models=override.allowed_models if override.allowed_models is not None else base.allowed_models,
        max_budget=override.max_budget if override.max_budget is not None else base.max_budget,
        max_cost=override.max_cost if override.max_cost is not None else base.max_cost,
    )


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last user message (text parts of a content array joined by newlines).

    Raises:
        GatewayError: 400 if there is no user message or it holds no text.
    """
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, dict) and message.get("role") == "user":
            text = _content_text(message.get("content"))
            if not text.strip():
                raise GatewayError(
                    400,
                    f"messages[{i}], the last user message, has no text to route on",
                    param=f"messages[{i}].content",
                )
            return text
    raise GatewayError(400, "routing needs a message with role 'user'; none was found", param="messages")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def upstream_request_body(
    body: Mapping[str, Any], upstream: Upstream, *, cap: int | None, instruct: bool = True
) -> dict[str, Any]:
    """The JSON body one upstream call sends: the one builder for the gateway and ``r2router collect``.

    Args:
        body: The chat-completions body without ``model`` and token-cap fields
            (``messages`` and any other OpenAI parameters).
        upstream: Where it goes (its model id and cap parameter name).
        cap: Output-token cap sent under ``upstream.max_tokens_param`` (``None``: none).
        instruct: Add the length instruction (only when there is a cap).
    """
    out = {"model": upstream.model, **body}
    if cap is not None:
        out[upstream.max_tokens_param] = cap
        if instruct:
            out["messages"] = add_length_instruction(body["messages"], cap, OPENAI_MESSAGES)
    return out
