"""`ContextGate(refetch=...)`: the gate re-fetches inside its own node.

What must hold: a run goes exactly as it would through a `Refetch` node (`refetch_to=`): the same
retriever calls with the same queries, the same records, outputs, events and escalations, in fewer
supersteps; a re-fetch that fails for good escalates naming the error; a reviewer's `retry`
re-fetches inside the resumed run; on SQLite and Postgres with a store, through the inbox, every
decision applies once; junk from the retriever is rejected with an error or escalated, and never
wedges the thread. The shapes (straight line, branches, subgraph, `Send` into a subgraph) run
both ways in tests/test_shapes.py, and every test of tests/test_context_gate.py runs both ways.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from graphs import State, config
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from pydantic import BaseModel
from review_app import compiled

from reliable_graph import (
    Completeness,
    ConnectorRetry,
    ContextGate,
    EscalationInbox,
    HumanEscalation,
    ReliabilityState,
    as_chunks,
    reliability_channel,
    run_outcome,
    step_outcomes,
    task_records,
)
from reliable_graph.demo import (
    DemoThresholds,
    ScenarioParams,
    SimulatedConnectors,
    SimulatedWorld,
    build_reliable_pipeline,
    research_input,
)

TOPIC = "tide tables"
GOOD = "Tide tables for Brest: high water 06:12."


def graph_of(retriever: Any, *, state: Any = State, **options: Any) -> Any:
    """START -> gate (re-fetching itself) -> answer -> END, plus the escalation node, on InMemorySaver."""
    return _builder(retriever, state=state, **options).compile(checkpointer=InMemorySaver())


# -- the same runs as through a Refetch node ------------------------------------------------------

_CHECKPOINT_FIELDS = re.compile(r'"(checkpoint|checkpoint_id|last_good_checkpoint_id|created_at)": "[^"]*"')


@functools.cache
def _runs(gate_refetch: str, checkpoint_attempts: bool, runs: int) -> tuple[list[tuple[Any, ...]], list[str], int]:
    """The demo pipeline's connector calls, final values and interrupts, and its checkpoints, over `runs` runs."""
    world = SimulatedWorld(ScenarioParams(), seed=7)
    connectors = SimulatedConnectors(world)
    calls: list[tuple[Any, ...]] = []
    retrieve, generate = connectors.retrieve, connectors.generate

    def logged_retrieve(*, run: int, step: int, fetch: int) -> Any:
        calls.append(("retrieve", run, step, fetch))
        return retrieve(run=run, step=step, fetch=fetch)

    def logged_generate(*, run: int, step: int, attempt: int, context: Any) -> Any:
        calls.append(("generate", run, step, attempt))
        return generate(run=run, step=step, attempt=attempt, context=context)

    connectors.retrieve, connectors.generate = logged_retrieve, logged_generate  # type: ignore[method-assign]
    thresholds = DemoThresholds()  # fixed, so the test spends no time calibrating
    saver = InMemorySaver()
    graph = build_reliable_pipeline(
        world, thresholds, connectors=connectors, gate_refetch=gate_refetch, checkpoint_attempts=checkpoint_attempts
    ).compile(checkpointer=saver)
    seen: list[str] = []
    for run in range(runs):
        out = graph.invoke(research_input(run), config(f"run-{run}"))
        values = {k: v for k, v in out.items() if k != "__interrupt__"}
        interrupts = [i.value for i in out.get("__interrupt__", [])]
        text = json.dumps([values, interrupts], sort_keys=True, default=str)
        seen.append(_CHECKPOINT_FIELDS.sub(r'"\1": "-"', text))  # checkpoint ids and creation times differ between runs
    checkpoints = sum(len(list(saver.list(config(f"run-{run}")))) for run in range(runs))
    return calls, seen, checkpoints


