"""A cascade: cheap evaluators first, the expensive one only when the cheap score is uncertain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reliable_graph.evaluators.base import (
    BaseEvaluator,
    EvalInput,
    Score,
    arun_evaluator,
    check_evaluator,
    run_evaluator,
)

__all__ = ["Cascade"]


@dataclass
class Cascade(BaseEvaluator):
    """Run cheap evaluators first and call the expensive one only inside an uncertainty band.

    The cheap evaluators run in order; their score is the lowest of them (all must agree), and
    they stop early at a score below `band[0]`, since nothing later can raise the minimum.
    Then, with `low, high = band`:

    - cheap score below `low`: a confident fail, the cascade returns it;
    - cheap score at or above `high`: a confident pass, the cascade returns it;
    - in between: the expensive evaluator decides, and the cascade returns its score.

    Put the band around the router's threshold (`low <= threshold <= high`) so that a cheap
    decision agrees with the router. `details["ran"]` lists the evaluators that ran,
    `details["decided_by"]` says `"cheap"` or `"expensive"`, and `details["per_chunk"]` is passed
    through from the deciding score (or else a cheap one) so `ContextGate` can still drop chunks.

    Example:
        ```python
        from reliable_graph import EvalInput, Predicate, RequiredFields
        from reliable_graph.evaluators.cascade import Cascade

        calls = []

        def judge(output):  # stands in for an LLMJudge
            calls.append(output)
            return 0.9

        ev = Cascade(
            cheap=[RequiredFields(fields=["answer", "sources"])],
            expensive=Predicate(fn=judge, name="judge"),
            band=(0.4, 1.0),
        )
        assert ev.evaluate(EvalInput(output={})).details["ran"] == ["required_fields"]  # fails cheaply
        assert ev.evaluate(EvalInput(output={"answer": "x", "sources": ["a"]})).value == 1.0  # passes cheaply
        score = ev.evaluate(EvalInput(output={"answer": "x"}))  # 0.5: uncertain, ask the judge
        assert score.value == 0.9 and score.details["ran"] == ["required_fields", "judge"]
        assert len(calls) == 1
        ```
    """

    cheap: Any
    """One cheap evaluator or a sequence of them, cheapest first."""
    expensive: Any
    """The evaluator to call only when the cheap score is uncertain."""
    band: tuple[float, float] = (0.2, 0.8)
    """`(low, high)`: the expensive evaluator runs when `low <= cheap score < high`."""
    name: str = "cascade"
    """The evaluator's name in scores and events."""
    raise_errors: bool = False
    """Re-raise an exception from an inner evaluator instead of scoring it 0."""
    _cheap: list[Any] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        cheap = list(self.cheap) if isinstance(self.cheap, Sequence) else [self.cheap]
        if not cheap:
            msg = "Cascade(cheap=...) needs at least one cheap evaluator"
            raise ValueError(msg)
        for ev in cheap:
            check_evaluator(ev, what="each of Cascade(cheap=...)")
        check_evaluator(self.expensive, what="Cascade(expensive=...)")
        band = tuple(self.band)
        if (
            len(band) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in band)
            or not 0.0 <= band[0] <= band[1] <= 1.0
        ):
            msg = f"Cascade(band={self.band!r}) must be (low, high) with 0 <= low <= high <= 1"
            raise ValueError(msg)
        self.band = (float(band[0]), float(band[1]))
        self._cheap = cheap

    def _decided(self, scores: list[Score]) -> bool:
        low, high = self.band
        value = min(s.value for s in scores)
        return value < low or value >= high

    def _combine(self, cheap: list[Score], expensive: Score | None) -> Score:
        weakest = min(cheap, key=lambda s: s.value)
        final = expensive if expensive is not None else weakest
        ran = [*cheap, *([expensive] if expensive is not None else [])]
        details: dict[str, Any] = {
            "ran": [s.evaluator for s in ran],
            "scores": {s.evaluator: s.value for s in ran},
            "decided_by": "cheap" if expensive is None else "expensive",
            "cheap_value": weakest.value,
            "band": list(self.band),
        }
        per_chunk = next((s.details["per_chunk"] for s in [final, *cheap] if "per_chunk" in s.details), None)
        if per_chunk is not None:
            details["per_chunk"] = per_chunk
        return Score(value=final.value, reason=final.reason, evaluator=self.name, details=details)

    def evaluate(self, sample: EvalInput) -> Score:
        """Run the cheap evaluators, then the expensive one if the cheap score is uncertain."""
        scores: list[Score] = []
        for ev in self._cheap:
            scores.append(run_evaluator(ev, sample, raise_errors=self.raise_errors))
            if scores[-1].value < self.band[0]:
                break
        if self._decided(scores):
            return self._combine(scores, None)
        return self._combine(scores, run_evaluator(self.expensive, sample, raise_errors=self.raise_errors))

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Async twin of `evaluate`."""
        scores: list[Score] = []
        for ev in self._cheap:
            scores.append(await arun_evaluator(ev, sample, raise_errors=self.raise_errors))
            if scores[-1].value < self.band[0]:
                break
        if self._decided(scores):
            return self._combine(scores, None)
        expensive = await arun_evaluator(self.expensive, sample, raise_errors=self.raise_errors)
        return self._combine(scores, expensive)
