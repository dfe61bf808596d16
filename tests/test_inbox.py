from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock
from inbox_app import postgres_app, sqlite_app
from langgraph.types import Command

from reliable_graph import (
    AlreadyResolvedError,
    EscalationInbox,
    InvalidAnswerError,
    pending_escalations,
    run_outcome,
    step_outcomes,
)
from reliable_graph.escalation.inbox import INBOX_NAMESPACE

HERE = Path(__file__).parent


def escalate(graph: Any, questions: list[str], prefix: str = "") -> list[str]:
    threads = []
    for q in questions:
        thread = f"{prefix}{q}"
        out = graph.invoke({"question": q}, {"configurable": {"thread_id": thread}})
        assert run_outcome(out) == "escalated"
        threads.append(thread)
    return threads


def test_inbox_indexes_every_escalation_once_and_lists_them(tmp_path: Path) -> None:
    with sqlite_app(tmp_path / "app.sqlite") as (graph, store):
        escalate(graph, ["q1", "q2", "q3"])
        graph.invoke(None, {"configurable": {"thread_id": "q1"}})  # the node may run again: no duplicate
        inbox = EscalationInbox(store, graph=graph)
        page = inbox.list()
        assert sorted(i.thread_id for i in page) == ["q1", "q2", "q3"]
        assert len(store.search(INBOX_NAMESPACE, limit=100)) == 3
        assert [i.created_at for i in page] == sorted(i.created_at for i in page)  # oldest first
        assert [i.id for i in inbox.list(limit=2)] + [i.id for i in inbox.list(limit=2, offset=2)] == [
            i.id for i in page
        ]
        assert [i.thread_id for i in inbox.list(thread_id="q2")] == ["q2"]
        assert inbox.list(step="nope") == [] and len(inbox.list(step="draft", order="confidence")) == 3
        assert inbox.list(status="resolved") == []


def test_inbox_show_has_what_a_reviewer_needs(tmp_path: Path) -> None:
    with sqlite_app(tmp_path / "app.sqlite") as (graph, store):
        escalate(graph, ["tides"])
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list()
        shown = inbox.show(item.id)
        esc = shown.escalation
        assert esc["step"] == "draft" and esc["confidence"] == 0.0 and esc["threshold"] == 1.0
        assert esc["reason"] == "a human must sign it off" and esc["inputs"] == {"question": "tides"}
        assert esc["output"] == "draft for tides" and esc["attempts"][0]["verdict"] == "escalate"
        assert esc["last_good_checkpoint_id"]


def test_inbox_claims_are_leases(tmp_path: Path, clock: Clock) -> None:
    with sqlite_app(tmp_path / "app.sqlite") as (graph, store):
        escalate(graph, ["q"])
        inbox = EscalationInbox(store, graph=graph, lease=timedelta(milliseconds=200))
        [item] = inbox.list()
        assert inbox.claim(item.id, reviewer="ana").assignee == "ana"
        with pytest.raises(AlreadyResolvedError) as info:
            inbox.claim(item.id, reviewer="bo")
        assert info.value.by == "ana" and info.value.status == "claimed"
        with pytest.raises(AlreadyResolvedError):
            inbox.resolve(item.id, {"action": "approve"}, reviewer="bo")
        clock.advance(timedelta(milliseconds=300))  # ana's lease lapses: the escalation is back in the queue
        assert inbox.claim(item.id, reviewer="bo").assignee == "bo"
        assert inbox.release(item.id, reviewer="bo").status == "pending"
        assert [e.event for e in inbox.audit(item.id)] == ["index", "claim", "claim", "release"]


