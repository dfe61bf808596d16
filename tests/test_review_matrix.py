"""Every escalation path across the matrix a user can reach.

graph shape (straight line, parallel branches, `Send` fan-out, subgraph, `Send` into a subgraph)
x {SQLite file, Postgres} x {with a store, without} x answer path (raw `Command(resume=...)`,
`answer_escalations`, `EscalationInbox.resolve`, the web console's POST) x {one reviewer, one
reviewer per escalation at once}. In every cell: every escalation is answered, each decision
applied once (each task's result appears once in the final state), the downstream node runs
once, the thread finishes, and with a store every inbox row ends `resolved` with one `resolve`
line in its audit trail.

Without a store the inbox and the console do not exist, and raw resumes racing on one thread
have nothing to coordinate through (LangGraph does not serialise runs of a thread): that cell is
left out; `answer_escalations` serialises itself with a lock of the process.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command
from review_app import DOWNSTREAM, ESCALATING, SHAPES, TASKS, aapp, app
from starlette.testclient import TestClient

from reliable_graph import (
    AlreadyResolvedError,
    ConcurrentResumeError,
    EscalationInbox,
    aanswer_escalations,
    answer_escalations,
    apending_escalations,
    pending_escalations,
    run_outcome,
    step_outcomes,
    task_records,
)
from reliable_graph.console import create_app

FAR = datetime(2100, 1, 1, tzinfo=timezone.utc)
"""A frozen clock far past every lease: the inbox that tidies up after raw resumes uses it."""
PATHS = ("raw", "answer_escalations", "inbox", "console")


def cells() -> list[Any]:
    out = []
    for shape in SHAPES:
        for backend in ("sqlite", "postgres"):
            for store in (True, False):
                for path in PATHS:
                    for many in (False, True):
                        if not store and (path in ("inbox", "console") or (path == "raw" and many)):
                            continue
                        name = f"{shape}-{backend}-{'store' if store else 'nostore'}-{path}-{'many' if many else 'one'}"
                        out.append(pytest.param(shape, backend, store, path, many, id=name))
    return out


def all_records(graph: Any, config: Any) -> list[dict[str, Any]]:
    """Every task record of the thread, its subgraphs' included."""
    records: list[dict[str, Any]] = []

    def walk(snapshot: Any) -> None:
        records.extend(task_records(snapshot.values).values())
        for task in snapshot.tasks:
            if task.state is not None and hasattr(task.state, "values"):
                walk(task.state)

    walk(graph.get_state(config, subgraphs=True))
    return records


def task_of(escalation: dict[str, Any]) -> str:
    """The task's name (`item:c`) from its failing output (`["item:c=draft"]`)."""
    return str(escalation["output"][0]).split("=", 1)[0]


def edit(escalation: dict[str, Any]) -> dict[str, Any]:
    return {"action": "edit", "output": [f"{task_of(escalation)}=edited"]}


def answerer(path: str, graph: Any, store: Any, config: Any, reviewer: str) -> Callable[[str], None]:
    """A function answering one escalation (by id) along `path`, as reviewer `reviewer`."""
    thread = config["configurable"]["thread_id"]
    if path in ("raw", "answer_escalations"):

        def by_graph(escalation_id: str) -> None:
            [target] = [p for p in pending_escalations(graph, config) if p.escalation["id"] == escalation_id]
            if path == "raw":
                try:
                    graph.invoke(Command(resume={target.interrupt_id: edit(target.escalation)}), config)
                except ConcurrentResumeError:
                    pass  # this run raced another one of the thread; the other carries the decision on
            else:
                answer_escalations(graph, config, {target.interrupt_id: edit(target.escalation)})

        return by_graph
    inbox = EscalationInbox(store, graph=graph)
    if path == "inbox":

        def by_inbox(escalation_id: str) -> None:
            inbox.resolve(escalation_id, edit(inbox.show(escalation_id).escalation), reviewer=reviewer)

        return by_inbox
    client = TestClient(create_app(inbox, token="matrix-token-0123456789"))
    assert client.get("/?token=matrix-token-0123456789").status_code == 200

    def by_console(escalation_id: str) -> None:
        page = client.get(f"/escalations/{escalation_id}")
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match is not None
        output = edit(inbox.show(escalation_id).escalation)["output"]
        form = {"csrf": match.group(1), "reviewer": reviewer, "action": "edit", "output": json.dumps(output)}
        done = client.post(f"/escalations/{escalation_id}/resolve", data=form)
        assert done.status_code == 200 and "Resolved" in done.text, (thread, done.text[-500:])

    return by_console


