"""LangChain's standard chat-model suites (langchain-tests, pinned in the dev extra), offline.

The pool children are :class:`FakePoolChatModel`: they honour ``max_tokens``,
report usage and call tools with arguments built from the tool's JSON schema.
Tests that need a real model to compute tool arguments from the prompt (e.g.
``{"input": 3}`` for "magic_function(3)") are marked ``xfail`` one by one.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from r2router_integrations.langchain import R2RouterChatModel
from r2router_integrations.langchain.testing import demo_router

from .conftest import fake_pool

_ROUTER = demo_router()
_NEEDS_REAL_MODEL = pytest.mark.xfail(reason="needs a real model to compute tool arguments", strict=True)


class _Params:
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return R2RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": _ROUTER, "models": fake_pool(_ROUTER)}

    @property
    def model_override_value(self) -> str:
        return "large"  # a pool name; the fake's model_name is "fake-large"


class TestR2RouterChatModelUnit(_Params, ChatModelUnitTests):
    pass


class TestR2RouterChatModelIntegration(_Params, ChatModelIntegrationTests):
    @_NEEDS_REAL_MODEL
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @_NEEDS_REAL_MODEL
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @_NEEDS_REAL_MODEL
    def test_unicode_tool_call_integration(
        self, model: BaseChatModel, *, tool_choice: str | None = None, force_tool_call: bool = True
    ) -> None:
        super().test_unicode_tool_call_integration(model, tool_choice=tool_choice, force_tool_call=force_tool_call)
