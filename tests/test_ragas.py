import os

os.environ["RAGAS_DO_NOT_TRACK"] = "true"

import asyncio  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from langchain_core.messages import BaseMessage  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from reliable_graph import EvalInput, Evaluator, ReliabilityState  # noqa: E402
from reliable_graph.evaluators import ragas as rg  # noqa: E402
from reliable_graph.evaluators.ragas import (  # noqa: E402
    RagasMetric,
    UnparseableAnswerError,
    ragas_context_precision,
    ragas_context_recall,
    ragas_context_relevance,
    ragas_faithfulness,
    ragas_llm,
    ragas_response_groundedness,
)
from tests.fake_chat import ScriptedChatModel, StructuredChatModel  # noqa: E402

rg._import_ragas()  # reads ragas' analytics user id once, before any direct ragas call below

from ragas.dataset_schema import SingleTurnSample  # noqa: E402
from ragas.llms.base import InstructorBaseRagasLLM, LangchainLLMWrapper  # noqa: E402
from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference  # noqa: E402
from ragas.metrics._context_recall import NonLLMContextRecall  # noqa: E402
from ragas.metrics._faithfulness import Faithfulness as LegacyFaithfulness  # noqa: E402
from ragas.metrics._nv_metrics import ContextRelevance as LegacyContextRelevance  # noqa: E402
from ragas.metrics.collections import ContextRelevance, Faithfulness  # noqa: E402

QUESTION = "When was Einstein born?"
CONTEXTS = ["Albert Einstein was born on 14 March 1879 in Ulm.", "Cats sleep up to 16 hours a day."]
ANSWER = "Einstein was born in 1879 in Paris."

STATEMENTS = {"statements": ["Einstein was born in 1879.", "Einstein was born in Paris."]}
VERDICTS = {
    "statements": [
        {"statement": "Einstein was born in 1879.", "reason": "the context says 1879", "verdict": 1},
        {"statement": "Einstein was born in Paris.", "reason": "the context says Ulm", "verdict": 0},
    ]
}


def legacy_wrapper(model: Any) -> Any:
    with pytest.warns(DeprecationWarning, match="LangchainLLMWrapper"):
        return LangchainLLMWrapper(model)


async def score(ev: RagasMetric, sample: EvalInput, mode: str) -> Any:
    if mode == "sync":
        return await asyncio.to_thread(ev.evaluate, sample)
    return await ev.aevaluate(sample)


MODES = ["sync", "async"]


# -- the adapter's score equals ragas' own -------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_ragas_legacy_llm_metric_matches_ragas(mode: str) -> None:
    direct_metric = LegacyContextRelevance(llm=legacy_wrapper(ScriptedChatModel(responses=["2", "1"])))
    direct = await direct_metric.single_turn_ascore(SingleTurnSample(user_input=QUESTION, retrieved_contexts=CONTEXTS))
    ev = RagasMetric(metric=LegacyContextRelevance(), llm=ScriptedChatModel(responses=["2", "1"]))
    result = await score(ev, EvalInput(query=QUESTION, contexts=CONTEXTS), mode)
    assert result.value == direct == 0.75
    assert result.evaluator == "ragas_nv_context_relevance" and result.details["api"] == "legacy"


@pytest.mark.parametrize("mode", MODES)
async def test_ragas_legacy_faithfulness_matches_ragas(mode: str) -> None:
    script = [json.dumps(STATEMENTS), json.dumps(VERDICTS)]
    direct_metric = LegacyFaithfulness(llm=legacy_wrapper(ScriptedChatModel(responses=script)))
    direct = await direct_metric.single_turn_ascore(
        SingleTurnSample(user_input=QUESTION, retrieved_contexts=CONTEXTS, response=ANSWER)
    )
    model = ScriptedChatModel(responses=script)
    ev = RagasMetric(metric=LegacyFaithfulness(), llm=model)
    result = await score(ev, EvalInput(query=QUESTION, contexts=CONTEXTS, output=ANSWER), mode)
    assert result.value == direct == 0.5
    assert "Einstein was born in 1879 in Paris." in model.prompt_texts()[0]