def test_inbox_resolves_exactly_once_and_audits(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    with sqlite_app(tmp_path / "app.sqlite", effects) as (graph, store):
        escalate(graph, ["q"])
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list()
        with pytest.raises(InvalidAnswerError):
            inbox.resolve(item.id, {"action": "edit"}, reviewer="ana")  # nothing changes
        assert inbox.show(item.id).status == "pending"
        out = inbox.resolve(item.id, {"action": "edit", "output": "signed"}, reviewer="ana", reason="checked")
        assert out["output"] == "signed" and out["done"] == "signed" and step_outcomes(out) == {"draft": "edited"}
        with pytest.raises(AlreadyResolvedError) as info:
            inbox.resolve(item.id, {"action": "approve"}, reviewer="bo")
        assert info.value.by == "ana" and info.value.at
        assert effects.read_text().splitlines() == ["q"]
        entry = inbox.audit(item.id)[-1]
        assert (entry.event, entry.actor, entry.before, entry.after) == ("resolve", "ana", "draft for q", "signed")
        assert inbox.show(item.id).status == "resolved" and inbox.list() == []


def test_inbox_and_a_raw_resume_cannot_both_apply(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    with sqlite_app(tmp_path / "app.sqlite", effects) as (graph, store):
        escalate(graph, ["q"])
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list()
        config = {"configurable": {"thread_id": "q"}}
        [pending] = pending_escalations(graph, config)
        graph.invoke(Command(resume={pending.interrupt_id: {"action": "approve"}}), config)
        with pytest.raises(AlreadyResolvedError) as info:
            inbox.resolve(item.id, {"action": "edit", "output": "late"}, reviewer="ana")
        assert info.value.by == "a direct resume"
        assert effects.read_text().splitlines() == ["q"]
        assert graph.get_state(config).values["output"] == "draft for q"


def test_inbox_reconcile_rebuilds_a_wiped_index_and_finishes_a_resolution_cut_short(
    tmp_path: Path, clock: Clock
) -> None:
    effects = tmp_path / "effects.log"
    with sqlite_app(tmp_path / "app.sqlite", effects) as (graph, store):
        escalate(graph, ["a", "b"])
        for item in store.search(INBOX_NAMESPACE, limit=100):
            store.delete(INBOX_NAMESPACE, item.key)  # the index is wiped, ledger included
        store.conn.execute("DELETE FROM reliable_graph_inbox")
        inbox = EscalationInbox(store, graph=graph)
        assert inbox.list() == []
        assert inbox.reconcile() == 2 and len(inbox.list()) == 2
        # a resolver won the escalation, then died before applying it
        [first, _] = inbox.list()
        now = clock.at.isoformat()
        assert inbox.ledger.transition(
            first.id,
            statuses=["pending"],
            now=now,
            changes={
                "status": "resolving",
                "decision": '{"action": "approve"}',
                "resolved_by": "ana",
                "resolved_at": now,
            },
        )
        inbox.reconcile()
        assert inbox.show(first.id).status == "resolved"
        assert effects.read_text().splitlines() == [first.thread_id]
        inbox.reconcile()  # again: nothing applies twice
        assert effects.read_text().splitlines() == [first.thread_id]


def test_inbox_sweep_applies_the_default_action_once(tmp_path: Path, clock: Clock) -> None:
    with sqlite_app(tmp_path / "app.sqlite") as (graph, store):
        escalate(graph, ["late", "later"])
        inbox = EscalationInbox(
            store, graph=graph, deadline=timedelta(hours=1), on_expiry={"action": "terminate", "reason": "no review"}
        )
        assert inbox.sweep() == []  # nothing is due yet
        future = clock.at + timedelta(hours=2)
        expired = inbox.sweep(now=future)
        assert len(expired) == 2 and inbox.sweep(now=future) == []
        for thread in ("late", "later"):
            assert run_outcome(graph.get_state({"configurable": {"thread_id": thread}})) == "terminated"
        assert {inbox.show(i).status for i in expired} == {"expired"}


def test_inbox_sweep_can_hand_over_instead(tmp_path: Path, clock: Clock) -> None:
    with sqlite_app(tmp_path / "app.sqlite") as (graph, store):
        escalate(graph, ["q"])
        inbox = EscalationInbox(store, graph=graph, deadline=timedelta(minutes=5), on_expiry={"assign_to": "lead"})
        [item] = inbox.list()
        assert inbox.sweep() == []  # not due yet
        assert inbox.sweep(now=clock.at + timedelta(minutes=10)) == [item.id]
        assert inbox.show(item.id).assignee == "lead" and inbox.show(item.id).status == "claimed"


def test_inbox_rejects_bad_configuration(tmp_path: Path) -> None:
    with sqlite_app(tmp_path / "app.sqlite") as (graph, store):
        with pytest.raises(TypeError):
            EscalationInbox(object(), graph=graph)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="lease"):
            EscalationInbox(store, lease=timedelta(0))
        with pytest.raises(InvalidAnswerError):
            EscalationInbox(store, on_expiry={"action": "shrug"})
        inbox = EscalationInbox(store)
        with pytest.raises(ValueError, match="graph"):
            inbox.reconcile()


def race(backend: str, db: Path, effects: Path, escalation_id: str, processes: int = 8) -> list[str]:
    start = time.time() + 3.0
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "inbox_race_child.py"),
                backend,
                str(db),
                str(effects),
                escalation_id,
                f"r{n}",
                str(start),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(out.strip())
    return results


