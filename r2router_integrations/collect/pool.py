"""The pool a collection runs on: OpenAI-compatible upstreams or LangChain chat models.

Each member makes one (prompt, budget) call exactly as routing will later make it:

* an upstream of ``upstreams.yaml`` sends the body built by the gateway's own
  :func:`~r2router_integrations.server.protocol.upstream_request_body` (model id,
  the cap under the upstream's parameter name, the length instruction);
* a LangChain chat model is capped by R2RouterChatModel's own
  :func:`~r2router_integrations.langchain.delegate.prepare_child` and instructed
  by the core's :func:`~r2router_core.add_length_instruction`.

The runner drives the core's call plan for every cell
(:meth:`~r2router_core.execute.CallPlan.fixed`): each attempt's cap and length
instruction come from the plan's :class:`~r2router_core.execute.Attempt`. A member
raises on failure; the plan classifies the error with the core's
:func:`~r2router_core.execute.fallback.classify` (429, 5xx, timeouts and connection
errors are retried on the same arm; anything else is recorded at once).

Prices are never guessed: an upstream without ``input_price`` and ``output_price``
lists them in :attr:`UpstreamMember.missing_prices`, and the runner refuses to call
it unless the store already holds its prices (0 is a price: free).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from r2router_core import Budget, ConfigError, Failure, FailureKind, ModelSpec

if TYPE_CHECKING:
    import httpx
    from langchain_core.language_models import BaseChatModel

    from r2router_integrations.server.upstreams import Upstream

__all__ = ["Answer", "ChatModelMember", "PoolMember", "UpstreamMember", "cost_usd", "pool_from_upstreams"]


@dataclass(frozen=True)
class Answer:
    """What one successful call returned.

    Attributes:
        text: The answer.
        finish_reason: The provider's finish reason (``"length"``: cut by the cap).
        input_tokens: Prompt tokens from the provider's usage (``None``: not reported).
        output_tokens: Completion tokens from the provider's usage.
    """

    text: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None


class PoolMember(Protocol):
    """One pool model as the collector calls it."""

    @property
    def spec(self) -> ModelSpec:
        """The model's name, provider id and prices."""

    @property
    def where(self) -> str:
        """Where the model is reached (an upstream's URL), for messages."""

    async def answer(
        self, messages: Sequence[Mapping[str, Any]], budget: Budget, instruction_budget: int | None = None
    ) -> Answer:
        """Call the model once with the OpenAI-style ``messages``, capped at ``budget``; with
        ``instruction_budget``, the length instruction states it."""


def cost_usd(spec: ModelSpec, input_tokens: int | None, output_tokens: int | None) -> float:
    """USD of one call at the model's prices (tokens not reported count as 0)."""
    return ((input_tokens or 0) * spec.input_price + (output_tokens or 0) * spec.output_price) / 1e6


class UpstreamError(Exception):
    """An upstream answered with a non-2xx status or an unreadable body.

    Attributes:
        r2router_failure: The failure as the core's fallback policy classifies it
            (``None`` for a 4xx other than 408/429: the request is wrong, not retried).
    """

    def __init__(self, message: str, failure: Failure | None) -> None:
        super().__init__(message)
        self.r2router_failure = failure


class UpstreamMember:
    """A pool model behind an OpenAI-compatible endpoint of ``upstreams.yaml``.

    Args:
        upstream: The endpoint (model id, cap parameter, key, prices).
        client: The shared ``httpx.AsyncClient``.
    """

    def __init__(self, upstream: Upstream, client: httpx.AsyncClient) -> None:
        self.upstream = upstream
        self._client = client
        self.missing_prices = tuple(p for p in ("input_price", "output_price") if getattr(upstream, p) is None)
        """The price fields the yaml does not give (the runner refuses to call an unpriced model)."""
        self._spec = ModelSpec(
            upstream.name,
            output_price=upstream.output_price or 0.0,
            input_price=upstream.input_price or 0.0,
            full_name=upstream.model,
        )

    @property
    def spec(self) -> ModelSpec:
        """The model's name, provider id and prices (see :attr:`missing_prices`)."""
        return self._spec

    def use_prices(self, spec: ModelSpec) -> None:
        """Price the model with ``spec``'s prices (the store's, when the yaml gives none)."""
        self._spec = ModelSpec(self._spec.name, spec.output_price, spec.input_price, self._spec.full_name)
        self.missing_prices = ()

    @property
    def where(self) -> str:
        """The upstream's chat-completions URL."""
        return self.upstream.url

    def request_body(
        self, messages: Sequence[Mapping[str, Any]], budget: Budget, instruction_budget: int | None = None
    ) -> dict[str, Any]:
        """The JSON body of one call: exactly the gateway's."""
        from r2router_integrations.server.protocol import upstream_request_body

        instruct = instruction_budget is not None
        return upstream_request_body({"messages": list(messages)}, self.upstream, cap=budget, instruct=instruct)

    async def answer(
        self, messages: Sequence[Mapping[str, Any]], budget: Budget, instruction_budget: int | None = None
    ) -> Answer:
        """POST one chat completion and read the answer and its usage."""
        response = await self._client.post(
            self.upstream.url,
            json=self.request_body(messages, budget, instruction_budget),
            headers=self.upstream.request_headers(),
            timeout=self.upstream.timeout,
        )
        if response.status_code >= 300:
            raise _http_error(self.upstream.name, response)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            failure = Failure(FailureKind.INVALID_RESPONSE, f"unreadable answer: {exc!r}"[:300], response.status_code)
            raise UpstreamError(
                f"{self.upstream.name}: the answer is not a chat completion ({exc!r})", failure
            ) from exc
        usage = data.get("usage") or {}
        return Answer(
            text, choice.get("finish_reason"), _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
        )