@pytest.mark.parametrize("mode", MODES)
async def test_ragas_collections_llm_metric_matches_ragas(mode: str) -> None:
    direct_metric = ContextRelevance(llm=ragas_llm(ScriptedChatModel(responses=[{"rating": 2}, {"rating": 1}])))
    direct = await direct_metric.ascore(user_input=QUESTION, retrieved_contexts=CONTEXTS)
    model = ScriptedChatModel(responses=[{"rating": 2}, {"rating": 1}])
    ev = ragas_context_relevance(model, per_chunk=False)
    result = await score(ev, EvalInput(query=QUESTION, contexts=CONTEXTS), mode)
    assert result.value == direct.value == 0.75
    assert result.details["api"] == "collections" and model.calls == 2
    assert model.bound_tools[0]["function"]["name"] == "ContextRelevanceOutput"


@pytest.mark.parametrize("mode", MODES)
async def test_ragas_collections_faithfulness_matches_ragas(mode: str) -> None:
    direct_metric = Faithfulness(llm=ragas_llm(StructuredChatModel(responses=[STATEMENTS, VERDICTS])))
    direct = await direct_metric.ascore(user_input=QUESTION, response=ANSWER, retrieved_contexts=CONTEXTS)
    ev = ragas_faithfulness(StructuredChatModel(responses=[STATEMENTS, VERDICTS]))
    result = await score(ev, EvalInput(query=QUESTION, contexts=CONTEXTS, output=ANSWER), mode)
    assert result.value == direct.value == 0.5


@pytest.mark.parametrize("mode", MODES)
async def test_ragas_non_llm_metrics_match_ragas(mode: str) -> None:
    references = ["Albert Einstein was born on 14 March 1879 in Ulm.", "Einstein died in 1955 in Princeton."]
    sample = SingleTurnSample(retrieved_contexts=CONTEXTS, reference_contexts=references)
    state = {"reference_contexts": references}
    for metric, preset in [
        (NonLLMContextPrecisionWithReference(), ragas_context_precision()),
        (NonLLMContextRecall(), ragas_context_recall()),
    ]:
        direct = await metric.single_turn_ascore(sample)
        result = await score(preset, EvalInput(contexts=CONTEXTS, state=state), mode)
        assert result.value == pytest.approx(direct, abs=1e-12)
        assert 0.0 < result.value <= 1.0
    recall = await score(ragas_context_recall(), EvalInput(contexts=CONTEXTS, state=state), mode)
    assert recall.value == 0.5


# -- failures become failing scores that say which -----------------------------------------------


async def test_ragas_unparseable_answers_nan_says_so() -> None:
    ev = ragas_context_relevance(ScriptedChatModel(responses=["I think it is relevant"] * 10), per_chunk=False)
    result = await ev.aevaluate(EvalInput(query=QUESTION, contexts=CONTEXTS))
    assert result.value == 0.0 and result.details["nan"] is True
    assert "NaN" in result.reason and "could not be parsed as ContextRelevanceOutput" in result.reason


async def test_ragas_unparseable_answer_raised_is_failing_score() -> None:
    ev = ragas_faithfulness(StructuredChatModel(responses=["Sure! Here are the statements: ..."]))
    result = await ev.aevaluate(EvalInput(query=QUESTION, contexts=CONTEXTS, output=ANSWER))
    assert result.value == 0.0 and result.details["unparseable"] is True
    assert "could not parse the model's answer" in result.reason and "StatementGeneratorOutput" in result.reason


async def test_ragas_legacy_unparseable_answer_is_failing_score() -> None:
    model = ScriptedChatModel(responses=["this is not JSON"], cycle=True)
    ev = RagasMetric(metric=LegacyFaithfulness(), llm=model, max_retries=1)
    result = await ev.aevaluate(EvalInput(query=QUESTION, contexts=CONTEXTS, output=ANSWER))
    assert result.value == 0.0 and result.details["unparseable"] is True
    assert "could not parse the model's answer" in result.reason


