"""An LLM judge: any LangChain chat model scores a step's output against a rubric."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from reliable_graph.evaluators.base import BaseEvaluator, EvalInput, Score

__all__ = ["JudgeVerdict", "LLMJudge"]

_SYSTEM = """You are a strict reviewer of one step of an automated pipeline.
Score the step's output against the rubric below, using only the task, the context and the output
you are given. Answer with a score from 0 (fails the rubric) to 1 (fully meets it) and one sentence
of reason that names the specific problem, if any, so that a human reviewer can act on it.

Rubric:
{rubric}"""


class JudgeVerdict(BaseModel):
    """The judge model's structured answer: a score in [0, 1] and the reason for it.

    Example:
        ```python
        from reliable_graph.evaluators.llm_judge import JudgeVerdict

        verdict = JudgeVerdict(score=0.9, reason="cites the filing for every figure")
        assert verdict.score == 0.9
        ```
    """

    score: float = Field(ge=0.0, le=1.0, description="0 = fails the rubric, 1 = fully meets it")
    reason: str = Field(description="One sentence naming the specific problem, or why the output is right")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    content = getattr(value, "content", None)
    if isinstance(content, str):  # a LangChain message
        return content
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _answer(result: Any) -> JudgeVerdict | str:
    """A verdict from one `include_raw=True` result, or a sentence saying why there is none."""
    parsed, error = (result.get("parsed"), result.get("parsing_error")) if isinstance(result, dict) else (result, None)
    if isinstance(parsed, dict) and error is None:
        try:
            parsed = JudgeVerdict.model_validate(parsed)
        except ValueError as exc:
            error = exc
    if isinstance(parsed, JudgeVerdict) and error is None:
        return parsed
    if error is not None:
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
    raw = result.get("raw") if isinstance(result, dict) else None
    return f"no verdict in the answer {getattr(raw, 'content', raw)!r}"


@dataclass
class LLMJudge(BaseEvaluator):
    """A chat model judges the output against a rubric, with optional self-consistency.

    The model answers with structured output (`JudgeVerdict`: score and reason) through
    `with_structured_output`, so any LangChain chat model that supports it works. `rubric` is
    one rubric for every step or a mapping from step name to rubric.

    With `samples=k > 1` the judge is asked k times (concurrently; give the model a temperature
    above 0) and the value is the share of samples that pass (score >= `pass_mark`): the
    samples' agreement is the confidence. `details` holds every sample's score and reason.

    An answer that cannot be parsed or a timeout gives a failing score that says which; other
    model errors propagate (the nodes turn them into failing scores, and a retry policy can retry them).

    Example:
        ```python
        from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        from langchain_core.messages import AIMessage
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.llm_judge import LLMJudge

        class ToolCallingFake(FakeMessagesListChatModel):  # stands in for ChatOpenAI(...)
            def bind_tools(self, tools, **kwargs):
                return self.bind(**kwargs)

        def verdict(score, reason):
            args = {"score": score, "reason": reason}
            return AIMessage(content="", tool_calls=[{"name": "JudgeVerdict", "args": args, "id": "1"}])

        judge = LLMJudge(model=ToolCallingFake(responses=[verdict(0.9, "grounded")]),
                         rubric="The answer must be supported by the context.")
        score = judge.evaluate(EvalInput(query="Capital of France?", contexts=["Paris is the capital."],
                                         output="Paris"))
        assert score.value == 0.9 and score.reason == "grounded"

        voting = LLMJudge(model=ToolCallingFake(responses=[verdict(0.9, "ok"), verdict(0.8, "ok"),
                                                           verdict(0.2, "unsupported")]),
                          rubric="The answer must be supported by the context.", samples=3,
                          max_concurrency=1)
        score = voting.evaluate(EvalInput(query="Capital of France?", output="Lyon"))
        assert round(score.value, 2) == 0.67 and score.details["passed"] == 2
        ```
    """

    model: Any
    """A LangChain chat model with structured output."""
    rubric: str | Mapping[str, str]
    """What a good output is: one rubric, or one per step name."""
    samples: int = 1
    """How many times to ask the judge (self-consistency); 1 uses the judge's score as is."""
    pass_mark: float = 0.5
    """With several samples, the score at which a sample votes "pass", in [0, 1]."""
    include_context: bool = True
    """Show the judge the step's context (needed for groundedness rubrics)."""
    timeout: float | None = 60.0
    """Seconds the judge may take before the output scores 0 as timed out; None waits forever."""
    max_concurrency: int | None = None
    """At most this many judge samples in flight at once; None asks for all k at once."""
    method: str | None = None
    """Passed to `with_structured_output` (e.g. `"json_schema"`); None uses the model's default."""
    name: str = "llm_judge"
    """The evaluator's name in scores and events."""
    _structured: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        rubrics = [self.rubric] if isinstance(self.rubric, str) else list(dict(self.rubric).values())
        if not rubrics or not all(isinstance(r, str) and r.strip() for r in rubrics):
            msg = "LLMJudge(rubric=...) needs a non-empty rubric string, or a mapping of step name to rubric"
            raise ValueError(msg)
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            msg = f"LLMJudge(samples={self.samples!r}) must be an integer >= 1"
            raise ValueError(msg)
        if not 0.0 <= self.pass_mark <= 1.0:
            msg = f"LLMJudge(pass_mark={self.pass_mark!r}) must be in [0, 1]"
            raise ValueError(msg)
        if self.max_concurrency is not None and (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or self.max_concurrency < 1
        ):
            msg = f"LLMJudge(max_concurrency={self.max_concurrency!r}) must be an integer >= 1 or None"
            raise ValueError(msg)
        if self.timeout is not None and not self.timeout > 0:
            msg = f"LLMJudge(timeout={self.timeout!r}) must be a positive number of seconds or None"
            raise ValueError(msg)
        kwargs: dict[str, Any] = {"include_raw": True}
        if self.method is not None:
            kwargs["method"] = self.method
        try:
            self._structured = self.model.with_structured_output(JudgeVerdict, **kwargs)
        except (AttributeError, NotImplementedError) as exc:
            msg = (
                f"LLMJudge(model=...) needs a chat model with structured output; "
                f"{type(self.model).__name__} has none ({exc})"
            )
            raise TypeError(msg) from exc

    # -- shared core -------------------------------------------------------------------------

    def _messages(self, sample: EvalInput) -> list[BaseMessage] | Score:
        if isinstance(self.rubric, str):
            rubric = self.rubric
        else:
            found = self.rubric.get(sample.step or "")
            if found is None:
                return Score.failing(
                    self.name,
                    f"the judge has no rubric for step {sample.step!r} "
                    f"(it has rubrics for {', '.join(map(repr, self.rubric))})",
                )
            rubric = found
        if sample.output is None:
            return Score.failing(self.name, "there is no output for the judge to score")
        parts = []
        if sample.step:
            parts.append(f"Step: {sample.step}")
        if sample.query:
            parts.append(f"Task: {sample.query}")
        if self.include_context:
            texts = sample.texts
            context = "\n".join(f"[{i + 1}] {t}" for i, t in enumerate(texts)) if texts else "(no context)"
            parts.append(f"Context:\n{context}")
        parts.append(f"Output:\n{_as_text(sample.output)}")
        return [SystemMessage(_SYSTEM.format(rubric=rubric)), HumanMessage("\n\n".join(parts))]

    def _combine(self, results: Sequence[Any]) -> Score:
        answers = [_answer(r) for r in results]
        verdicts = [a for a in answers if isinstance(a, JudgeVerdict)]
        problems = [a for a in answers if isinstance(a, str)]
        if not verdicts:
            return Score.failing(
                self.name,
                f"the judge's answer could not be parsed as a score and reason: {problems[-1]}",
                unparseable=True,
                parse_errors=problems,
            )
        details: dict[str, Any] = {
            "scores": [v.score for v in verdicts],
            "reasons": [v.reason for v in verdicts],
            "samples": len(results),
        }
        if problems:
            details["parse_errors"] = problems
        if self.samples == 1:
            return Score(value=verdicts[0].score, reason=verdicts[0].reason, evaluator=self.name, details=details)
        passing = [v for v in verdicts if v.score >= self.pass_mark]
        failing = [v for v in verdicts if v.score < self.pass_mark]
        majority = passing if len(passing) >= len(failing) else failing
        agreement = len(majority) / len(verdicts)
        details.update(
            passed=len(passing),
            agreement=agreement,
            mean_score=sum(v.score for v in verdicts) / len(verdicts),
        )
        reason = (
            f"{len(passing)} of {len(verdicts)} judge samples passed the rubric "
            f"(agreement {agreement:.0%}): {majority[0].reason}"
        )
        return Score(value=len(passing) / len(verdicts), reason=reason, evaluator=self.name, details=details)

    def _config(self) -> dict[str, Any]:
        return {} if self.max_concurrency is None else {"max_concurrency": self.max_concurrency}

    def _timed_out(self) -> Score:
        return Score.failing(self.name, f"the judge timed out after {self.timeout:g}s", timeout=self.timeout)

    # -- drivers -----------------------------------------------------------------------------

    def evaluate(self, sample: EvalInput) -> Score:
        """Ask the judge (k times with self-consistency) and combine its verdicts."""
        messages = self._messages(sample)
        if isinstance(messages, Score):
            return messages
        if self.timeout is None:
            return self._combine(self._structured.batch([messages] * self.samples, self._config()))
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(self._structured.batch, [messages] * self.samples, self._config())
        try:
            results = future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            return self._timed_out()
        finally:
            pool.shutdown(wait=False)
        return self._combine(results)

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Async twin of `evaluate`."""
        messages = self._messages(sample)
        if isinstance(messages, Score):
            return messages
        try:
            results = await asyncio.wait_for(
                self._structured.abatch([messages] * self.samples, self._config()), self.timeout
            )
        except asyncio.TimeoutError:
            return self._timed_out()
        return self._combine(results)
