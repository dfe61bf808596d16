"""Scripted fake chat models for tests: no network, answers given in advance.

`ScriptedChatModel` answers each call with the next item of its script:

- a `str` becomes an `AIMessage` with that text;
- a `BaseMessage` is returned as is;
- a `dict` is a structured answer: a tool call to the first bound tool when tools are bound
  (which is how langchain-core's default `with_structured_output` works), JSON text otherwise;
- an `Exception` instance is raised;
- a callable is called with the prompt's messages and its result is used as the item (for
  answers that depend on the prompt, e.g. when calls run concurrently).

`StructuredChatModel` is the variant for models with native structured output: its
`with_structured_output` validates the scripted answers against the schema directly, without
tool calling, and honours `include_raw=True` like real models do.

Both record every prompt they receive in `prompts` and fail loudly when the script runs out
(unless `cycle=True`), so that a test never passes on an answer it did not script.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, PrivateAttr, ValidationError

__all__ = ["ScriptExhaustedError", "ScriptedChatModel", "StructuredChatModel"]


class ScriptExhaustedError(AssertionError):
    """The model was called more often than its script allows."""


class ScriptedChatModel(FakeMessagesListChatModel):
    """A chat model that answers with a scripted list of responses, in order."""

    responses: list[Any]  # type: ignore[assignment]
    """The script: str, BaseMessage, dict (structured answer) or Exception items."""
    cycle: bool = False
    """Start the script again when it runs out instead of failing."""
    prompts: list[list[BaseMessage]] = []
    """Every prompt received, in call order."""
    bound_tools: list[dict[str, Any]] = []
    """The tools of the last `bind_tools` call, in OpenAI format."""
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def calls(self) -> int:
        """How many times the model was called."""
        return len(self.prompts)

    def prompt_texts(self) -> list[str]:
        """The prompts as plain text (message contents joined by newlines)."""
        return ["\n".join(str(m.content) for m in prompt) for prompt in self.prompts]

    def _next(self, messages: list[BaseMessage]) -> Any:
        with self._lock:
            if self.i >= len(self.responses):
                if not self.cycle or not self.responses:
                    msg = f"the script of {len(self.responses)} responses is exhausted (call {self.calls + 1})"
                    raise ScriptExhaustedError(msg)
                self.i = 0
            item = self.responses[self.i]
            self.i += 1
            self.prompts.append(list(messages))
        return item

    def _message(self, item: Any, tools: Sequence[dict[str, Any]] | None, messages: list[BaseMessage]) -> BaseMessage:
        if callable(item) and not isinstance(item, (BaseMessage, BaseModel, BaseException, type)):
            item = item(messages)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, BaseMessage):
            return item
        if isinstance(item, BaseModel):
            item = item.model_dump()
        if isinstance(item, dict):
            if tools:
                name = tools[0]["function"]["name"]
                return AIMessage(
                    content="",
                    tool_calls=[{"name": name, "args": item, "id": f"call_{self.calls}", "type": "tool_call"}],
                )
            return AIMessage(content=json.dumps(item))
        return AIMessage(content=str(item))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        item = self._next(messages)
        if self.sleep is not None:
            time.sleep(self.sleep)
        return ChatResult(generations=[ChatGeneration(message=self._message(item, kwargs.get("tools"), messages))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        item = self._next(messages)
        if self.sleep is not None:
            await asyncio.sleep(self.sleep)
        return ChatResult(generations=[ChatGeneration(message=self._message(item, kwargs.get("tools"), messages))])

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools like a real tool-calling model: scripted dicts become calls to the first one."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        self.bound_tools = formatted
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"


class StructuredChatModel(ScriptedChatModel):
    """A scripted model with native structured output (no tool calling)."""

    def with_structured_output(  # type: ignore[override]
        self,
        schema: type[BaseModel] | dict[str, Any],
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Validate each scripted answer against `schema` (dicts, JSON text or model instances)."""

        def parse(message: BaseMessage) -> Any:
            text = message.text if isinstance(message.content, str | list) else str(message.content)
            structured = message.additional_kwargs.get("parsed")
            try:
                data = structured if structured is not None else json.loads(text)
                if isinstance(schema, type) and issubclass(schema, BaseModel):
                    return schema.model_validate(data)
                return data
            except (ValueError, ValidationError) as exc:
                msg = f"could not parse {text!r} as {getattr(schema, '__name__', 'the schema')}: {exc}"
                raise OutputParserException(msg, llm_output=text) from exc

        def structured(messages: LanguageModelInput) -> Any:
            raw = self.invoke(messages)
            if not include_raw:
                return parse(raw)
            try:
                return {"raw": raw, "parsed": parse(raw), "parsing_error": None}
            except OutputParserException as exc:
                return {"raw": raw, "parsed": None, "parsing_error": exc}

        async def astructured(messages: LanguageModelInput) -> Any:
            raw = await self.ainvoke(messages)
            if not include_raw:
                return parse(raw)
            try:
                return {"raw": raw, "parsed": parse(raw), "parsing_error": None}
            except OutputParserException as exc:
                return {"raw": raw, "parsed": None, "parsing_error": exc}

        return RunnableLambda(structured, afunc=astructured)

    def _message(self, item: Any, tools: Sequence[dict[str, Any]] | None, messages: list[BaseMessage]) -> BaseMessage:
        return super()._message(item, None, messages)
