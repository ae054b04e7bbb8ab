"""Running a pool model inside the router's own chat-model run.

The router never calls ``child.invoke()``: that would open a second chat-model
run (tokens counted twice, two ``on_chat_model_start``). It prepares the child
(budget, tools) and calls its ``_generate``/``_agenerate``/``_stream``/``_astream``
hooks with the router's run manager, after the child's own rate limiter.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding

from r2router_core import ConfigError
from r2router_integrations.langchain.messages import chunk_from_result
from r2router_integrations.langchain.options import BoundTools

__all__ = [
    "agenerate_child",
    "astream_child",
    "can_bind_tools",
    "generate_child",
    "prepare_child",
    "stream_child",
]

# Standard cap parameter of LangChain chat models (ChatOpenAI sends it as
# max_completion_tokens, ChatAnthropic as max_tokens).
DEFAULT_CAP_PARAM = "max_tokens"


def can_bind_tools(model: BaseChatModel) -> bool:
    """Whether a chat model implements ``bind_tools``."""
    return type(model).bind_tools is not BaseChatModel.bind_tools


def prepare_child(
    child: BaseChatModel,
    *,
    name: str,
    budget: int | None,
    cap_param: str | None,
    tools: BoundTools | None,
) -> tuple[BaseChatModel, dict[str, Any]]:
    """The child to call and the extra kwargs of the call, budget and tools applied.

    The budget goes into the child's own cap field when it has one (a shallow
    copy of the child), else into a call kwarg of that name. Tools are bound
    with the child's own ``bind_tools`` so its provider-specific conversion is
    kept; the binding is unwrapped into the model and its kwargs.

    Raises:
        ConfigError: The child cannot bind the tools.
    """
    kwargs: dict[str, Any] = {}
    if budget is not None:
        param = cap_param or DEFAULT_CAP_PARAM
        if param in type(child).model_fields:
            child = child.model_copy(update={param: budget})
        else:
            kwargs[param] = budget
    if tools is None:
        return child, kwargs
    bound_model, bound_kwargs = _bind_tools(child, name, tools)
    return bound_model, {**bound_kwargs, **kwargs}


def _bind_tools(child: BaseChatModel, name: str, tools: BoundTools) -> tuple[BaseChatModel, dict[str, Any]]:
    options = dict(tools.kwargs)
    if tools.tool_choice is not None:
        options["tool_choice"] = tools.tool_choice
    try:
        runnable: Runnable[Any, Any] = child.bind_tools(list(tools.tools), **options)
    except NotImplementedError as exc:
        raise ConfigError(
            f"pool model {name!r} ({type(child).__name__}) cannot bind tools; "
            "leave it out with allowed_models or use a tool-calling chat model"
        ) from exc
    kwargs: dict[str, Any] = {}
    while isinstance(runnable, RunnableBinding):
        kwargs = {**runnable.kwargs, **kwargs}
        runnable = runnable.bound
    if not isinstance(runnable, BaseChatModel):
        raise ConfigError(
            f"pool model {name!r}: bind_tools returned {type(runnable).__name__}, not a bound chat model; "
            "r2router can only replay tools bound with RunnableBinding"
        )
    return runnable, kwargs


@lru_cache(maxsize=256)
def _accepts_run_manager(method: Callable[..., Any]) -> bool:
    return "run_manager" in inspect.signature(method).parameters


def _hook_kwargs(method: Callable[..., Any], run_manager: Any) -> dict[str, Any]:
    func = getattr(method, "__func__", method)
    return {"run_manager": run_manager} if run_manager is not None and _accepts_run_manager(func) else {}


def generate_child(
    child: BaseChatModel,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    run_manager: CallbackManagerForLLMRun | None,
    kwargs: Mapping[str, Any],
) -> ChatResult:
    """``child._generate`` after the child's rate limiter."""
    if child.rate_limiter is not None:
        child.rate_limiter.acquire(blocking=True)
    return child._generate(list(messages), stop=stop, **_hook_kwargs(child._generate, run_manager), **kwargs)


async def agenerate_child(
    child: BaseChatModel,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    run_manager: AsyncCallbackManagerForLLMRun | None,
    kwargs: Mapping[str, Any],
) -> ChatResult:
    """``child._agenerate`` after the child's rate limiter."""
    if child.rate_limiter is not None:
        await child.rate_limiter.aacquire(blocking=True)
    return await child._agenerate(list(messages), stop=stop, **_hook_kwargs(child._agenerate, run_manager), **kwargs)


def stream_child(
    child: BaseChatModel,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    run_manager: CallbackManagerForLLMRun | None,
    kwargs: Mapping[str, Any],
) -> Iterator[ChatGenerationChunk]:
    """``child._stream``; one chunk from ``_generate`` if the child does not stream."""
    if not child._should_stream(async_api=False, **{**kwargs, "stream": True}):
        yield chunk_from_result(generate_child(child, messages, stop, run_manager, kwargs))
        return
    if child.rate_limiter is not None:
        child.rate_limiter.acquire(blocking=True)
    yield from child._stream(list(messages), stop=stop, run_manager=run_manager, **kwargs)


async def astream_child(
    child: BaseChatModel,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    run_manager: AsyncCallbackManagerForLLMRun | None,
    kwargs: Mapping[str, Any],
) -> AsyncIterator[ChatGenerationChunk]:
    """``child._astream``; one chunk from ``_agenerate`` if the child does not stream."""
    if not child._should_stream(async_api=True, **{**kwargs, "stream": True}):
        yield chunk_from_result(await agenerate_child(child, messages, stop, run_manager, kwargs))
        return
    if child.rate_limiter is not None:
        await child.rate_limiter.aacquire(blocking=True)
    async for chunk in child._astream(list(messages), stop=stop, run_manager=run_manager, **kwargs):
        yield chunk
