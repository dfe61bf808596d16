from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pytest
from graphs import GOOD, State, config, one_step_graph, scripted
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

from reliable_graph import (
    EvalInput,
    HumanEscalation,
    MissingStateKeyError,
    Score,
    merge_reliability,
    reliable_step,
    step_outcomes,
)


def test_reliable_step_pass_scores_inside_its_own_node() -> None:
    graph = one_step_graph(scripted(["good"]))
    out = graph.invoke({"question": "q"}, config())
    assert out["output"] == "good"
    assert step_outcomes(out) == {"step": "pass"}
    # one superstep for the step: input, step (no extra scoring node)
    steps = [s.metadata["step"] for s in graph.get_state_history(config())]
    assert max(steps) == 1


def test_reliable_step_retry_pass_refetches_enriched_context() -> None:
    queries: list[str] = []

    def retriever(query: str) -> list[str]:
        queries.append(query)
        return ["new evidence"]

    seen: list[Any] = []
    graph = one_step_graph(scripted(["bad", "good"], seen), refetch=retriever)
    out = graph.invoke({"question": "capital?", "context": ["old"]}, config())
    assert step_outcomes(out) == {"step": "retry_pass"}
    assert out["output"] == "good"
    assert queries and queries[0].startswith("capital?") and "output is not 'good'" in queries[0]
    assert seen[1] == [{"text": "old", "metadata": {}}, {"text": "new evidence", "metadata": {}}]
    attempts = out["reliability"]["tasks"]["step"]["attempts"]
    assert [a["verdict"] for a in attempts] == ["retry", "pass"]


def test_reliable_step_failed_attempt_writes_nothing_but_its_record() -> None:
    graph = one_step_graph(scripted(["bad"]), max_retries=0)
    out = graph.invoke({"question": "q"}, config())
    assert "output" not in out
    assert step_outcomes(out) == {"step": "escalate"}


def test_reliable_step_escalates_after_retries_with_full_payload() -> None:
    graph = one_step_graph(scripted(["bad", "worse"]), input_keys=["question"])
    out = graph.invoke({"question": "q", "context": ["c1"]}, config("e"))
    payload = out["__interrupt__"][0].value
    assert payload["step"] == "step" and payload["confidence"] == 0.0 and payload["threshold"] == 1.0
    assert payload["reason"] == "output is not 'good'"
    assert [a["attempt"] for a in payload["attempts"]] == [1, 2]
    assert payload["inputs"] == {"question": "q"}
    assert payload["output"] == "worse"
    assert payload["context"] == [{"text": "c1", "metadata": {}}]
    assert payload["thread_id"] == "e" and payload["last_good_checkpoint_id"]
    assert payload["allowed_decisions"] == ["approve", "edit", "provide_context", "retry", "terminate"]
    assert payload["created_at"].endswith("+00:00")


def test_reliable_step_max_retries_is_configurable() -> None:
    calls: list[Any] = []
    graph = one_step_graph(scripted(["bad", "bad", "bad", "good"], calls), max_retries=3)
    out = graph.invoke({"question": "q"}, config())
    assert len(calls) == 4 and step_outcomes(out) == {"step": "retry_pass"}


async def test_reliable_step_async_step_and_ainvoke() -> None:
    async def step(state: Any) -> dict[str, Any]:
        return {"output": "good"}

    graph = one_step_graph(step)
    out = await graph.ainvoke({"question": "q"}, config())
    assert step_outcomes(out) == {"step": "pass"}


async def test_reliable_step_sync_step_under_ainvoke_retries() -> None:
    graph = one_step_graph(scripted(["bad", "good"]), refetch=lambda q: ["x"])
    out = await graph.ainvoke({"question": "q"}, config())
    assert step_outcomes(out) == {"step": "retry_pass"}


def test_reliable_step_async_step_under_invoke_is_a_clear_error() -> None:
    async def step(state: Any) -> dict[str, Any]:
        return {"output": "good"}

    with pytest.raises(TypeError, match="ainvoke"):
        one_step_graph(step).invoke({"question": "q"}, config())


def test_reliable_step_escalate_on_skips_retries() -> None:
    class Http400(Exception):
        pass

    calls: list[int] = []

    def step(state: Any) -> dict[str, Any]:
        calls.append(1)
        raise Http400("bad request")

    out = one_step_graph(step, escalate_on=(Http400,)).invoke({"question": "q"}, config())
    assert len(calls) == 1
    assert "Http400: bad request" in out["__interrupt__"][0].value["reason"]