@pytest.mark.parametrize(
    ("gate_refetch", "checkpoint_attempts"),
    [("inline", True), ("node", False), ("inline", False)],
    ids=["inline_refetch", "attempts_in_superstep", "both"],
)
def test_the_demo_pipeline_runs_the_same_in_fewer_supersteps(gate_refetch: str, checkpoint_attempts: bool) -> None:
    """Against a `Refetch` node per gate and every attempt checkpointed (`_runs("node", True, 25)`)."""
    node_calls, node_seen, node_checkpoints = _runs("node", True, 25)
    calls, seen, checkpoints = _runs(gate_refetch, checkpoint_attempts, 25)
    refetched = [c for c in node_calls if c[0] == "retrieve" and c[3] > 0]
    retried = [c for c in node_calls if c[0] == "generate" and c[3] > 1]
    assert len(refetched) >= 10 and len(retried) >= 5  # the 25 runs do re-fetch and retry
    assert calls == node_calls  # the same connector calls, fetch indices and attempts, in the same order
    assert seen == node_seen  # the same values, records, outcomes and escalations
    assert checkpoints < node_checkpoints  # fewer supersteps (and checkpoints)


def test_demo_pipeline_rejects_an_unknown_gate_refetch() -> None:
    with pytest.raises(ValueError, match="'inline' or 'node'"):
        build_reliable_pipeline(SimulatedWorld(ScenarioParams(), seed=1), gate_refetch="nodes")


# -- configuration --------------------------------------------------------------------------------


