from __future__ import annotations

from typing import Any

import pytest
from graphs import GOOD, State, scripted
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from reliable_graph import HumanEscalation, RouteTargetError, reliable_step, validate_graph


def test_validate_graph_accepts_a_correct_graph() -> None:
    builder = StateGraph(State)
    builder.add_node(reliable_step(scripted(["good"]), name="s", evaluator=GOOD, threshold=1.0, pass_to=END))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "s")
    compiled = builder.compile()
    assert validate_graph(compiled) is compiled and validate_graph(builder) is builder


def test_validate_graph_names_an_unknown_target() -> None:
    builder = StateGraph(State)
    builder.add_node(reliable_step(scripted(["good"]), name="s", evaluator=GOOD, threshold=1.0, pass_to=END))
    builder.add_edge(START, "s")
    with pytest.raises(RouteTargetError) as info:
        validate_graph(builder)
    assert (info.value.node, info.value.parameter, info.value.target) == (
        "s",
        "escalate_to",
        "human_escalation",
    )
    # the node declares its destinations, so LangGraph's own compile() refuses the graph too
    with pytest.raises(ValueError, match="human_escalation"):
        builder.compile()


def test_nodes_draw_their_retry_loop_and_escalation_edges() -> None:
    builder = StateGraph(State)
    builder.add_node(reliable_step(scripted(["good"]), name="s", evaluator=GOOD, threshold=1.0, pass_to="t"))
    builder.add_node(reliable_step(scripted(["good"]), name="t", evaluator=GOOD, threshold=1.0, pass_to=END))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "s")
    edges = {(e.source, e.target, e.conditional) for e in builder.compile().get_graph().edges}
    assert {("s", "s", True), ("s", "t", True), ("s", "human_escalation", True)} <= edges
    assert {("t", "t", True), ("t", "__end__", True), ("t", "human_escalation", True)} <= edges


def test_validate_graph_requires_the_reliability_key() -> None:
    class Plain(TypedDict, total=False):
        question: str
        output: Any

    builder = StateGraph(Plain)
    builder.add_node(reliable_step(scripted(["good"]), name="s", evaluator=GOOD, threshold=1.0, pass_to=END))
    builder.add_edge(START, "s")
    with pytest.raises(ValueError, match="reliability"):
        validate_graph(builder)


def test_validate_graph_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="StateGraph"):
        validate_graph(object())