def test_reliable_step_evaluator_exception_is_a_failing_score() -> None:
    def boom(output: Any) -> bool:
        raise RuntimeError("validator down")

    from reliable_graph import Predicate

    out = one_step_graph(scripted(["good"]), evaluator=Predicate(fn=boom, name="boom"), max_retries=0).invoke(
        {"question": "q"}, config()
    )
    assert "RuntimeError: validator down" in out["__interrupt__"][0].value["reason"]


def test_reliable_step_evaluator_exception_reraised_on_request() -> None:
    def boom(output: Any) -> bool:
        raise RuntimeError("validator down")

    from reliable_graph import Predicate

    graph = one_step_graph(scripted(["good"]), evaluator=Predicate(fn=boom, name="boom"), raise_errors=True)
    with pytest.raises(RuntimeError, match="validator down"):
        graph.invoke({"question": "q"}, config())


@pytest.mark.parametrize("threshold", [-0.1, 1.01, float("nan"), "0.5", True])
def test_reliable_step_rejects_bad_threshold(threshold: Any) -> None:
    with pytest.raises(ValueError, match="threshold"):
        reliable_step(scripted(["x"]), name="s", evaluator=GOOD, threshold=threshold, pass_to=END)


def test_reliable_step_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        reliable_step(scripted(["x"]), name="s", evaluator=GOOD, threshold=0.5, pass_to=END, max_retries=-1)
    with pytest.raises(TypeError, match="evaluator"):
        reliable_step(scripted(["x"]), name="s", evaluator=object(), threshold=0.5, pass_to=END)
    with pytest.raises(ValueError, match="name"):
        reliable_step(lambda s: {}, evaluator=GOOD, threshold=0.5, pass_to=END)
    with pytest.raises(TypeError, match="escalate_on"):
        reliable_step(scripted(["x"]), name="s", evaluator=GOOD, threshold=0.5, pass_to=END, escalate_on=ValueError)  # type: ignore[arg-type]


def test_reliable_step_missing_output_key_names_it() -> None:
    graph = one_step_graph(lambda s: {"answer": "good"})
    with pytest.raises(KeyError, match="'output'"):
        graph.invoke({"question": "q"}, config())


def test_reliable_step_scores_with_query_and_context() -> None:
    seen: list[EvalInput] = []

    class Spy:
        name = "spy"

        def evaluate(self, sample: EvalInput) -> Score:
            seen.append(sample)
            return Score(value=1.0, reason="ok", evaluator="spy")

    one_step_graph(scripted(["good"]), evaluator=Spy()).invoke({"question": "q?", "context": ["a"]}, config())
    assert seen[0].query == "q?" and seen[0].texts == ["a"] and seen[0].output == "good" and seen[0].step == "step"


class PydState(BaseModel):
    question: str
    context: list[Any] = Field(default_factory=list)
    output: Any = None
    reliability: Annotated[dict[str, Any], merge_reliability] = Field(default_factory=dict)


@dataclasses.dataclass
class DcState:
    question: str
    context: list[Any] = dataclasses.field(default_factory=list)
    output: Any = None
    reliability: Annotated[dict[str, Any], merge_reliability] = dataclasses.field(default_factory=dict)


@pytest.mark.parametrize("schema", [PydState, DcState])
def test_reliable_step_works_with_pydantic_and_dataclass_states(schema: Any) -> None:
    outputs = iter(["bad", "good"])

    def step(state: Any) -> dict[str, Any]:
        assert isinstance(state, schema)
        return {"output": next(outputs)}

    builder = StateGraph(schema)
    builder.add_node(
        reliable_step(step, name="step", evaluator=GOOD, threshold=1.0, pass_to=END, refetch=lambda q: ["r"])
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "step")
    out = builder.compile(checkpointer=InMemorySaver()).invoke({"question": "q"}, config())
    assert step_outcomes(out) == {"step": "retry_pass"}
    assert [c["text"] for c in out["context"]] == ["r"]


