from __future__ import annotations

import json
import math
from typing import Any

import pytest
from graphs import GOOD, State, config, one_step_graph, scripted
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from reliable_graph import (
    AlreadyAnsweredError,
    EscalationSerializationError,
    HumanEscalation,
    InvalidAnswerError,
    answer_escalations,
    parse_answer,
    reliable_step,
    run_outcome,
    step_outcomes,
    to_agent_inbox,
    to_hitl_request,
)


def paused(outputs: list[Any], **kwargs: Any) -> tuple[Any, list[Any]]:
    calls: list[Any] = []
    graph = one_step_graph(scripted(outputs, calls), max_retries=0, **kwargs)
    out = graph.invoke({"question": "q", "context": ["c"]}, config())
    assert "__interrupt__" in out
    return graph, calls


def test_escalation_payload_is_json_serialisable() -> None:
    graph, _ = paused(["bad"])
    payload = graph.get_state(config()).interrupts[0].value
    assert json.loads(json.dumps(payload)) == payload


def test_escalation_approve_keeps_output_and_continues() -> None:
    graph, calls = paused(["bad"])
    out = graph.invoke(Command(resume={"action": "approve", "reviewer": "ana"}), config())
    assert out["output"] == "bad" and step_outcomes(out) == {"step": "approved"}
    assert out["reliability"]["tasks"]["step"]["decision"] == {"action": "approve", "reviewer": "ana"}
    assert len(calls) == 1 and run_outcome(out) == "ok"


def test_escalation_edit_replaces_output() -> None:
    graph, _ = paused(["bad"])
    out = graph.invoke(Command(resume={"action": "edit", "output": "fixed"}), config())
    assert out["output"] == "fixed" and step_outcomes(out) == {"step": "edited"}


def test_escalation_provide_context_reruns_step_with_it() -> None:
    graph, calls = paused(["bad", "good"])
    out = graph.invoke(Command(resume={"action": "provide_context", "context": ["from human"]}), config())
    assert [c["text"] for c in calls[1]] == ["c", "from human"]
    assert out["output"] == "good" and step_outcomes(out) == {"step": "retry_pass"}


def test_escalation_retry_reruns_step_once_then_escalates_again() -> None:
    graph, calls = paused(["bad", "bad"])
    out = graph.invoke(Command(resume={"action": "retry"}), config())
    assert len(calls) == 2 and "__interrupt__" in out
    assert [a["attempt"] for a in out["__interrupt__"][0].value["attempts"]] == [1, 2]


def test_escalation_terminate_ends_gracefully() -> None:
    graph, calls = paused(["bad"])
    out = graph.invoke(Command(resume={"action": "terminate", "reason": "out of scope"}), config())
    assert run_outcome(out) == "terminated" and step_outcomes(out) == {"step": "terminated"}
    assert "output" not in out and graph.get_state(config()).next == ()


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ({"action": "publish"}, "action"),
        ({"reason": "no action"}, "action"),
        ({"action": 3}, "action"),
        ({"action": "edit"}, "output"),
        ({"action": "provide_context"}, "context"),
        ({"action": "provide_context", "context": "not a list"}, "context"),
        ({"action": "approve", "output": "sneaky"}, "only for 'edit'"),
        ({"action": "approve", "extra": 1}, "extra"),
        ("approve", "action"),
        ({"action": "edit", "output": float("nan")}, "finite"),
        ({"action": "provide_context", "context": [{"txt": "no text key"}]}, "context"),
        ({"action": "provide_context", "context": [""]}, "empty"),
        ([{"type": "accept"}, {"type": "ignore"}], "exactly one"),
        ([], "exactly one"),
        ({"decisions": []}, "exactly one"),
    ],
)
def test_escalation_invalid_decision_changes_nothing(decision: Any, message: str) -> None:
    graph, calls = paused(["bad"])
    before = graph.get_state(config())
    # through the library: a clear error before anything is sent
    with pytest.raises(InvalidAnswerError, match=message):
        answer_escalations(graph, config(), decision)
    assert graph.get_state(config()).config == before.config
    # raw Command(resume=...): the same escalation is asked again with the reason; nothing applied
    [first] = before.interrupts
    out = graph.invoke(Command(resume={first.id: decision}), config())
    [again] = out["__interrupt__"]
    assert message.lower() in again.value["rejected"]["reason"].lower()
    assert again.value["step"] == "step" and "output" not in out and run_outcome(out) == "escalated"
    # invoke(None) does not replay the rejected answer: the escalation still waits
    replay = graph.invoke(None, config())
    assert [i.value["id"] for i in replay["__interrupt__"]] == [first.value["id"]]
    out = graph.invoke(Command(resume={again.id: {"action": "edit", "output": "ok"}}), config())
    assert out["output"] == "ok" and len(calls) == 1 and step_outcomes(out) == {"step": "edited"}


