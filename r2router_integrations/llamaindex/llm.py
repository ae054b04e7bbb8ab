"""R2RouterLLM: a LlamaIndex LLM that routes every call to a pool LLM at the chosen budget.

Usable as ``Settings.llm`` or as any engine's ``llm``. Each call is routed,
then delegated to ``with_budget(pool[model], budget)`` (copied once per
(model, budget) and cached); the decision is put in the response's
``additional_kwargs["r2router"]``.

Two LlamaIndex details shape this class:

* Its methods are **not** decorated with ``llm_chat_callback`` /
  ``llm_completion_callback``: the pool LLM already emits the LLM events, so a
  decorated wrapper would make ``TokenCountingHandler`` count every call twice.
  Instead the pool LLM's copy emits through the handlers of both its own
  callback manager and this wrapper's (``Settings.callback_manager`` when used
  as ``Settings.llm``), each handler once.
* Inside a query engine the LLM sees the templated RAG prompt (context +
  question), not the question. ``route_on="query"`` routes on the user's
  question instead: the one set with ``with routing_query(question):``, else
  what ``query_extractor(prompt)`` returns, else the prompt.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.llms import LLM

from r2router_core import Budget, R2Router, RoutingDecision
from r2router_core.errors import ConfigError, UnknownModelError
from r2router_integrations.llamaindex._routing import RoutingSettings, check_router, route
from r2router_integrations.llamaindex.budgets import ApplyBudget, with_budget

__all__ = ["R2RouterLLM", "routing_query"]

logger = logging.getLogger(__name__)

_ROUTING_QUERY: ContextVar[str | None] = ContextVar("r2router_llamaindex_routing_query", default=None)

_R = TypeVar("_R", ChatResponse, CompletionResponse)


@contextmanager
def routing_query(query: str) -> Iterator[None]:
    """Route the ``R2RouterLLM`` calls made inside the block on ``query`` (with ``route_on="query"``).

    Example:
        >>> with routing_query(question):          # doctest: +SKIP
        ...     answer = query_engine.query(question)
    """
    token = _ROUTING_QUERY.set(query)
    try:
        yield
    finally:
        _ROUTING_QUERY.reset(token)


@dataclass(frozen=True)
class _Route:
    llm: LLM
    decision: RoutingDecision


class R2RouterLLM(LLM):
    """An LLM that routes each call among a pool of LlamaIndex LLMs, budget included.

    Args:
        router: A fitted router with an embedder attached.
        pool: Pool model name (as in the router's config) -> LlamaIndex LLM.
            Routing is restricted to these models.
        route_on: ``"prompt"`` (default) routes on the prompt / last user
            message; ``"query"`` on the user's question (see module docstring).
        query_extractor: With ``route_on="query"``, a function prompt -> question
            (or ``None``) used when no :func:`routing_query` is active.
        lambda_: Cost weight in [0, 1]; ``None`` = the router's config.
        max_budget: Only budgets <= this many output tokens.
        max_cost: Only arms with predicted cost <= this many USD per query.
        budget_instruction: Optional text formatted with ``budget`` and added to
            capped calls (appended to a chat's system message, or as a new one;
            as the last paragraph of a completion prompt), e.g.
            ``"Answer in at most {budget} tokens."``; the paper enforces budgets
            with both an instruction and a hard cap.
        apply_budget: How a budget caps a pool LLM (default :func:`with_budget`).
        **kwargs: Other ``LLM`` fields (``callback_manager``, ``system_prompt``...).
    """

    route_on: Literal["prompt", "query"] = Field(
        default="prompt", description="Route on the prompt, or on the user's question."
    )
    """What the router embeds: the prompt, or the user's question."""
    query_extractor: Callable[[str], str | None] | None = Field(default=None, exclude=True)
    """prompt -> user question, for ``route_on="query"`` without :func:`routing_query`."""
    lambda_: float | None = Field(default=None, description="Cost weight; None = the router's.")
    """Cost weight in [0, 1]; ``None`` = the router's config."""
    max_budget: int | None = Field(default=None, description="Largest allowed budget.")
    """Only budgets <= this many output tokens."""
    max_cost: float | None = Field(default=None, description="Largest predicted USD per query.")
    """Only arms with predicted cost <= this many USD per query."""
    budget_instruction: str | None = Field(default=None, description="Instruction added to capped calls.")
    """Text formatted with ``budget`` and added to capped calls."""

    _router: R2Router = PrivateAttr()
    _pool: dict[str, LLM] = PrivateAttr()
    _models: tuple[str, ...] = PrivateAttr()
    _apply_budget: ApplyBudget = PrivateAttr()
    _children: dict[tuple[str, Budget], LLM] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        router: R2Router,
        pool: Mapping[str, LLM],
        *,
        apply_budget: ApplyBudget = with_budget,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._router = check_router(router, owner="R2RouterLLM")
        names = self._router.config.model_names
        if not pool:
            raise ConfigError(f"R2RouterLLM needs a non-empty pool: model name -> LLM, for models of {list(names)}")
        unknown = [m for m in pool if m not in names]
        if unknown:
            raise UnknownModelError(f"pool models {unknown} are not in the router's pool {list(names)}")
        self._settings().check(self._router)
        if apply_budget is with_budget:  # fail now, not at the first call, if a pool LLM has no max_tokens
            for llm in pool.values():
                with_budget(llm, None)
        self._pool = dict(pool)
        self._models = tuple(m for m in names if m in pool)
        self._apply_budget = apply_budget

    @classmethod
    def class_name(cls) -> str:
        return "R2RouterLLM"

    @property
    def router(self) -> R2Router:
        """The router that decides."""
        return self._router

    @property
    def pool(self) -> dict[str, LLM]:
        """Pool model name -> LLM (a copy of the mapping)."""
        return dict(self._pool)

    @staticmethod
    def routing_query(query: str) -> AbstractContextManager[None]:
        """Same as the module's :func:`routing_query` context manager."""
        return routing_query(query)

    @property
    def metadata(self) -> LLMMetadata:
        """Context window = the pool's smallest; ``num_output`` = the largest budget it may run at."""
        metas = {m: self._pool[m].metadata for m in self._models}
        outputs = []
        for budget in self._router.config.candidate_budgets:
            if budget is None and self.max_budget is None:  # max_budget excludes uncapped
                outputs += [meta.num_output if meta.num_output > 0 else DEFAULT_NUM_OUTPUTS for meta in metas.values()]
            elif budget is not None and (self.max_budget is None or budget <= self.max_budget):
                outputs.append(budget)
        return LLMMetadata(
            context_window=min(meta.context_window for meta in metas.values()),
            num_output=max(outputs, default=DEFAULT_NUM_OUTPUTS),
            is_chat_model=all(meta.is_chat_model for meta in metas.values()),
            is_function_calling_model=False,
            model_name=f"r2router[{','.join(self._models)}]",
        )

    # -- routing -------------------------------------------------------------------
    def _routing_text(self, text: str) -> str:
        if self.route_on == "query":
            query = _ROUTING_QUERY.get()
            if query is None and self.query_extractor is not None:
                query = self.query_extractor(text)
            if query:
                return query
            logger.debug("route_on='query' but no question is known; routing on the prompt")
        return text

    def _settings(self) -> RoutingSettings:
        return RoutingSettings(lambda_=self.lambda_, max_budget=self.max_budget, max_cost=self.max_cost)

    def _route(self, text: str) -> _Route:
        decision = route(self._router, self._routing_text(text), self._settings(), allowed_models=self._models)
        return _Route(self._child(decision.model, decision.token_limit), decision)

    async def _aroute(self, text: str) -> _Route:
        return await asyncio.to_thread(self._route, text)

    def _child(self, model: str, budget: Budget) -> LLM:
        """The pool LLM copied at ``budget`` (cached), emitting through this wrapper's handlers too."""
        base = self._pool[model]
        manager = _merged_manager(self.callback_manager, base.callback_manager)
        with self._lock:
            child = self._children.get((model, budget))
            if child is None:
                child = self._children[(model, budget)] = self._apply_budget(base, budget)
            if child.callback_manager is not manager:
                child.callback_manager = manager
        return child

    # -- budget instruction ----------------------------------------------------------
    def _instruction(self, decision: RoutingDecision) -> str | None:
        if self.budget_instruction is None or decision.token_limit is None:
            return None
        return self.budget_instruction.format(budget=decision.token_limit)

    def _prompt(self, prompt: str, decision: RoutingDecision) -> str:
        instruction = self._instruction(decision)
        return prompt if instruction is None else f"{prompt}\n\n{instruction}"

    def _messages(self, messages: Sequence[ChatMessage], decision: RoutingDecision) -> Sequence[ChatMessage]:
        instruction = self._instruction(decision)
        if instruction is None:
            return messages
        if messages and messages[0].role == MessageRole.SYSTEM:
            merged = f"{messages[0].content or ''}\n\n{instruction}"
            return [ChatMessage(role=MessageRole.SYSTEM, content=merged), *messages[1:]]
        return [ChatMessage(role=MessageRole.SYSTEM, content=instruction), *messages]

    # -- completion ------------------------------------------------------------------
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        r = self._route(prompt)
        return _tag(r.llm.complete(self._prompt(prompt, r.decision), formatted=formatted, **kwargs), r.decision)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        r = self._route(prompt)
        stream = r.llm.stream_complete(self._prompt(prompt, r.decision), formatted=formatted, **kwargs)
        return _tag_stream(stream, r.decision)

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        r = await self._aroute(prompt)
        response = await r.llm.acomplete(self._prompt(prompt, r.decision), formatted=formatted, **kwargs)
        return _tag(response, r.decision)

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        r = await self._aroute(prompt)
        stream = await r.llm.astream_complete(self._prompt(prompt, r.decision), formatted=formatted, **kwargs)
        return _tag_astream(stream, r.decision)

    # -- chat ------------------------------------------------------------------------
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        r = self._route(_chat_text(messages))
        return _tag(r.llm.chat(self._messages(messages, r.decision), **kwargs), r.decision)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        r = self._route(_chat_text(messages))
        return _tag_stream(r.llm.stream_chat(self._messages(messages, r.decision), **kwargs), r.decision)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        r = await self._aroute(_chat_text(messages))
        return _tag(await r.llm.achat(self._messages(messages, r.decision), **kwargs), r.decision)

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        r = await self._aroute(_chat_text(messages))
        stream = await r.llm.astream_chat(self._messages(messages, r.decision), **kwargs)
        return _tag_astream(stream, r.decision)


def _chat_text(messages: Sequence[ChatMessage]) -> str:
    """The text a chat is routed on: the last user message, else every message."""
    for message in reversed(messages):
        if message.role == MessageRole.USER and (message.content or "").strip():
            return message.content or ""
    return "\n".join(message.content or "" for message in messages)


def _merged_manager(outer: CallbackManager, inner: CallbackManager) -> CallbackManager:
    """A manager holding the handlers of both, each once (so nothing is counted twice)."""
    if outer is inner or not outer.handlers:
        return inner
    if not inner.handlers:
        return outer
    handlers = list({id(h): h for h in [*inner.handlers, *outer.handlers]}.values())
    return CallbackManager(handlers)


def _tag(response: _R, decision: RoutingDecision) -> _R:
    response.additional_kwargs["r2router"] = decision.to_dict()
    return response


def _tag_stream(stream: Generator[_R, None, None], decision: RoutingDecision) -> Generator[_R, None, None]:
    for chunk in stream:
        yield _tag(chunk, decision)


async def _tag_astream(stream: AsyncGenerator[_R, None], decision: RoutingDecision) -> AsyncGenerator[_R, None]:
    async for chunk in stream:
        yield _tag(chunk, decision)
