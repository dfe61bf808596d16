"""Deterministic output evaluators: schema validity, required fields, regex, any predicate, all-of."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from reliable_graph.evaluators.base import (
    BaseEvaluator,
    EvalInput,
    Score,
    arun_evaluator,
    check_evaluator,
    evaluator_name,
    run_evaluator,
    score_of,
)

__all__ = ["AllOf", "Predicate", "RegexMatch", "RequiredFields", "SchemaValid"]


_EMPTY: tuple[Any, ...] = (None, "", [], {})
"""What `RequiredFields` counts as empty (compared with ==, so `0` and `False` are present)."""


def _as_mapping(output: Any) -> Mapping[str, Any] | None:
    if type(output) is dict or isinstance(output, Mapping):
        return output
    if isinstance(output, BaseModel):
        return output.model_dump()
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return dataclasses.asdict(output)
    return None


@dataclass
class SchemaValid(BaseEvaluator):
    """1.0 when the output validates against a pydantic model, else 0.0 naming the errors.

    Example:
        ```python
        from pydantic import BaseModel
        from reliable_graph import EvalInput, SchemaValid

        class Answer(BaseModel):
            answer: str
            sources: list[str]

        ev = SchemaValid(model=Answer)
        assert ev.evaluate(EvalInput(output={"answer": "x", "sources": []})).value == 1.0
        bad = ev.evaluate(EvalInput(output={"answer": "x"}))
        assert bad.value == 0.0 and "sources" in bad.reason
        ```
    """

    model: type[BaseModel]
    """The pydantic model the output must validate against."""
    name: str = "schema_valid"
    """The evaluator's name in scores and events."""

    def __post_init__(self) -> None:
        if not (isinstance(self.model, type) and issubclass(self.model, BaseModel)):
            msg = f"SchemaValid(model=...) must be a pydantic model class, got {self.model!r}"
            raise TypeError(msg)

    def evaluate(self, sample: EvalInput) -> Score:
        """Validate `sample.output` against the model."""
        output = sample.output
        if isinstance(output, self.model):
            return Score(value=1.0, reason=f"output is a valid {self.model.__name__}", evaluator=self.name)
        try:
            if isinstance(output, (str, bytes)):
                self.model.model_validate_json(output)
            else:
                self.model.model_validate(output)
        except ValidationError as exc:
            errors = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
            return Score(
                value=0.0,
                reason=f"output is not a valid {self.model.__name__}: {'; '.join(errors)}",
                evaluator=self.name,
                details={"errors": errors},
            )
        return Score(value=1.0, reason=f"output is a valid {self.model.__name__}", evaluator=self.name)


@dataclass
class RequiredFields(BaseEvaluator):
    """The fraction of required fields present and non-empty in a mapping-like output.

    Example:
        ```python
        from reliable_graph import EvalInput, RequiredFields

        score = RequiredFields(fields=["answer", "sources"]).evaluate(EvalInput(output={"answer": "x"}))
        assert score.value == 0.5 and score.details["missing"] == ["sources"]
        ```
    """

    fields: Sequence[str]
    """Field names that must be present and non-empty (None, "", [] and {} count as empty)."""
    name: str = "required_fields"
    """The evaluator's name in scores and events."""

    def __post_init__(self) -> None:
        if isinstance(self.fields, str) or not self.fields:
            msg = "RequiredFields(fields=...) needs a non-empty list of field names"
            raise ValueError(msg)

    def evaluate(self, sample: EvalInput) -> Score:
        """Check the output's fields."""
        output = sample.output
        data = output if type(output) is dict else _as_mapping(output)
        if data is None:
            return Score.failing(
                self.name,
                f"output is a {type(sample.output).__name__}, not a mapping with fields {', '.join(self.fields)}",
            )
        missing = []
        for name in self.fields:  # a loop, not a comprehension: no frame of its own (this runs on every step)
            if data.get(name) in _EMPTY:
                missing.append(name)
        present = len(self.fields) - len(missing)
        reason = (
            "all required fields present" if not missing else f"missing or empty required fields: {', '.join(missing)}"
        )
        return score_of(present / len(self.fields), reason, self.name, {"missing": missing})


