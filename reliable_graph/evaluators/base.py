"""The evaluator protocol, `Score`, chunks and the safe runners every node uses."""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from reliable_graph.errors import InvalidScoreError

__all__ = [
    "BaseEvaluator",
    "Chunk",
    "EvalInput",
    "Evaluator",
    "Score",
    "arun_evaluator",
    "as_chunk",
    "as_chunks",
    "run_evaluator",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    """A confidence value in [0, 1] with a reason a reviewer can act on.

    A score is never NaN: an evaluator that cannot score returns a failing score
    whose reason says why.

    Example:
        ```python
        from reliable_graph import Score

        score = Score(value=0.8, reason="3 of 4 chunks relevant", evaluator="lexical")
        assert score.passes(0.75) and not score.passes(0.9)
        ```
    """

    value: float
    """The confidence, in [0, 1]."""
    reason: str
    """One sentence that says why, specific enough for a reviewer to act on."""
    evaluator: str
    """The name of the evaluator that produced the score."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Evaluator-specific data (per-chunk scores, missing topics, ...)."""

    def __post_init__(self) -> None:
        value = self.value
        if type(value) is float and 0.0 <= value <= 1.0:  # the common case (NaN fails the comparison)
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            msg = f"Score value from {self.evaluator!r} must be a number, got {type(value).__name__}"
            raise InvalidScoreError(msg, evaluator=self.evaluator, value=value)
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            msg = f"Score value from {self.evaluator!r} must be in [0, 1], got {value!r}"
            raise InvalidScoreError(msg, evaluator=self.evaluator, value=value)
        object.__setattr__(self, "value", float(value))

    def passes(self, threshold: float) -> bool:
        """Whether this score meets `threshold` (inclusive)."""
        return self.value >= threshold

    @classmethod
    def failing(cls, evaluator: str, reason: str, **details: Any) -> Score:
        """A zero score that says why the evaluator could not score.

        Example:
            ```python
            from reliable_graph import Score

            s = Score.failing("judge", "the judge timed out after 5s", timeout=5)
            assert s.value == 0.0 and s.details["timeout"] == 5
            ```
        """
        return cls(value=0.0, reason=reason, evaluator=evaluator, details=details)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of this score (details are kept as given)."""
        return {
            "value": self.value,
            "reason": self.reason,
            "evaluator": self.evaluator,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One piece of retrieved context.

    Example:
        ```python
        from reliable_graph import as_chunk

        chunk = as_chunk({"text": "Paris is in France", "metadata": {"source": "wiki"}})
        assert chunk.text == "Paris is in France" and chunk.metadata["source"] == "wiki"
        ```
    """

    text: str
    """The chunk's content."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Source, timestamp (`metadata["timestamp"]`) and anything else the retriever attached."""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of this chunk, as stored in state and escalations."""
        return {"text": self.text, "metadata": dict(self.metadata)}


def as_chunk(obj: Any) -> Chunk:
    """Normalise a string, a LangChain `Document`, a mapping or a `Chunk` into a `Chunk`.

    Raises:
        TypeError: `obj` is none of those.

    Example:
        ```python
        from langchain_core.documents import Document
        from reliable_graph import as_chunk

        assert as_chunk("plain text").text == "plain text"
        assert as_chunk(Document(page_content="doc", metadata={"a": 1})).metadata == {"a": 1}
        ```
    """
    if isinstance(obj, Chunk):
        return obj
    if isinstance(obj, str):
        return Chunk(text=obj)
    page_content = getattr(obj, "page_content", None)
    if isinstance(page_content, str):
        return Chunk(text=page_content, metadata=dict(getattr(obj, "metadata", None) or {}))
    if isinstance(obj, Mapping):
        for key in ("text", "page_content", "content"):
            if isinstance(obj.get(key), str):
                return Chunk(text=obj[key], metadata=dict(obj.get("metadata") or {}))
    msg = (
        "a context chunk must be a str, a langchain Document, a Chunk or a mapping with a "
        f"'text', 'page_content' or 'content' string; got {type(obj).__name__}"
    )
    raise TypeError(msg)


def as_chunks(context: Any) -> tuple[Chunk, ...]:
    """Normalise a context value (None, one chunk, or a sequence of chunks) into chunks.

    Example:
        ```python
        from reliable_graph import as_chunks

        assert len(as_chunks(["a", {"text": "b"}])) == 2
        assert as_chunks(None) == ()
        ```
    """
    if context is None:
        return ()
    if isinstance(context, (str, Mapping, Chunk)) or hasattr(context, "page_content"):
        return (as_chunk(context),)
    if isinstance(context, Sequence):
        return tuple(as_chunk(c) for c in context)
    msg = f"context must be a chunk or a sequence of chunks, got {type(context).__name__}"
    raise TypeError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalInput:
    """What an evaluator sees: the task, the context and the step's output.

    Example:
        ```python
        from reliable_graph import EvalInput

        sample = EvalInput(query="capital of France?", contexts=("Paris is the capital",))
        assert sample.chunks[0].text == "Paris is the capital"
        ```
    """

    query: str | None = None
    """The task or question the step serves."""
    contexts: Sequence[Any] = ()
    """The retrieved context (strings, Documents, mappings or `Chunk`s)."""
    output: Any = None
    """The step's output, for output evaluators."""
    reference: Any = None
    """A reference answer, where one is known (offline evaluation)."""
    step: str | None = None
    """The name of the step being scored."""
    state: Mapping[str, Any] = field(default_factory=dict)
    """The graph state the step ran on, for evaluators that need more."""

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        """The context as normalised `Chunk`s."""
        return as_chunks(list(self.contexts))

    @property
    def texts(self) -> list[str]:
        """The context chunks' texts."""
        return [c.text for c in self.chunks]


_new = object.__new__
_SET_QUERY, _SET_CONTEXTS, _SET_OUTPUT, _SET_REFERENCE, _SET_STEP, _SET_STATE = (
    EvalInput.__dict__[name].__set__ for name in ("query", "contexts", "output", "reference", "step", "state")
)
_SET_VALUE, _SET_REASON, _SET_EVALUATOR, _SET_DETAILS = (
    Score.__dict__[name].__set__ for name in ("value", "reason", "evaluator", "details")
)


def eval_input(query: str | None, contexts: Sequence[Any], output: Any, step: str | None, state: Any) -> EvalInput:
    """`EvalInput(query=..., contexts=..., output=..., step=..., state=...)`, built in a third of the time.

    A node builds one per scored attempt; a frozen dataclass's `__init__` sets each field through
    `object.__setattr__`, this sets the slots directly (the same object, `==` to the other).
    """
    sample = _new(EvalInput)
    _SET_QUERY(sample, query)
    _SET_CONTEXTS(sample, contexts)
    _SET_OUTPUT(sample, output)
    _SET_REFERENCE(sample, None)
    _SET_STEP(sample, step)
    _SET_STATE(sample, state)
    return sample


def score_of(value: Any, reason: str, evaluator: str, details: Mapping[str, Any]) -> Score:
    """`Score(value=..., reason=..., evaluator=..., details=...)`, built directly when `value` is a float in [0, 1].

    Any other value takes the constructor, which checks it (and raises `InvalidScoreError`).
    """
    if type(value) is not float or not 0.0 <= value <= 1.0:
        return Score(value=value, reason=reason, evaluator=evaluator, details=details)
    score = _new(Score)
    _SET_VALUE(score, value)
    _SET_REASON(score, reason)
    _SET_EVALUATOR(score, evaluator)
    _SET_DETAILS(score, details)
    return score


@runtime_checkable
class Evaluator(Protocol):
    """Anything with a `name` and sync and async scoring methods that return a `Score`.

    Example:
        ```python
        from reliable_graph import Evaluator, RequiredFields

        assert isinstance(RequiredFields(fields=["answer"]), Evaluator)
        ```
    """

    name: str

    def evaluate(self, sample: EvalInput) -> Score:
        """Score `sample`."""
        ...

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Score `sample` asynchronously."""
        ...


class BaseEvaluator(ABC):
    """Base class for evaluators: implement `evaluate`; `aevaluate` defaults to it.

    Evaluators that call a model or the network override `aevaluate` too.

    Example:
        ```python
        from dataclasses import dataclass
        from reliable_graph import BaseEvaluator, EvalInput, Score

        @dataclass
        class NonEmpty(BaseEvaluator):
            name: str = "non_empty"

            def evaluate(self, sample: EvalInput) -> Score:
                ok = bool(sample.output)
                return Score(value=float(ok), reason="output present" if ok else "output empty",
                             evaluator=self.name)

        assert NonEmpty().evaluate(EvalInput(output="x")).value == 1.0
        ```
    """

    name: str

    @abstractmethod
    def evaluate(self, sample: EvalInput) -> Score:
        """Score `sample`."""

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Score `sample` asynchronously (by default: the sync method, which must not block)."""
        return self.evaluate(sample)


def evaluator_name(evaluator: Any) -> str:
    """The evaluator's `name`, or its class or function name."""
    name = getattr(evaluator, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(evaluator, "__name__", type(evaluator).__name__)


def check_evaluator(evaluator: Any, *, what: str) -> None:
    """Raise a TypeError at construction when `evaluator` cannot score."""
    if not callable(getattr(evaluator, "evaluate", None)):
        msg = f"{what} must be an evaluator with an evaluate(sample) method, got {type(evaluator).__name__}"
        raise TypeError(msg)


def _checked(evaluator: Any, result: Any) -> Score:
    if isinstance(result, Score):
        return result
    name = evaluator_name(evaluator)
    msg = f"evaluator {name!r} returned {type(result).__name__}, expected a Score"
    raise InvalidScoreError(msg, evaluator=name, value=result)


def _raised(evaluator: Any, exc: Exception) -> Score:
    name = evaluator_name(evaluator)
    return Score.failing(
        name,
        f"evaluator {name!r} raised {type(exc).__name__}: {exc}",
        error=type(exc).__name__,
        message=str(exc),
    )


def run_evaluator(evaluator: Any, sample: EvalInput, *, raise_errors: bool = False) -> Score:
    """Score `sample`, turning an exception raised by the evaluator into a failing `Score`.

    A returned value that is not a valid `Score` (out of [0, 1], NaN, wrong type) is a bug
    in the evaluator and raises `InvalidScoreError` whatever `raise_errors` says.

    Example:
        ```python
        from reliable_graph import EvalInput, Predicate, run_evaluator

        def boom(output):
            raise RuntimeError("validator crashed")

        score = run_evaluator(Predicate(fn=boom, name="boom"), EvalInput(output=1))
        assert score.value == 0.0 and "RuntimeError: validator crashed" in score.reason
        ```
    """
    try:
        result = evaluator.evaluate(sample)
    except InvalidScoreError:
        raise
    except Exception as exc:
        if raise_errors:
            raise
        return _raised(evaluator, exc)
    return result if type(result) is Score else _checked(evaluator, result)


async def arun_evaluator(evaluator: Any, sample: EvalInput, *, raise_errors: bool = False) -> Score:
    """Async twin of `run_evaluator` (uses `aevaluate` when the evaluator has one).

    Example:
        ```python
        import asyncio
        from reliable_graph import EvalInput, RequiredFields, arun_evaluator

        score = asyncio.run(arun_evaluator(RequiredFields(fields=["a"]), EvalInput(output={"a": 1})))
        assert score.value == 1.0
        ```
    """
    try:
        method = getattr(evaluator, "aevaluate", None)
        if method is None:
            result = evaluator.evaluate(sample)
        else:
            result = method(sample)
            if inspect.isawaitable(result):
                result = await result
    except InvalidScoreError:
        raise
    except Exception as exc:
        if raise_errors:
            raise
        return _raised(evaluator, exc)
    return result if type(result) is Score else _checked(evaluator, result)