def test_refetch_and_refetch_to_are_exclusive_and_retry_is_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        ContextGate(Completeness(topics=[TOPIC]), refetch=lambda q: [], refetch_to="refetch", pass_to="a")
    with pytest.raises(TypeError, match="ConnectorRetry or None"):
        ContextGate(Completeness(topics=[TOPIC]), refetch=lambda q: [], retry=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Runnable"):
        ContextGate(Completeness(topics=[TOPIC]), refetch=42)
    with pytest.raises(ValueError, match="merge must be"):
        ContextGate(Completeness(topics=[TOPIC]), refetch=lambda q: [], merge="upsert")  # type: ignore[arg-type]
    # with refetch= the gate needs no refetch_to: pass_to and escalate_to route it
    gate = ContextGate(Completeness(topics=[TOPIC]), refetch=lambda q: [], pass_to="a", escalate_to="b")
    assert gate.routes == {"refetch_to": None, "pass_to": "a", "escalate_to": "b"}


# -- failures of the re-fetch ---------------------------------------------------------------------


FORBIDDEN: list[str] = []


def _forbidden(query: str) -> list[str]:
    FORBIDDEN.append(query)
    request = httpx.Request("GET", "https://search.internal/api")
    raise httpx.HTTPStatusError("403 Forbidden", request=request, response=httpx.Response(403, request=request))


def test_a_refetch_that_fails_for_good_escalates_naming_the_error() -> None:
    graph = graph_of(_forbidden, max_refetches=2)
    out = graph.invoke({"question": TOPIC, "context": ["cats"]}, config())
    [interrupt] = out["__interrupt__"]
    assert interrupt.value["kind"] == "gate"
    reason = interrupt.value["reason"]
    assert "HTTPStatusError (HTTP 403)" in reason and "retrying cannot help" in reason
    record = task_records(graph.get_state(config()))["answer"]
    assert len(FORBIDDEN) == 1  # escalated at once: not re-fetched again although max_refetches=2 allows it
    assert record["refetches"] == 1 and record["gate"]["refetches"] == 1 and record["outcome"] == "escalate"
    out = graph.invoke(Command(resume={"action": "provide_context", "context": [GOOD]}), config())
    assert run_outcome(out) == "ok" and graph.answer_runs == [["cats", GOOD]]


def test_transient_refetch_errors_are_retried_and_unknown_ones_propagate() -> None:
    failures = [httpx.ConnectTimeout("slow"), httpx.ConnectTimeout("slow")]

    def flaky(query: str) -> list[str]:
        if failures:
            raise failures.pop()
        return [GOOD]

    no_wait = ConnectorRetry(max_attempts=3, initial_wait=0.0, jitter=False, sleep=lambda s: None)
    graph = graph_of(flaky, retry=no_wait)
    out = graph.invoke({"question": TOPIC, "context": ["cats"]}, config())
    assert run_outcome(out) == "ok" and graph.answer_runs == [["cats", GOOD]] and not failures

    broken = [True]

    def buggy(query: str) -> list[str]:
        if broken[0]:
            raise KeyError("a bug in the retriever")
        return [GOOD]

    graph = graph_of(buggy)
    with pytest.raises(KeyError, match="a bug in the retriever"):
        graph.invoke({"question": TOPIC, "context": ["cats"]}, config())
    broken[0] = False  # the bug fixed: the thread resumes at the gate, nothing was lost
    out = graph.invoke(None, config())
    assert run_outcome(out) == "ok" and graph.answer_runs == [["cats", GOOD]]


# -- the retriever sees the task's record, whatever the state's type -------------------------------


class PydanticState(BaseModel):
    question: str = ""
    context: list[Any] = []
    output: Any = None
    reliability: Annotated[dict[str, Any], reliability_channel()] = {}


@dataclass
class DataclassState:
    question: str = ""
    context: list[Any] = field(default_factory=list)
    output: Any = None
    reliability: Annotated[dict[str, Any], reliability_channel()] = field(default_factory=dict)


class TypedState(ReliabilityState, total=False):
    question: str
    context: list[Any]
    output: Any


@pytest.mark.parametrize(
    "state", [TypedState, PydanticState, DataclassState], ids=["typeddict", "pydantic", "dataclass"]
)
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_the_retriever_sees_the_record_a_refetch_node_would(state: Any, is_async: bool) -> None:
    seen: list[tuple[int, str, str]] = []

    def looked_at(query: str, state: Any) -> list[str]:
        record = task_records(state)["answer"]
        seen.append((int(record.get("refetches", 0)), record["gate"]["verdict"], query))
        return ["still cats"] if len(seen) == 1 else [GOOD]

    async def alooked_at(query: str, state: Any) -> list[str]:
        return looked_at(query, state)

    graph = graph_of(alooked_at if is_async else looked_at, state=state, max_refetches=2)
    start = {"question": TOPIC, "context": ["cats"]}
    out = await graph.ainvoke(start, config()) if is_async else graph.invoke(start, config())
    assert [(n, verdict) for n, verdict, _ in seen] == [(0, "refetch"), (1, "refetch")]
    assert all(f"must cover: {TOPIC}" in query for _, _, query in seen)
    assert graph.answer_runs == [["cats", "still cats", GOOD]]
    record = task_records(out)["answer"]
    assert record["refetches"] == 2 and record["gate"] == {
        "verdict": "pass",
        "refetches": 2,
        "checks": [{"evaluator": "completeness", "score": 1.0, "passed": True}],
    }
    assert step_outcomes(out) == {}  # a gate alone gives the step no outcome


# -- review through the inbox, on SQLite and Postgres, with a store --------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("action", ["retry", "provide_context", "approve", "terminate"])
def test_gate_review_through_the_inbox_applies_once(backend: str, action: str, tmp_path: Path, pg_db: str) -> None:
    fetches: list[str] = []

    def retriever(query: str) -> list[str]:
        fetches.append(query)
        return [f"nothing useful ({len(fetches)})"]

    where = str(tmp_path / "gate.sqlite") if backend == "sqlite" else pg_db
    thread = config(f"gate-{action}-{uuid.uuid4().hex[:8]}")
    with compiled(_builder(retriever), backend, where) as (graph, store):
        out = graph.invoke({"question": TOPIC, "context": ["cats"]}, thread)
        assert run_outcome(out) == "escalated" and len(fetches) == 1  # max_refetches=1: one re-fetch, then a human
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list(thread_id=thread["configurable"]["thread_id"])
        assert inbox.show(item.id).escalation["kind"] == "gate"
        answer: dict[str, Any] = {"action": action}
        if action == "provide_context":
            answer["context"] = [GOOD]
        inbox.resolve(item.id, answer, reviewer="ana")
        state = graph.get_state(thread)
        if action == "retry":  # re-fetched inside the resumed run, still nothing: a second escalation
            assert len(fetches) == 2 and run_outcome(state) == "escalated"
            [again] = inbox.list(thread_id=thread["configurable"]["thread_id"])
            assert again.id != item.id and inbox.show(again.id).escalation["round"] == 2
            inbox.resolve(again.id, {"action": "approve"}, reviewer="ana")
            state = graph.get_state(thread)
        assert not state.next
        expected = {"retry": "ok", "provide_context": "ok", "approve": "ok", "terminate": "terminated"}[action]
        assert run_outcome(state) == expected
        answered = {
            "retry": [["cats", "nothing useful (1)", "nothing useful (2)"]],
            "provide_context": [["cats", "nothing useful (1)", GOOD]],
            "approve": [["cats", "nothing useful (1)"]],
            "terminate": [],
        }[action]
        assert graph.answer_runs == answered  # the step ran once (or never, terminated)
        assert len(fetches) == (2 if action == "retry" else 1)
        items = inbox.list(thread_id=thread["configurable"]["thread_id"], status=None)
        assert {i.status for i in items} == {"resolved"}
        for i in items:
            assert [e.event for e in inbox.audit(i.id)].count("resolve") == 1


def _builder(retriever: Any, *, state: Any = State, **options: Any) -> StateGraph[Any, Any, Any, Any]:
    """START -> gate (re-fetching itself with `retriever`) -> answer -> END, plus the escalation node.

    Compiled, the graph keeps what each run of `answer` saw in `graph.answer_runs`.
    """
    builder = StateGraph(state)
    builder.add_node(
        ContextGate(
            Completeness(topics=[TOPIC]),
            name="gate",
            step="answer",
            threshold=1.0,
            pass_to="answer",
            escalate_to="human_escalation",
            refetch=retriever,
            **options,
        )
    )
    runs: list[list[str]] = []

    def answer(s: Any) -> dict[str, Any]:
        runs.append([c.text for c in as_chunks(s["context"] if isinstance(s, dict) else s.context)])
        return {"output": runs[-1]}

    builder.add_node("answer", answer)
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "gate")
    builder.add_edge("answer", END)
    original = builder.compile

    def compile(**kwargs: Any) -> Any:
        graph = original(**kwargs)
        graph.answer_runs = runs
        return graph

    builder.compile = compile  # type: ignore[method-assign]
    return builder


