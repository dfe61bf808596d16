from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from langchain_core.documents import Document
from pydantic import BaseModel

from reliable_graph import (
    AllOf,
    Completeness,
    EvalInput,
    Freshness,
    InvalidScoreError,
    LexicalRelevance,
    Predicate,
    RegexMatch,
    RequiredFields,
    SchemaValid,
    Score,
    as_chunks,
    run_evaluator,
)


def test_score_rejects_nan_and_out_of_range() -> None:
    for bad in (math.nan, -0.01, 1.01):
        with pytest.raises(InvalidScoreError):
            Score(value=bad, reason="r", evaluator="e")
    with pytest.raises(InvalidScoreError, match="number"):
        Score(value="0.5", reason="r", evaluator="e")  # type: ignore[arg-type]


def test_run_evaluator_rejects_invalid_return_from_custom_evaluator() -> None:
    class Sloppy:
        name = "sloppy"

        def evaluate(self, sample: EvalInput) -> float:
            return 0.5

    with pytest.raises(InvalidScoreError, match="sloppy"):
        run_evaluator(Sloppy(), EvalInput())
    with pytest.raises(InvalidScoreError, match=r"\[0, 1\]"):
        run_evaluator(Predicate(fn=lambda o: 3.0, name="p"), EvalInput())


def test_as_chunks_accepts_documents_and_rejects_junk() -> None:
    chunks = as_chunks([Document(page_content="d", metadata={"k": 1}), {"content": "c"}, "s"])
    assert [c.text for c in chunks] == ["d", "c", "s"]
    with pytest.raises(TypeError, match="chunk"):
        as_chunks([42])


def test_schema_valid_accepts_json_text() -> None:
    class M(BaseModel):
        a: int

    assert SchemaValid(model=M).evaluate(EvalInput(output='{"a": 1}')).value == 1.0
    assert "a: " in SchemaValid(model=M).evaluate(EvalInput(output='{"a": "x"}')).reason
    with pytest.raises(TypeError):
        SchemaValid(model=dict)  # type: ignore[arg-type]


def test_required_fields_on_non_mapping_fails_with_reason() -> None:
    score = RequiredFields(fields=["a"]).evaluate(EvalInput(output="text"))
    assert score.value == 0.0 and "not a mapping" in score.reason
    with pytest.raises(ValueError):
        RequiredFields(fields=[])


def test_regex_rejects_invalid_pattern() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        RegexMatch(pattern="(")
    assert RegexMatch(pattern="x").evaluate(EvalInput(output=3)).value == 0.0


def test_all_of_short_circuits_on_zero() -> None:
    ran: list[str] = []

    def judge(output: object) -> float:
        ran.append("judge")
        return 0.9

    ev = AllOf(evaluators=[Predicate(fn=lambda o: o == "ok", name="v"), Predicate(fn=judge, name="j")])
    assert ev.evaluate(EvalInput(output="no")).value == 0.0 and ran == []
    assert ev.evaluate(EvalInput(output="ok")).value == 0.9 and ran == ["judge"]


def test_lexical_relevance_empty_context_and_query() -> None:
    ev = LexicalRelevance()
    assert "empty" in ev.evaluate(EvalInput(query="q word", contexts=[])).reason
    assert "no query" in ev.evaluate(EvalInput(contexts=["a"])).reason
    assert "content words" in ev.evaluate(EvalInput(query="the of", contexts=["a"])).reason
    with pytest.raises(ValueError):
        LexicalRelevance(chunk_threshold=2)


def test_lexical_relevance_matches_plural_forms() -> None:
    score = LexicalRelevance(chunk_threshold=1.0).evaluate(EvalInput(query="prices", contexts=["price list"]))
    assert score.value == 1.0


def test_completeness_reads_declared_dependencies_from_state() -> None:
    ev = Completeness(topics_key="needs")
    sample = EvalInput(contexts=["alpha beta"], state={"needs": ["alpha", "gamma"]})
    score = ev.evaluate(sample)
    assert score.value == 0.5 and score.details["missing"] == ["gamma"]
    with pytest.raises(ValueError):
        Completeness()
    with pytest.raises(TypeError):
        Completeness(topics="alpha")  # type: ignore[arg-type]


def test_freshness_policies_for_undated_chunks() -> None:
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    sample = EvalInput(contexts=[{"text": "a", "metadata": {"timestamp": now.timestamp() - 60}}, "undated"])
    value = {
        policy: Freshness(max_age=timedelta(hours=1), missing=policy, now=lambda: now).evaluate(sample).value
        for policy in ("stale", "fresh", "ignore")
    }
    assert value == {"stale": 0.5, "fresh": 1.0, "ignore": 1.0}
    only_undated = Freshness(max_age=timedelta(hours=1), missing="ignore", now=lambda: now)
    assert only_undated.evaluate(EvalInput(contexts=["x"])).value == 0.0
    with pytest.raises(ValueError):
        Freshness(max_age=timedelta(0))


def test_regex_match_reason_shows_the_pattern_as_written() -> None:
    """A reviewer reads the pattern as it was written, not its repr (no doubled backslashes)."""
    from reliable_graph import EvalInput, RegexMatch

    score = RegexMatch(pattern=r"\[policy [0-9.]+\]").evaluate(EvalInput(output="no citation"))
    assert score.reason == r"output does not match the pattern \[policy [0-9.]+\]"