def test_escalation_allowed_decisions_are_enforced() -> None:
    builder = StateGraph(State)
    builder.add_node(
        reliable_step(scripted(["bad"]), name="step", evaluator=GOOD, threshold=1.0, max_retries=0, pass_to=END)
    )
    builder.add_node(HumanEscalation(allowed=["approve", "terminate"]))
    builder.add_edge(START, "step")
    graph = builder.compile(checkpointer=InMemorySaver())
    out = graph.invoke({"question": "q"}, config())
    assert out["__interrupt__"][0].value["allowed_decisions"] == ["approve", "terminate"]
    with pytest.raises(InvalidAnswerError, match="not allowed"):
        answer_escalations(graph, config(), {"action": "edit", "output": "x"})
    out = graph.invoke(Command(resume={"action": "edit", "output": "x"}), config())
    assert "not allowed" in out["__interrupt__"][0].value["rejected"]["reason"]
    assert step_outcomes(graph.invoke(Command(resume={"action": "approve"}), config())) == {"step": "approved"}


def test_escalation_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="allowed"):
        HumanEscalation(allowed=["approve", "shrug"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="format"):
        HumanEscalation(format="slack")  # type: ignore[arg-type]


def test_escalation_reached_plainly_with_nothing_to_review_does_nothing() -> None:
    # escalating nodes also trigger it plainly so that defer=True fan-ins wait for reviews
    builder = StateGraph(State)
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "human_escalation")
    out = builder.compile(checkpointer=InMemorySaver()).invoke({"question": "q"}, config())
    assert out["question"] == "q" and not out.get("reliability", {}).get("tasks")


def test_escalation_non_serialisable_output_is_a_clear_error() -> None:
    class Opaque:
        pass

    graph = one_step_graph(lambda s: {"output": Opaque()}, max_retries=0)
    with pytest.raises(EscalationSerializationError) as info:
        graph.invoke({"question": "q"}, config())
    assert info.value.step == "step" and info.value.field == "output"


async def test_escalation_async_resume() -> None:
    graph = one_step_graph(scripted(["bad"]), max_retries=0)
    out = await graph.ainvoke({"question": "q"}, config())
    assert "__interrupt__" in out
    out = await graph.ainvoke(Command(resume={"action": "edit", "output": "async"}), config())
    assert out["output"] == "async"


def test_escalation_agent_inbox_round_trip() -> None:
    builder = StateGraph(State)
    builder.add_node(
        reliable_step(scripted(["bad"]), name="step", evaluator=GOOD, threshold=1.0, max_retries=0, pass_to=END)
    )
    builder.add_node(HumanEscalation(format="agent_inbox"))
    builder.add_edge(START, "step")
    graph = builder.compile(checkpointer=InMemorySaver())
    out = graph.invoke({"question": "q"}, config())
    request = out["__interrupt__"][0].value[0]
    assert request["action_request"]["action"] == "step" and request["config"]["allow_respond"] is True
    assert request["action_request"]["args"] == {"output": "bad"}  # only what an edit changes is editable
    description = request["description"]  # everything else a reviewer needs, as Markdown
    assert "scored **0.00** against a threshold of **1.00**" in description
    assert {"### Output", "### Inputs", "### Context (0 chunks)", "### Attempts"} <= set(description.split("\n\n"))
    assert request["escalation"]["step"] == "step" and request["escalation"]["attempts"]
    out = graph.invoke(
        Command(resume=[{"type": "edit", "args": {"action": "step", "args": {"output": "inbox"}}}]), config()
    )
    assert out["output"] == "inbox" and step_outcomes(out) == {"step": "edited"}


def test_agent_inbox_mapping_covers_all_types() -> None:
    assert parse_answer([{"type": "accept"}]).action == "approve"
    assert parse_answer([{"type": "ignore"}]).action == "terminate"
    assert parse_answer([{"type": "response", "args": "see Q3"}]).context_chunks()[0]["text"] == "see Q3"
    assert parse_answer([{"type": "edit", "args": {"action": "s", "args": {"output": 1}}}]).output == 1
    # Agent Inbox's UI sends an edited dict back as text: it is parsed back to the output's type
    edited = {"type": "edit", "args": {"action": "s", "args": {"output": '{"a": 2}'}}}
    assert parse_answer([edited], original={"a": 1}).output == {"a": 2}
    with pytest.raises(InvalidAnswerError, match="JSON"):
        parse_answer([{"type": "edit", "args": {"action": "s", "args": {"output": "{not json"}}}], original={"a": 1})
    with pytest.raises(InvalidAnswerError, match="type"):
        parse_answer([{"type": "shrug"}])
    inbox = to_agent_inbox({"step": "s", "confidence": 0.1, "threshold": 0.5, "reason": "r"})
    assert all(inbox["config"].values())


def test_hitl_middleware_mapping_covers_all_types() -> None:
    assert parse_answer({"decisions": [{"type": "approve"}]}).action == "approve"
    rejected = parse_answer({"decisions": [{"type": "reject", "message": "wrong"}]})
    assert rejected.action == "terminate" and rejected.reason == "wrong"
    assert parse_answer({"decisions": [{"type": "respond", "message": "use Q3"}]}).action == "provide_context"
    edit = {"type": "edit", "edited_action": {"name": "s", "args": {"output": "new"}}}
    assert parse_answer({"decisions": [edit]}).output == "new"
    request = to_hitl_request({"step": "s", "reason": "r", "allowed_decisions": ["approve", "provide_context"]})
    assert request["review_configs"] == [{"action_name": "s", "allowed_decisions": ["approve", "respond"]}]


