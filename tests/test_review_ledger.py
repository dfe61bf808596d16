"""The ledger owns its database access: migrations once and race-free, every inbox operation alike on both backends."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.store.sqlite import SqliteStore
from review_app import app

from reliable_graph import AlreadyResolvedError, EscalationInbox, NoPendingEscalationError, pending_escalations
from reliable_graph.escalation._ledger import SCHEMA_VERSION, ledger_for

T0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

MIGRATE = """
import sys
from langgraph.store.{module} import {store}
from reliable_graph.escalation._ledger import ledger_for
{opener}
ledger_for(store)
print("ok")
"""


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A database nobody has migrated yet."""
    name = f"rg_fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def versions(rows: list[Any]) -> list[int]:
    return sorted(int(r[0]) for r in rows)


def test_a_fresh_sqlite_file_migrates_once_under_racing_threads_and_processes(tmp_path: Path) -> None:
    db = tmp_path / "fresh.sqlite"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:  # the store's own tables, set up once
        SqliteStore(conn).setup()  # (LangGraph's migrations are not safe to race); the ledger's are left to the racers
    opener = (
        "import sqlite3\n"
        f"conn = sqlite3.connect({str(db)!r}, check_same_thread=False, isolation_level=None, timeout=60)\n"
        "store = SqliteStore(conn)"
    )
    script = MIGRATE.format(module="sqlite", store="SqliteStore", opener=opener)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with closing(sqlite3.connect(db, check_same_thread=False, isolation_level=None, timeout=60)) as conn:
                ledger_for(SqliteStore(conn))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["ok"] * 4 and not errors, errors
    with closing(sqlite3.connect(db)) as conn:
        assert versions(conn.execute("SELECT version FROM reliable_graph_schema").fetchall()) == [1, 2]
    assert SCHEMA_VERSION == 2