def run_cell(shape: str, backend: str, where: str, store: bool, path: str, many: bool, effects: Path) -> None:
    thread = f"{shape}-{path}-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    with app(shape, backend, where, store=store, effects=effects) as (graph, the_store):
        out = graph.invoke({"question": "q"}, config)
        assert run_outcome(out) == "escalated"
        pending = pending_escalations(graph, config)
        assert sorted(task_of(p.escalation) for p in pending) == sorted(ESCALATING[shape])
        ids = [p.escalation["id"] for p in pending]
        if many:
            answer = [answerer(path, graph, the_store, config, f"reviewer-{n}") for n in range(len(ids))]
            barrier = threading.Barrier(len(ids))
            errors: list[BaseException] = []

            def one(n: int) -> None:
                barrier.wait()
                try:
                    answer[n](ids[n])
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            workers = [threading.Thread(target=one, args=(n,)) for n in range(len(ids))]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=300)
            assert not errors, errors
        else:
            answer_one = answerer(path, graph, the_store, config, "ana")
            for escalation_id in ids:
                answer_one(escalation_id)
        if path == "raw" and store:
            # raw runs racing on one thread can leave it between supersteps; reconcile finishes it
            EscalationInbox(the_store, graph=graph, clock=lambda: FAR).reconcile()
        state = graph.get_state(config)
        assert not state.next, (state.next, state.tasks)
        results = Counter(state.values["results"])
        expected = {f"{t}={'edited' if t in ESCALATING[shape] else 'ok'}" for t in TASKS[shape]}
        assert set(results) == expected and set(results.values()) == {1}, results
        assert run_outcome(state) == "ok"
        assert set(step_outcomes(state).values()) <= {"pass", "edited"}
        lines = [line for line in effects.read_text().splitlines() if line.startswith(f"{thread} ")]
        assert lines == [f"{thread} {DOWNSTREAM[shape]}"], lines
        if store:
            inbox = EscalationInbox(the_store, graph=graph, clock=lambda: FAR)
            inbox.reconcile()
            items = inbox.list(thread_id=thread, status=None)
            assert sorted(i.id for i in items) == sorted(ids)
            assert {i.status for i in items} == {"resolved"}, [(i.id, i.status) for i in items]
            for item in items:
                events = [e.event for e in inbox.audit(item.id)]
                assert events.count("resolve") == 1 and events.count("index") == 1, events
                if path in ("inbox", "console"):
                    assert item.resolved_by.startswith(("ana", "reviewer-"))
                    assert item.decision["reviewer"] == item.resolved_by
            if path in ("inbox", "console"):  # the reviewer is in each task's record too
                reviewed = [r for r in all_records(graph, config) if r.get("decision")]
                assert len(reviewed) == len(ids)
                assert all(r["decision"]["reviewer"].startswith(("ana", "reviewer-")) for r in reviewed)


@pytest.mark.parametrize(("shape", "backend", "store", "path", "many"), cells())
def test_review_matrix(
    shape: str, backend: str, store: bool, path: str, many: bool, tmp_path: Path, pg_db: str
) -> None:
    where = str(tmp_path / "app.sqlite") if backend == "sqlite" else pg_db
    run_cell(shape, backend, where, store, path, many, tmp_path / "effects.log")


def async_cells() -> list[Any]:
    out = []
    for shape in SHAPES:
        for backend in ("sqlite", "postgres"):
            for store in (True, False):
                for path in ("raw", "answer_escalations"):
                    for many in (False, True):
                        if not store and path == "raw" and many:
                            continue
                        name = f"{shape}-{backend}-{'store' if store else 'nostore'}-{path}-{'many' if many else 'one'}"
                        out.append(pytest.param(shape, backend, store, path, many, id=name))
    return out