def test_reliable_step_missing_query_key_names_key_and_node() -> None:
    builder = StateGraph(State)
    builder.add_node(
        reliable_step(
            scripted(["bad", "good"]),
            name="step",
            evaluator=GOOD,
            threshold=1.0,
            pass_to=END,
            refetch=lambda q: ["r"],
            query_key="topic",
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "step")
    with pytest.raises(MissingStateKeyError) as info:
        builder.compile(checkpointer=InMemorySaver()).invoke({"question": "q"}, config())
    assert info.value.key == "topic" and info.value.node == "step"


def test_reliable_step_streams_verdict_and_outcome_events() -> None:
    graph = one_step_graph(scripted(["bad", "good"]))
    events = [c for c in graph.stream({"question": "q"}, config(), stream_mode="custom")]
    kinds = [(e["type"], e.get("verdict") or e.get("outcome")) for e in events]
    assert kinds == [
        ("reliable_graph.verdict", "retry"),
        ("reliable_graph.verdict", "pass"),
        ("reliable_graph.outcome", "retry_pass"),
    ]
    # events go to the stream only: the checkpointed record stays compact
    record = graph.get_state(config()).values["reliability"]["tasks"]["step"]
    assert "events" not in graph.get_state(config()).values["reliability"]
    assert record["attempts"] == [{"n": 1, "score": 0.0, "verdict": "retry"}, {"n": 2, "score": 1.0, "verdict": "pass"}]


def test_reliable_step_unused_state_type_is_untouched() -> None:
    out = one_step_graph(scripted(["good"])).invoke({"question": "q", "log": ["mine"]}, config())
    assert out["log"] == ["mine"] and set(out) == {"question", "log", "output", "reliability"}
    _ = State


def test_reliable_step_refetch_without_a_query_fails_before_the_step_runs() -> None:
    calls: list[Any] = []
    graph = one_step_graph(scripted(["bad", "good"], calls), refetch=lambda q: ["x"])
    with pytest.raises(MissingStateKeyError) as info:
        graph.invoke({"context": ["c"]}, config("noq"))
    assert (info.value.key, info.value.node) == ("question", "step") and calls == []


def test_reliable_step_input_keys_left_out_of_a_run_are_not_shown() -> None:
    """An optional key named in `input_keys` but absent from a run's input: a passing step passes, an escalation
    shows the inputs the run has (LangGraph Server runs failed with MissingStateKeyError here)."""
    passing = one_step_graph(scripted(["good"]), input_keys=["question", "context"])
    assert step_outcomes(passing.invoke({"question": "q"}, config("optional-pass"))) == {"step": "pass"}
    failing = one_step_graph(scripted(["bad"]), input_keys=["question", "context"], max_retries=0)
    [pending] = failing.invoke({"question": "q"}, config("optional-esc"))["__interrupt__"]
    assert pending.value["inputs"] == {"question": "q"}


def test_a_missing_state_key_says_what_is_really_missing() -> None:
    err = MissingStateKeyError(node="step", key="topic")
    assert "this run's state does not hold" in str(err) and "not in the run's input" in str(err)


def test_a_reviewers_context_reaches_the_step_when_the_state_has_no_context_key() -> None:
    """provide_context on a graph whose state declares no `context` channel: never accepted and lost."""
    from langgraph.types import Command

    from reliable_graph import HumanEscalation, RegexMatch, ReliabilityState, reliable_step

    class NoContext(ReliabilityState, total=False):
        question: str
        answer: str

    seen: list[Any] = []

    def draft(state: Any) -> dict[str, Any]:
        seen.append(state.get("context"))
        texts = " ".join(c["text"] for c in state.get("context") or [])
        return {"answer": f"yes [{texts}]" if "policy" in texts else "maybe"}

    builder = StateGraph(NoContext)
    builder.add_node(
        reliable_step(
            draft,
            name="draft",
            evaluator=RegexMatch(pattern=r"policy \d"),
            threshold=1.0,
            max_retries=0,
            output_key="answer",
            pass_to=END,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "draft")
    graph = builder.compile(checkpointer=InMemorySaver())
    cfg = config("no-context-key")
    [first] = graph.invoke({"question": "q"}, cfg)["__interrupt__"]
    out = graph.invoke(Command(resume={first.id: {"action": "provide_context", "context": ["see policy 7"]}}), cfg)
    assert out["answer"] == "yes [see policy 7]" and step_outcomes(out) == {"draft": "retry_pass"}
    assert seen == [None, [{"text": "see policy 7", "metadata": {}}]]


def test_the_next_round_shows_the_context_a_reviewer_gave() -> None:
    from langgraph.types import Command

    graph = one_step_graph(scripted(["bad", "bad", "bad"]), max_retries=0)
    cfg = config("round-two")
    [first] = graph.invoke({"question": "q"}, cfg)["__interrupt__"]
    [second] = graph.invoke(
        Command(resume={first.id: {"action": "provide_context", "context": ["the 2024 table"], "reviewer": "ana"}}), cfg
    )["__interrupt__"]
    assert second.value["round"] == 2
    assert [c["text"] for c in second.value["context"]] == ["the 2024 table"]
    assert second.value["previous_decision"] == {
        "action": "provide_context",
        "reviewer": "ana",
        "context": ["the 2024 table"],
    }