async def test_ragas_legacy_nan_is_failing_score() -> None:
    ev = RagasMetric(metric=LegacyContextRelevance(), llm=ScriptedChatModel(responses=["no idea"] * 10))
    result = await ev.aevaluate(EvalInput(query=QUESTION, contexts=CONTEXTS))
    assert result.value == 0.0 and "returned NaN" in result.reason


async def test_ragas_no_statements_nan_is_failing_score() -> None:
    ev = ragas_faithfulness(ScriptedChatModel(responses=[{"statements": []}]))
    result = await ev.aevaluate(EvalInput(query=QUESTION, contexts=CONTEXTS, output=ANSWER))
    assert result.value == 0.0 and "returned NaN" in result.reason and result.details["parse_errors"] == []


@pytest.mark.parametrize("mode", MODES)
async def test_ragas_timeout_is_failing_score(mode: str) -> None:
    model = ScriptedChatModel(responses=[{"rating": 2}, {"rating": 2}], sleep=5.0)
    ev = ragas_context_relevance(model, per_chunk=False, timeout=0.05)
    result = await score(ev, EvalInput(query=QUESTION, contexts=CONTEXTS), mode)
    assert result.value == 0.0 and result.reason == "ragas context_relevance timed out after 0.05s"
    assert result.details["timeout"] == 0.05


async def test_ragas_model_error_propagates() -> None:
    ev = ragas_faithfulness(ScriptedChatModel(responses=[ConnectionError("HTTP 503")]))
    with pytest.raises(ConnectionError, match="503"):
        await ev.aevaluate(EvalInput(query=QUESTION, contexts=CONTEXTS, output=ANSWER))


async def test_ragas_empty_context_is_failing_score() -> None:
    model = ScriptedChatModel(responses=[])
    result = await ragas_context_relevance(model).aevaluate(EvalInput(query=QUESTION, contexts=[]))
    assert result.value == 0.0 and result.reason.startswith("the context is empty")
    assert model.calls == 0


async def test_ragas_missing_field_names_it() -> None:
    result = await ragas_faithfulness(ScriptedChatModel(responses=[])).aevaluate(
        EvalInput(query=QUESTION, contexts=CONTEXTS)
    )
    assert result.value == 0.0 and result.details["missing"] == "response"
    assert "needs response" in result.reason and "keys=" in result.reason
    precision = await ragas_context_precision().aevaluate(EvalInput(contexts=CONTEXTS))
    assert precision.details["missing"] == "reference_contexts"


# -- field mapping, per-chunk scores, the gate ----------------------------------------------------


async def test_ragas_keys_read_fields_from_state() -> None:
    ev = ragas_response_groundedness(
        ScriptedChatModel(responses=[{"rating": 2}, {"rating": 2}]), keys={"response": "draft"}
    )
    result = await ev.aevaluate(EvalInput(contexts=CONTEXTS, state={"draft": {"born": 1879}}))
    assert result.value == 1.0


def test_ragas_keys_unknown_field_rejected() -> None:
    with pytest.raises(ValueError, match="'response'.*does not take"):
        ragas_context_relevance(ScriptedChatModel(responses=[]), keys={"response": "draft"})


def rating_by_content(messages: list[BaseMessage]) -> dict[str, int]:
    text = "\n".join(str(m.content) for m in messages)
    return {"rating": 2 if "Ulm" in text else 0}


async def test_ragas_per_chunk_scores_each_chunk() -> None:
    model = ScriptedChatModel(responses=[rating_by_content], cycle=True)
    result = await ragas_context_relevance(model).aevaluate(EvalInput(query=QUESTION, contexts=CONTEXTS))
    assert result.value == 1.0 and result.details["per_chunk"] == [1.0, 0.0]
    assert model.calls == 6  # two judges for the whole context and for each chunk