def test_escalation_hitl_format_round_trip() -> None:
    builder = StateGraph(State)
    builder.add_node(
        reliable_step(scripted(["bad"]), name="step", evaluator=GOOD, threshold=1.0, max_retries=0, pass_to=END)
    )
    builder.add_node(HumanEscalation(format="hitl"))
    builder.add_edge(START, "step")
    graph = builder.compile(checkpointer=InMemorySaver())
    out = graph.invoke({"question": "q"}, config())
    request = out["__interrupt__"][0].value
    assert request["action_requests"][0]["name"] == "step"
    edit = {"type": "edit", "edited_action": {"name": "step", "args": {"output": "hitl"}}}
    out = graph.invoke(Command(resume={"decisions": [edit]}), config())
    assert out["output"] == "hitl" and step_outcomes(out) == {"step": "edited"}


def test_answers_of_any_format_reach_any_rendering() -> None:
    graph, _ = paused(["bad"])
    out = graph.invoke(Command(resume=[{"type": "accept"}]), config())
    assert step_outcomes(out) == {"step": "approved"}


def test_empty_answers_get_a_clear_error() -> None:
    graph, _ = paused(["bad"])
    for answer in (None, {}):
        with pytest.raises(InvalidAnswerError, match="no answer"):
            answer_escalations(graph, config(), answer)
    assert run_outcome(graph.get_state(config())) == "escalated"


def test_reescalation_says_which_round_and_what_the_last_answer_was() -> None:
    graph, _ = paused(["bad", "still bad"])
    out = graph.invoke(Command(resume={"action": "retry", "reason": "try the new index"}), config())
    value = out["__interrupt__"][0].value
    assert value["round"] == 2 and value["previous_decision"]["action"] == "retry"
    assert "Escalation #2" in value["description"] and "try the new index" in value["description"]


def test_redeciding_from_an_earlier_checkpoint_refuses_or_applies_the_new_decision() -> None:
    graph, calls = paused(["bad"])
    out = answer_escalations(graph, config(), {"action": "edit", "output": "first"})
    assert out["output"] == "first"
    history = list(graph.get_state_history(config()))
    waiting = next(h for h in history if h.interrupts)
    # at the checkpoint where it was answered, LangGraph would replay "first": refused, clearly
    with pytest.raises(AlreadyAnsweredError) as info:
        answer_escalations(graph, waiting.config, {"action": "edit", "output": "second"})
    assert info.value.checkpoint_id == waiting.config["configurable"]["checkpoint_id"]
    # from the checkpoint before the escalation was raised, the step runs again and the new
    # decision applies (time travel re-runs the step: that is what going back means)
    before = history[history.index(waiting) + 1]
    replayed = graph.invoke(None, before.config)
    assert "__interrupt__" in replayed and len(calls) == 2
    out = answer_escalations(graph, config(), {"action": "edit", "output": "second"})
    assert out["output"] == "second" and step_outcomes(out) == {"step": "edited"}


def test_approve_applies_the_steps_whole_update() -> None:
    graph = one_step_graph(lambda s: {"output": "bad", "log": ["drafted"], "context": ["its own"]}, max_retries=0)
    graph.invoke({"question": "q", "context": ["c"]}, config("whole"))
    out = answer_escalations(graph, config("whole"), {"action": "approve"})
    assert out["output"] == "bad" and out["log"] == ["drafted"] and out["context"] == ["its own"]


def test_escalation_payload_shows_nan_and_infinity_as_text_and_approve_applies_them() -> None:
    for n, value in enumerate((float("nan"), float("inf"), {"score": float("-inf")})):
        graph = one_step_graph(lambda s, v=value: {"output": v}, max_retries=0)
        out = graph.invoke({"question": "q"}, config(f"nan-{n}"))
        [pending] = out["__interrupt__"]
        shown = pending.value["output"]
        assert shown in ("NaN", "Infinity", {"score": "-Infinity"})
        assert pending.value["notes"] == [
            f"{field}: NaN or Infinity, which strict JSON cannot hold, shown as text" for field in ("output", "update")
        ]
        done = answer_escalations(graph, config(f"nan-{n}"), {"action": "approve"})
        applied = done["output"]["score"] if isinstance(done["output"], dict) else done["output"]
        assert math.isnan(applied) or math.isinf(applied)  # the step's own value, kept by the checkpoint


def test_a_lone_surrogate_in_an_edited_key_is_refused() -> None:
    """A checkpointer stores a lone surrogate as a replacement character: the answer would apply changed."""
    from reliable_graph import InvalidAnswerError, parse_answer

    with pytest.raises(InvalidAnswerError, match="lone surrogate"):
        parse_answer({"action": "edit", "output": {"\ud800x": None}})
