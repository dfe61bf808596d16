from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from reliable_graph import (
    HumanEscalation,
    Predicate,
    ReliabilityState,
    merge_reliability,
    reliable_step,
    run_outcome,
    step_outcomes,
    task_records,
)


def rec(step: str, rev: int, **fields: object) -> dict[str, object]:
    return {"step": step, "rev": rev, **fields}


def test_merge_reliability_keeps_the_newest_revision_of_each_task() -> None:
    a = {"tasks": {"s": rec("s", 1, pending="retry"), "t": rec("t", 1, outcome="pass")}}
    b = {"tasks": {"s": rec("s", 2, outcome="retry_pass")}}
    merged = merge_reliability(a, b)
    assert step_outcomes(merged) == {"s": "retry_pass", "t": "pass"}
    # order does not matter, and an older copy never wins (a subgraph handing back stale records)
    assert merge_reliability(b, a) == merged == merge_reliability(merged, a)


def test_merge_reliability_is_idempotent() -> None:
    a = {"tasks": {"s": rec("s", 3, outcome="approved"), "u#1": rec("u", 1, outcome="pass", path="x/u")}}
    assert merge_reliability(a, a) == a
    assert merge_reliability(merge_reliability(a, a), a) == a


def test_merge_reliability_handles_none() -> None:
    assert merge_reliability(None, None) == {"tasks": {}}
    assert merge_reliability({"tasks": {"s": rec("s", 1)}}, None) == {"tasks": {"s": rec("s", 1)}}


def test_run_outcome_sees_pending_escalation() -> None:
    assert run_outcome({"reliability": {"tasks": {"s": rec("s", 2, pending="review")}}}) == "escalated"
    assert run_outcome({}) == "ok"
    assert run_outcome({"__interrupt__": ["anything"]}) == "escalated"


class S(ReliabilityState, total=False):
    question: str
    output: str


def test_run_outcome_tells_a_dismissed_escalation_from_a_waiting_one() -> None:
    builder = StateGraph(S)
    builder.add_node(
        reliable_step(
            lambda s: {"output": "?"},
            name="draft",
            evaluator=Predicate(fn=lambda o: o != "?"),
            threshold=1.0,
            max_retries=0,
            pass_to=END,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "draft")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "d"}}
    graph.invoke({"question": "q"}, config)
    assert run_outcome(graph.get_state(config)) == "escalated"
    # what Agent Inbox's "Mark as Resolved" does: end the thread behind the library's back
    graph.update_state(config, None, as_node=END)
    snapshot = graph.get_state(config)
    assert not snapshot.interrupts and run_outcome(snapshot) == "dismissed"
    assert task_records(snapshot)["draft"]["pending"] == "review"