def test_ragas_metric_in_context_gate_drops_chunks() -> None:
    from reliable_graph import ContextGate

    class State(ReliabilityState, total=False):
        question: str
        context: list[Any]

    relevance = ragas_context_relevance(ScriptedChatModel(responses=[rating_by_content], cycle=True))
    assert isinstance(relevance, Evaluator)
    gate = ContextGate(
        relevance,
        name="gate",
        step="answer",
        threshold=0.5,
        drop_below=0.5,
        pass_to=END,
        refetch_to="refetch",
        escalate_to="human",
    )
    builder = StateGraph(State)
    builder.add_node(gate)
    builder.add_node("refetch", lambda s: {})
    builder.add_node("human", lambda s: {})
    builder.add_edge(START, "gate")
    out = builder.compile().invoke({"question": QUESTION, "context": CONTEXTS})
    assert [c["text"] for c in out["context"]] == [CONTEXTS[0]]


async def test_ragas_sync_evaluate_inside_running_loop() -> None:
    ev = ragas_context_relevance(ScriptedChatModel(responses=[{"rating": 2}, {"rating": 0}]), per_chunk=False)
    result = ev.evaluate(EvalInput(query=QUESTION, contexts=CONTEXTS))  # called from the test's event loop
    assert result.value == 0.5


# -- construction and bridging --------------------------------------------------------------------


def test_ragas_bridge_is_instructor_llm() -> None:
    bridge = ragas_llm(ScriptedChatModel(responses=[{"rating": 1}, "not structured", {"rating": "two"}]))
    assert isinstance(bridge, InstructorBaseRagasLLM)
    from ragas.metrics.collections.context_relevance.util import ContextRelevanceOutput

    assert bridge.generate("rate", ContextRelevanceOutput).rating == 1
    with pytest.raises(UnparseableAnswerError, match="could not be parsed as ContextRelevanceOutput"):
        bridge.generate("rate", ContextRelevanceOutput)
    with pytest.raises(UnparseableAnswerError, match="ValidationError"):
        bridge.generate("rate", ContextRelevanceOutput)


def test_ragas_legacy_llm_without_deprecation_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = RagasMetric(metric=LegacyContextRelevance(), llm=ScriptedChatModel(responses=["2", "2"]))
        assert ev.evaluate(EvalInput(query=QUESTION, contexts=CONTEXTS)).value == 1.0
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


def test_ragas_user_metric_not_modified() -> None:
    metric = LegacyContextRelevance()
    RagasMetric(metric=metric, llm=ScriptedChatModel(responses=[]))
    assert metric.llm is None


def test_ragas_construction_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="needs an LLM: pass llm="):
        RagasMetric(metric=LegacyContextRelevance())
    with pytest.raises(ValueError, match="does not use an LLM"):
        RagasMetric(metric=NonLLMContextRecall(), llm=ScriptedChatModel(responses=[]))
    with pytest.raises(TypeError, match="needs a ragas single-turn metric"):
        RagasMetric(metric=object())
    with pytest.raises(ValueError, match="timeout"):
        ragas_context_recall(timeout=0)
    with pytest.raises(ValueError, match="threshold"):
        ragas_context_precision(threshold=1.5)
    with pytest.raises(TypeError, match="chat model"):
        ragas_llm(object())


def test_ragas_missing_ragas_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ragas", None)
    with pytest.raises(ImportError, match=r'pip install "reliable-graph\[ragas\]"'):
        ragas_context_recall()
    with pytest.raises(ImportError, match=r'pip install "reliable-graph\[ragas\]"'):
        RagasMetric(metric=object())


def test_ragas_not_imported_by_reliable_graph() -> None:
    code = (
        "import sys, reliable_graph, reliable_graph.evaluators, reliable_graph.evaluators.ragas\n"
        "assert not [m for m in sys.modules if m == 'ragas' or m.startswith('ragas.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ragas_analytics_off() -> None:
    import ragas._analytics

    assert os.environ["RAGAS_DO_NOT_TRACK"] == "true" and ragas._analytics.do_not_track()
