"""R2RouterChatModel: a LangChain chat model that routes every call to an (LLM, budget) pair.

Flow of one call (one chat-model run, whatever the entry point)::

    invoke/batch -> generate ─┐
    stream / astream ─────────┼─ route (embed + kNN, off the event loop in async)
    stream_events(v3) ────────┘        │ decision rides in the call kwargs, so the
                                       │ trace's ls_model_name / ls_max_tokens are
                                       ▼ the routed model and budget
    BaseChatModel opens the run -> _generate / _stream hooks
        -> chosen child's _generate / _stream (budget + length instruction + tools),
           with the router's run manager; on error the next-best model (fallbacks)
        -> response_metadata["r2router"] = the decision
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
    Callbacks,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable
from pydantic import Field, InstanceOf, PrivateAttr, model_validator

from r2router_core import (
    STRUCTURED_OUTPUT_MIN_BUDGET,
    ConfigError,
    ConstraintError,
    DecisionLog,
    MissingDependencyError,
    R2Router,
    RoutingDecision,
    RoutingOptions,
    add_length_instruction,
)
from r2router_core.embedders import check_texts
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
from r2router_integrations.langchain.delegate import (
    agenerate_child,
    astream_child,
    can_bind_tools,
    generate_child,
    prepare_child,
    stream_child,
)
from r2router_integrations.langchain.messages import LANGCHAIN_MESSAGES, RouteOn, routing_text, sent_text
from r2router_integrations.langchain.metadata import METADATA_KEY, StreamAnnotator, annotate_result, result_facts
from r2router_integrations.langchain.options import (
    DECISION_KEY,
    OPTION_FIELDS,
    ROUTING_KEYS,
    TOOLS_KEY,
    BoundTools,
    check_call_kwargs,
    resolve_routing,
)
from r2router_integrations.serving import ServingAccess

if TYPE_CHECKING:
    import uuid

    from langchain_core.language_models.chat_model_stream import AsyncChatModelStream, ChatModelStream
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool

__all__ = ["R2RouterChatModel"]

logger = logging.getLogger(__name__)

SOURCE = "langchain"
"""The decision log's ``source`` of this chat model's calls."""

CALL_KEY = "r2router_call"
"""Call kwarg carrying what the call plan needs besides the decision (embedding, prompt, its tokens, start)."""

_STRUCTURED_KEYS = ("response_format", "ls_structured_output_format", "structured_output_format")
_NATIVE_METHODS = ("json_schema", "json_mode")


class R2RouterChatModel(ServingAccess, BaseChatModel):
    """A chat model that routes every call to the (pool model, output budget) of best utility.

    Swap it in where a fixed chat model stood: each call embeds the prompt, the
    router picks the pool model and its output-token budget, and that model
    answers with the budget as its own cap (``max_tokens``; ChatOpenAI sends it
    as ``max_completion_tokens``) plus, by default, the paper's length
    instruction. The answer's ``response_metadata["r2router"]`` holds the decision.

    Per call, pass ``lambda_``, ``allowed_models``, ``max_budget``, ``max_cost``,
    ``force_model`` (or LangChain's ``model=``) and ``max_tokens`` (an upper bound
    on the budget) as invoke kwargs; make the fields configurable with
    ``configurable_fields``.

    Example:
        >>> from r2router_integrations.langchain.testing import FakePoolChatModel, demo_router
        >>> router = demo_router()
        >>> llm = R2RouterChatModel(
        ...     router=router, models={name: FakePoolChatModel(model_name=name) for name in router.config.model_names}
        ... )
        >>> llm.invoke("hello there, how are you?").response_metadata["r2router"]["model"]
        'small'
    """

    router: R2Router
    """The fitted router that picks (model, budget) for each prompt; it needs an embedder."""

    models: dict[str, BaseChatModel]
    """Pool model name -> the chat model that answers for it. Routing chooses among these
    models only (part of the router's pool is fine; a name outside the pool is an error)."""

    route_on: RouteOn = "last_human"
    """What is routed: ``"last_human"`` (text of the last human message), ``"conversation"``
    (every message) or a function ``messages -> str``. Messages pass to the model unchanged."""

    max_tokens_param: dict[str, str] = Field(default_factory=dict)
    """Per pool model, the name of its output-cap parameter when it is not LangChain's
    ``max_tokens`` (e.g. ``{"gemini": "max_output_tokens"}``). A field of the child by that
    name is set on a copy of the child; otherwise the cap is passed as a call kwarg."""

    lambda_: float | None = None
    """Cost weight in [0, 1] (0 = best quality, 1 = cheapest); ``None`` = the router's."""

    allowed_models: list[str] | None = None
    """Choose only among these pool models; ``None`` = the whole pool."""

    max_budget: int | None = None
    """Only budgets up to this many output tokens (excludes uncapped); ``None`` = no limit."""

    max_cost: float | None = None
    """Only arms whose predicted cost per call (USD) is at most this; ``None`` = no limit."""

    force_model: str | None = None
    """Always answer with this pool model; the router still picks its budget."""

    max_tokens: int | None = None
    """The caller's output cap (as LangChain's ``max_tokens``): an upper bound on the routed
    budget; below every budget, the smallest budget's arms answer capped at it. A call's own
    ``max_tokens`` replaces it. ``max_budget`` is a stricter constraint (no arm left is an error)."""

    stop: list[str] | None = None
    """Default stop sequences passed to the chosen model; a call's ``stop`` replaces them."""

    serving: InstanceOf[ServingSettings] = Field(
        default_factory=ServingSettings, description="How routed calls are executed after their decision."
    )
    """How a routed call is executed after its decision: fallbacks, escalation, exploration, the length
    instruction and the decision log (the core's :class:`ServingSettings`, shared with LlamaIndex and the
    gateway). Its fields are also accepted as keywords (``fallbacks=1``, ``store=...``) and read back as
    properties; giving both ``serving=`` and such keywords is a ``ConfigError``."""

    _defaults: RoutingOptions = PrivateAttr(default_factory=RoutingOptions)
    _log: DecisionLog | None = PrivateAttr(default=None)
    _rng: np.random.Generator = PrivateAttr(default_factory=np.random.default_rng)

    @model_validator(mode="before")
    @classmethod
    def _fold_serving(cls, data: Any) -> Any:
        """Flat serving keywords (``fallbacks=``, ``store=``...) into the one ``serving`` field."""
        return ServingSettings.fold(data) if isinstance(data, Mapping) else data

    def __init__(self, **data: Any) -> None:
        data = ServingSettings.fold(data)  # here too, so a bad setting raises ConfigError, not pydantic's wrapper
        known = set(type(self).model_fields) | {f.alias for f in type(self).model_fields.values() if f.alias}
        ignored = sorted(key for key in data if key not in known)
        super().__init__(**data)
        if ignored:
            warnings.warn(
                f"R2RouterChatModel ignores {ignored}; set provider options (temperature, api_key, "
                "timeout...) on the pool's chat models",
                UserWarning,
                stacklevel=2,
            )
        self._check_settings()

    def _check_settings(self) -> None:
        pool = self.router.config.model_names
        extra = [m for m in self.models if m not in pool]
        if extra or not self.models:
            raise ConfigError(
                f"models must map pool models of the router to chat models: {extra or 'none given'} "
                f"{'are not in' if extra else 'for'} the pool {list(pool)}"
            )
        unknown_caps = sorted(set(self.max_tokens_param) - set(pool))
        if unknown_caps:
            raise ConfigError(f"max_tokens_param names {unknown_caps}, which are not in the pool {list(pool)}")
        fields = {key: getattr(self, key) for key in OPTION_FIELDS}
        self._defaults = RoutingOptions.from_mapping(fields)
        self._call_options({}, tools=False)
        self._open_serving(self.models)

    @classmethod
    def from_upstreams(
        cls,
        router: R2Router,
        upstreams: str | Path,
        *,
        environ: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> R2RouterChatModel:
        """A chat model whose pool is the ``upstreams.yaml`` that ``r2router serve`` and ``collect`` read.

        Each pool model gets a ``ChatOpenAI`` on its upstream (base URL, model id, the key named by
        ``api_key_env``, headers, timeout; the cap sent under its ``max_tokens_param``). Every pool
        model must have an upstream with ``input_price`` and ``output_price`` equal to the router's.
        Needs ``langchain-openai`` and the ``server`` extra (which reads the file).

        Args:
            router: The fitted router.
            upstreams: The ``upstreams.yaml`` file.
            environ: Where the keys are read (default ``os.environ``).
            **settings: Other fields of the chat model (``lambda_``, ``fallbacks``, ``store``...).

        Raises:
            ConfigError: A pool model without an upstream or a price, or a price unlike the router's.
            MissingDependencyError: ``langchain-openai`` is not installed.
        """
        try:
            from r2router_integrations.langchain.upstreams import chat_models_from_upstreams
        except ImportError as exc:
            if exc.name not in ("langchain_openai", "openai"):
                raise
            raise MissingDependencyError(
                "R2RouterChatModel.from_upstreams builds its pool with langchain-openai, which is not installed; "
                "install it with: pip install langchain-openai"
            ) from exc
        return cls(router=router, models=chat_models_from_upstreams(router, upstreams, environ=environ), **settings)

    # -- identity --------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "r2router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        config = self.router.config
        return {
            "models": {name: type(model).__name__ for name, model in self.models.items()},
            "budgets": list(config.candidate_budgets),
            "lambda_": config.lambda_ if self.lambda_ is None else self.lambda_,
            "fallbacks": self.serving.fallback.max_fallbacks,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """Trace parameters of the routed model and budget (the router's own before routing)."""
        decision = kwargs.get(DECISION_KEY)
        if not isinstance(decision, RoutingDecision):
            override = kwargs.get("model")
            params = LangSmithParams(
                ls_provider="r2router",
                ls_model_name=override if isinstance(override, str) else "r2router",
                ls_model_type="chat",
            )
            if stop:
                params["ls_stop"] = stop
            if self.max_tokens is not None:
                params["ls_max_tokens"] = self.max_tokens
            return params
        child, extra = prepare_child(
            self.models[decision.model],
            name=decision.model,
            budget=decision.max_tokens,
            cap_param=self.max_tokens_param.get(decision.model),
            tools=None,
        )
        params = child._get_ls_params(stop=stop, **extra)
        if not params.get("ls_model_name"):
            params["ls_model_name"] = decision.model
        if decision.max_tokens is not None:
            params["ls_max_tokens"] = decision.max_tokens
        return params

    def _get_invocation_params(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        decision = kwargs.pop(DECISION_KEY, None)
        tools = kwargs.pop(TOOLS_KEY, None)
        kwargs.pop(CALL_KEY, None)
        params = super()._get_invocation_params(stop=stop, **kwargs)
        if isinstance(decision, RoutingDecision):
            params[METADATA_KEY] = {
                "model": decision.model,
                "token_limit": decision.token_limit,
                "lambda": decision.lambda_,
            }
        if isinstance(tools, BoundTools):
            params["tools"] = [_tool_name(t) for t in tools.tools]
        return params

    # -- routing ---------------------------------------------------------------------
    def _call_options(self, call: Mapping[str, Any], *, tools: bool, structured: bool = False) -> RoutingOptions:
        """The routing options of one call: the call's kwargs over the fields, within the served models."""
        tool_capable = [name for name, model in self.models.items() if can_bind_tools(model)] if tools else None
        options = resolve_routing(
            call,
            self._defaults,
            pool=self.router.config.model_names,
            force_model=self.force_model,
            tool_capable=tool_capable,
            structured=tools or structured,
            min_budget=STRUCTURED_OUTPUT_MIN_BUDGET,
        )
        options = options.resolved(self.router.config)  # names outside the pool: UnknownModelError
        served = options.allowed_models if options.allowed_models is not None else tuple(self.models)
        missing = [m for m in served if m not in self.models]
        if missing:
            raise ConstraintError(
                f"allowed_models {missing} have no chat model in models (given for {list(self.models)})"
            )
        return options if options.allowed_models is not None else replace(options, allowed_models=served)

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        if stop is not None:
            return stop
        return list(self.stop) if self.stop else None

    def _route(self, message_lists: Sequence[Sequence[BaseMessage]], kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Per message list, the call kwargs with the decision in and the routing options out.

        Each prompt is priced by its tokens as sent (every message, tool schemas): the router's
        count, unless the call passed ``input_tokens`` itself.
        """
        if DECISION_KEY in kwargs:
            return [dict(kwargs) for _ in message_lists]
        started = time.perf_counter()
        rest = dict(kwargs)
        call = {key: rest.pop(key) for key in ROUTING_KEYS if key in rest}
        check_call_kwargs(rest)
        structured = any(rest.get(key) is not None for key in _STRUCTURED_KEYS)
        tools = rest.get(TOOLS_KEY)
        options = self._call_options(call, tools=tools is not None, structured=structured)
        if rest.get("response_format") is not None:
            options = _native_json_models(options, self.models)
        texts = [routing_text(messages, self.route_on) for messages in message_lists]
        bound = tools.tools if isinstance(tools, BoundTools) else ()
        counts = self.router.count_tokens([sent_text(messages, bound) for messages in message_lists])
        embeddings = self.router.embed(check_texts(texts))
        routed = []
        for text, embedding, tokens in zip(texts, embeddings, counts, strict=True):
            given = options if options.input_tokens is not None else replace(options, input_tokens=tokens)
            decision = self.router.route(embedding, given)
            logger.debug("routed to %s", decision)
            facts = {"embedding": embedding, "prompt": text, "started": started}
            routed.append({**rest, DECISION_KEY: decision, CALL_KEY: facts})
        return routed

    async def _aroute(
        self, message_lists: Sequence[Sequence[BaseMessage]], kwargs: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """:meth:`_route` in a worker thread, so embedding and kNN never block the event loop."""
        if DECISION_KEY in kwargs:
            return [dict(kwargs) for _ in message_lists]
        return await asyncio.to_thread(self._route, message_lists, kwargs)

    # -- entry points: route before the run opens ------------------------------------
    def generate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        """Route each message list, then run it as one chat-model run (see ``BaseChatModel.generate``)."""
        stop = self._stop(stop)
        routed = self._route(messages, kwargs)
        if len(messages) == 1:
            return super().generate(
                messages, stop, callbacks, tags=tags, metadata=metadata, run_name=run_name, run_id=run_id, **routed[0]
            )
        results = []
        for one, call_kwargs in zip(messages, routed, strict=True):
            results.append(
                super().generate([one], stop, callbacks, tags=tags, metadata=metadata, run_name=run_name, **call_kwargs)
            )
        return _merge_results(results)

    async def agenerate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        """Async :meth:`generate`; routing runs in a worker thread."""
        stop = self._stop(stop)
        routed = await self._aroute(messages, kwargs)
        if len(messages) == 1:
            return await super().agenerate(
                messages, stop, callbacks, tags=tags, metadata=metadata, run_name=run_name, run_id=run_id, **routed[0]
            )
        calls = []
        for one, call_kwargs in zip(messages, routed, strict=True):
            calls.append(
                super().agenerate(
                    [one], stop, callbacks, tags=tags, metadata=metadata, run_name=run_name, **call_kwargs
                )
            )
        return _merge_results(await asyncio.gather(*calls))

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Route, then stream from the chosen model; the decision rides on the first chunk."""
        (routed,) = self._route([self._convert_input(input).to_messages()], kwargs)
        yield from super().stream(input, config, stop=self._stop(stop), **routed)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async :meth:`stream`; routing runs in a worker thread."""
        (routed,) = await self._aroute([self._convert_input(input).to_messages()], kwargs)
        async for chunk in super().astream(input, config, stop=self._stop(stop), **routed):
            yield chunk

    def _chat_model_stream_v3(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> ChatModelStream:
        (routed,) = self._route([self._convert_input(input).to_messages()], kwargs)
        return super()._chat_model_stream_v3(input, config, stop=self._stop(stop), **routed)

    async def _achat_model_stream_v3(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncChatModelStream:
        (routed,) = await self._aroute([self._convert_input(input).to_messages()], kwargs)
        return await super()._achat_model_stream_v3(input, config, stop=self._stop(stop), **routed)

    # -- hooks: the core's call plan, driven with the chosen child inside this run -------
    def _start(
        self, messages: list[BaseMessage], stop: list[str] | None, routed: Mapping[str, Any], *, stream: bool
    ) -> _Call:
        rest = dict(routed)
        decision: RoutingDecision = rest.pop(DECISION_KEY)
        facts: dict[str, Any] = rest.pop(CALL_KEY, None) or {}
        tools = rest.pop(TOOLS_KEY, None)
        plan = self._call_plan(decision, self.router.config.models, source=SOURCE, stream=stream, **facts)
        return _Call(self, plan, decision, messages, self._stop(stop), tools, rest)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._start(messages, stop, self._route([messages], kwargs)[0], stream=False)
        result, outcome = drive(call.plan, lambda a: call.generate(a, run_manager), result_facts, log=self._log)
        return annotate_result(result, call.decision, outcome)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._start(messages, stop, (await self._aroute([messages], kwargs))[0], stream=False)
        result, outcome = await adrive(call.plan, lambda a: call.agenerate(a, run_manager), result_facts, log=self._log)
        return annotate_result(result, call.decision, outcome)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._start(messages, stop, self._route([messages], kwargs)[0], stream=True)
        chunks = drive_stream(
            call.plan, lambda a: call.stream(a, run_manager), call.stream_facts, log=self._log, done=call.ended
        )
        yield from chunks
        yield from call.closing()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._start(messages, stop, (await self._aroute([messages], kwargs))[0], stream=True)
        chunks = adrive_stream(
            call.plan, lambda a: call.astream(a, run_manager), call.stream_facts, log=self._log, done=call.ended
        )
        async for chunk in chunks:
            yield chunk
        for closing in call.closing():
            yield closing

    # -- structured output -----------------------------------------------------------
    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Structured output; ``method`` is honoured.

        ``"function_calling"`` (the default) binds the schema as a tool on the chosen
        child. ``"json_schema"`` and ``"json_mode"`` send OpenAI's ``response_format``
        and route only among pool models that accept it (OpenAI-compatible chat
        models: ``ChatOpenAI`` and its kin). Either way the call gets the
        structured-output budget floor, so the JSON is never cut by the cap.

        Raises:
            ConfigError: An unknown ``method``. (A call with no pool model that accepts
                ``response_format`` raises ConstraintError when it is routed.)
        """
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if method not in _NATIVE_METHODS:
            raise ConfigError(
                f"method must be one of ['function_calling', 'json_schema', 'json_mode'], got {method!r}",
                field="method",
            )
        return _native_structured_output(self, schema, method=method, strict=strict, include_raw=include_raw)

    # -- tools -----------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; at call time they are bound on the chosen pool model with its own ``bind_tools``.

        Calls with these tools route only among pool models that can bind tools.

        Args:
            tools: Tools as any pool model's ``bind_tools`` accepts them.
            tool_choice: Passed to the chosen model's ``bind_tools`` (``"any"``, a tool name...).
            **kwargs: Other ``bind_tools`` options, passed on likewise.

        Raises:
            ConstraintError: No pool model can bind tools.
        """
        unable = [name for name, model in self.models.items() if not can_bind_tools(model)]
        if len(unable) == len(self.models):
            raise ConstraintError(
                f"none of the pool models {unable} can bind tools (their bind_tools is not implemented); "
                "add a tool-calling chat model to the pool"
            )
        if unable:
            logger.warning("pool models %s cannot bind tools; calls with tools route among the others", unable)
        bind_kwargs: dict[str, Any] = {
            key: kwargs.pop(key) for key in ("ls_structured_output_format", "structured_output_format") if key in kwargs
        }
        bind_kwargs[TOOLS_KEY] = BoundTools(tuple(tools), tool_choice, kwargs)
        return self.bind(**bind_kwargs)


@dataclass
class _Call:
    """One routed call in a hook: its plan, and the framework's part of each attempt.

    Per attempt: the chosen child prepared (cap, tools), the length instruction when the
    attempt asks for one, the child's own hook called with the router's run manager; for
    streams, the decision on the first chunk and the call's end on the last.
    """

    llm: R2RouterChatModel
    plan: CallPlan
    decision: RoutingDecision
    messages: list[BaseMessage]
    stop: list[str] | None
    tools: BoundTools | None
    kwargs: dict[str, Any]
    annotators: dict[int, StreamAnnotator] = field(default_factory=dict)
    outcome: CallOutcome | None = None

    def prepare(self, attempt: Attempt) -> tuple[BaseChatModel, list[BaseMessage], dict[str, Any]]:
        llm = self.llm
        child, extra = prepare_child(
            llm.models[attempt.model],
            name=attempt.model,
            budget=attempt.cap,
            cap_param=llm.max_tokens_param.get(attempt.model),
            tools=self.tools,
        )
        messages = self.messages
        if attempt.instruction_budget is not None:
            template = llm.serving.length_instruction_template
            messages = add_length_instruction(
                messages, attempt.instruction_budget, LANGCHAIN_MESSAGES, template=template
            )
        return child, list(messages), {**self.kwargs, **extra}

    def generate(self, attempt: Attempt, run_manager: CallbackManagerForLLMRun | None) -> ChatResult:
        child, messages, kwargs = self.prepare(attempt)
        return generate_child(child, messages, self.stop, run_manager, kwargs)

    async def agenerate(self, attempt: Attempt, run_manager: AsyncCallbackManagerForLLMRun | None) -> ChatResult:
        child, messages, kwargs = self.prepare(attempt)
        return await agenerate_child(child, messages, self.stop, run_manager, kwargs)

    def _annotator(self, attempt: Attempt) -> StreamAnnotator:
        annotator = self.annotators[attempt.number] = StreamAnnotator(self.decision, attempt, self.plan.decision_id)
        return annotator

    def stream(self, attempt: Attempt, run_manager: CallbackManagerForLLMRun | None) -> Iterator[ChatGenerationChunk]:
        annotator = self._annotator(attempt)
        child, messages, kwargs = self.prepare(attempt)
        for chunk in stream_child(child, messages, self.stop, run_manager, kwargs):
            if (annotated := annotator.annotate(chunk)) is not None:
                yield annotated

    async def astream(
        self, attempt: Attempt, run_manager: AsyncCallbackManagerForLLMRun | None
    ) -> AsyncIterator[ChatGenerationChunk]:
        annotator = self._annotator(attempt)
        child, messages, kwargs = self.prepare(attempt)
        async for chunk in astream_child(child, messages, self.stop, run_manager, kwargs):
            if (annotated := annotator.annotate(chunk)) is not None:
                yield annotated

    def stream_facts(self, attempt: Attempt) -> Any:
        return self.annotators[attempt.number].facts()

    def ended(self, outcome: CallOutcome) -> None:
        self.outcome = outcome

    def closing(self) -> list[ChatGenerationChunk]:
        """The stream's last chunk, with ``budget_exhausted`` and the call's cost (none if nothing was streamed)."""
        outcome = self.outcome
        if outcome is None or outcome.answered is None:
            return []
        chunk = self.annotators[outcome.answered.number].closing_chunk(outcome)
        return [] if chunk is None else [chunk]


def _merge_results(results: Sequence[LLMResult]) -> LLMResult:
    runs = [info for result in results for info in (result.run or [])]
    return LLMResult(
        generations=[generation for result in results for generation in result.generations],
        llm_output={},
        run=runs or None,
    )


def _tool_name(tool: Any) -> str:
    if isinstance(tool, Mapping):
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool.get("name", tool.get("title"))
        return str(name)
    return str(getattr(tool, "name", None) or getattr(tool, "__name__", None) or type(tool).__name__)


def _accepts_response_format(model: BaseChatModel) -> bool:
    """Whether a chat model sends OpenAI's ``response_format`` (an OpenAI-compatible chat model)."""
    base = getattr(sys.modules.get("langchain_openai.chat_models.base"), "BaseChatOpenAI", None)
    return isinstance(base, type) and isinstance(model, base)


def _native_json_models(options: RoutingOptions, models: Mapping[str, BaseChatModel]) -> RoutingOptions:
    allowed = options.allowed_models if options.allowed_models is not None else tuple(models)
    kept = tuple(m for m in allowed if _accepts_response_format(models[m]))
    if not kept:
        raise ConstraintError(
            f"response_format (method='json_schema' or 'json_mode') needs a pool model that accepts it (ChatOpenAI "
            f"and its kin); none of {list(allowed)} does. Use method='function_calling'"
        )
    return replace(options, allowed_models=kept)


def _native_structured_output(
    llm: R2RouterChatModel, schema: dict[str, Any] | type, *, method: str, strict: bool | None, include_raw: bool
) -> Runnable[LanguageModelInput, Any]:
    """``response_format`` bound on the router, the answer parsed as JSON (into ``schema`` if a pydantic class)."""
    from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
    from langchain_core.runnables import RunnableLambda, RunnableMap
    from langchain_core.utils.function_calling import convert_to_json_schema
    from pydantic import BaseModel

    json_schema = convert_to_json_schema(schema)
    if method == "json_schema":
        spec: dict[str, Any] = {"name": json_schema.get("title", "output"), "schema": json_schema}
        if strict is not None:
            spec["strict"] = strict
        response_format: dict[str, Any] = {"type": "json_schema", "json_schema": spec}
    else:
        response_format = {"type": "json_object"}
    bound = llm.bind(
        response_format=response_format,
        ls_structured_output_format={"kwargs": {"method": method, "strict": strict}, "schema": json_schema},
    )
    pydantic = isinstance(schema, type) and issubclass(schema, BaseModel)
    parser: Runnable[Any, Any] = (
        PydanticOutputParser(pydantic_object=cast("type[BaseModel]", schema)) if pydantic else JsonOutputParser()
    )
    if not include_raw:
        return bound | parser

    def parse(out: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"raw": out["raw"], "parsed": parser.invoke(out["raw"]), "parsing_error": None}
        except Exception as exc:  # reported, as LangChain's include_raw does
            return {"raw": out["raw"], "parsed": None, "parsing_error": exc}

    return RunnableMap(raw=bound) | RunnableLambda(parse)
