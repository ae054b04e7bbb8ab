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
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

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
from pydantic import InstanceOf

from r2router_core import (
    STRUCTURED_OUTPUT_MIN_BUDGET,
    Budget,
    ConfigError,
    DecisionLog,
    EmptyPromptError,
    MessageStyle,
    MissingDependencyError,
    R2Router,
    RoutingDecision,
    RoutingOptions,
    UnknownModelError,
    add_length_instruction,
    join_instruction,
    length_instruction,
)
from r2router_core.execute import (
    Attempt,
    CallOutcome,
    CallPlan,
    ServingSettings,
    adrive,
    adrive_stream,
    drive,
    drive_stream,
)
from r2router_integrations.llamaindex._routing import check_router
from r2router_integrations.llamaindex.budgets import ApplyBudget, with_budget
from r2router_integrations.llamaindex.responses import METADATA_KEY, answer_facts, call_info, decision_info, tag
from r2router_integrations.serving import ServingAccess

__all__ = ["R2RouterLLM", "routing_query"]

logger = logging.getLogger(__name__)

_ROUTING_QUERY: ContextVar[str | None] = ContextVar("r2router_llamaindex_routing_query", default=None)

_R = TypeVar("_R", ChatResponse, CompletionResponse)

SOURCE = "llamaindex"
"""The decision log's ``source`` of this LLM's calls."""

_Run = Callable[[LLM, Budget], Any]
"""One pool call: the pool LLM copied at the attempt's cap, and the budget its length instruction states."""


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


