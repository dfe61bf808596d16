"""The bridge from a LangChain chat model to ragas (private: `reliable_graph.evaluators.ragas` is the API).

ragas is imported only by `_import_ragas`, which every ragas entry point calls first, so that
`import reliable_graph` never imports it. Importing it sets `RAGAS_DO_NOT_TRACK=true` unless
the environment already says otherwise, so ragas sends no analytics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["UnparseableAnswerError", "ragas_llm"]

INSTALL_HINT = 'pip install "reliable-graph[ragas]"'
"""What to install for the ragas evaluators."""
_T = TypeVar("_T")

# Parse failures of the bridge during one evaluation: ragas' collections metrics swallow the
# bridge's exception and return NaN, so the adapter reads them here to say what went wrong.
_PARSE_ERRORS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "reliable_graph_ragas_parse_errors", default=None
)


class UnparseableAnswerError(ValueError):
    """A chat model's answer could not be parsed into the structure a ragas metric asked for.

    Example:
        ```python
        from reliable_graph.evaluators.ragas import UnparseableAnswerError

        err = UnparseableAnswerError("no tool call", schema="ContextRelevanceOutput")
        assert err.schema == "ContextRelevanceOutput" and "no tool call" in str(err)
        ```
    """

    def __init__(self, message: str, *, schema: str) -> None:
        self.schema = schema
        super().__init__(message)


def _import_ragas() -> Any:
    """Import ragas with analytics off, or raise an ImportError naming the extra to install."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    try:
        import ragas
        import ragas._analytics
        import ragas.metrics.base
        import ragas.metrics.collections.base  # noqa: F401
    except ImportError as exc:
        msg = f"the ragas evaluators need ragas and its LangChain bridge: {INSTALL_HINT}"
        raise ImportError(msg, name="ragas") from exc
    # ragas builds an analytics event on every score (sent only when tracking is on); building
    # one reads its user id file without closing it. Read it once here, quietly: it is cached.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        ragas._analytics.get_userid()
    return ragas


def _run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even when an event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _parsed(result: Any, schema: type[BaseModel]) -> BaseModel:
    """The parsed answer of `with_structured_output(..., include_raw=True)`, or raise naming why not."""
    parsed, error = (result.get("parsed"), result.get("parsing_error")) if isinstance(result, dict) else (result, None)
    if isinstance(parsed, dict) and error is None:
        try:
            parsed = schema.model_validate(parsed)
        except ValueError as exc:  # pydantic's ValidationError
            error = exc
    if isinstance(parsed, schema) and error is None:
        return parsed
    raw = result.get("raw") if isinstance(result, dict) else None
    answer = getattr(raw, "content", raw)
    if error is not None:
        why = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
    else:
        why = f"no {schema.__name__} in the answer {answer!r}"
    msg = f"the model's answer could not be parsed as {schema.__name__} ({why})"
    errors = _PARSE_ERRORS.get()
    if errors is not None:
        errors.append(msg)
    raise UnparseableAnswerError(msg, schema=schema.__name__)


@functools.cache
def _bridge_class() -> type[Any]:
    _import_ragas()
    from ragas.llms.base import InstructorBaseRagasLLM

    class LangChainInstructorLLM(InstructorBaseRagasLLM):
        """ragas' `InstructorBaseRagasLLM` over a LangChain chat model's `with_structured_output`."""

        is_async = True  # legacy PydanticPrompt metrics read this to pick `agenerate`

        def __init__(self, model: Any, *, method: str | None = None) -> None:
            self.model = model
            self.method = method
            self._runnables: dict[type[BaseModel], Any] = {}

        def _structured(self, schema: type[BaseModel]) -> Any:
            if schema not in self._runnables:
                kwargs: dict[str, Any] = {"include_raw": True}
                if self.method is not None:
                    kwargs["method"] = self.method
                self._runnables[schema] = self.model.with_structured_output(schema, **kwargs)
            return self._runnables[schema]

        def generate(self, prompt: str, response_model: type[BaseModel]) -> BaseModel:
            return _parsed(self._structured(response_model).invoke(prompt), response_model)

        async def agenerate(self, prompt: str, response_model: type[BaseModel]) -> BaseModel:
            return _parsed(await self._structured(response_model).ainvoke(prompt), response_model)

        def __repr__(self) -> str:
            return f"LangChainInstructorLLM(model={type(self.model).__name__}(...))"

    return LangChainInstructorLLM


def ragas_llm(model: Any, *, method: str | None = None) -> Any:
    """Bridge a LangChain chat model into ragas' collections metrics (an `InstructorBaseRagasLLM`).

    The bridge asks the model for structured output with `model.with_structured_output(schema,
    include_raw=True)`, so any chat model that supports structured output works (OpenAI,
    Anthropic, Ollama, ...). An answer that does not parse raises `UnparseableAnswerError`; the
    `RagasMetric` adapter turns it into a failing score that says so.

    Args:
        model: A LangChain chat model.
        method: Passed to `with_structured_output` (e.g. `"json_schema"`); None uses the model's default.

    Raises:
        ImportError: ragas is not installed.
        TypeError: `model` has no `with_structured_output`.

    Example:
        ```python
        import os

        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        from langchain_core.messages import AIMessage
        from pydantic import BaseModel
        from reliable_graph.evaluators.ragas import ragas_llm

        class Rating(BaseModel):
            rating: int

        class ToolCallingFake(FakeMessagesListChatModel):  # stands in for ChatOpenAI(...)
            def bind_tools(self, tools, **kwargs):
                return self.bind(**kwargs)

        answer = AIMessage(content="", tool_calls=[{"name": "Rating", "args": {"rating": 2}, "id": "1"}])
        llm = ragas_llm(ToolCallingFake(responses=[answer]))
        assert llm.generate("Rate it", Rating) == Rating(rating=2)
        ```
    """
    if not callable(getattr(model, "with_structured_output", None)):
        msg = f"ragas_llm(model=...) needs a LangChain chat model, got {type(model).__name__}"
        raise TypeError(msg)
    return _bridge_class()(model, method=method)


def _legacy_llm(model: Any, max_retries: int, timeout: float | None) -> tuple[Any, Any]:
    """A ragas `LangchainLLMWrapper` and its `RunConfig`, without the wrapper's deprecation warning."""
    from ragas.llms.base import LangchainLLMWrapper
    from ragas.run_config import RunConfig

    run_config = RunConfig(max_retries=max_retries, max_wait=10, timeout=int(timeout or 180))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*LangchainLLMWrapper")
        wrapper = LangchainLLMWrapper(model, run_config=run_config)
    return wrapper, run_config