def test_a_fresh_postgres_database_migrates_once_under_racing_processes(fresh_pg: str) -> None:
    from langgraph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(fresh_pg) as store:  # the store's own tables, once (LangGraph's
        store.setup()  # migrations are not safe to race); the ledger's are left to the racers
    script = (
        "from langgraph.store.postgres import PostgresStore\n"
        "from reliable_graph.escalation._ledger import ledger_for\n"
        f"with PostgresStore.from_conn_string({fresh_pg!r}) as store:\n"
        "    ledger_for(store)\n"
        "    print('ok')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(6)]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["ok"] * 6
    with psycopg.connect(fresh_pg) as conn:
        assert versions(conn.execute("SELECT version FROM reliable_graph_schema").fetchall()) == [1, 2]


def test_a_database_of_the_first_release_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:  # the first release's tables, one row waiting
        conn.execute(
            "CREATE TABLE reliable_graph_inbox (escalation_id TEXT PRIMARY KEY, thread_id TEXT, step TEXT, "
            "confidence DOUBLE PRECISION, created_at TEXT, deadline TEXT, status TEXT NOT NULL, assignee TEXT, "
            "lease_until TEXT, decision TEXT, resolved_by TEXT, resolved_at TEXT)"
        )
        conn.execute(
            "INSERT INTO reliable_graph_inbox (escalation_id, thread_id, step, confidence, created_at, status) "
            "VALUES ('old1', 't-old', 'draft', 0.2, '2025-06-01T00:00:00+00:00', 'pending')"
        )
    conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    store.setup()
    inbox = EscalationInbox(store, clock=lambda: T0)
    [item] = inbox.list()
    assert (item.id, item.step, item.status) == ("old1", "draft", "pending")
    assert inbox.claim("old1", reviewer="ana").assignee == "ana"
    conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_claims_and_releases_behave_the_same_on_both_backends(backend: str, tmp_path: Path, pg_db: str) -> None:
    where = str(tmp_path / "app.sqlite") if backend == "sqlite" else pg_db
    thread = f"claims-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    with app("straight", backend, where) as (graph, store):
        graph.invoke({"question": "q"}, config)
        [pending] = pending_escalations(graph, config)
        clock = [T0]
        inbox = EscalationInbox(store, graph=graph, clock=lambda: clock[0], lease=timedelta(minutes=10))
        eid = pending.escalation["id"]
        with pytest.raises(AlreadyResolvedError, match="not claimed by ana: there is no claim to give back"):
            inbox.release(eid, reviewer="ana")
        assert inbox.claim(eid, reviewer="ana").status == "claimed"
        with pytest.raises(AlreadyResolvedError, match=r"is claimed by ana until 2026-01-01T12:10:00"):
            inbox.claim(eid, reviewer="bo")
        with pytest.raises(AlreadyResolvedError, match="is claimed by ana"):
            inbox.release(eid, reviewer="bo")
        assert inbox.release(eid, reviewer="ana").status == "pending"
        assert inbox.claim(eid, reviewer="bo").assignee == "bo"
        clock[0] = T0 + timedelta(minutes=11)  # bo's claim lapses: pending again, for anyone
        assert [(i.id, i.status, i.assignee) for i in inbox.list(thread_id=thread)] == [(eid, "pending", None)]
        assert inbox.list(thread_id=thread, status="claimed") == []
        for bad in ("", "   ", "a direct resume"):
            with pytest.raises(ValueError, match="reviewer"):
                inbox.claim(eid, reviewer=bad)
        with pytest.raises(ValueError, match="unknown status 'bogus': choose from pending, claimed"):
            inbox.list(status="bogus")
        with pytest.raises(NoPendingEscalationError, match="no escalation nope in this inbox"):
            inbox.show("nope")
        with pytest.raises(NoPendingEscalationError, match="no escalation nope in this inbox"):
            inbox.claim("nope", reviewer="ana")
        events = [e.event for e in inbox.audit(eid)]
        assert events == ["index", "claim", "release", "claim"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_thread_run_again_leaves_no_stale_escalation(backend: str, tmp_path: Path, pg_db: str) -> None:
    """Running a thread again with new input escalates its task anew: the old escalation is superseded at once."""
    where = str(tmp_path / "app.sqlite") if backend == "sqlite" else pg_db
    thread = f"rerun-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread}}
    with app("straight", backend, where) as (graph, store):
        graph.invoke({"question": "q"}, config)
        inbox = EscalationInbox(store, graph=graph, clock=lambda: T0)
        [old] = inbox.list(thread_id=thread)
        graph.invoke({"question": "q again"}, config)  # the same thread, run again from the start
        [new] = inbox.list(thread_id=thread)
        assert new.id != old.id and inbox.show(old.id).status == "superseded"
        with pytest.raises(AlreadyResolvedError, match="superseded"):
            inbox.resolve(old.id, {"action": "approve"}, reviewer="ana")
        assert [e.event for e in inbox.audit(old.id)] == ["index", "superseded"]
        inbox.resolve(new.id, {"action": "edit", "output": ["draft=edited"]}, reviewer="ana")
        assert graph.get_state(config).values["results"] == ["draft=edited"]


def test_reconcile_and_sweep_read_every_row_not_one_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 pending rows once hid every newer row from reconcile(); `select_all` reads page after page."""
    conn = sqlite3.connect(tmp_path / "pages.sqlite", check_same_thread=False, isolation_level=None)
    store = SqliteStore(conn)
    store.setup()
    ledger = ledger_for(store)
    for n in range(7):
        ledger.index(
            {
                "id": f"e{n}",
                "thread_id": f"t{n}",
                "step": "draft",
                "confidence": 0.1,
                "threshold": 0.5,
                "reason": "r",
                "created_at": (T0 + timedelta(minutes=n)).isoformat(),
            },
            at=T0.isoformat(),
        )
    monkeypatch.setattr("reliable_graph.escalation._ledger.PAGE", 3)
    now = T0.isoformat()
    assert len(ledger.select(status=("pending",), now=now, limit=3)) == 3
    assert [r["escalation_id"] for r in ledger.select_all(status=("pending",), now=now)] == [f"e{n}" for n in range(7)]
    conn.close()
