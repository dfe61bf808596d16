"""Small graphs shared by the node tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step


class State(ReliabilityState, total=False):
    question: str
    context: list[Any]
    output: Any
    log: list[str]


def config(thread: str = "t") -> Any:
    return {"configurable": {"thread_id": thread}}


def is_good(output: Any) -> bool:
    return output == "good"


GOOD = Predicate(fn=is_good, name="is_good", reason="output is not 'good'")


def scripted(outputs: list[Any], calls: list[Any] | None = None) -> Callable[[Any], dict[str, Any]]:
    """A step that returns the scripted outputs in turn and records the context it saw."""
    seen = calls if calls is not None else []

    def step(state: Any) -> dict[str, Any]:
        seen.append(list(state.get("context") or []))
        return {"output": outputs[min(len(seen) - 1, len(outputs) - 1)]}

    return step


def one_step_graph(step_fn: Callable[..., Any], **kwargs: Any) -> Any:
    """START -> step (reliable_step) -> END, with a HumanEscalation node, on InMemorySaver."""
    builder = StateGraph(State)
    options: dict[str, Any] = {"evaluator": GOOD, "threshold": 1.0, "pass_to": END, "name": "step"}
    options.update(kwargs)
    builder.add_node(reliable_step(step_fn, **options))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "step")
    return builder.compile(checkpointer=InMemorySaver())
