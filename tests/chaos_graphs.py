"""Graphs for the chaos runner's tests (imported by its worker processes too)."""

from __future__ import annotations

import os
from typing import Any

from langgraph.graph import END, START, StateGraph

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, inject_faults, reliable_step
from reliable_graph.resilience import ConnectorRetry


class State(ReliabilityState, total=False):
    question: str
    context: list[Any]
    output: str
    summary: str


def _search(query: str) -> list[str]:
    return [f"a chunk about {query}"]


search = inject_faults(_search, name="search")
FAST = ConnectorRetry(max_attempts=6, initial_wait=0.001, max_wait=0.01)


def answer(state: State) -> dict[str, Any]:
    chunks = search(state["question"])
    return {"output": f"answer from {len(chunks)} chunk(s)", "context": chunks}


def summarize(state: State) -> dict[str, Any]:
    return {"summary": search(state["output"])[0]}


def user_pipeline() -> StateGraph[Any, Any, Any, Any]:
    """Two reliable steps calling a fault-injected search; the second escalates when told to."""
    strict = os.environ.get("CHAOS_GRAPHS_ESCALATE") == "1"
    builder = StateGraph(State)
    builder.add_node(
        reliable_step(
            answer,
            evaluator=Predicate(fn=lambda o: "chunk" in o, name="cites"),
            threshold=1.0,
            pass_to="summarize",
            retry=FAST,
        )
    )
    builder.add_node(
        reliable_step(
            summarize,
            evaluator=Predicate(fn=lambda s: not strict, name="strict"),
            threshold=1.0,
            output_key="summary",
            pass_to=END,
            retry=FAST,
            max_retries=0,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "answer")
    return builder


def buggy_pipeline() -> StateGraph[Any, Any, Any, Any]:
    """A step with a bug on odd questions: an unknown error that must surface, not be retried."""
    builder = StateGraph(State)

    def step(state: State) -> dict[str, Any]:
        if state["question"].endswith(("1", "3", "5", "7", "9")):
            return {"output": {}["missing"]}
        return {"output": "ok"}

    builder.add_node(
        reliable_step(step, name="step", evaluator=Predicate(fn=bool, name="any"), threshold=1.0, pass_to=END)
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "step")
    return builder


def question(run: int) -> dict[str, Any]:
    return {"question": f"question {run}"}