# -- junk from the retriever ------------------------------------------------------------------------

TEXT = st.text(max_size=40)
CHUNK = st.one_of(
    TEXT,
    st.builds(lambda t: {"text": t, "metadata": {"n": 1}}, TEXT),
    st.builds(lambda t: Document(page_content=t), TEXT),
    st.integers(),
    st.none(),
    st.builds(lambda t: {"title": t}, TEXT),
)
JUNK = st.one_of(st.lists(CHUNK, max_size=4), st.none(), TEXT.map(lambda t: [t]))


def _is_chunk(obj: Any) -> bool:
    return isinstance(obj, (str, Document)) or (isinstance(obj, dict) and isinstance(obj.get("text"), str))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(JUNK, min_size=2, max_size=2))
def test_junk_from_the_retriever_is_refused_or_reviewed_and_never_wedges(batches: list[Any], tmp_path: Path) -> None:
    """Whatever the retriever returns: a clear error (the thread resumes once it is fixed), or the gate
    passes or escalates, and a reviewer's answer finishes the run with the step run once."""
    given_back = list(batches)

    def retriever(query: str) -> Any:
        return given_back.pop(0) if given_back else [GOOD]

    path = tmp_path / f"{uuid.uuid4().hex}.sqlite"
    with compiled(_builder(retriever), "sqlite", str(path)) as (graph, store):
        thread = config("junk")
        try:
            out = graph.invoke({"question": TOPIC, "context": ["cats"]}, thread)
        except TypeError as exc:  # a chunk that is no chunk: named, nothing written past the gate
            event("refused: a chunk that is no chunk")
            assert "a context chunk must be" in str(exc)
            assert not all(_is_chunk(c) for c in (batches[0] or []))
            given_back[:] = []  # the retriever fixed: returns good context; the thread resumes at the gate
            out = graph.invoke(None, thread)
        event("escalated" if out.get("__interrupt__") else "passed")
        if out.get("__interrupt__"):
            [item] = EscalationInbox(store, graph=graph).list(thread_id="junk")
            EscalationInbox(store, graph=graph).resolve(item.id, {"action": "approve"}, reviewer="ana")
        state = graph.get_state(thread)
        assert not state.next and run_outcome(state) == "ok"
        assert len(graph.answer_runs) == 1
    sqlite3.connect(path).close()
