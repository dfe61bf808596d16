"""A new task of a reliable_step takes a shortcut (`_run_new`/`_arun_new`); it must change nothing.

Each scenario runs twice, once as the library runs it and once with the shortcut switched off
(every task opened by the general `_run`/`_arun`), and everything observable is compared: the
values and custom events streamed (in order), the updates streamed, every checkpoint of the
thread, and what the run indexed in its store for the inbox. Run ids LangGraph draws afresh
each time (checkpoint ids, task ids, interrupt ids and the hashes of namespaces built from them)
are numbered in order of appearance before comparing; nothing else is touched, and key order
counts. Parallel tasks (`Send` items, a subgraph's branches) stream in no fixed order, so there
each node call is replayed with and without the shortcut and its result and events compared.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.register_assert_rewrite("shapes")

from langchain_core.runnables.config import var_child_runnable_config  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.store.memory import InMemoryStore  # noqa: E402
from shapes import (  # noqa: E402
    BAD,
    FORBIDDEN,
    GOOD_CONTEXT,
    OK,
    PASSES,
    SCHEMAS,
    TIMEOUT,
    TOPIC,
    ShapeState,
    Tracker,
    fan_out,
    fan_out_subgraph,
    nested,
    straight,
)

import reliable_graph.nodes.step as step_module  # noqa: E402
from reliable_graph import Completeness, ContextGate, HumanEscalation, Refetch, reliable_step  # noqa: E402
from reliable_graph.nodes.step import ReliableStep  # noqa: E402

FRESH_IDS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # checkpoint and task ids
    r"|(?<=#)[0-9a-f]{10}\b"  # the hash in a nested or Send task's key
    r"|\b[0-9a-f]{32}\b"  # interrupt ids
)


def normalised(value: Any, seen: dict[str, str] | None = None) -> str:
    """`value` as JSON (key order kept), with the ids LangGraph draws per run numbered by first appearance."""
    numbers = {} if seen is None else seen
    text = json.dumps(value, default=repr)
    return FRESH_IDS.sub(lambda m: numbers.setdefault(m.group(0), f"<id{len(numbers)}>"), text)


def normalised_run(streamed: list[Any], history: list[Any]) -> list[str]:
    """A run's checkpoints then its stream, normalised; the ids numbered in the checkpoints' (fixed) order first.

    Values and custom events are compared in the order they streamed. Updates are compared as a
    sorted list: parallel tasks (an escalation's `Send` and the plain trigger of the escalation
    node) stream theirs in no fixed order, even after the superstep's values.
    """
    seen: dict[str, str] = {}
    checkpoints = [normalised(snapshot, seen) for snapshot in history]
    texts = [(chunk[0], normalised(chunk, seen)) for chunk in streamed]
    updates = sorted(text for mode, text in texts if mode == "updates")
    return checkpoints + [text for mode, text in texts if mode != "updates"] + updates


@contextmanager
def general_path() -> Iterator[None]:
    """Every task opened by the general `_run`/`_arun` (the shortcut switched off)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(step_module, "new_task", lambda input, config, step: None)
        yield


