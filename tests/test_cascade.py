from dataclasses import dataclass, field

import pytest

from reliable_graph import BaseEvaluator, EvalInput, Evaluator, LexicalRelevance, Predicate, Score
from reliable_graph.errors import InvalidScoreError
from reliable_graph.evaluators.cascade import Cascade


@dataclass
class Fixed(BaseEvaluator):
    """Scores a fixed value and counts its calls."""

    value: float
    name: str = "fixed"
    calls: list[EvalInput] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)

    def evaluate(self, sample: EvalInput) -> Score:
        self.calls.append(sample)
        return Score(
            value=self.value, reason=f"{self.name} says {self.value}", evaluator=self.name, details=self.details
        )


async def run(ev: Cascade, mode: str) -> Score:
    sample = EvalInput(query="q", output="o")
    return ev.evaluate(sample) if mode == "sync" else await ev.aevaluate(sample)


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("cheap_value", "decided_by"), [(0.1, "cheap"), (0.5, "expensive"), (0.9, "cheap")])
async def test_cascade_calls_expensive_only_in_band(mode: str, cheap_value: float, decided_by: str) -> None:
    cheap, judge = Fixed(cheap_value, name="validator"), Fixed(0.7, name="judge")
    score = await run(Cascade(cheap=cheap, expensive=judge, band=(0.2, 0.8)), mode)
    assert score.details["decided_by"] == decided_by
    if decided_by == "expensive":
        assert score.value == 0.7 and score.reason == "judge says 0.7" and len(judge.calls) == 1
        assert score.details["ran"] == ["validator", "judge"]
        assert score.details["scores"] == {"validator": 0.5, "judge": 0.7}
    else:
        assert score.value == cheap_value and judge.calls == [] and score.details["ran"] == ["validator"]
    assert score.evaluator == "cascade" and score.details["band"] == [0.2, 0.8]


@pytest.mark.parametrize("mode", MODES)
async def test_cascade_band_edges(mode: str) -> None:
    judge = Fixed(0.5, name="judge")
    low = await run(Cascade(cheap=Fixed(0.2), expensive=judge, band=(0.2, 0.8)), mode)
    high = await run(Cascade(cheap=Fixed(0.8), expensive=judge, band=(0.2, 0.8)), mode)
    assert low.details["decided_by"] == "expensive"  # low is inside the band
    assert high.details["decided_by"] == "cheap"  # high is outside it
    assert len(judge.calls) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_cascade_cheap_minimum_and_early_stop(mode: str) -> None:
    first, second, judge = Fixed(0.05, name="schema"), Fixed(1.0, name="relevance"), Fixed(0.9, name="judge")
    score = await run(Cascade(cheap=[first, second], expensive=judge, band=(0.2, 0.8)), mode)
    assert score.details["ran"] == ["schema"] and second.calls == [] and judge.calls == []
    a, b = Fixed(0.9, name="schema"), Fixed(0.6, name="relevance")
    score = await run(Cascade(cheap=[a, b], expensive=judge, band=(0.2, 0.8)), mode)
    assert score.details["cheap_value"] == 0.6 and score.details["ran"] == ["schema", "relevance", "judge"]


def test_cascade_passes_per_chunk_through() -> None:
    relevance = LexicalRelevance()
    judge = Fixed(0.9, name="judge")
    ev = Cascade(cheap=relevance, expensive=judge, band=(0.0, 0.8))
    score = ev.evaluate(EvalInput(query="boiling point of water", contexts=["Water boils at 100 C.", "Cats."]))
    assert score.details["decided_by"] == "expensive" and len(score.details["per_chunk"]) == 2


def test_cascade_inner_error_is_failing_cheap_score() -> None:
    def boom(output: object) -> bool:
        raise RuntimeError("validator crashed")

    judge = Fixed(0.9, name="judge")
    score = Cascade(cheap=Predicate(fn=boom, name="validator"), expensive=judge).evaluate(EvalInput(output=1))
    assert score.value == 0.0 and "validator crashed" in score.reason and judge.calls == []
    with pytest.raises(RuntimeError):
        Cascade(cheap=Predicate(fn=boom), expensive=judge, raise_errors=True).evaluate(EvalInput(output=1))


def test_cascade_invalid_inner_score_raises() -> None:
    ev = Cascade(cheap=Predicate(fn=lambda o: 1.5, name="custom"), expensive=Fixed(0.5))
    with pytest.raises(InvalidScoreError, match=r"must be in \[0, 1\]"):
        ev.evaluate(EvalInput(output=1))


def test_cascade_construction_errors() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Cascade(cheap=[], expensive=Fixed(0.5))
    with pytest.raises(TypeError, match="expensive"):
        Cascade(cheap=Fixed(0.5), expensive=object())
    for band in [(0.8, 0.2), (-0.1, 0.5), (0.2, 1.5), (0.5,)]:
        with pytest.raises(ValueError, match="band"):
            Cascade(cheap=Fixed(0.5), expensive=Fixed(0.5), band=band)  # type: ignore[arg-type]
    assert isinstance(Cascade(cheap=Fixed(0.5), expensive=Fixed(0.5)), Evaluator)