@dataclass
class RegexMatch(BaseEvaluator):
    r"""1.0 when the output (or one field of it) matches a regular expression.

    Example:
        ```python
        from reliable_graph import EvalInput, RegexMatch

        ev = RegexMatch(pattern=r"^\d{4}-\d{2}-\d{2}$", field="date")
        assert ev.evaluate(EvalInput(output={"date": "2026-11-24"})).value == 1.0
        assert ev.evaluate(EvalInput(output={"date": "soon"})).value == 0.0
        ```
    """

    pattern: str
    """The regular expression, searched with `re.search`."""
    field: str | None = None
    """Match this field of a mapping output instead of the whole output."""
    flags: int = 0
    """`re` flags."""
    name: str = "regex"
    """The evaluator's name in scores and events."""
    _compiled: re.Pattern[str] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._compiled = re.compile(self.pattern, self.flags)
        except re.error as exc:
            msg = f"RegexMatch(pattern={self.pattern!r}) is not a valid regular expression: {exc}"
            raise ValueError(msg) from exc

    def evaluate(self, sample: EvalInput) -> Score:
        """Search the pattern in the output text."""
        value = sample.output
        where = "output"
        if self.field is not None:
            data = _as_mapping(value)
            value = None if data is None else data.get(self.field)
            where = f"field {self.field!r}"
        if not isinstance(value, str):
            return Score.failing(self.name, f"{where} is {type(value).__name__}, not text to match")
        if self._compiled.search(value):
            return Score(value=1.0, reason=f"{where} matches the pattern {self.pattern}", evaluator=self.name)
        return Score(value=0.0, reason=f"{where} does not match the pattern {self.pattern}", evaluator=self.name)


@dataclass
class Predicate(BaseEvaluator):
    """Any function of the output (or of the whole `EvalInput`) as an evaluator.

    The function returns a bool (pass/fail), a number in [0, 1], or a `Score`.

    Example:
        ```python
        from reliable_graph import EvalInput, Predicate

        ev = Predicate(fn=lambda out: len(out) < 20, name="short", reason="answer longer than 20 chars")
        assert ev.evaluate(EvalInput(output="ok")).value == 1.0
        fail = ev.evaluate(EvalInput(output="x" * 50))
        assert fail.value == 0.0 and fail.reason == "answer longer than 20 chars"
        ```
    """

    fn: Callable[[Any], bool | float | Score]
    """The check, called with the output (or the `EvalInput` when `pass_input=True`)."""
    name: str = "predicate"
    """The evaluator's name in scores and events."""
    reason: str | None = None
    """The reason given when the check fails (default: names the predicate)."""
    pass_input: bool = False
    """Call `fn` with the whole `EvalInput` instead of the output."""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            msg = f"Predicate(fn=...) must be callable, got {type(self.fn).__name__}"
            raise TypeError(msg)

    def evaluate(self, sample: EvalInput) -> Score:
        """Call the function and turn its answer into a score."""
        result = self.fn(sample if self.pass_input else sample.output)
        if isinstance(result, Score):
            return result
        value = float(result)
        if value >= 1.0:
            return Score(value=value, reason=f"{self.name} holds", evaluator=self.name)
        return Score(value=value, reason=self.reason or f"{self.name} does not hold", evaluator=self.name)


@dataclass
class AllOf(BaseEvaluator):
    """All evaluators must agree: the value is the lowest, the reason the weakest one's.

    Evaluators run in order and stop at a score of 0 (nothing later can raise the minimum),
    so put free deterministic checks before costly ones.

    Example:
        ```python
        from reliable_graph import AllOf, EvalInput, Predicate, RequiredFields

        ev = AllOf(evaluators=[RequiredFields(fields=["answer"]), Predicate(fn=lambda o: 0.7, name="judge")])
        score = ev.evaluate(EvalInput(output={"answer": "x"}))
        assert score.value == 0.7 and score.details["ran"] == ["required_fields", "judge"]
        assert ev.evaluate(EvalInput(output={})).details["ran"] == ["required_fields"]
        ```
    """

    evaluators: Sequence[Any]
    """The evaluators, cheapest first."""
    name: str = "all_of"
    """The evaluator's name in scores and events."""
    raise_errors: bool = False
    """Re-raise an exception from an inner evaluator instead of scoring it 0."""
    _names: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.evaluators:
            msg = "AllOf(evaluators=...) needs at least one evaluator"
            raise ValueError(msg)
        for ev in self.evaluators:
            check_evaluator(ev, what="each of AllOf(evaluators=...)")
        self._names = [evaluator_name(ev) for ev in self.evaluators]

    def _combine(self, scores: list[Score]) -> Score:
        worst = min(scores, key=lambda s: s.value)
        return Score(
            value=worst.value,
            reason=worst.reason,
            evaluator=self.name,
            details={
                "ran": [s.evaluator for s in scores],
                "scores": {s.evaluator: s.value for s in scores},
                "weakest": worst.evaluator,
            },
        )

    def evaluate(self, sample: EvalInput) -> Score:
        """Run the evaluators in order until one scores 0."""
        scores: list[Score] = []
        for ev in self.evaluators:
            scores.append(run_evaluator(ev, sample, raise_errors=self.raise_errors))
            if scores[-1].value == 0.0:
                break
        return self._combine(scores)

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Async twin of `evaluate`."""
        scores: list[Score] = []
        for ev in self.evaluators:
            scores.append(await arun_evaluator(ev, sample, raise_errors=self.raise_errors))
            if scores[-1].value == 0.0:
                break
        return self._combine(scores)