def test_inbox_eight_processes_racing_on_sqlite_resolve_once(tmp_path: Path) -> None:
    db, effects = tmp_path / "app.sqlite", tmp_path / "effects.log"
    with sqlite_app(db, effects) as (graph, store):
        escalate(graph, ["raced"])
        [item] = EscalationInbox(store, graph=graph).list()
    results = race("sqlite", db, effects, item.id)
    winners = [r for r in results if r == "won"]
    assert len(winners) == 1 and all(r.startswith("lost:r") for r in results if r != "won")
    assert effects.read_text().splitlines() == ["raced"]
    with sqlite_app(db) as (graph, store):
        assert graph.get_state({"configurable": {"thread_id": "raced"}}).values["output"].startswith("by r")


def test_inbox_eight_processes_racing_on_postgres_resolve_once(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    question = f"pg-{uuid.uuid4().hex[:8]}"
    with postgres_app(effects) as (graph, store):
        escalate(graph, [question])
        [item] = EscalationInbox(store, graph=graph).list(thread_id=question)
    results = race("postgres", tmp_path / "unused", effects, item.id)
    assert results.count("won") == 1
    assert effects.read_text().splitlines() == [question]
    with postgres_app() as (graph, store):
        assert graph.get_state({"configurable": {"thread_id": question}}).values["output"].startswith("by r")
        assert EscalationInbox(store, graph=graph).show(item.id).status == "resolved"


def test_a_direct_answer_after_the_inbox_took_the_escalation_is_refused(tmp_path: Path, clock: Clock) -> None:
    effects = tmp_path / "effects.log"
    with sqlite_app(tmp_path / "app.sqlite", effects) as (graph, store):
        escalate(graph, ["q"])
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list()
        # the inbox has won the escalation for ana (compare-and-set done, not yet applied)...
        now = clock.at.isoformat()
        decision = {"action": "edit", "output": "ana's", "ticket": "t-ana"}
        assert inbox.ledger.transition(
            item.id,
            statuses=["pending"],
            now=now,
            changes={"status": "resolving", "decision": json.dumps(decision), "resolved_by": "ana", "resolved_at": now},
        )
        # ...when someone answers the graph directly: refused, asked again with the reason
        config = {"configurable": {"thread_id": "q"}}
        [pending] = pending_escalations(graph, config)
        out = graph.invoke(Command(resume={pending.interrupt_id: {"action": "approve"}}), config)
        [again] = out["__interrupt__"]
        assert "already resolved through the inbox by ana" in again.value["rejected"]["reason"]
        inbox.reconcile()  # the inbox's resolution goes through, once
        assert graph.get_state(config).values["output"] == "ana's"
        assert effects.read_text().splitlines() == ["q"] and inbox.show(item.id).status == "resolved"
