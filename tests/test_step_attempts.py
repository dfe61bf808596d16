"""`reliable_step(checkpoint_attempts=False)`: a step's retries run inside its own superstep.

What must hold: the same step calls, records, outcomes, events and escalations as with every
attempt checkpointed (the default), one superstep per step whatever its attempts; the one
difference is what a crash costs, and that is tested too: with checkpointed attempts a resume
runs only the attempt that did not finish, with attempts in the superstep it runs the step's
attempts again from the first. Every shape of tests/test_shapes.py and tests/test_shapes_postgres.py
(straight line, branches, `Send`, subgraphs, `Send` into a subgraph, chat states, sync and async)
runs both ways; the demo pipeline's equivalence is in tests/test_context_gate_refetch.py.
"""

from __future__ import annotations

from operator import add
from typing import Annotated, Any

import pytest
from graphs import GOOD, config, one_step_graph, scripted
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step, step_outcomes, task_records


def test_checkpoint_attempts_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="checkpoint_attempts"):
        reliable_step(
            lambda s: {"output": 1}, name="s", evaluator=GOOD, threshold=1.0, pass_to=END, checkpoint_attempts=0
        )


def _run(checkpoint_attempts: bool, outputs: list[str], **kwargs: Any) -> tuple[Any, list[Any], list[Any], int]:
    calls: list[Any] = []
    refetch = lambda q: [f"fetched for {q[:20]}"]  # noqa: E731
    graph = one_step_graph(scripted(outputs, calls), refetch=refetch, checkpoint_attempts=checkpoint_attempts, **kwargs)
    events = list(graph.stream({"question": "q", "context": ["c0"]}, config(), stream_mode=["custom", "values"]))
    checkpoints = len(list(graph.checkpointer.list(config())))
    return graph, calls, events, checkpoints


@pytest.mark.parametrize(
    "outputs",
    [["good"], ["bad", "good"], ["bad", "bad", "good"], ["bad", "bad", "bad"]],
    ids=["pass", "retry_pass", "second_retry_pass", "escalate"],
)
def test_attempts_in_the_superstep_give_the_same_run_in_fewer_supersteps(outputs: list[str]) -> None:
    graph_a, calls_a, events_a, checkpoints_a = _run(True, outputs, max_retries=2)
    graph_b, calls_b, events_b, checkpoints_b = _run(False, outputs, max_retries=2)
    assert calls_b == calls_a  # the step saw the same contexts, attempt by attempt
    custom_a = [e for mode, e in events_a if mode == "custom"]
    custom_b = [e for mode, e in events_b if mode == "custom"]
    assert custom_b == custom_a  # the same verdict, refetch and outcome events
    final_a = graph_a.get_state(config()).values
    final_b = graph_b.get_state(config()).values

    def records(values: Any) -> dict[str, Any]:  # a record's checkpoint id differs between two threads
        return {k: {f: v for f, v in r.items() if f != "checkpoint"} for k, r in task_records(values).items()}

    assert records(final_b) == records(final_a)
    assert final_b.get("output") == final_a.get("output") and final_b.get("context") == final_a.get("context")
    retries = min(len(outputs), 3) - 1
    assert checkpoints_a - checkpoints_b == retries  # one superstep (and checkpoint) fewer per retry
    if outputs[-1] == "bad":  # escalated either way, the same escalation waiting
        pending_a = graph_a.get_state(config()).interrupts[0].value
        pending_b = graph_b.get_state(config()).interrupts[0].value
        drop = ("created_at", "last_good_checkpoint_id")
        assert {k: v for k, v in pending_b.items() if k not in drop} == {
            k: v for k, v in pending_a.items() if k not in drop
        }
        out = graph_b.invoke(Command(resume={"action": "approve"}), config())
        assert step_outcomes(out) == {"step": "approved"}


@pytest.mark.parametrize("checkpoint_attempts", [True, False])
def test_what_a_crash_between_attempts_costs(checkpoint_attempts: bool) -> None:
    """A bug on the second attempt stops the run; once fixed, the resume runs the step on."""
    calls: list[int] = []
    broken = [True]

    def step(state: Any) -> dict[str, Any]:  # right once it sees the re-fetched context
        calls.append(len(calls) + 1)
        if len(calls) == 2 and broken[0]:
            raise KeyError("a bug on the second attempt")
        return {"output": "good" if "the missing fact" in str(state["context"]) else "bad"}

    graph = one_step_graph(step, refetch=lambda q: ["the missing fact"], checkpoint_attempts=checkpoint_attempts)
    with pytest.raises(KeyError):
        graph.invoke({"question": "q", "context": []}, config())
    broken[0] = False
    out = graph.invoke(None, config())
    assert step_outcomes(out) == {"step": "retry_pass"} and out["output"] == "good"
    # checkpointed: the first attempt's verdict was durable, the resume ran the second attempt only;
    # in the superstep: nothing of the step was, the resume ran both attempts again
    assert calls == ([1, 2, 3] if checkpoint_attempts else [1, 2, 3, 4])


class FanState(ReliabilityState, total=False):
    question: str
    results: Annotated[list[str], add]


async def test_send_items_retry_inside_their_superstep_async() -> None:
    seen: dict[str, int] = {}

    async def work(state: Any) -> dict[str, Any]:
        item = state["item"]
        seen[item] = seen.get(item, 0) + 1
        return {"results": [f"{item}:{'good' if seen[item] > 1 or item == 'a' else 'bad'}"]}

    def is_good(output: Any) -> bool:
        return all(r.endswith(":good") for r in output)

    builder = StateGraph(FanState)
    builder.add_node(
        reliable_step(
            work,
            name="work",
            evaluator=Predicate(fn=is_good, name="good"),
            threshold=1.0,
            output_key="results",
            pass_to=END,
            checkpoint_attempts=False,
        )
    )
    builder.add_node(HumanEscalation())
    items = lambda s: [Send("work", {"question": "q", "item": x}) for x in "abc"]  # noqa: E731
    builder.add_conditional_edges(START, items, ["work"])
    saver = InMemorySaver()
    graph = builder.compile(checkpointer=saver)
    out = await graph.ainvoke({"question": "q"}, config())
    assert sorted(out["results"]) == ["a:good", "b:good", "c:good"] and seen == {"a": 1, "b": 2, "c": 2}
    outcomes = sorted(r["outcome"] for r in task_records(out).values())
    assert outcomes == ["pass", "retry_pass", "retry_pass"]
    history = [c async for c in saver.alist(config())]
    assert len(history) == 3  # input, the fan-out's superstep (every item's attempts inside it), the end
