"""ragas metrics as evaluators: the legacy and the 0.4 collections APIs, a LangChain bridge, presets.

The bridge from a LangChain chat model to ragas (`ragas_llm`) lives in `_ragas_bridge`; it is
re-exported here.

ragas is an optional dependency (`pip install "reliable-graph[ragas]"`), imported only when a
ragas evaluator is built, never when `reliable_graph` is imported. Building one sets
`RAGAS_DO_NOT_TRACK=true` unless the environment already says otherwise, so ragas sends no
analytics.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reliable_graph._state_access import read_optional
from reliable_graph.evaluators._ragas_bridge import (
    _PARSE_ERRORS,
    UnparseableAnswerError,
    _import_ragas,
    _legacy_llm,
    _run_sync,
    ragas_llm,
)
from reliable_graph.evaluators.base import BaseEvaluator, EvalInput, Score, as_chunks
from reliable_graph.evaluators.llm_judge import _as_text as output_text

__all__ = [
    "RAGAS_FIELDS",
    "RagasMetric",
    "UnparseableAnswerError",
    "ragas_context_precision",
    "ragas_context_recall",
    "ragas_context_relevance",
    "ragas_faithfulness",
    "ragas_llm",
    "ragas_response_groundedness",
]

RAGAS_FIELDS = ("user_input", "retrieved_contexts", "response", "reference", "reference_contexts")
"""The single-turn sample fields the adapter fills from the graph state."""

_CONTEXT_FIELDS = frozenset({"retrieved_contexts", "reference_contexts"})
_DEFAULT_SOURCE = {
    "user_input": "the query",
    "retrieved_contexts": "the context",
    "response": "the output",
    "reference": "the reference",
}


def _as_text(value: Any) -> str | None:
    return None if value is None else output_text(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list)) and not any(value))


@dataclass
class RagasMetric(BaseEvaluator):
    """Any ragas single-turn metric as an evaluator for `ContextGate` and `ConfidenceRouter`.

    Works with both ragas APIs: legacy metrics (`single_turn_ascore` on a `SingleTurnSample`,
    e.g. `ragas.metrics._nv_metrics.ContextRelevance`) and the 0.4 collections metrics
    (`ascore(**fields)` returning a `MetricResult`, e.g. `ragas.metrics.collections.Faithfulness`).
    The sample's fields come from the `EvalInput`: `user_input` from the query,
    `retrieved_contexts` from the context, `response` from the output, `reference` from the
    reference and `reference_contexts` from the state key `reference_contexts`; `keys` reads
    any of them from another state key instead.

    The value is exactly what ragas returns. A NaN, a timeout, an answer the model could not
    format, a missing field or an empty context becomes a failing score whose reason says which.
    `per_chunk=True` also scores each chunk on its own (one more metric call per chunk, run
    concurrently) into `details["per_chunk"]`, which lets `ContextGate` drop irrelevant chunks.

    Example:
        ```python
        import os

        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.ragas import RagasMetric

        ev = RagasMetric(metric=NonLLMContextPrecisionWithReference(), keys={"reference_contexts": "gold"})
        sample = EvalInput(
            contexts=["Paris is the capital of France.", "Cats sleep a lot."],
            state={"gold": ["Paris is the capital of France."]},
        )
        score = ev.evaluate(sample)
        assert round(score.value, 6) == 1.0
        assert score.evaluator == "ragas_non_llm_context_precision_with_reference"
        assert "reference_contexts" in ev.evaluate(EvalInput(contexts=["x"])).reason
        ```
    """

    metric: Any
    """A ragas single-turn metric instance (legacy or collections); it is copied, never modified."""
    llm: Any = None
    """A LangChain chat model to score with, bridged into the metric's API; None keeps the metric's LLM."""
    keys: Mapping[str, str] = field(default_factory=dict)
    """Ragas field (or collections `ascore` parameter) -> the state key to read it from."""
    timeout: float | None = 120.0
    """Seconds one evaluation may take before it scores 0 as timed out; None waits forever."""
    per_chunk: bool = False
    """Also score every chunk on its own into `details["per_chunk"]` (one metric call per chunk)."""
    max_retries: int = 3
    """Attempts of a legacy metric's model call on a model error (ragas' `RunConfig.max_retries`)."""
    name: str = ""
    """The evaluator's name in scores and events (default: `ragas_<metric name>`)."""
    _api: str = field(init=False, repr=False, default="")
    _required: frozenset[str] = field(init=False, repr=False, default=frozenset())
    _accepted: tuple[str, ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        _import_ragas()
        from ragas.metrics.base import MetricWithEmbeddings, MetricWithLLM, SimpleBaseMetric, SingleTurnMetric

        metric = self.metric
        metric_name = getattr(metric, "name", None) or type(metric).__name__
        if self.timeout is not None and not self.timeout > 0:
            msg = f"RagasMetric(timeout={self.timeout!r}) must be a positive number of seconds or None"
            raise ValueError(msg)
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 1:
            msg = f"RagasMetric(max_retries={self.max_retries!r}) must be an integer >= 1"
            raise ValueError(msg)
        if isinstance(metric, SingleTurnMetric):
            self._api = "legacy"
            if self.llm is not None:
                if not isinstance(metric, MetricWithLLM):
                    msg = f"ragas metric {metric_name!r} does not use an LLM: drop llm=..."
                    raise ValueError(msg)
                metric = copy.copy(metric)
                metric.llm, run_config = _legacy_llm(self.llm, self.max_retries, self.timeout)
                metric.init(run_config)
            elif isinstance(metric, MetricWithLLM) and metric.llm is None:
                msg = f"ragas metric {metric_name!r} needs an LLM: pass llm=<a LangChain chat model>"
                raise ValueError(msg)
            if isinstance(metric, MetricWithEmbeddings) and metric.embeddings is None:
                msg = f"ragas metric {metric_name!r} needs embeddings: set them on the metric first"
                raise ValueError(msg)
            columns = metric.get_required_columns(with_optional=True).get("SINGLE_TURN", set())
            required = metric.required_columns.get("SINGLE_TURN", set())
            self._accepted = tuple(sorted(columns))
            self._required = frozenset(required)
        elif isinstance(metric, SimpleBaseMetric) and callable(getattr(metric, "ascore", None)):
            self._api = "collections"
            if self.llm is not None:
                if not hasattr(metric, "llm"):
                    msg = f"ragas metric {metric_name!r} does not use an LLM: drop llm=..."
                    raise ValueError(msg)
                metric = copy.copy(metric)
                metric.llm = ragas_llm(self.llm)
            params = inspect.signature(metric.ascore).parameters.values()
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                self._accepted = tuple(dict.fromkeys([*RAGAS_FIELDS, *self.keys]))
                self._required = frozenset()
            else:
                named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
                self._accepted = tuple(p.name for p in named)
                self._required = frozenset(p.name for p in named if p.default is p.empty)
        else:
            msg = (
                "RagasMetric(metric=...) needs a ragas single-turn metric (a legacy SingleTurnMetric or "
                f"a ragas.metrics.collections metric), got {type(metric).__name__}"
            )
            raise TypeError(msg)
        unknown = sorted(set(self.keys) - set(self._accepted))
        if unknown:
            msg = (
                f"RagasMetric(keys=...) maps {', '.join(map(repr, unknown))}, which ragas metric "
                f"{metric_name!r} does not take (it takes {', '.join(self._accepted)})"
            )
            raise ValueError(msg)
        unmappable = sorted(self._required - set(RAGAS_FIELDS) - set(self.keys))
        if unmappable:
            msg = (
                f"ragas metric {metric_name!r} needs {', '.join(map(repr, unmappable))}: map each to a "
                "state key with keys={...}"
            )
            raise ValueError(msg)
        self.metric = metric
        if not self.name:
            self.name = f"ragas_{metric_name}"

    @property
    def metric_name(self) -> str:
        """The wrapped ragas metric's name."""
        return str(getattr(self.metric, "name", None) or type(self.metric).__name__)

    # -- shared core -------------------------------------------------------------------------

    def _fields(self, sample: EvalInput) -> dict[str, Any] | Score:
        """The sample fields for ragas, or a failing score naming what is missing."""
        values: dict[str, Any] = {}
        for name in self._accepted:
            if name in self.keys:
                raw, source = read_optional(sample.state, self.keys[name]), f"state key {self.keys[name]!r}"
            elif name == "user_input":
                raw, source = sample.query, _DEFAULT_SOURCE[name]
            elif name == "retrieved_contexts":
                raw, source = sample.contexts, _DEFAULT_SOURCE[name]
            elif name == "response":
                raw, source = sample.output, _DEFAULT_SOURCE[name]
            elif name == "reference":
                raw, source = sample.reference, _DEFAULT_SOURCE[name]
            else:
                raw, source = read_optional(sample.state, name), f"state key {name!r}"
            value = [c.text for c in as_chunks(raw)] if name in _CONTEXT_FIELDS else _as_text(raw)
            if _missing(value):
                if name not in self._required:
                    continue
                if name == "retrieved_contexts":
                    reason = f"the context is empty: nothing was retrieved for ragas {self.metric_name} to score"
                else:
                    reason = (
                        f"ragas {self.metric_name} needs {name}, and {source} is empty or missing "
                        f"(read it from another state key with keys={{{name!r}: ...}})"
                    )
                return Score.failing(self.name, reason, metric=self.metric_name, missing=name)
            values[name] = value
        return values

    async def _ascore_fields(self, values: dict[str, Any]) -> float:
        if self._api == "legacy":
            from ragas.dataset_schema import SingleTurnSample

            return float(await self.metric.single_turn_ascore(SingleTurnSample(**values)))
        result = await self.metric.ascore(**values)
        value = getattr(result, "value", result)
        return float("nan") if value is None else float(value)

    async def _acore(self, values: dict[str, Any]) -> tuple[float, list[float] | None]:
        if not self.per_chunk or "retrieved_contexts" not in values:
            return await self._ascore_fields(values), None
        chunks = values["retrieved_contexts"]
        each = [self._ascore_fields({**values, "retrieved_contexts": [c]}) for c in chunks]
        whole, *per_chunk = await asyncio.gather(self._ascore_fields(values), *each)
        return whole, per_chunk

    def _score(self, value: float, per_chunk: list[float] | None, parse_errors: list[str]) -> Score:
        details: dict[str, Any] = {"metric": self.metric_name, "api": self._api}
        if per_chunk is not None:
            details["per_chunk"] = [0.0 if math.isnan(v) else min(max(v, 0.0), 1.0) for v in per_chunk]
            details["unscored_chunks"] = [i for i, v in enumerate(per_chunk) if math.isnan(v)]
        if math.isnan(value):
            if parse_errors:
                reason = (
                    f"ragas {self.metric_name} returned NaN: the model's answer could not be parsed "
                    f"({len(parse_errors)} time(s)); last: {parse_errors[-1]}"
                )
            else:
                reason = (
                    f"ragas {self.metric_name} returned NaN: it could not score this sample "
                    "(the model's answers did not match the expected format, or a field was unusable)"
                )
            return Score.failing(self.name, reason, nan=True, parse_errors=parse_errors, **details)
        if -1e-9 <= value < 0.0 or 1.0 < value <= 1.0 + 1e-9:  # float noise at the bounds
            value = min(max(value, 0.0), 1.0)
        reason = f"ragas {self.metric_name} scored {value:.2f} (1.0 is best)"
        return Score(value=value, reason=reason, evaluator=self.name, details=details)

    def _failed(self, exc: BaseException, parse_errors: list[str]) -> Score | None:
        """A failing score for a timeout or an unparseable answer; None for other errors (re-raised)."""
        if isinstance(exc, asyncio.TimeoutError):
            return Score.failing(
                self.name,
                f"ragas {self.metric_name} timed out after {self.timeout:g}s",
                metric=self.metric_name,
                timeout=self.timeout,
            )
        from langchain_core.exceptions import OutputParserException
        from ragas.exceptions import RagasOutputParserException

        if isinstance(exc, (UnparseableAnswerError, RagasOutputParserException, OutputParserException)):
            last = parse_errors[-1] if parse_errors else f"{type(exc).__name__}: {exc}"
            return Score.failing(
                self.name,
                f"ragas {self.metric_name} could not parse the model's answer: {last}",
                metric=self.metric_name,
                unparseable=True,
                parse_errors=parse_errors or [last],
            )
        return None

    # -- drivers -----------------------------------------------------------------------------

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Score `sample` with the ragas metric."""
        values = self._fields(sample)
        if isinstance(values, Score):
            return values
        parse_errors: list[str] = []
        token = _PARSE_ERRORS.set(parse_errors)
        try:
            value, per_chunk = await asyncio.wait_for(self._acore(values), timeout=self.timeout)
        except Exception as exc:
            failed = self._failed(exc, parse_errors)
            if failed is None:
                raise
            return failed
        finally:
            _PARSE_ERRORS.reset(token)
        return self._score(value, per_chunk, parse_errors)

    def evaluate(self, sample: EvalInput) -> Score:
        """Score `sample` synchronously (runs `aevaluate`; in a worker thread when a loop is running)."""
        return _run_sync(lambda: self.aevaluate(sample))


def _collections_metric(class_name: str, llm: Any) -> Any:
    _import_ragas()
    from ragas.metrics import collections

    return getattr(collections, class_name)(llm=ragas_llm(llm))


def ragas_context_relevance(llm: Any, *, per_chunk: bool = True, **options: Any) -> RagasMetric:
    """Reference-free context relevance (ragas collections `ContextRelevance`), for `ContextGate`.

    Two judge prompts rate the whole context 0, 1 or 2 for the query; the value is their mean
    over 2. With `per_chunk=True` (the default, so the gate can drop chunks) every chunk is also
    rated on its own: 2 model calls for the context plus 2 per chunk, run concurrently.

    Args:
        llm: A LangChain chat model with structured output.
        per_chunk: Also rate every chunk into `details["per_chunk"]`.
        **options: More `RagasMetric` options (`keys`, `timeout`, `name`, ...).

    Example:
        ```python
        import os

        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        from langchain_core.messages import AIMessage
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.ragas import ragas_context_relevance

        class ToolCallingFake(FakeMessagesListChatModel):  # stands in for ChatOpenAI(...)
            def bind_tools(self, tools, **kwargs):
                return self.bind(**kwargs)

        def rating(r):
            call = {"name": "ContextRelevanceOutput", "args": {"rating": r}, "id": "1"}
            return AIMessage(content="", tool_calls=[call])

        judge = ToolCallingFake(responses=[rating(2), rating(1)])
        ev = ragas_context_relevance(judge, per_chunk=False)
        sample = EvalInput(query="When was Einstein born?", contexts=["Einstein was born in 1879."])
        score = ev.evaluate(sample)
        assert score.value == 0.75  # (2/2 + 1/2) / 2
        ```
    """
    return RagasMetric(metric=_collections_metric("ContextRelevance", llm), per_chunk=per_chunk, **options)


def ragas_faithfulness(llm: Any, **options: Any) -> RagasMetric:
    """Faithfulness of a generation step's output to its context (ragas collections `Faithfulness`).

    The model splits the response into statements, then checks each against the context; the
    value is the share of supported statements. Needs the query, the context and the output.

    Args:
        llm: A LangChain chat model with structured output.
        **options: More `RagasMetric` options (`keys`, `timeout`, `name`, ...).

    Example:
        ```python
        import os

        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.ragas import ragas_faithfulness

        ev = ragas_faithfulness(FakeMessagesListChatModel(responses=[]))  # stands in for ChatOpenAI(...)
        score = ev.evaluate(EvalInput(query="Capital of France?", contexts=["Paris is the capital."]))
        assert score.value == 0.0 and "needs response" in score.reason  # no output to check yet
        ```
    """
    return RagasMetric(metric=_collections_metric("Faithfulness", llm), **options)


def ragas_response_groundedness(llm: Any, **options: Any) -> RagasMetric:
    """How well the output is grounded in the context (ragas collections `ResponseGroundedness`).

    Two judge prompts rate the output's support by the context 0, 1 or 2; no query needed.

    Args:
        llm: A LangChain chat model with structured output.
        **options: More `RagasMetric` options (`keys`, `timeout`, `name`, ...).

    Example:
        ```python
        import os

        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.ragas import ragas_response_groundedness

        ev = ragas_response_groundedness(FakeMessagesListChatModel(responses=[]))
        assert ev.evaluate(EvalInput(output="Paris.", contexts=[])).reason.startswith("the context is empty")
        ```
    """
    return RagasMetric(metric=_collections_metric("ResponseGroundedness", llm), **options)


def ragas_context_precision(*, threshold: float = 0.5, **options: Any) -> RagasMetric:
    """Offline context precision against reference chunks, no LLM (`NonLLMContextPrecisionWithReference`).

    A retrieved chunk counts as relevant when its string similarity to some reference chunk
    reaches `threshold`; the value is ragas' average precision over the ranked context.
    Reference chunks come from the state key `reference_contexts` (or `keys=...`).

    Args:
        threshold: The string similarity at which a chunk matches a reference chunk, in [0, 1].
        **options: More `RagasMetric` options (`keys`, `timeout`, `name`, ...).

    Example:
        ```python
        import os

        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.ragas import ragas_context_precision

        ev = ragas_context_precision()
        sample = EvalInput(
            contexts=["Cats sleep a lot.", "Paris is the capital of France."],
            state={"reference_contexts": ["Paris is the capital of France."]},
        )
        assert round(ev.evaluate(sample).value, 6) == 0.5  # the relevant chunk is ranked second
        ```
    """
    _import_ragas()
    from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference

    _check_unit(threshold, "ragas_context_precision(threshold=...)")
    return RagasMetric(metric=NonLLMContextPrecisionWithReference(threshold=threshold), **options)


def ragas_context_recall(*, threshold: float = 0.5, **options: Any) -> RagasMetric:
    """Offline context recall against reference chunks, no LLM (`NonLLMContextRecall`).

    The value is the share of reference chunks that some retrieved chunk matches (string
    similarity above `threshold`). Reference chunks come from the state key `reference_contexts`.

    Args:
        threshold: The string similarity above which a reference chunk counts as retrieved, in [0, 1].
        **options: More `RagasMetric` options (`keys`, `timeout`, `name`, ...).

    Example:
        ```python
        import os

        os.environ["RAGAS_DO_NOT_TRACK"] = "true"
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.ragas import ragas_context_recall

        ev = ragas_context_recall()
        sample = EvalInput(
            contexts=["Paris is the capital of France."],
            state={"reference_contexts": ["Paris is the capital of France.", "France uses the euro."]},
        )
        assert ev.evaluate(sample).value == 0.5
        ```
    """
    _import_ragas()
    from ragas.metrics._context_recall import NonLLMContextRecall

    _check_unit(threshold, "ragas_context_recall(threshold=...)")
    return RagasMetric(metric=NonLLMContextRecall(threshold=threshold), **options)


def _check_unit(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        msg = f"{what} must be a number in [0, 1], got {value!r}"
        raise ValueError(msg)