@contextmanager
def counting(calls: dict[str, int]) -> Iterator[None]:
    """Count the calls of the shortcut and of the general drivers."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("_run_new", "_arun_new", "_run", "_arun"):
            original = getattr(ReliableStep, name)

            def spy(self: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
                calls[_name] = calls.get(_name, 0) + 1
                return _original(self, *args)

            mp.setattr(ReliableStep, name, spy)
        yield


async def run_thread(graph: Any, inputs: list[Any], *, is_async: bool) -> list[str]:
    """Stream each input into one thread: what streamed, then every checkpoint of the thread, normalised."""
    config = {"configurable": {"thread_id": "thread"}}  # the same in both runs: escalation ids hash it
    modes = ["values", "updates", "custom"]
    streamed: list[Any] = []
    for arg in inputs:
        if is_async:
            streamed.extend([chunk async for chunk in graph.astream(arg, config, stream_mode=modes)])
        else:
            streamed.extend(graph.stream(arg, config, stream_mode=modes))
    history = [
        (snap.values, snap.next, snap.metadata, [t.interrupts for t in snap.tasks])
        for snap in graph.get_state_history(config)
    ]
    indexed = sorted((item.namespace, item.key, item.value) for item in graph.store.search((), limit=1000))
    return normalised_run(streamed, [*history, indexed])


def with_store(graph: Any) -> Any:
    """`graph` with a store of its own: what a run escalates is indexed there for the inbox."""
    graph.store = InMemoryStore()
    return graph


def both_ways(
    build: Callable[[], Any], inputs: list[Any], *, is_async: bool, shortcut: str = "some"
) -> tuple[str, str]:
    """`inputs` run through a graph from `build` with the shortcut and without, both normalised (as JSON)."""
    calls: dict[str, int] = {}
    with counting(calls):
        fast = asyncio.run(run_thread(with_store(build()), inputs, is_async=is_async))
    with general_path():
        general = asyncio.run(run_thread(with_store(build()), inputs, is_async=is_async))
    new = calls.get("_arun_new" if is_async else "_run_new", 0)
    assert new > 0, "the shortcut was never taken"
    if shortcut == "all":
        assert calls.get("_arun" if is_async else "_run", 0) == 0, f"a task left the shortcut: {calls}"
    return joined(fast), joined(general)


def joined(run: list[str]) -> str:
    """A normalised run as one text, a line per chunk (the diff a failure shows)."""
    return "\n".join(run)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("schema", sorted(SCHEMAS))
def test_passing_steps_stream_and_checkpoint_the_same(schema: str, is_async: bool) -> None:
    tracker = Tracker()
    question = {"question": "q", "context": ["c0"]}
    fast, general = both_ways(
        lambda: straight(tracker, schema=SCHEMAS[schema], is_async=is_async),
        [question],
        is_async=is_async,
        shortcut="all",
    )
    assert fast == general
    assert '"outcome": "pass"' in fast and "reliable_graph.verdict" in fast and "reliable_graph.outcome" in fast


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_step_run_again_in_its_thread_carries_its_revision_the_same(is_async: bool) -> None:
    tracker = Tracker()
    question = {"question": "q", "context": ["c0"]}
    fast, general = both_ways(
        lambda: straight(tracker, is_async=is_async), [question, question, question], is_async=is_async, shortcut="all"
    )
    assert fast == general
    assert '"rev": 3' in fast


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("again", [[BAD, OK], [BAD, BAD], [FORBIDDEN]], ids=["retry_pass", "escalate", "error"])
def test_a_step_run_again_whose_first_attempt_fails_carries_its_revision_the_same(
    again: list[str], is_async: bool, clock: Any
) -> None:
    def build() -> Any:
        return straight(Tracker({"first": [OK, *again]}), is_async=is_async)

    question = {"question": "q", "context": ["c0"]}
    fast, general = both_ways(build, [question, question], is_async=is_async)
    assert fast == general
    assert '"first": {"step": "first", "rev": 2, "threshold": 1.0' in fast


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ({"first": [BAD, OK]}, '"outcome": "retry_pass"'),  # the new task's first attempt fails: a retry
        ({"second": [BAD]}, '"outcome": "escalate"'),  # fails twice: escalated, the run waits
        ({"first": [FORBIDDEN]}, "retrying cannot help"),  # a permanent error: escalated at once
        ({"first": [TIMEOUT, OK]}, '"outcome": "pass"'),  # a transient error: retried inside the attempt
    ],
    ids=["retry_pass", "escalate", "permanent_error", "transient_error"],
)
def test_failing_first_attempts_leave_the_shortcut_the_same(
    plan: dict[str, list[str]], expected: str, is_async: bool, clock: Any
) -> None:
    def build() -> Any:
        return straight(Tracker(plan), is_async=is_async)

    question = {"question": "q", "context": ["c0"]}
    fast, general = both_ways(build, [question], is_async=is_async)
    assert fast == general
    assert expected in fast


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_first_attempt_that_fails_with_no_retry_left_escalates_the_same(is_async: bool, clock: Any) -> None:
    def build() -> Any:
        tracker = Tracker({"first": [BAD]})
        builder = StateGraph(ShapeState)
        step = tracker.step("first", "first", is_async=is_async)
        builder.add_node(
            reliable_step(step, evaluator=PASSES, threshold=1.0, output_key="first", max_retries=0, pass_to=END)
        )
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "first")
        return builder.compile(checkpointer=InMemorySaver())

    fast, general = both_ways(build, [{"question": "q"}], is_async=is_async)
    assert fast == general
    assert '"outcome": "escalate"' in fast and '"reliable_graph", "escalations"' in fast  # indexed for the inbox


def gated(tracker: Tracker, *, is_async: bool) -> Any:
    """START -> gate_first (refetch_first) -> first (a reliable_step: the gate's record carries on into it)."""

    def retriever(query: str) -> list[str]:
        return [GOOD_CONTEXT]

    builder = StateGraph(ShapeState)
    builder.add_node(
        ContextGate(
            Completeness(topics=[TOPIC]),
            name="gate_first",
            step="first",
            threshold=1.0,
            max_refetches=1,
            pass_to="first",
            refetch_to="refetch_first",
            escalate_to="human_escalation",
        )
    )
    builder.add_node(Refetch(retriever, name="refetch_first", step="first", goto="gate_first"))
    builder.add_node(
        reliable_step(
            tracker.step("first", "first", is_async=is_async),
            evaluator=PASSES,
            threshold=1.0,
            output_key="first",
            pass_to=END,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "gate_first")
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_gated_step_carries_the_gate_record_on_the_same(is_async: bool) -> None:
    tracker = Tracker()
    fast, general = both_ways(
        lambda: gated(tracker, is_async=is_async),
        [{"question": TOPIC, "context": ["cats"]}],
        is_async=is_async,
        shortcut="all",
    )
    assert fast == general
    assert '"gate": {' in fast and '"refetches": 1' in fast and '"outcome": "pass"' in fast


# -- parallel tasks: each node call replayed with and without the shortcut -----------------------


class Recorded:
    """A node call seen in a run: the node, its input and config, and the context it ran in."""

    def __init__(self, node: ReliableStep, input: Any, config: Any) -> None:
        self.node, self.input, self.config = node, input, config
        self.context = contextvars.copy_context()

    def replay(self, *, is_async: bool) -> str:
        """The node's result for the same input, and the custom events it sent, normalised."""
        events: list[Any] = []
        # the task's config and context, its custom stream writer a listener's
        configurable = self.config["configurable"]
        runtime = configurable["__pregel_runtime"].override(stream_writer=events.append)
        config = {**self.config, "configurable": {**configurable, "__pregel_runtime": runtime}}
        context = self.context.copy()
        context.run(var_child_runnable_config.set, config)
        if is_async:
            result = context.run(asyncio.run, self.node.ainvoke(self.input, config))
        else:
            result = context.run(self.node.invoke, self.input, config)
        return normalised([repr(result.goto), result.update, events])


def recorded_calls(graph: Any, arg: Any, *, is_async: bool) -> list[Recorded]:
    """Run `graph` once, recording every call of its reliable steps."""
    seen: list[Recorded] = []
    with pytest.MonkeyPatch.context() as mp:
        invoke, ainvoke = ReliableStep.invoke, ReliableStep.ainvoke

        def spy(self: ReliableStep, input: Any, config: Any = None, **kwargs: Any) -> Any:
            seen.append(Recorded(self, input, config))
            return invoke(self, input, config, **kwargs)

        async def aspy(self: ReliableStep, input: Any, config: Any = None, **kwargs: Any) -> Any:
            seen.append(Recorded(self, input, config))
            return await ainvoke(self, input, config, **kwargs)

        mp.setattr(ReliableStep, "invoke", spy)
        mp.setattr(ReliableStep, "ainvoke", aspy)
        config = {"configurable": {"thread_id": "thread"}}
        if is_async:
            asyncio.run(graph.ainvoke(arg, config))
        else:
            graph.invoke(arg, config)
    return seen


PARALLEL = {
    "send_typeddict": lambda tracker, is_async: fan_out(tracker, is_async=is_async),
    "send_pydantic": lambda tracker, is_async: fan_out(tracker, schema=SCHEMAS["pydantic"], is_async=is_async),
    "send_dataclass": lambda tracker, is_async: fan_out(tracker, schema=SCHEMAS["dataclass"], is_async=is_async),
    "subgraph": lambda tracker, is_async: nested(tracker, is_async=is_async),
    "send_subgraph": lambda tracker, is_async: fan_out_subgraph(tracker, is_async=is_async),
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("shape", sorted(PARALLEL))
@pytest.mark.parametrize("output", [OK, BAD])
def test_parallel_tasks_return_and_stream_the_same(shape: str, output: str, is_async: bool, clock: Any) -> None:
    plan = {f"{step}:{item}": [output] for step in ("item", "work") for item in "abcde"}
    plan |= {step: [output] for step in ("intro", "outline", "draft", "title")}
    tracker = Tracker(plan)
    calls = recorded_calls(PARALLEL[shape](tracker, is_async), {"question": "q", "context": ["c0"]}, is_async=is_async)
    assert calls
    taken: dict[str, int] = {}
    for call in calls:
        with counting(taken):
            fast = call.replay(is_async=is_async)
        with general_path():
            general = call.replay(is_async=is_async)
        assert fast == general, f"{call.node.name}: {call.input!r}"
    new = taken.get("_arun_new" if is_async else "_run_new", 0)
    assert new == (len(calls) if output == OK else len(calls) // 2)  # a retry continues its task: no shortcut
