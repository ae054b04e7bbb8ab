"""The OpenAI chat-completions request as the gateway reads and rewrites it.

Reading: :func:`parse_chat_request` validates a client body once and returns a
:class:`ChatRequest` (the core's :class:`RoutingOptions` from ``model``, the
``r2router`` object and the client's own token cap). Writing:
:func:`upstream_request_body` builds the body sent to one upstream (its model id,
the cap under its parameter name, the length instruction).

Routing options come from two places; the body object wins on a key given in both::

    "model": "r2router:lambda=0.99,max_budget=400,allowed_models=small|big"
    "r2router": {"lambda": 0.99, "max_budget": 400, "max_cost": 0.001, "allowed_models": ["small", "big"]}

The client's ``max_completion_tokens``/``max_tokens`` (the smaller if both) is the
options' ``max_tokens``: an upper bound on the budget the router may choose (see
:mod:`r2router_core.engine.options`). A request with ``tools``, ``functions`` or a JSON
``response_format`` gets the structured-output budget floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from r2router_core import (
    OPENAI_MESSAGES,
    OPTION_KEYS,
    STRUCTURED_OUTPUT_MIN_BUDGET,
    ConfigError,
    R2RouterError,
    RouterConfig,
    RoutingOptions,
    add_length_instruction,
)
from r2router_integrations.server.errors import GatewayError
from r2router_integrations.server.jsonio import loads_request
from r2router_integrations.server.upstreams import Upstream

__all__ = [
    "ROUTER_MODEL",
    "ChatRequest",
    "conversation_text",
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
# the options a client may set; max_tokens comes from the body's own cap fields
_CLIENT_OPTIONS = tuple(k for k in OPTION_KEYS if k not in ("max_tokens", "min_budget"))
_INT_OPTIONS = ("max_budget", "input_tokens")


@dataclass(frozen=True)
class ChatRequest:
    """A validated client request.

    Attributes:
        body: The client's body without ``model``, ``r2router`` and its token-cap fields.
        target: The pool model the client named (routing bypassed), or ``None`` to route.
        options: Routing options; ``max_tokens`` is the client's own cap.
        stream: Whether the client asked for server-sent events.
    """

    body: Mapping[str, Any]
    target: str | None
    options: RoutingOptions
    stream: bool

    @property
    def client_cap(self) -> int | None:
        """The client's ``max_completion_tokens``/``max_tokens`` (the smaller if both)."""
        return self.options.max_tokens

    @property
    def messages(self) -> list[Any]:
        """The conversation."""
        return list(self.body["messages"])


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body, or raise a 400 naming the problem (see :func:`jsonio.loads_request`)."""
    return loads_request(raw)


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
        options = options.merged(_parse_options_object(data[OPTIONS_FIELD]))
    extra = RoutingOptions(
        max_tokens=_client_cap(data),
        min_budget=STRUCTURED_OUTPUT_MIN_BUDGET if _wants_structured_output(data) else None,
    )
    body = {k: v for k, v in data.items() if k not in ("model", OPTIONS_FIELD, *_CAP_FIELDS)}
    return ChatRequest(body=body, target=target, options=options.merged(extra), stream=bool(stream))


def _wants_structured_output(data: Mapping[str, Any]) -> bool:
    """Tools, functions or a JSON response format: an answer the cap must not cut."""
    if data.get("tools") or data.get("functions"):
        return True
    response_format = data.get("response_format")
    return isinstance(response_format, Mapping) and response_format.get("type") in ("json_schema", "json_object")


def parse_route_request(data: Mapping[str, Any], config: RouterConfig) -> tuple[str, RoutingOptions]:
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
        options = options.merged(_parse_options_object(data[OPTIONS_FIELD]))
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


def parse_model(model: Any, config: RouterConfig) -> tuple[str | None, RoutingOptions]:
    """Split ``model`` into a bypass target or the routing options it carries.

    Returns:
        ``(pool model name, default options)`` for a concrete pool model (its
        name or full name), else ``(None, options)`` for ``r2router[:k=v,...]``.
    """
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, f"'model' is required: {ROUTER_MODEL!r} to route, or a pool model name", param="model")
    for spec in config.models:
        if model in (spec.name, spec.full_name):
            return spec.name, RoutingOptions()
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
        return None, RoutingOptions()
    raw: dict[str, Any] = {}
    for item in tail.split(","):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in _CLIENT_OPTIONS:
            raise GatewayError(
                400,
                f"cannot read option {item!r} in model {model!r}; write key=value pairs separated by commas, "
                f"keys among {list(_CLIENT_OPTIONS)} (allowed_models separated by '|')",
                param="model",
            )
        raw[key] = _option_from_text(key, value.strip(), model)
    return None, _options(raw, "model")


def _option_from_text(key: str, value: str, model: str) -> Any:
    if key == "allowed_models":
        return [m.strip() for m in value.split("|")]
    if value.lower() in ("none", "null", ""):
        return None
    try:
        return int(value) if key in _INT_OPTIONS else float(value)
    except ValueError:
        raise GatewayError(400, f"option {key}={value!r} in model {model!r} is not a number", param="model") from None


def _parse_options_object(raw: Any) -> RoutingOptions:
    if not isinstance(raw, dict):
        raise GatewayError(
            400, f"'{OPTIONS_FIELD}' must be an object with keys among {list(_CLIENT_OPTIONS)}", param=OPTIONS_FIELD
        )
    unknown = sorted(k for k in raw if k not in _CLIENT_OPTIONS and k != "lambda_")
    if unknown:
        raise GatewayError(
            400,
            f"unknown '{OPTIONS_FIELD}' keys {unknown}; allowed keys are {list(_CLIENT_OPTIONS)}",
            param=OPTIONS_FIELD,
        )
    return _options(raw, OPTIONS_FIELD)


def _options(raw: Mapping[str, Any], where: str) -> RoutingOptions:
    """The core's options from ``raw``; its validation error becomes a 400 naming the field."""
    try:
        return RoutingOptions.from_mapping(raw)
    except ConfigError as exc:
        param = where if where == "model" or exc.field is None else f"{where}.{exc.field}"
        raise GatewayError(400, str(exc), param=param) from None
    except R2RouterError as exc:  # an empty allowed_models
        raise GatewayError(400, str(exc), param=where if where == "model" else f"{where}.allowed_models") from None


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


def conversation_text(messages: Sequence[Any]) -> str:
    """Every message's text, joined by newlines: what the prompt's input tokens are counted on."""
    return "\n".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def upstream_request_body(
    body: Mapping[str, Any],
    upstream: Upstream,
    *,
    cap: int | None,
    instruct: bool = True,
    template: str | None = None,
) -> dict[str, Any]:
    """The JSON body one upstream call sends: the one builder for the gateway and ``r2router collect``.

    Args:
        body: The chat-completions body without ``model`` and token-cap fields
            (``messages`` and any other OpenAI parameters).
        upstream: Where it goes (its model id and cap parameter name).
        cap: Output-token cap sent under ``upstream.max_tokens_param`` (``None``: none).
        instruct: Add the length instruction (only when there is a cap).
        template: The length instruction, with ``{budget}`` (default: the core's).
    """
    out = {"model": upstream.model, **body}
    if cap is not None:
        out[upstream.max_tokens_param] = cap
        if instruct:
            messages = body["messages"]
            out["messages"] = (
                add_length_instruction(messages, cap, OPENAI_MESSAGES)
                if template is None
                else add_length_instruction(messages, cap, OPENAI_MESSAGES, template=template)
            )
    return out