def _http_error(name: str, response: httpx.Response) -> UpstreamError:
    import httpx

    from r2router_core import classify

    message = f"{name}: HTTP {response.status_code}: {response.text[:300]}"
    status_error = httpx.HTTPStatusError(message, request=response.request, response=response)
    return UpstreamError(message, classify(status_error))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class ChatModelMember:
    """A LangChain chat model of a Python pool, called the way R2RouterChatModel calls it.

    Args:
        name: The pool model name.
        model: The chat model.
        output_price: USD per 1M output tokens.
        input_price: USD per 1M input tokens.
        cap_param: The model's cap field (default: ``max_tokens``, LangChain's standard).
    """

    def __init__(
        self,
        name: str,
        model: BaseChatModel,
        *,
        output_price: float,
        input_price: float = 0.0,
        cap_param: str | None = None,
    ) -> None:
        self._spec = ModelSpec(name, output_price=output_price, input_price=input_price)
        self.model = model
        self.cap_param = cap_param

    @property
    def spec(self) -> ModelSpec:
        """The model's name and prices."""
        return self._spec

    @property
    def where(self) -> str:
        """The chat model's class (a Python pool has no URL)."""
        return f"LangChain {type(self.model).__name__}"

    async def answer(
        self, messages: Sequence[Mapping[str, Any]], budget: Budget, instruction_budget: int | None = None
    ) -> Answer:
        """Invoke the chat model once; usage and finish reason from its response metadata."""
        from langchain_core.messages import AIMessage, convert_to_messages

        from r2router_core import add_length_instruction
        from r2router_integrations.langchain.delegate import prepare_child
        from r2router_integrations.langchain.messages import LANGCHAIN_MESSAGES

        lc_messages = convert_to_messages([dict(m) for m in messages])
        if instruction_budget is not None:
            lc_messages = add_length_instruction(lc_messages, instruction_budget, LANGCHAIN_MESSAGES)
        child, kwargs = prepare_child(
            self.model, name=self._spec.name, budget=budget, cap_param=self.cap_param, tools=None
        )
        message = await child.ainvoke(lc_messages, **kwargs)
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        meta = message.response_metadata or {}
        finish = meta.get("finish_reason") or meta.get("stop_reason")
        return Answer(
            message.text,
            None if finish is None else str(finish),
            None if usage is None else usage.get("input_tokens"),
            None if usage is None else usage.get("output_tokens"),
        )


def pool_from_upstreams(
    path: str | Path,
    client: httpx.AsyncClient,
    *,
    models: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[UpstreamMember]:
    """The pool of an ``upstreams.yaml`` (every entry, or the named ``models`` in that order).

    Raises:
        ConfigError: A bad file, an unset key variable, or a named model without an upstream.
    """
    from r2router_integrations.server.upstreams import read_upstreams

    upstreams = {u.name: u for u in read_upstreams(path, environ=environ)}
    names = list(models) if models is not None else list(upstreams)
    missing = [m for m in names if m not in upstreams]
    if missing:
        raise ConfigError(
            f"no upstream for pool model(s) {missing} in {path}; it has {sorted(upstreams)}. "
            "Add an entry for each, or leave them out of --models"
        )
    return [UpstreamMember(upstreams[m], client) for m in names]


def elapsed_since(start: float) -> float:
    """Seconds since ``start`` (a ``time.perf_counter()`` value)."""
    return time.perf_counter() - start
