"""A real process SIGKILLed at every named crash point of a resolution, on SQLite and Postgres, then reconcile.

After each kill, `reconcile()` (by another process, once the dead owner's heartbeat has lapsed)
finishes the resolution exactly once: nothing lost (every escalation ends `resolved`, its
decision in the thread), nothing applied twice (each task's result once in the final state,
the downstream node run once), nothing stalled (the thread at its end). A `reconcile()` that
runs while a resolution is alive leaves it alone.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from review_app import DOWNSTREAM, ESCALATING, TASKS, app
from review_child import T0

from reliable_graph import EscalationInbox, pending_escalations
from reliable_graph.escalation.protocol import CrashPoint

HERE = Path(__file__).parent
AFTER_LEASE = T0 + timedelta(days=365 * 200)
"""An instant past every lease a `mono` clock (T0 plus the machine's uptime) hands out."""


def child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HERE / "review_child.py"), *args], capture_output=True, text=True, timeout=180
    )


def escalated(shape: str, backend: str, where: str, effects: Path) -> tuple[str, list[str]]:
    thread = f"kill-{shape}-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    with app(shape, backend, where, effects=effects) as (graph, _store):
        graph.invoke({"question": "q"}, config)
        ids = [p.escalation["id"] for p in pending_escalations(graph, config)]
    return thread, ids


def assert_finished_once(shape: str, backend: str, where: str, effects: Path, thread: str, ids: list[str]) -> None:
    config = {"configurable": {"thread_id": thread}}
    with app(shape, backend, where, effects=effects) as (graph, store):
        inbox = EscalationInbox(store, graph=graph, clock=lambda: AFTER_LEASE)
        inbox.reconcile()
        state = graph.get_state(config)
        assert not state.next, state.tasks
        results = Counter(state.values["results"])
        expected = {f"{t}={'edited' if t in ESCALATING[shape] else 'ok'}" for t in TASKS[shape]}
        assert set(results) == expected and set(results.values()) == {1}, results
        statuses = {i: inbox.show(i).status for i in ids}
        assert set(statuses.values()) == {"resolved"}, statuses
        for escalation_id in ids:
            assert [e.event for e in inbox.audit(escalation_id)].count("resolve") == 1
    lines = [line for line in effects.read_text().splitlines() if line.startswith(f"{thread} ")]
    assert lines == [f"{thread} {DOWNSTREAM[shape]}"], lines


def where_of(backend: str, tmp_path: Path, pg_db: str) -> str:
    return str(tmp_path / "app.sqlite") if backend == "sqlite" else pg_db


RESOLVE_POINTS = [p for p in CrashPoint.ALL if p != CrashPoint.TAKEN_OVER]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("shape", ["straight", "send"])
@pytest.mark.parametrize("point", RESOLVE_POINTS)
def test_a_resolver_killed_at_each_crash_point_is_finished_once(
    point: str, shape: str, backend: str, tmp_path: Path, pg_db: str
) -> None:
    where, effects = where_of(backend, tmp_path, pg_db), tmp_path / "effects.log"
    thread, ids = escalated(shape, backend, where, effects)
    *first, last = ids
    for n, escalation_id in enumerate(first):  # the fan-out's other reviewers answer first
        done = child("resolve", backend, where, shape, str(effects), "none", "mono", escalation_id, f"r{n}")
        assert done.stdout.strip() == "done", done.stderr[-3000:]
    killed = child("resolve", backend, where, shape, str(effects), point, "mono", last, "victim")
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-3000:])
    assert_finished_once(shape, backend, where, effects, thread, ids)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_reconcile_killed_while_taking_over_is_finished_by_the_next(backend: str, tmp_path: Path, pg_db: str) -> None:
    where, effects = where_of(backend, tmp_path, pg_db), tmp_path / "effects.log"
    thread, [only] = escalated("straight", backend, where, effects)
    killed = child("resolve", backend, where, "straight", str(effects), CrashPoint.WON, "mono", only, "victim")
    assert killed.returncode == -9
    # the first operator's reconcile takes the lapsed resolution over, and dies there
    taken = child(
        "reconcile", backend, where, "straight", str(effects), CrashPoint.TAKEN_OVER, "2200-01-01T00:00:00+00:00"
    )
    assert taken.returncode == -9, taken.stderr[-3000:]
    assert_finished_once("straight", backend, where, effects, thread, [only])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_reconcile_racing_a_live_resolution_leaves_it_alone(backend: str, tmp_path: Path, pg_db: str) -> None:
    where, effects = where_of(backend, tmp_path, pg_db), tmp_path / "effects.log"
    thread, ids = escalated("send", backend, where, effects)
    resolvers = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "review_child.py"),
                "resolve",
                backend,
                where,
                "send",
                str(effects),
                "none",
                "mono",
                escalation_id,
                f"r{n}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, escalation_id in enumerate(ids)
    ]
    reconcilers = 0
    while any(p.poll() is None for p in resolvers):
        # operators reconciling with the same clock as the resolvers: live heartbeats are never taken over
        assert child("reconcile", backend, where, "send", str(effects), "none", "mono").returncode == 0
        reconcilers += 1
    for proc in resolvers:
        out, err = proc.communicate(timeout=60)
        assert out.strip() == "done", err[-3000:]
    assert reconcilers >= 1
    with app("send", backend, where, effects=effects) as (graph, store):
        inbox = EscalationInbox(store, graph=graph, clock=lambda: T0 + timedelta(seconds=time.monotonic()))
        assert [e.event for i in ids for e in inbox.audit(i)].count("takeover") == 0
    assert_finished_once("send", backend, where, effects, thread, ids)
