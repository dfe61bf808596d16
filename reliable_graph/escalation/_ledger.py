"""The inbox's ledger: what must change atomically, as one SQL statement on SQLite and Postgres.

One row per escalation (status, assignee and lease, decision, who resolved it and when) with
compare-and-set transitions, and an append-only audit table, in the same database as the store
(`SqliteStore`'s or `PostgresStore`'s connection). Any other store gets an in-process ledger.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import BaseStore

__all__ = ["Ledger", "ledger_for"]

_LEDGERS: weakref.WeakKeyDictionary[BaseStore, Ledger] = weakref.WeakKeyDictionary()


def ledger_for(store: BaseStore) -> Ledger:
    """The ledger beside `store` (one per store object, its tables created once)."""
    ledger = _LEDGERS.get(store)
    if ledger is None:
        ledger = Ledger(store)
        _LEDGERS[store] = ledger
    return ledger


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Ledger:
    """What changes atomically: one row per escalation, compare-and-set, plus the audit trail."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store
        conn = getattr(store, "conn", None)
        module = type(conn).__module__ if conn is not None else ""
        if module.startswith("sqlite3"):
            self.kind = "sqlite"
        elif "psycopg" in module:
            self.kind = "postgres"
        else:
            self.kind = "memory"
        self.conn = conn
        self.lock = getattr(store, "lock", None) or threading.RLock()  # SqliteStore's own lock, when it has one
        self.rows: dict[str, dict[str, Any]] = {}
        self.audit_rows: list[dict[str, Any]] = []
        self._setup()

    # -- SQL plumbing ------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.kind == "postgres" else text

    def _exec(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        assert self.conn is not None
        if self.kind == "sqlite":
            with self.lock:
                cur = self.conn.execute(text, params)
                rows: list[Any] = cur.fetchall()
                self.conn.commit()
                return rows
        with self.conn.cursor() as cur:  # autocommit connection (PostgresStore's)
            cur.execute(self._sql(text), params)
            try:
                return list(cur.fetchall())
            except Exception:  # noqa: BLE001 - psycopg raises when a statement returns no rows
                return []

    def _setup(self) -> None:
        if self.kind == "memory":
            return
        serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.kind == "sqlite" else "BIGSERIAL PRIMARY KEY"
        self._exec(
            "CREATE TABLE IF NOT EXISTS reliable_graph_inbox ("
            "escalation_id TEXT PRIMARY KEY, thread_id TEXT, step TEXT, confidence DOUBLE PRECISION, "
            "created_at TEXT, deadline TEXT, status TEXT NOT NULL, assignee TEXT, lease_until TEXT, "
            "decision TEXT, resolved_by TEXT, resolved_at TEXT)"
        )
        added = (("threshold", "DOUBLE PRECISION"), ("reason", "TEXT"), ("kind", "TEXT"))  # after the first release
        for column, kind in added:
            if self.kind == "postgres":
                self._exec(f"ALTER TABLE reliable_graph_inbox ADD COLUMN IF NOT EXISTS {column} {kind}")
            elif column not in {r[1] for r in self._exec("PRAGMA table_info(reliable_graph_inbox)")}:
                self._exec(f"ALTER TABLE reliable_graph_inbox ADD COLUMN {column} {kind}")
        self._exec(
            "CREATE INDEX IF NOT EXISTS reliable_graph_inbox_status ON reliable_graph_inbox (status, step, created_at)"
        )
        self._exec(
            f"CREATE TABLE IF NOT EXISTS reliable_graph_inbox_audit (seq {serial}, escalation_id TEXT NOT NULL, "
            "at TEXT NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL, body TEXT)"
        )

    # -- rows --------------------------------------------------------------------------------

    _COLUMNS = (
        "escalation_id",
        "thread_id",
        "step",
        "confidence",
        "created_at",
        "deadline",
        "status",
        "assignee",
        "lease_until",
        "decision",
        "resolved_by",
        "resolved_at",
        "threshold",
        "reason",
        "kind",
    )

    def insert(self, item: Mapping[str, Any]) -> bool:
        row = {
            "escalation_id": item["id"],
            "thread_id": item.get("thread_id"),
            "step": item.get("step"),
            "confidence": item.get("confidence"),
            "created_at": item.get("created_at"),
            "deadline": item.get("deadline"),
            "status": "pending",
            "threshold": item.get("threshold"),
            "reason": item.get("reason"),
            "kind": "audit" if item.get("kind") == "audit" else "escalation",
        }
        if self.kind == "memory":
            with self.lock:
                if row["escalation_id"] in self.rows:
                    return False
                self.rows[row["escalation_id"]] = {c: row.get(c) for c in self._COLUMNS}
                return True
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        done = self._exec(
            f"INSERT INTO reliable_graph_inbox ({cols}) VALUES ({marks}) ON CONFLICT (escalation_id) DO NOTHING "
            "RETURNING escalation_id",
            list(row.values()),
        )
        return bool(done)

    def index(self, item: Mapping[str, Any]) -> bool:
        """Insert `item`'s row and its `index` audit line, unless the row is there already."""
        if not self.insert(item):
            return False
        self.log(str(item["id"]), "system", "index", {"step": item.get("step")})
        return True

    def get(self, escalation_id: str) -> dict[str, Any] | None:
        if self.kind == "memory":
            with self.lock:
                row = self.rows.get(escalation_id)
                return dict(row) if row else None
        found = self._exec(
            f"SELECT {', '.join(self._COLUMNS)} FROM reliable_graph_inbox WHERE escalation_id = ?", [escalation_id]
        )
        return self._row(found[0]) if found else None

    def _row(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, Mapping):
            return dict(raw)
        return dict(zip(self._COLUMNS, raw, strict=True))

    def transition(
        self,
        escalation_id: str,
        *,
        statuses: Sequence[str],
        now: str,
        changes: Mapping[str, Any],
        claimant: str | None = None,
    ) -> bool:
        """Compare-and-set: apply `changes` if the status is one of `statuses`.

        With `claimant`, also when the row is claimed by `claimant` or its lease has lapsed.
        """
        if self.kind == "memory":
            with self.lock:
                row = self.rows.get(escalation_id)
                if row is None or not _may(row, statuses, now, claimant):
                    return False
                row.update(changes)
                return True
        sets = ", ".join(f"{k} = ?" for k in changes)
        marks = ", ".join("?" for _ in statuses)
        done = self._exec(
            f"UPDATE reliable_graph_inbox SET {sets} WHERE escalation_id = ? AND (status IN ({marks}) "
            "OR (? = 1 AND status = 'claimed' AND (lease_until < ? OR assignee = ?))) RETURNING escalation_id",
            [*changes.values(), escalation_id, *statuses, int(claimant is not None), now, claimant or ""],
        )
        return bool(done)

    def select(
        self,
        *,
        status: Sequence[str] | None,
        step: str | None = None,
        thread_id: str | None = None,
        assignee: str | None = None,
        older_than: str | None = None,
        kind: str | None = None,
        order: str = "created",
        limit: int = 10_000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        if self.kind == "memory":
            with self.lock:
                rows = [dict(r) for r in self.rows.values()]
            rows = [
                r
                for r in rows
                if (status is None or r["status"] in status)
                and (step is None or r["step"] == step)
                and (thread_id is None or r["thread_id"] == thread_id)
                and (assignee is None or r["assignee"] == assignee)
                and (older_than is None or (r["created_at"] or "") <= older_than)
                and (kind is None or (r.get("kind") or "escalation") == kind)
            ]
            key = "confidence" if order == "confidence" else "created_at"
            rows.sort(key=lambda r: (r[key] is None, r[key], r["escalation_id"]))
            return rows[offset : offset + limit]
        where, params = [], []
        if status is not None:
            where.append(f"status IN ({', '.join('?' for _ in status)})")
            params += list(status)
        for column, value in (("step", step), ("thread_id", thread_id), ("assignee", assignee)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if older_than is not None:
            where.append("created_at <= ?")
            params.append(older_than)
        if kind is not None:
            where.append("COALESCE(kind, 'escalation') = ?")
            params.append(kind)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        column = "confidence" if order == "confidence" else "created_at"
        rows = self._exec(
            f"SELECT {', '.join(self._COLUMNS)} FROM reliable_graph_inbox {clause} "
            f"ORDER BY {column}, escalation_id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [self._row(r) for r in rows]

    def log(self, escalation_id: str, actor: str, event: str, body: Mapping[str, Any]) -> None:
        at = _now().isoformat()
        if self.kind == "memory":
            with self.lock:
                self.audit_rows.append(
                    {"escalation_id": escalation_id, "at": at, "actor": actor, "event": event, "body": dict(body)}
                )
            return
        self._exec(
            "INSERT INTO reliable_graph_inbox_audit (escalation_id, at, actor, event, body) VALUES (?, ?, ?, ?, ?)",
            [escalation_id, at, actor, event, json.dumps(body, default=str)],
        )

    def audit(self, escalation_id: str | None) -> list[dict[str, Any]]:
        if self.kind == "memory":
            with self.lock:
                return [
                    dict(r) for r in self.audit_rows if escalation_id is None or r["escalation_id"] == escalation_id
                ]
        where = "WHERE escalation_id = ?" if escalation_id else ""
        rows = self._exec(
            f"SELECT escalation_id, at, actor, event, body FROM reliable_graph_inbox_audit {where} ORDER BY seq",
            [escalation_id] if escalation_id else [],
        )
        out = []
        for raw in rows:
            row = (
                dict(raw)
                if isinstance(raw, Mapping)
                else dict(zip(("escalation_id", "at", "actor", "event", "body"), raw, strict=True))
            )
            row["body"] = json.loads(row["body"]) if row.get("body") else {}
            out.append(row)
        return out


def _may(row: Mapping[str, Any], statuses: Sequence[str], now: str, claimant: str | None) -> bool:
    if row["status"] in statuses:
        return True
    if claimant is None or row["status"] != "claimed":
        return False
    return (row.get("lease_until") or "") < now or row.get("assignee") == claimant
