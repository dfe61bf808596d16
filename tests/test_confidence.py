from __future__ import annotations

from typing import Any

import pytest
from graphs import GOOD, State, config
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from reliable_graph import ConfidenceRouter, HumanEscalation, Refetch, latest_verdict, step_outcomes


def router_graph(outputs: list[Any], **kwargs: Any) -> tuple[Any, list[Any]]:
    calls: list[Any] = []

    def draft(state: Any) -> dict[str, Any]:
        calls.append([c["text"] if isinstance(c, dict) else c for c in state.get("context") or []])
        return {"output": outputs[min(len(calls) - 1, len(outputs) - 1)]}

    builder = StateGraph(State)
    builder.add_node("draft", draft)
    builder.add_node(
        ConfidenceRouter(
            GOOD,
            name="check",
            step="draft",
            threshold=1.0,
            pass_to=END,
            retry_to="refetch",
            escalate_to="human_escalation",
            rerun_to="draft",
            **kwargs,
        )
    )
    builder.add_node(Refetch(lambda q: ["more"], name="refetch", step="draft", goto="draft"))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "check")
    return builder.compile(checkpointer=InMemorySaver()), calls


def test_confidence_router_pass() -> None:
    graph, calls = router_graph(["good"])
    out = graph.invoke({"question": "q"}, config())
    assert step_outcomes(out) == {"draft": "pass"} and latest_verdict(out, "draft") == "pass"


def test_confidence_router_retry_through_refetch_then_pass() -> None:
    graph, calls = router_graph(["bad", "good"])
    out = graph.invoke({"question": "q", "context": []}, config())
    assert calls == [[], ["more"]] and step_outcomes(out) == {"draft": "retry_pass"}


def test_confidence_router_escalates_and_reviewer_retry_reruns_step() -> None:
    graph, calls = router_graph(["bad", "bad", "good"])
    out = graph.invoke({"question": "q"}, config())
    assert out["__interrupt__"][0].value["step"] == "draft"
    out = graph.invoke(Command(resume={"action": "retry"}), config())
    assert len(calls) == 3 and out["output"] == "good" and step_outcomes(out) == {"draft": "retry_pass"}


async def test_confidence_router_async() -> None:
    graph, _ = router_graph(["bad", "good"])
    out = await graph.ainvoke({"question": "q"}, config())
    assert step_outcomes(out) == {"draft": "retry_pass"}


def test_confidence_router_conditional_edges_mode() -> None:
    builder = StateGraph(State)
    builder.add_node("draft", lambda s: {"output": "bad"})
    builder.add_node(ConfidenceRouter(GOOD, name="check", step="draft", threshold=1.0, max_retries=0))
    builder.add_node("fallback", lambda s: {"output": "fallback"})
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "check")
    builder.add_conditional_edges(
        "check", lambda s: latest_verdict(s, "draft"), {"pass": END, "retry": "draft", "escalate": "fallback"}
    )
    builder.add_edge("fallback", END)
    out = builder.compile().invoke({"question": "q"})
    assert out["output"] == "fallback"


def test_confidence_router_validates_configuration() -> None:
    with pytest.raises(ValueError, match="threshold"):
        ConfidenceRouter(GOOD, threshold=1.5)
    with pytest.raises(ValueError, match="retry_to, escalate_to"):
        ConfidenceRouter(GOOD, threshold=0.5, pass_to="x")