@pytest.mark.parametrize(("shape", "backend", "store", "path", "many"), async_cells())
async def test_review_matrix_async(
    shape: str, backend: str, store: bool, path: str, many: bool, tmp_path: Path, pg_db: str
) -> None:
    """The same, with `ainvoke` and `aanswer_escalations` on the async checkpointers and stores."""
    where = str(tmp_path / "app.sqlite") if backend == "sqlite" else pg_db
    effects = tmp_path / "effects.log"
    thread = f"async-{shape}-{path}-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    async with aapp(shape, backend, where, store=store, effects=effects) as (graph, _store):
        out = await graph.ainvoke({"question": "q"}, config)
        assert run_outcome(out) == "escalated"
        pending = await apending_escalations(graph, config)
        ids = [p.escalation["id"] for p in pending]

        async def answer(escalation_id: str) -> None:
            [target] = [p for p in await apending_escalations(graph, config) if p.escalation["id"] == escalation_id]
            answer = {target.interrupt_id: edit(target.escalation)}
            if path == "answer_escalations":
                await aanswer_escalations(graph, config, answer)
                return
            try:
                await graph.ainvoke(Command(resume=answer), config)
            except ConcurrentResumeError:
                pass  # this run raced another one of the thread; the other carries the decision on

        if many:
            await asyncio.gather(*(answer(i) for i in ids))
        else:
            for escalation_id in ids:
                await answer(escalation_id)
    # the rest as an operator checks it, with the sync graph on the same database
    with app(shape, backend, where, store=store, effects=effects) as (graph, the_store):
        if store:
            EscalationInbox(the_store, graph=graph, clock=lambda: FAR).reconcile()
        state = graph.get_state(config)
        assert not state.next, (state.next, state.tasks)
        results = Counter(state.values["results"])
        expected = {f"{t}={'edited' if t in ESCALATING[shape] else 'ok'}" for t in TASKS[shape]}
        assert set(results) == expected and set(results.values()) == {1}, results
        lines = [line for line in effects.read_text().splitlines() if line.startswith(f"{thread} ")]
        assert lines == [f"{thread} {DOWNSTREAM[shape]}"], lines
        if store:
            items = EscalationInbox(the_store, graph=graph, clock=lambda: FAR).list(thread_id=thread, status=None)
            assert {i.status for i in items} == {"resolved"} and len(items) == len(ids)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("shape", ["straight", "send"])
def test_raw_resumes_racing_the_inbox_on_the_same_escalation_apply_once(
    shape: str, backend: str, tmp_path: Path, pg_db: str
) -> None:
    """A reviewer in the inbox and two direct `Command(resume=...)` calls answer the same escalation at once."""
    where = str(tmp_path / "app.sqlite") if backend == "sqlite" else pg_db
    effects = tmp_path / "effects.log"
    for round_ in range(6):
        thread = f"race-{shape}-{round_}-{uuid.uuid4().hex[:6]}"
        config = {"configurable": {"thread_id": thread}}
        with app(shape, backend, where, effects=effects) as (graph, store):
            graph.invoke({"question": "q"}, config)
            pending = pending_escalations(graph, config)
            inbox = EscalationInbox(store, graph=graph)
            *others, target = pending
            for other in others:  # the fan-out's other escalations are answered first
                inbox.resolve(other.escalation["id"], edit(other.escalation), reviewer="ana")
            barrier = threading.Barrier(3)
            outcomes: list[str] = []

            def by_inbox(
                barrier: Any = barrier, inbox: Any = inbox, target: Any = target, outcomes: Any = outcomes
            ) -> None:
                barrier.wait()
                try:
                    inbox.resolve(target.escalation["id"], edit(target.escalation), reviewer="bo")
                    outcomes.append("inbox")
                except AlreadyResolvedError:
                    outcomes.append("inbox refused")
                except Exception as exc:  # noqa: BLE001 - shown in the assertion
                    outcomes.append(f"inbox {type(exc).__name__}: {exc}")

            def by_raw(
                barrier: Any = barrier, target: Any = target, outcomes: Any = outcomes, config: Any = config
            ) -> None:
                barrier.wait()
                answer = {"action": "edit", "output": [f"{task_of(target.escalation)}=raw"]}
                try:
                    graph.invoke(Command(resume={target.interrupt_id: answer}), config)
                    outcomes.append("raw")
                except ConcurrentResumeError:
                    outcomes.append("raw stopped")
                except Exception as exc:  # noqa: BLE001 - shown in the assertion
                    outcomes.append(f"raw {type(exc).__name__}: {exc}")

            workers = [threading.Thread(target=f) for f in (by_inbox, by_raw, by_raw)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=120)
            EscalationInbox(store, graph=graph, clock=lambda: FAR).reconcile()
            state = graph.get_state(config)
            assert not state.next, (outcomes, state.tasks)
            results = Counter(state.values["results"])
            mine = [r for r in results if r.startswith(f"{task_of(target.escalation)}=")]
            assert len(mine) == 1 and results[mine[0]] == 1 and set(results.values()) == {1}, (outcomes, results)
            row = inbox.show(target.escalation["id"])
            applied = mine[0].split("=", 1)[1]
            assert row.status == "resolved" and (applied == "edited") == (row.resolved_by == "bo"), (outcomes, row)
        lines = [line for line in effects.read_text().splitlines() if line.startswith(f"{thread} ")]
        assert lines == [f"{thread} {DOWNSTREAM[shape]}"], (outcomes, lines)
