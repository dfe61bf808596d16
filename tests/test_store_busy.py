"""An async store write SQLite refuses at once ("database is locked") is run again; other errors are raised.

`AsyncSqliteStore` runs the reads and writes of concurrent tasks in one deferred transaction; in
WAL mode SQLite refuses its upgrade to a write without waiting when another connection wrote
since it read. The review nodes' notes to the store are idempotent, so they are tried again
(the async raw-resume matrix on SQLite hit it about once in a hundred rounds).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from reliable_graph.escalation.inbox import INBOX_NAMESPACE, aindex_escalation, anote_status

ESCALATION = {
    "id": "e1",
    "thread_id": "t1",
    "step": "draft",
    "confidence": 0.2,
    "threshold": 0.8,
    "reason": "no source",
    "created_at": "2026-01-01T00:00:00+00:00",
}


class Busy(InMemoryStore):
    """A store whose first `fail` writes SQLite refuses, as AsyncSqliteStore's do under contention."""

    def __init__(self, fail: int, error: Exception | None = None) -> None:
        super().__init__()
        self.fail = fail
        self.error = error or sqlite3.OperationalError("database is locked")
        self.writes = 0

    async def aput(self, *args: Any, **kwargs: Any) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise self.error
        self.writes += 1
        await super().aput(*args, **kwargs)


def test_an_index_and_a_status_refused_by_a_busy_database_are_written_once() -> None:
    store = Busy(fail=3)
    asyncio.run(aindex_escalation(store, ESCALATION))
    assert store.writes == 1 and store.get(INBOX_NAMESPACE, "e1") is not None
    store.fail = 2
    asyncio.run(anote_status(store, "e1", "resolved", decision={"action": "approve"}, by="ana"))
    item = store.get(INBOX_NAMESPACE, "e1")
    assert item is not None and item.value["status"] == "resolved" and item.value["resolved_by"] == "ana"
    assert store.writes == 2


def test_other_errors_and_a_database_that_stays_busy_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reliable_graph.escalation.inbox.BUSY_RETRIES", 3)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        asyncio.run(aindex_escalation(Busy(fail=1, error=sqlite3.OperationalError("no such table: store")), ESCALATION))
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        asyncio.run(aindex_escalation(Busy(fail=10_000), ESCALATION))
