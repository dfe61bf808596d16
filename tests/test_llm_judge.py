import asyncio
from typing import Any

import pytest

from reliable_graph import EvalInput, Evaluator
from reliable_graph.evaluators.llm_judge import JudgeVerdict, LLMJudge
from tests.fake_chat import ScriptedChatModel, StructuredChatModel

RUBRIC = "The answer must be supported by the context and answer the question."
SAMPLE = EvalInput(
    query="When was Einstein born?",
    contexts=["Albert Einstein was born on 14 March 1879 in Ulm."],
    output={"answer": "1879", "sources": [0]},
    step="answer",
)


def verdict(score: float, reason: str = "fine") -> dict[str, Any]:
    return {"score": score, "reason": reason}


async def judge_score(judge: LLMJudge, sample: EvalInput, mode: str) -> Any:
    if mode == "sync":
        return await asyncio.to_thread(judge.evaluate, sample)
    return await judge.aevaluate(sample)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("model_class", [ScriptedChatModel, StructuredChatModel])
async def test_llm_judge_scores_with_structured_output(mode: str, model_class: type[ScriptedChatModel]) -> None:
    model = model_class(responses=[verdict(0.85, "cites the context for the year")])
    judge = LLMJudge(model=model, rubric=RUBRIC)
    score = await judge_score(judge, SAMPLE, mode)
    assert score.value == 0.85 and score.reason == "cites the context for the year"
    assert score.evaluator == "llm_judge" and isinstance(judge, Evaluator)
    prompt = model.prompt_texts()[0]
    assert RUBRIC in prompt and "[1] Albert Einstein" in prompt and '"answer": "1879"' in prompt


async def test_llm_judge_rubric_per_step() -> None:
    model = ScriptedChatModel(responses=[verdict(0.4, "no source cited")])
    judge = LLMJudge(model=model, rubric={"answer": "Cite a source.", "plan": "List three steps."})
    score = await judge.aevaluate(SAMPLE)
    assert score.value == 0.4 and "Cite a source." in model.prompt_texts()[0]
    assert "List three steps." not in model.prompt_texts()[0]
    missing = await judge.aevaluate(EvalInput(output="x", step="review"))
    assert missing.value == 0.0 and "no rubric for step 'review'" in missing.reason and model.calls == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_llm_judge_self_consistency_agreement_is_confidence(mode: str) -> None:
    model = ScriptedChatModel(
        responses=[verdict(0.9), verdict(0.8), verdict(0.3, "the year is not in the context"), verdict(0.7)]
    )
    judge = LLMJudge(model=model, rubric=RUBRIC, samples=4, pass_mark=0.5)
    score = await judge_score(judge, SAMPLE, mode)
    assert model.calls == 4
    assert score.value == 0.75 and score.details["passed"] == 3 and score.details["agreement"] == 0.75
    assert sorted(score.details["scores"]) == [0.3, 0.7, 0.8, 0.9]
    assert score.reason.startswith("3 of 4 judge samples passed the rubric (agreement 75%)")


async def test_llm_judge_self_consistency_unanimous_fail() -> None:
    model = ScriptedChatModel(responses=[verdict(0.1, "wrong year")] * 3)
    score = await LLMJudge(model=model, rubric=RUBRIC, samples=3).aevaluate(SAMPLE)
    assert score.value == 0.0 and score.details["agreement"] == 1.0 and "wrong year" in score.reason


@pytest.mark.parametrize("answer", ["The output looks good to me.", verdict(7, "out of ten")])
async def test_llm_judge_unparseable_answer_is_failing_score(answer: Any) -> None:
    score = await LLMJudge(model=ScriptedChatModel(responses=[answer]), rubric=RUBRIC).aevaluate(SAMPLE)
    assert score.value == 0.0 and score.details["unparseable"] is True
    assert score.reason.startswith("the judge's answer could not be parsed")


async def test_llm_judge_partly_unparseable_samples_use_the_rest() -> None:
    model = ScriptedChatModel(responses=[verdict(0.9), "garbage"])
    score = await LLMJudge(model=model, rubric=RUBRIC, samples=2).aevaluate(SAMPLE)
    assert score.value == 1.0 and len(score.details["parse_errors"]) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_llm_judge_timeout_is_failing_score(mode: str) -> None:
    model = ScriptedChatModel(responses=[verdict(0.9)], sleep=2.0)
    score = await judge_score(LLMJudge(model=model, rubric=RUBRIC, timeout=0.05), SAMPLE, mode)
    assert score.value == 0.0 and score.reason == "the judge timed out after 0.05s"


async def test_llm_judge_model_error_propagates() -> None:
    judge = LLMJudge(model=ScriptedChatModel(responses=[ConnectionError("HTTP 503")]), rubric=RUBRIC)
    with pytest.raises(ConnectionError):
        await judge.aevaluate(SAMPLE)


async def test_llm_judge_no_output_is_failing_score() -> None:
    model = ScriptedChatModel(responses=[])
    score = await LLMJudge(model=model, rubric=RUBRIC).aevaluate(EvalInput(query="q"))
    assert score.value == 0.0 and "no output" in score.reason and model.calls == 0


def test_llm_judge_without_context() -> None:
    model = ScriptedChatModel(responses=[verdict(1.0)])
    LLMJudge(model=model, rubric=RUBRIC, include_context=False).evaluate(SAMPLE)
    assert "Ulm" not in model.prompt_texts()[0]


def test_llm_judge_construction_errors_are_clear() -> None:
    model = ScriptedChatModel(responses=[])
    with pytest.raises(ValueError, match="rubric"):
        LLMJudge(model=model, rubric=" ")
    with pytest.raises(ValueError, match="rubric"):
        LLMJudge(model=model, rubric={})
    with pytest.raises(ValueError, match="samples"):
        LLMJudge(model=model, rubric=RUBRIC, samples=0)
    with pytest.raises(ValueError, match="pass_mark"):
        LLMJudge(model=model, rubric=RUBRIC, pass_mark=1.5)
    with pytest.raises(ValueError, match="timeout"):
        LLMJudge(model=model, rubric=RUBRIC, timeout=-1)
    with pytest.raises(TypeError, match="structured output"):
        LLMJudge(model=object(), rubric=RUBRIC)


def test_llm_judge_verdict_bounds() -> None:
    with pytest.raises(ValueError):
        JudgeVerdict(score=1.2, reason="too sure")