class R2RouterLLM(ServingAccess, FunctionCallingLLM):
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
        serving: How calls are executed after their decision (the core's :class:`ServingSettings`:
            fallbacks, escalation, exploration, the length instruction, the decision log). Its
            fields are accepted as keywords too (``fallbacks=1``, ``store=...``, ``length_instruction=``:
            appended to a chat's system message or as the last paragraph of a completion prompt),
            but not both at once.
        budget_instruction: Deprecated spelling of ``length_instruction_template``.
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
    budget_instruction: str | None = Field(default=None, description="Deprecated: length_instruction_template.")
    """Deprecated spelling of ``length_instruction_template`` (kept for old code)."""
    serving: InstanceOf[ServingSettings] = Field(
        default_factory=ServingSettings, exclude=True, description="How calls are executed after their decision."
    )
    """The core's serving settings (fallbacks, escalation, exploration, length instruction, decision log)."""

    _router: R2Router = PrivateAttr()
    _pool: dict[str, LLM] = PrivateAttr()
    _models: tuple[str, ...] = PrivateAttr()
    _apply_budget: ApplyBudget = PrivateAttr()
    _children: dict[tuple[str, Budget], LLM] = PrivateAttr(default_factory=dict)
    _defaults: RoutingOptions = PrivateAttr(default_factory=RoutingOptions)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _log: DecisionLog | None = PrivateAttr(default=None)
    _rng: np.random.Generator = PrivateAttr(default_factory=np.random.default_rng)

    def __init__(
        self,
        router: R2Router,
        pool: Mapping[str, LLM],
        *,
        apply_budget: ApplyBudget = with_budget,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("budget_instruction") is not None:
            kwargs.setdefault("length_instruction_template", kwargs["budget_instruction"])
        super().__init__(**ServingSettings.fold(kwargs))  # a bad setting raises ConfigError here
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
        if apply_budget is with_budget:  # fail now, not at the first call, if a pool LLM has no max_tokens
            for llm in pool.values():
                with_budget(llm, None)
        self._pool = dict(pool)
        self._models = tuple(m for m in names if m in pool)
        self._apply_budget = apply_budget
        self._open_serving(self._pool)

    @classmethod
    def from_upstreams(
        cls,
        router: R2Router,
        upstreams: str | Path,
        *,
        environ: Mapping[str, str] | None = None,
        llm_options: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> R2RouterLLM:
        """An LLM whose pool is the ``upstreams.yaml`` that ``r2router serve`` and ``collect`` read.

        Each pool model gets an OpenAI-compatible LLM on its upstream (base URL, model id, the key
        named by ``api_key_env``, headers, timeout; the cap sent under its ``max_tokens_param``).
        Every pool model must have an upstream with ``input_price`` and ``output_price`` equal to
        the router's. Needs ``llama-index-llms-openai`` and the ``server`` extra (which reads the file).

        Args:
            router: The fitted router.
            upstreams: The ``upstreams.yaml`` file.
            environ: Where the keys are read (default ``os.environ``).
            llm_options: Fields of every pool LLM (``context_window``, default LlamaIndex's 3900;
                ``is_function_calling_model=True`` for agents; ``temperature``...).
            **settings: Other arguments of :class:`R2RouterLLM` (``lambda_``, ``fallbacks``, ``store``...).

        Raises:
            ConfigError: A pool model without an upstream or a price, or a price unlike the router's.
            MissingDependencyError: ``llama-index-llms-openai`` is not installed.
        """
        try:
            from r2router_integrations.llamaindex.upstreams import llms_from_upstreams
        except ImportError as exc:
            if exc.name not in ("llama_index.llms.openai", "llama_index.llms", "openai"):
                raise
            raise MissingDependencyError(
                "R2RouterLLM.from_upstreams builds its pool with llama-index-llms-openai, which is not installed; "
                "install it with: pip install llama-index-llms-openai"
            ) from exc
        pool = llms_from_upstreams(router, upstreams, environ=environ, **dict(llm_options or {}))
        return cls(router, pool, **settings)

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
        """The call's options: its ``max_tokens`` and ``input_tokens`` kwargs (popped) over the defaults;
        tools get the structured-output floor."""
        call = RoutingOptions(
            max_tokens=kwargs.pop("max_tokens", None),
            input_tokens=kwargs.pop("input_tokens", None),
            min_budget=STRUCTURED_OUTPUT_MIN_BUDGET if kwargs.get("tools") else None,
        )
        return self._defaults.merged(call)

    def _route(self, text: str, sent: str, kwargs: dict[str, Any], *, stream: bool = False) -> _Routed:
        """Route ``text`` (priced by the tokens of ``sent``, what the pool LLM receives) and plan the call."""
        started = time.perf_counter()
        routed = self._routing_text(text)
        options = self._options(kwargs)
        if options.input_tokens is None:  # the caller's own count wins
            options = replace(options, input_tokens=self._router.count_tokens([sent])[0])
        embedding = self._router.embed([routed])[0]
        decision = self._router.route(embedding, options)
        plan = self._call_plan(
            decision,
            self._router.config.models,
            source=SOURCE,
            stream=stream,
            embedding=embedding,
            prompt=routed,
            started=started,
        )
        return _Routed(self, decision, plan)

    async def _aroute(self, text: str, sent: str, kwargs: dict[str, Any], *, stream: bool = False) -> _Routed:
        return await asyncio.to_thread(self._route, text, sent, kwargs, stream=stream)

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

    # -- length instruction ----------------------------------------------------------
    def _prompt(self, prompt: str, budget: Budget) -> str:
        instruction = length_instruction(budget, self.serving.length_instruction_template)
        return prompt if instruction is None else join_instruction(prompt, instruction)

    def _messages(self, messages: Sequence[ChatMessage], budget: Budget) -> Sequence[ChatMessage]:
        template = self.serving.length_instruction_template
        return add_length_instruction(messages, budget, LLAMAINDEX_MESSAGES, template=template)

    # -- completion ------------------------------------------------------------------
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        call = self._route(prompt, prompt, kwargs)
        return call.run(lambda llm, b: llm.complete(self._prompt(prompt, b), formatted=formatted, **kwargs))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        call = self._route(prompt, prompt, kwargs, stream=True)
        return call.stream(lambda llm, b: llm.stream_complete(self._prompt(prompt, b), formatted=formatted, **kwargs))

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        call = await self._aroute(prompt, prompt, kwargs)
        return await call.arun(lambda llm, b: llm.acomplete(self._prompt(prompt, b), formatted=formatted, **kwargs))

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        call = await self._aroute(prompt, prompt, kwargs, stream=True)
        return call.astream(lambda llm, b: llm.astream_complete(self._prompt(prompt, b), formatted=formatted, **kwargs))

    # -- tools (agents): a function-calling LLM whenever every pool LLM is one ---------------
    def _tool_call(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None,
        history: Sequence[ChatMessage] | None,
        kwargs: dict[str, Any],
        *,
        stream: bool = False,
    ) -> tuple[_Routed, list[ChatMessage]]:
        messages = [*(history or [])]
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        routing: dict[str, Any] = {"tools": tools}
        routing.update({key: kwargs.pop(key) for key in ("max_tokens", "input_tokens") if key in kwargs})
        sent = _sent_text(messages, tools)
        return self._route(_chat_text(messages), sent, routing, stream=stream), messages

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
        call, messages = self._tool_call(tools, user_msg, chat_history, kwargs)
        return call.run(
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
        call, messages = await asyncio.to_thread(self._tool_call, tools, user_msg, chat_history, kwargs)
        return await call.arun(
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
        call, messages = self._tool_call(tools, user_msg, chat_history, kwargs, stream=True)
        return call.stream(
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
        call, messages = await asyncio.to_thread(
            lambda: self._tool_call(tools, user_msg, chat_history, kwargs, stream=True)
        )
        return call.astream(
            self._with_tools(
                "astream_chat_with_tools",
                tools,
                messages,
                _tool_options(verbose, allow_parallel_tool_calls, tool_required, kwargs),
            ),
        )

    def _with_tools(
        self, method: str, tools: Sequence[Any], messages: Sequence[ChatMessage], options: dict[str, Any]
    ) -> _Run:
        """Call ``method`` (``chat_with_tools`` or a twin) of a pool LLM with the instruction for its cap."""
        return lambda llm, budget: getattr(_function_llm(llm), method)(
            tools, chat_history=list(self._messages(messages, budget)), **options
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
        model = response.additional_kwargs.get(METADATA_KEY, {}).get("model", self._models[0])
        return _function_llm(self._pool[model]).get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    # -- chat ------------------------------------------------------------------------
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._route(_chat_text(messages), _sent_text(messages), kwargs)
        return call.run(lambda llm, b: llm.chat(self._messages(messages, b), **kwargs))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        call = self._route(_chat_text(messages), _sent_text(messages), kwargs, stream=True)
        return call.stream(lambda llm, b: llm.stream_chat(self._messages(messages, b), **kwargs))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = await self._aroute(_chat_text(messages), _sent_text(messages), kwargs)
        return await call.arun(lambda llm, b: llm.achat(self._messages(messages, b), **kwargs))

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        call = await self._aroute(_chat_text(messages), _sent_text(messages), kwargs, stream=True)
        return call.astream(lambda llm, b: llm.astream_chat(self._messages(messages, b), **kwargs))


class _Routed:
    """One routed call: its plan, driven with the pool LLM of each attempt.

    The adapter's part of an attempt: the pool LLM copied at the attempt's cap, the length
    instruction when the attempt states a budget, the response's facts, and the
    ``additional_kwargs["r2router"]`` dict (one dict per attempt, shared by its chunks, completed
    with the costs when the call ends).
    """

    def __init__(self, llm: R2RouterLLM, decision: RoutingDecision, plan: CallPlan) -> None:
        self._llm, self._decision, self.plan = llm, decision, plan
        self._infos: dict[int, dict[str, Any]] = {}
        self._last: dict[int, Any] = {}

    def _pool_call(self, run: _Run, attempt: Attempt) -> Any:
        return run(self._llm._child(attempt.model, attempt.cap), attempt.instruction_budget)

    def _info(self, attempt: Attempt) -> dict[str, Any]:
        info = decision_info(self._decision, attempt.arm, attempt.failures, self.plan.decision_id)
        return self._infos.setdefault(attempt.number, info)

    def _answer(self, response: _R, outcome: CallOutcome) -> _R:
        assert outcome.answered is not None  # drive() returns a response only for an answered call
        return tag(response, call_info(self._info(outcome.answered), outcome))

    def run(self, run: _Run) -> Any:
        response, outcome = drive(self.plan, lambda a: self._pool_call(run, a), answer_facts, log=self._llm._log)
        return self._answer(response, outcome)

    async def arun(self, run: _Run) -> Any:
        call = lambda a: self._pool_call(run, a)  # noqa: E731 - returns the pool LLM's coroutine
        response, outcome = await adrive(self.plan, call, answer_facts, log=self._llm._log)
        return self._answer(response, outcome)

    def _facts(self, attempt: Attempt) -> Any:
        return answer_facts(self._last.get(attempt.number))  # LlamaIndex chunks hold the text so far

    def _ended(self, outcome: CallOutcome) -> None:
        if outcome.answered is not None:
            call_info(self._info(outcome.answered), outcome)

    def _tagged(self, attempt: Attempt, chunk: Any) -> Any:
        self._last[attempt.number] = chunk
        return tag(chunk, self._info(attempt))

    def stream(self, run: _Run) -> Generator[Any, None, None]:
        def chunks(attempt: Attempt) -> Iterator[Any]:
            for chunk in self._pool_call(run, attempt):
                yield self._tagged(attempt, chunk)

        stream = drive_stream(self.plan, chunks, self._facts, log=self._llm._log, done=self._ended)
        return cast("Generator[Any, None, None]", stream)  # a generator function, typed as an iterator

    def astream(self, run: _Run) -> AsyncGenerator[Any, None]:
        async def chunks(attempt: Attempt) -> AsyncGenerator[Any, None]:
            async for chunk in await self._pool_call(run, attempt):
                yield self._tagged(attempt, chunk)

        stream = adrive_stream(self.plan, chunks, self._facts, log=self._llm._log, done=self._ended)
        return cast("AsyncGenerator[Any, None]", stream)  # an async generator function, typed as an iterator


def _sent_text(messages: Sequence[ChatMessage], tools: Sequence[Any] = ()) -> str:
    """Every message as sent (system prompt and retrieved context included) plus the tools' schemas as JSON."""
    text = "\n".join(m.content or "" for m in messages)
    if not tools:
        return text
    schemas = [_tool_schema(t) for t in tools]
    return f"{text}\n{json.dumps(schemas, default=str)}"


def _tool_schema(tool: Any) -> Any:
    metadata = getattr(tool, "metadata", None)
    try:
        return metadata.to_openai_tool(skip_length_check=True) if metadata is not None else str(tool)
    except Exception:  # a tool whose schema cannot be built: count what it shows
        return str(tool)


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


def _merged_manager(outer: CallbackManager, inner: CallbackManager) -> CallbackManager:
    """A manager holding the handlers of both, each once (so nothing is counted twice)."""
    if outer is inner or not outer.handlers:
        return inner
    if not inner.handlers:
        return outer
    handlers = list({id(h): h for h in [*inner.handlers, *outer.handlers]}.values())
    return CallbackManager(handlers)
