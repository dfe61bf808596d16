"""validate_graph: catch wrong route targets and a missing `reliability` key before a run."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, StateGraph

from reliable_graph._node import ReliableNode
from reliable_graph.errors import RouteTargetError
from reliable_graph.state import RELIABILITY_KEY

__all__ = ["validate_graph"]


def _builder(graph: Any) -> StateGraph[Any, Any, Any, Any]:
    builder = getattr(graph, "builder", graph)
    if not isinstance(builder, StateGraph):
        msg = f"validate_graph takes a StateGraph or a compiled one, got {type(graph).__name__}"
        raise TypeError(msg)
    return builder


def validate_graph(graph: Any) -> Any:
    """Check every reliable-graph node of `graph`: its route targets exist, the state has `reliability`.

    LangGraph ignores a `Command` to an unknown node with only a log line, which would end a
    run silently; call this on the graph (compiled or not) before running it.

    Returns:
        `graph`, so that it chains: `graph = validate_graph(builder.compile(...))`.

    Raises:
        RouteTargetError: a node routes to a target that is not a node of the graph.
        ValueError: the state schema has no `reliability` key, or a router or gate would take a
            reviewer's `provide_context` into a state key the schema lacks (the text would be lost).

    Example:
        ```python
        from langgraph.graph import START, StateGraph
        from reliable_graph import ReliabilityState, RequiredFields, RouteTargetError, reliable_step, validate_graph

        class State(ReliabilityState, total=False):
            question: str
            output: dict

        builder = StateGraph(State)
        builder.add_node(reliable_step(lambda s: {"output": {}}, name="draft", threshold=0.5,
                                       evaluator=RequiredFields(fields=["text"]), pass_to="revew"))
        builder.add_edge(START, "draft")
        try:
            validate_graph(builder)  # before compile(), which would refuse the unknown target less clearly
        except RouteTargetError as err:
            assert err.target == "revew" and err.node == "draft"
        ```
    """
    builder = _builder(graph)
    known = set(builder.nodes)
    ours = {name: spec.runnable for name, spec in builder.nodes.items() if isinstance(spec.runnable, ReliableNode)}
    if ours and RELIABILITY_KEY not in builder.channels:
        msg = (
            f"nodes {sorted(ours)} record under state key {RELIABILITY_KEY!r}, which the state schema "
            "lacks; inherit ReliabilityState or add reliability: Annotated[dict, merge_reliability]"
        )
        raise ValueError(msg)
    for name, node in ours.items():
        for parameter, target in node.routes.items():
            if target is not None and target != END and target not in known:
                raise RouteTargetError(node=name, parameter=parameter, target=target, known=sorted(known))
    _check_context_channels(builder, ours)
    return graph


def _check_context_channels(builder: StateGraph[Any, Any, Any, Any], ours: dict[str, ReliableNode]) -> None:
    """A reviewer's provide_context must reach the step: a router or gate passes it through a state channel."""
    from reliable_graph.escalation.node import HumanEscalation
    from reliable_graph.nodes import ConfidenceRouter, ContextGate

    if not any(isinstance(n, HumanEscalation) and "provide_context" in n.allowed for n in ours.values()):
        return
    for name, node in ours.items():
        if isinstance(node, ConfidenceRouter):
            key = node.scoring.context_key
        elif isinstance(node, ContextGate):
            key = node.context_key
        else:
            continue  # a reliable_step carries a reviewer's context in its task's record
        if key not in builder.channels:
            msg = (
                f"node {name!r} takes a reviewer's provide_context into state key {key!r}, which the state schema "
                f"lacks, so the reviewer's text would be dropped: add {key!r} to the state, pass its real name as "
                f"context_key=..., or leave provide_context out of HumanEscalation(allowed=...)"
            )
            raise ValueError(msg)
