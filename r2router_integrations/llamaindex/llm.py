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
import dataclasses
import functools
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar

import numpy as np
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
from llama_index.core.llms.function_calling import FunctionCallingLLM

from r2router_core import (
    LENGTH_INSTRUCTION,
    STRUCTURED_OUTPUT_MIN_BUDGET,
    AttemptLog,
    Budget,
    Candidate,
    ConfigError,
    DecisionLog,
    EmptyPromptError,
    Escalation,
    EscalationPolicy,
    ExplorationPolicy,
    FailedAttempt,
    FallbackPolicy,
    MessageStyle,
    R2Router,
    RoutingDecision,
    RoutingOptions,
    UnknownModelError,
    add_length_instruction,
    check_instruction_template,
    join_instruction,
    length_instruction,
    open_log,
)
from r2router_integrations.llamaindex._routing import check_router, route
from r2router_integrations.llamaindex.budgets import ApplyBudget, with_budget
from r2router_integrations.llamaindex.learning import CallContext, answer_cost, answer_facts, log_call, log_escalated

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


class R2RouterLLM(FunctionCallingLLM):
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
        max_tokens: The caller's output cap: an upper bound on the routed budget (the
            core's rule; a call's own ``max_tokens`` kwarg replaces it).
        length_instruction: Tell the chosen model its budget (the paper's setting, on by
            default): appended to a chat's system message (or sent as one), or as the
            last paragraph of a completion prompt. Never added to an uncapped call.
        length_instruction_template: The instruction, with ``{budget}``.
        budget_instruction: Deprecated spelling of ``length_instruction_template``.
        fallbacks: Other pool models tried, in utility order, when the chosen one fails
            with a provider error (the core's :class:`FallbackPolicy`); 0 turns it off.
        fallback_policy: The whole fallback policy; overrides ``fallbacks``.
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
    max_tokens: int | None = Field(default=None, description="The caller's output cap.")
    """Upper bound on the routed budget (the core's ``max_tokens`` rule)."""
    length_instruction: bool = Field(default=True, description="Tell the model its budget.")
    """Add the paper's length instruction to capped calls."""
    length_instruction_template: str = Field(default=LENGTH_INSTRUCTION, description="The instruction.")
    """The length instruction, with ``{budget}``."""
    budget_instruction: str | None = Field(default=None, description="Deprecated: length_instruction_template.")
    """Deprecated spelling of ``length_instruction_template`` (kept for old code)."""
    fallbacks: int = Field(default=2, description="Other pool models tried on provider failures.")
    """Other pool models tried, in utility order, on provider failures; 0 = off."""
    fallback_policy: FallbackPolicy | None = Field(default=None, exclude=True)

    store: Any = Field(default=None, exclude=True, description="Decision log store (URL, path); None = no log.")

    keep_text: bool = Field(default=False, description="Keep prompt and answer text in the decision log.")

    explore: float | None = Field(default=None, description="Share of calls sent to a non-best arm (None: off).")
    """Share of calls sent to a non-best arm among the top candidates (the core's ``ExplorationPolicy``),
    its propensity logged; ``None`` (the default) = off."""

    escalation: EscalationPolicy | bool | int | None = Field(
        default=None, exclude=True, description="Ask a cut answer again with more room (None: once)."
    )
    """When the budget cut the answer (finish reason ``length``), ask again at the next larger budget of
    the same model, else the next candidate: ``None``/``True`` = once, ``False``/``0`` = off, an int or a
    policy. Non-streamed calls only."""
    """The whole fallback policy; overrides ``fallbacks``."""

    _router: R2Router = PrivateAttr()
    _pool: dict[str, LLM] = PrivateAttr()
    _models: tuple[str, ...] = PrivateAttr()
    _apply_budget: ApplyBudget = PrivateAttr()
    _children: dict[tuple[str, Budget], LLM] = PrivateAttr(default_factory=dict)
    _defaults: RoutingOptions = PrivateAttr(default_factory=RoutingOptions)
    _policy: FallbackPolicy = PrivateAttr(default_factory=FallbackPolicy)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _log: DecisionLog | None = PrivateAttr(default=None)
    _escalation: EscalationPolicy = PrivateAttr(default_factory=EscalationPolicy)
    _exploration: ExplorationPolicy = PrivateAttr(default_factory=ExplorationPolicy)
    _rng: np.random.Generator = PrivateAttr(default_factory=np.random.default_rng)
    _calls: weakref.WeakKeyDictionary[RoutingDecision, CallContext] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )

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
        self._defaults = RoutingOptions(
            lambda_=self.lambda_,
            allowed_models=tuple(m for m in names if m in pool),
            max_budget=self.max_budget,
            max_cost=self.max_cost,
            max_tokens=self.max_tokens,
        )
        self._defaults.resolved(self._router.config)
        self._policy = self.fallback_policy or FallbackPolicy(max_fallbacks=self.fallbacks)
        if self.budget_instruction is not None:
            self.length_instruction_template = self.budget_instruction
        check_instruction_template(self.length_instruction_template)
        if apply_budget is with_budget:  # fail now, not at the first call, if a pool LLM has no max_tokens
            for llm in pool.values():
                with_budget(llm, None)
        self._pool = dict(pool)
        self._models = tuple(m for m in names if m in pool)
        self._apply_budget = apply_budget
        self._log = open_log(self.store, self.keep_text)
        self._escalation = EscalationPolicy.coerce(self.escalation)
        self._exploration = ExplorationPolicy.coerce(self.explore)

    @property
    def decision_log(self) -> DecisionLog | None:
        """The decision log of ``store=`` (``None`` without a store)."""
        return self._log

    def feedback(self, decision_id: str, quality: float, *, source: str = "api") -> None:
        """Record a quality score in [0, 1] for a logged call (its ``decision_id`` from ``additional_kwargs``).

        Raises:
            ConfigError: No ``store``.
            DataError: ``quality`` is not a number in [0, 1].
            UnknownDecisionError: No logged call has this id.
        """
        if self._log is None:
            raise ConfigError("feedback needs the decision log: set store= (a SQLAlchemy URL or a path)")
        self._log.feedback(decision_id, quality, source=source)

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
            is_function_calling_model=all(meta.is_function_calling_model for meta in metas.values()),
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

    def _options(self, kwargs: dict[str, Any]) -> RoutingOptions:
        """The call's options: its ``max_tokens`` kwarg (popped) over the defaults; tools get the floor."""
        call = RoutingOptions(
            max_tokens=kwargs.pop("max_tokens", None),
            min_budget=STRUCTURED_OUTPUT_MIN_BUDGET if kwargs.get("tools") else None,
        )
        return self._defaults.merged(call)

    def _route(self, text: str, kwargs: dict[str, Any]) -> RoutingDecision:
        routed = self._routing_text(text)
        if self._log is None:
            decision = route(self._router, routed, self._options(kwargs))
            self._calls[decision] = self._explored(decision, CallContext(routed))
            return decision
        embedding = self._router.embed([routed])[0]  # the log keeps it: embed once, route on it
        decision = self._router.route(embedding, self._options(kwargs))
        self._calls[decision] = self._explored(decision, CallContext(routed, embedding))
        return decision

    def _context(self, decision: RoutingDecision) -> CallContext:
        return self._calls.get(decision) or CallContext("")

    async def _aroute(self, text: str, kwargs: dict[str, Any]) -> RoutingDecision:
        return await asyncio.to_thread(self._route, text, kwargs)

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

    def _explored(self, decision: RoutingDecision, ctx: CallContext) -> CallContext:
        if self._exploration.rate == 0:
            return ctx
        arm, propensity = self._exploration.choose(decision, self._rng)
        return dataclasses.replace(ctx, first=None if arm == decision.chosen else arm, propensity=propensity)

    def _plan(self, decision: RoutingDecision) -> AttemptLog[Candidate]:
        """The fallback plan, led by the explored arm when exploration picked one."""
        plan = decision.fallback_plan(self._policy.max_fallbacks)
        first = self._context(decision).first
        if first is not None:
            plan = (first, *(c for c in plan if c.model != first.model))[: self._policy.max_fallbacks + 1]
        return AttemptLog(plan, self._policy)

    def _arm(self, decision: RoutingDecision, candidate: Candidate) -> tuple[LLM, int | None]:
        cap = decision.max_tokens_for(candidate.token_limit)
        return self._child(candidate.model, cap), cap

    # -- length instruction ----------------------------------------------------------
    def _prompt(self, prompt: str, cap: int | None) -> str:
        instruction = length_instruction(cap, self.length_instruction_template) if self.length_instruction else None
        return prompt if instruction is None else join_instruction(prompt, instruction)

    def _messages(self, messages: Sequence[ChatMessage], cap: int | None) -> Sequence[ChatMessage]:
        if not self.length_instruction:
            return messages
        return add_length_instruction(messages, cap, LLAMAINDEX_MESSAGES, template=self.length_instruction_template)

    # -- one call with fallback, sync and async ----------------------------------------
    def _call(self, decision: RoutingDecision, run: Callable[[LLM, int | None], _R]) -> _R:
        log = self._plan(decision)
        ctx = self._context(decision)
        for candidate in log:
            llm, cap = self._arm(decision, candidate)
            try:
                response = run(llm, cap)
            except Exception as exc:
                log.failed(candidate, exc)
                continue
            escalation, cut = Escalation(decision, self._escalation, candidate), []
            while (arm := self._next_arm(escalation, decision, response)) is not None:
                try:
                    again = run(*self._arm(decision, arm))
                except Exception:
                    logger.warning("escalation to %s failed; the cut answer is returned", arm, exc_info=True)
                    escalation.give_up()
                    break
                cut.append((escalation.tried[-2], response))
                response = again
            return self._finish(ctx, decision, escalation, log.failures, cut, response)
        self._log_failure(ctx, decision, log.failures)
        raise log.error()

    async def _acall(self, decision: RoutingDecision, run: Callable[[LLM, int | None], Awaitable[_R]]) -> _R:
        log = self._plan(decision)
        ctx = self._context(decision)
        async for candidate in log:
            llm, cap = self._arm(decision, candidate)
            try:
                response = await run(llm, cap)
            except Exception as exc:
                log.failed(candidate, exc)
                continue
            escalation, cut = Escalation(decision, self._escalation, candidate), []
            while (arm := self._next_arm(escalation, decision, response)) is not None:
                try:
                    again = await run(*self._arm(decision, arm))
                except Exception:
                    logger.warning("escalation to %s failed; the cut answer is returned", arm, exc_info=True)
                    escalation.give_up()
                    break
                cut.append((escalation.tried[-2], response))
                response = again
            return self._finish(ctx, decision, escalation, log.failures, cut, response)
        self._log_failure(ctx, decision, log.failures)
        raise log.error()

    def _stream(
        self, decision: RoutingDecision, run: Callable[[LLM, int | None], Generator[_R, None, None]]
    ) -> Generator[_R, None, None]:
        """Fallback only until the first chunk: after it, the answer is out."""
        log = self._plan(decision)
        for candidate in log:
            llm, cap = self._arm(decision, candidate)
            try:
                stream = run(llm, cap)
                first = next(stream)
            except StopIteration:
                return _nothing()
            except Exception as exc:
                log.failed(candidate, exc)
                continue
            ctx = self._context(decision)
            info = _info(decision, candidate, log.failures, ctx.decision_id)
            done = functools.partial(log_call, self._log, ctx, decision, candidate, log.failures)
            return _tag_stream(first, stream, info, done)
        raise log.error()

    async def _astream(
        self, decision: RoutingDecision, run: Callable[[LLM, int | None], Awaitable[AsyncGenerator[_R, None]]]
    ) -> AsyncGenerator[_R, None]:
        log = self._plan(decision)
        async for candidate in log:
            llm, cap = self._arm(decision, candidate)
            try:
                stream = await run(llm, cap)
                first = await anext(stream)
            except StopAsyncIteration:
                break
            except Exception as exc:
                log.failed(candidate, exc)
                continue
            ctx = self._context(decision)
            done = functools.partial(log_call, self._log, ctx, decision, candidate, log.failures)
            return _tag_astream(first, stream, _info(decision, candidate, log.failures, ctx.decision_id), done)
        else:
            raise log.error()
        return _empty()

    def _next_arm(self, escalation: Escalation, decision: RoutingDecision, response: Any) -> Candidate | None:
        reason, _, output_tokens = answer_facts(response)
        return escalation.after(reason, output_tokens, answer_cost(decision, escalation.current, response))

    def _finish(
        self,
        ctx: CallContext,
        decision: RoutingDecision,
        escalation: Escalation,
        failures: Sequence[FailedAttempt],
        cut: Sequence[tuple[Candidate, Any]],
        response: _R,
    ) -> _R:
        used = escalation.current
        log_escalated(self._log, ctx, decision, escalation, failures, cut, response)
        info = _info(decision, used, failures, ctx.decision_id)
        info["escalations"] = [t.to_dict() for t in escalation.truncated]
        info["cost_usd"] = escalation.cost_usd + answer_cost(decision, used, response)
        return _tag(response, info)

    def _log_failure(self, ctx: CallContext, decision: RoutingDecision, failures: Sequence[FailedAttempt]) -> None:
        if self._log is None or not failures:
            return
        last = failures[-1]
        used = next(c for c in decision.candidates if (c.model, c.token_limit) == (last.model, last.token_limit))
        log_call(self._log, ctx, decision, used, failures)

    # -- completion ------------------------------------------------------------------
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        d = self._route(prompt, kwargs)
        return self._call(d, lambda llm, cap: llm.complete(self._prompt(prompt, cap), formatted=formatted, **kwargs))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        d = self._route(prompt, kwargs)
        return self._stream(
            d, lambda llm, cap: llm.stream_complete(self._prompt(prompt, cap), formatted=formatted, **kwargs)
        )

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        d = await self._aroute(prompt, kwargs)
        return await self._acall(
            d, lambda llm, cap: llm.acomplete(self._prompt(prompt, cap), formatted=formatted, **kwargs)
        )

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        d = await self._aroute(prompt, kwargs)
        return await self._astream(
            d, lambda llm, cap: llm.astream_complete(self._prompt(prompt, cap), formatted=formatted, **kwargs)
        )

    # -- tools (agents): a function-calling LLM whenever every pool LLM is one ---------------
    def _tool_call(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None,
        history: Sequence[ChatMessage] | None,
        kwargs: dict[str, Any],
    ) -> tuple[RoutingDecision, list[ChatMessage]]:
        messages = [*(history or [])]
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        routing = {"tools": tools, **({"max_tokens": kwargs.pop("max_tokens")} if "max_tokens" in kwargs else {})}
        return self._route(_chat_text(messages), routing), messages

    def chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Route (with the structured-output budget floor), then the chosen pool LLM's ``chat_with_tools``."""
        d, messages = self._tool_call(tools, user_msg, chat_history, kwargs)
        return self._call(
            d,
            self._with_tools(
                "chat_with_tools",
                tools,
                messages,
                _tool_options(verbose, allow_parallel_tool_calls, tool_required, kwargs),
            ),
        )

    async def achat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Async :meth:`chat_with_tools`."""
        d, messages = await asyncio.to_thread(self._tool_call, tools, user_msg, chat_history, kwargs)
        return await self._acall(
            d,
            self._with_tools(
                "achat_with_tools",
                tools,
                messages,
                _tool_options(verbose, allow_parallel_tool_calls, tool_required, kwargs),
            ),
        )

    def stream_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseGen:
        """Streaming :meth:`chat_with_tools` (fallback only before the first chunk)."""
        d, messages = self._tool_call(tools, user_msg, chat_history, kwargs)
        return self._stream(
            d,
            self._with_tools(
                "stream_chat_with_tools",
                tools,
                messages,
                _tool_options(verbose, allow_parallel_tool_calls, tool_required, kwargs),
            ),
        )

    async def astream_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseAsyncGen:
        """Async streaming :meth:`chat_with_tools`."""
        d, messages = await asyncio.to_thread(self._tool_call, tools, user_msg, chat_history, kwargs)
        return await self._astream(
            d,
            self._with_tools(
                "astream_chat_with_tools",
                tools,
                messages,
                _tool_options(verbose, allow_parallel_tool_calls, tool_required, kwargs),
            ),
        )

    def _with_tools(
        self, method: str, tools: Sequence[Any], messages: Sequence[ChatMessage], options: dict[str, Any]
    ) -> Callable[[LLM, int | None], Any]:
        """Call ``method`` (``chat_with_tools`` or a twin) of a pool LLM with the instruction for its cap."""
        return lambda llm, cap: getattr(_function_llm(llm), method)(
            tools, chat_history=list(self._messages(messages, cap)), **options
        )

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The chat kwargs as the first pool LLM prepares them (for callers that call ``chat`` themselves)."""
        first = _function_llm(self._pool[self._models[0]])
        return first._prepare_chat_with_tools(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[Any]:
        """The tool calls, read by the pool LLM that wrote ``response``."""
        model = response.additional_kwargs.get("r2router", {}).get("model", self._models[0])
        return _function_llm(self._pool[model]).get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    # -- chat ------------------------------------------------------------------------
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        d = self._route(_chat_text(messages), kwargs)
        return self._call(d, lambda llm, cap: llm.chat(self._messages(messages, cap), **kwargs))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        d = self._route(_chat_text(messages), kwargs)
        return self._stream(d, lambda llm, cap: llm.stream_chat(self._messages(messages, cap), **kwargs))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        d = await self._aroute(_chat_text(messages), kwargs)
        return await self._acall(d, lambda llm, cap: llm.achat(self._messages(messages, cap), **kwargs))

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        d = await self._aroute(_chat_text(messages), kwargs)
        return await self._astream(d, lambda llm, cap: llm.astream_chat(self._messages(messages, cap), **kwargs))


def _chat_text(messages: Sequence[ChatMessage]) -> str:
    """The text a chat is routed on: the last user message, else every message but system ones.

    Raises:
        EmptyPromptError: Only system messages (instructions, not a prompt) or no text.
    """
    for message in reversed(messages):
        if message.role == MessageRole.USER and (message.content or "").strip():
            return message.content or ""
    text = "\n".join(m.content or "" for m in messages if m.role != MessageRole.SYSTEM and (m.content or "").strip())
    if not text:
        raise EmptyPromptError(
            "the messages hold no text to route on (system messages alone are instructions, not a prompt); "
            "add a user message"
        )
    return text


def _tool_options(verbose: bool, parallel: bool, required: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
    options = {"verbose": verbose, "allow_parallel_tool_calls": parallel, **kwargs}
    if required:  # passed only when asked: older pool LLMs do not take tool_required
        options["tool_required"] = True
    return options


def _function_llm(llm: LLM) -> FunctionCallingLLM:
    if not isinstance(llm, FunctionCallingLLM):
        raise ConfigError(
            f"{type(llm).__name__} is not a function-calling LLM, so it cannot answer with tools; "
            "give R2RouterLLM a pool of function-calling LLMs (OpenAI, Anthropic...) for agents"
        )
    return llm


def _system_with_text(message: ChatMessage, text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.SYSTEM, content=join_instruction(message.content or "", text))


LLAMAINDEX_MESSAGES: MessageStyle[ChatMessage] = MessageStyle(
    is_system=lambda message: message.role == MessageRole.SYSTEM,
    with_text=_system_with_text,
    system=lambda text: ChatMessage(role=MessageRole.SYSTEM, content=text),
)
"""LlamaIndex chat messages for the core's :func:`~r2router_core.add_length_instruction`."""


def _info(
    decision: RoutingDecision, used: Candidate, failures: Sequence[FailedAttempt], decision_id: str | None = None
) -> dict[str, Any]:
    """The ``additional_kwargs["r2router"]`` dict: the decision, as answered by ``used``."""
    return {"decision_id": decision_id, **decision.answered_by(used, failures), "escalations": []}


def _merged_manager(outer: CallbackManager, inner: CallbackManager) -> CallbackManager:
    """A manager holding the handlers of both, each once (so nothing is counted twice)."""
    if outer is inner or not outer.handlers:
        return inner
    if not inner.handlers:
        return outer
    handlers = list({id(h): h for h in [*inner.handlers, *outer.handlers]}.values())
    return CallbackManager(handlers)


def _tag(response: _R, info: dict[str, Any]) -> _R:
    response.additional_kwargs["r2router"] = info
    return response


def _tag_stream(
    first: _R, stream: Generator[_R, None, None], info: dict[str, Any], done: Callable[[Any], None]
) -> Generator[_R, None, None]:
    last = _tag(first, info)
    yield last
    for chunk in stream:
        last = _tag(chunk, info)
        yield last
    done(last)  # LlamaIndex chunks carry the text so far: the last one holds the answer


async def _tag_astream(
    first: _R, stream: AsyncGenerator[_R, None], info: dict[str, Any], done: Callable[[Any], None]
) -> AsyncGenerator[_R, None]:
    last = _tag(first, info)
    yield last
    async for chunk in stream:
        last = _tag(chunk, info)
        yield last
    done(last)


def _nothing() -> Generator[Any, None, None]:
    yield from ()


async def _empty() -> AsyncGenerator[Any, None]:
    return
    yield  # an async generator with nothing in it
