"""The inbox's ledger: the rows the resolution protocol changes, each change one compare-and-set.

One row per escalation (status, claim, the resolution's ticket, owner and heartbeat, who resolved
it and when), an append-only audit trail, and one lock row per thread whose review is being
applied. On SQLite and Postgres the ledger sits in the store's database but owns its own access:
its own connection to the SQLite file (or the store's connection under the store's lock for an
in-memory database), its own small pool to Postgres (from the store's connection, or one the
user passes), so it never shares a connection with the store or the checkpointer mid-statement.
Its tables are created and migrated once, race-free: inside `BEGIN IMMEDIATE` on SQLite and a
transaction holding an advisory lock on Postgres, recorded in a schema version table. Any other
store gets an in-process ledger with the same semantics.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import BaseStore

__all__ = ["Expect", "Ledger", "ledger_for"]

_LEDGERS: weakref.WeakKeyDictionary[BaseStore, Ledger] = weakref.WeakKeyDictionary()
_LEDGERS_LOCK = threading.Lock()
SCHEMA_VERSION = 2
_ADVISORY_KEY = 0x7265_6C67  # "relg": the migration lock on Postgres

COLUMNS = (
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
    "task",
    "round",
    "ticket",
    "owner",
    "heartbeat",
    "handed_to",
    "continued_at",
    "continued_until",
    "answered_at",
)
_AUDIT_COLUMNS = ("escalation_id", "at", "actor", "event", "body")


def ledger_for(store: BaseStore, connection: Any = None) -> Ledger:
    """The ledger beside `store`: one per store object, its tables migrated once.

    `connection` (a `sqlite3.Connection`, a psycopg connection or pool) is the database access
    the ledger uses instead of deriving its own from the store; it is taken on the first call.
    """
    with _LEDGERS_LOCK:
        ledger = _LEDGERS.get(store)
        if ledger is None:
            ledger = Ledger(store, connection)
            _LEDGERS[store] = ledger
        return ledger


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """The precondition of a compare-and-set: the row must match all of it."""

    statuses: tuple[str, ...] = ()
    """The row's status is one of these..."""
    claimant: str | None = None
    """...or, with a claimant, the row is `claimed` by the claimant or its claim has lapsed."""
    owner: str | None = None
    """The resolution's owner must be this."""
    assignee: str | None = None
    """The claim must be held by this reviewer."""
    lapsed: bool = False
    """The owner's heartbeat must have lapsed (a takeover)."""
    unhanded: bool = False
    """The row must never have been handed over by `sweep()`."""
    now: str = ""
    """The time leases and heartbeats are compared with (ISO 8601, UTC)."""

    def holds(self, row: Mapping[str, Any]) -> bool:
        """Whether `row` meets the precondition (the in-process ledger's check)."""
        held = row["status"] in self.statuses or (
            self.claimant is not None
            and row["status"] == "claimed"
            and ((row.get("lease_until") or "") < self.now or row.get("assignee") == self.claimant)
        )
        if self.owner is not None:
            held = held and row.get("owner") == self.owner
        if self.assignee is not None:
            held = held and row.get("assignee") == self.assignee
        if self.lapsed:
            held = held and (row.get("heartbeat") or "") < self.now
        if self.unhanded:
            held = held and row.get("handed_to") is None
        return held

    def sql(self) -> tuple[str, list[Any]]:
        """The precondition as a SQL condition with its parameters."""
        parts, params = [], []
        either = []
        if self.statuses:
            either.append(f"status IN ({', '.join('?' for _ in self.statuses)})")
            params += list(self.statuses)
        if self.claimant is not None:
            either.append("(status = 'claimed' AND (lease_until < ? OR assignee = ?))")
            params += [self.now, self.claimant]
        parts.append(f"({' OR '.join(either)})" if either else "1 = 0")
        if self.owner is not None:
            parts.append("owner = ?")
            params.append(self.owner)
        if self.assignee is not None:
            parts.append("assignee = ?")
            params.append(self.assignee)
        if self.lapsed:
            parts.append("COALESCE(heartbeat, '') < ?")
            params.append(self.now)
        if self.unhanded:
            parts.append("handed_to IS NULL")
        return " AND ".join(parts), params


PAGE = 10_000
"""Rows per page when every matching row is read (`select_all`)."""


class Ledger:
    """The rows that change atomically, on SQLite, Postgres or in process."""

    def __init__(self, store: BaseStore, connection: Any = None) -> None:
        # no reference to `store` is kept: the registry is keyed weakly by it, so a store that is
        # gone takes its ledger (and the ledger's connections) with it
        self.lock = threading.RLock()
        self.rows: dict[str, dict[str, Any]] = {}
        self.audit_rows: list[dict[str, Any]] = []
        self.threads: dict[str, tuple[str, str]] = {}
        self.conn: Any = None
        self.pool: Any = None
        self.kind = "memory"
        self._open(store, connection)
        if self.kind != "memory":
            self._migrate()

    # -- database access -----------------------------------------------------------------------

    def _open(self, store: BaseStore, connection: Any) -> None:
        target = connection if connection is not None else getattr(store, "conn", None)
        module = type(target).__module__ if target is not None else ""
        if module.startswith("sqlite3"):
            self.kind = "sqlite"
            if connection is not None:
                self.conn = connection
                return
            path = _sqlite_file(target, getattr(store, "lock", None))
            if path:
                import sqlite3

                self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
                self.conn.execute("PRAGMA busy_timeout = 60000")
                weakref.finalize(self, self.conn.close)
            else:  # an in-memory database: only the store's connection reaches it
                self.conn = target
                self.lock = getattr(store, "lock", None) or self.lock
        elif module.startswith("aiosqlite"):
            path = _aiosqlite_file(target)
            if path:  # an AsyncSqliteStore's file: the ledger's own (sync) connection to it
                import sqlite3

                self.kind = "sqlite"
                self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
                self.conn.execute("PRAGMA busy_timeout = 60000")
                weakref.finalize(self, self.conn.close)
        elif "psycopg" in module:
            self.kind = "postgres"
            from psycopg_pool import ConnectionPool

            if isinstance(target, ConnectionPool) and connection is not None:
                self.pool = target
                return
            if connection is not None and not _is_async(target):
                self.conn = connection  # the user's connection: used under the ledger's lock
                return
            self.pool = ConnectionPool(
                _postgres_conninfo(target),
                min_size=0,
                max_size=4,
                max_idle=60,
                kwargs={"autocommit": True},
                open=True,
                name="reliable_graph_ledger",
            )
            weakref.finalize(self, self.pool.close)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self.pool is not None:
            with self.pool.connection() as conn:
                yield conn
            return
        with self.lock:
            yield self.conn

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.kind == "postgres" else text

    def _run(self, conn: Any, text: str, params: Sequence[Any]) -> list[Any]:
        if self.kind == "sqlite":
            return list(conn.execute(text, params).fetchall())
        with conn.cursor() as cur:
            cur.execute(self._sql(text), params)
            return list(cur.fetchall()) if cur.description is not None else []

    @contextmanager
    def _transaction(self) -> Iterator[Callable[..., list[Any]]]:
        """One transaction: a function running statements in it; committed on exit, rolled back on error."""
        with self._connection() as conn:

            def run(text: str, params: Sequence[Any] = ()) -> list[Any]:
                return self._run(conn, text, params)

            if self.kind == "sqlite":
                conn.execute("BEGIN IMMEDIATE")  # the write lock now: no upgrade deadlock later
                try:
                    yield run
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            else:
                with conn.transaction():
                    yield run

    def _exec(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        """One writing statement, in its own transaction."""
        with self._transaction() as run:
            return run(text, params)

    def _read(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        """One reading statement (no write lock taken)."""
        with self._connection() as conn:
            return self._run(conn, text, params)

    # -- schema --------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._transaction() as run:
            if self.kind == "postgres":
                run("SELECT pg_advisory_xact_lock(?)", [_ADVISORY_KEY])
            run("CREATE TABLE IF NOT EXISTS reliable_graph_schema (version INTEGER PRIMARY KEY, applied_at TEXT)")
            found = run("SELECT MAX(version) FROM reliable_graph_schema", [])
            version = int(found[0][0] or 0) if found else 0
            for step in range(version + 1, SCHEMA_VERSION + 1):
                _MIGRATIONS[step](self, run)
                run("INSERT INTO reliable_graph_schema (version, applied_at) VALUES (?, CURRENT_TIMESTAMP)", [step])

    def _add_columns(self, run: Callable[..., list[Any]], columns: Sequence[tuple[str, str]]) -> None:
        if self.kind == "postgres":
            for column, kind in columns:
                run(f"ALTER TABLE reliable_graph_inbox ADD COLUMN IF NOT EXISTS {column} {kind}", [])
            return
        present = {r[1] for r in run("PRAGMA table_info(reliable_graph_inbox)", [])}
        for column, kind in columns:
            if column not in present:
                run(f"ALTER TABLE reliable_graph_inbox ADD COLUMN {column} {kind}", [])

    def _schema_1(self, run: Callable[..., list[Any]]) -> None:
        """The first release's tables (a database it created keeps its rows)."""
        serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.kind == "sqlite" else "BIGSERIAL PRIMARY KEY"
        run(
            "CREATE TABLE IF NOT EXISTS reliable_graph_inbox ("
            "escalation_id TEXT PRIMARY KEY, thread_id TEXT, step TEXT, confidence DOUBLE PRECISION, "
            "created_at TEXT, deadline TEXT, status TEXT NOT NULL, assignee TEXT, lease_until TEXT, "
            "decision TEXT, resolved_by TEXT, resolved_at TEXT)",
            [],
        )
        self._add_columns(run, (("threshold", "DOUBLE PRECISION"), ("reason", "TEXT"), ("kind", "TEXT")))
        run(
            "CREATE INDEX IF NOT EXISTS reliable_graph_inbox_status ON reliable_graph_inbox (status, step, created_at)",
            [],
        )
        run(
            f"CREATE TABLE IF NOT EXISTS reliable_graph_inbox_audit (seq {serial}, escalation_id TEXT NOT NULL, "
            "at TEXT NOT NULL, actor TEXT NOT NULL, event TEXT NOT NULL, body TEXT)",
            [],
        )

    def _schema_2(self, run: Callable[..., list[Any]]) -> None:
        """The resolution protocol: ticket, owner and heartbeat of a resolution; per-thread locks."""
        self._add_columns(
            run,
            (
                ("task", "TEXT"),
                ("round", "INTEGER"),
                ("ticket", "TEXT"),
                ("owner", "TEXT"),
                ("heartbeat", "TEXT"),
                ("handed_to", "TEXT"),
                ("continued_at", "TEXT"),
                ("continued_until", "TEXT"),
                ("answered_at", "TEXT"),
            ),
        )
        run("CREATE INDEX IF NOT EXISTS reliable_graph_inbox_thread ON reliable_graph_inbox (thread_id, status)", [])
        run(
            "CREATE INDEX IF NOT EXISTS reliable_graph_inbox_audit_id ON reliable_graph_inbox_audit (escalation_id)",
            [],
        )
        run(
            "CREATE TABLE IF NOT EXISTS reliable_graph_thread_locks "
            "(thread_id TEXT PRIMARY KEY, owner TEXT NOT NULL, until TEXT NOT NULL)",
            [],
        )

    # -- rows ----------------------------------------------------------------------------------

    def index(self, item: Mapping[str, Any], *, at: str) -> bool:
        """Insert `item`'s row (pending) and its `index` audit line, unless the row is there already."""
        row = {
            "escalation_id": str(item["id"]),
            "thread_id": item.get("thread_id"),
            "step": item.get("step"),
            "confidence": item.get("confidence"),
            "created_at": item.get("created_at"),
            "deadline": item.get("deadline"),
            "status": "pending",
            "threshold": item.get("threshold"),
            "reason": item.get("reason"),
            "kind": "audit" if item.get("kind") == "audit" else "escalation",
            "task": item.get("task"),
            "round": item.get("round"),
        }
        key = str(row["escalation_id"])
        line = {"escalation_id": key, "at": at, "actor": "system", "event": "index"}
        body = {"step": item.get("step")}
        if self.kind == "memory":
            with self.lock:
                if key in self.rows:
                    return False
                self.rows[key] = {c: row.get(c) for c in COLUMNS}
                self.audit_rows.append({**line, "body": body})
                for other in self.rows.values():
                    if _stale(other, row):
                        other.update(status="superseded", resolved_by="a later escalation", resolved_at=at)
                        self.audit_rows.append(_superseded_line(other["escalation_id"], key, at))
                return True
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._transaction() as run:
            done = run(
                f"INSERT INTO reliable_graph_inbox ({cols}) VALUES ({marks}) "
                "ON CONFLICT (escalation_id) DO NOTHING RETURNING escalation_id",
                list(row.values()),
            )
            if done:
                self._log(run, line, body)
                if row["task"] is not None and row["thread_id"] is not None and row["kind"] == "escalation":
                    # the same task escalating anew (its thread restarted, or forked): the open one before is stale
                    stale = run(
                        "UPDATE reliable_graph_inbox SET status = 'superseded', resolved_by = 'a later escalation', "
                        "resolved_at = ? WHERE thread_id = ? AND task = ? AND escalation_id <> ? "
                        "AND status IN ('pending', 'claimed') AND COALESCE(kind, 'escalation') = ? "
                        "RETURNING escalation_id",
                        [at, row["thread_id"], row["task"], key, row["kind"]],
                    )
                    for (stale_id,) in stale:
                        line2 = _superseded_line(stale_id, key, at)
                        self._log(run, line2, line2["body"])
        return bool(done)

    def get(self, escalation_id: str) -> dict[str, Any] | None:
        """The row of `escalation_id`, or None."""
        if self.kind == "memory":
            with self.lock:
                row = self.rows.get(escalation_id)
                return dict(row) if row else None
        found = self._read(
            f"SELECT {', '.join(COLUMNS)} FROM reliable_graph_inbox WHERE escalation_id = ?", [escalation_id]
        )
        return dict(zip(COLUMNS, found[0], strict=True)) if found else None

    def transition(
        self,
        escalation_id: str,
        expect: Expect,
        changes: Mapping[str, Any],
        *,
        log: tuple[str, str, Mapping[str, Any]] | None = None,
        at: str = "",
    ) -> bool:
        """Compare-and-set: apply `changes` if the row meets `expect`; with `log`, its audit line atomically.

        Returns:
            Whether this call changed the row.
        """
        if self.kind == "memory":
            with self.lock:
                row = self.rows.get(escalation_id)
                if row is None or not expect.holds(row):
                    return False
                row.update(changes)
                if log is not None:
                    actor, event, body = log
                    self.audit_rows.append(
                        {"escalation_id": escalation_id, "at": at, "actor": actor, "event": event, "body": dict(body)}
                    )
                return True
        sets = ", ".join(f"{k} = ?" for k in changes)
        condition, params = expect.sql()
        with self._transaction() as run:
            done = run(
                f"UPDATE reliable_graph_inbox SET {sets} WHERE escalation_id = ? AND {condition} "
                "RETURNING escalation_id",
                [*changes.values(), escalation_id, *params],
            )
            if done and log is not None:
                actor, event, body = log
                self._log(run, {"escalation_id": escalation_id, "at": at, "actor": actor, "event": event}, body)
        return bool(done)

    def select(
        self,
        *,
        status: Sequence[str] | None,
        now: str,
        step: str | None = None,
        thread_id: str | None = None,
        assignee: str | None = None,
        older_than: str | None = None,
        kind: str | None = None,
        order: str = "created",
        limit: int = 10_000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """A page of rows. A claim whose lease lapsed counts as `pending` (listed there, not under `claimed`)."""
        if self.kind == "memory":
            with self.lock:
                rows = [dict(r) for r in self.rows.values()]
            rows = [
                r
                for r in rows
                if (status is None or _effective(r, now) in status)
                and (step is None or r["step"] == step)
                and (thread_id is None or r["thread_id"] == thread_id)
                and (assignee is None or r["assignee"] == assignee)
                and (older_than is None or (r["created_at"] or "") <= older_than)
                and (kind is None or (r.get("kind") or "escalation") == kind)
            ]
            key = "confidence" if order == "confidence" else "created_at"
            rows.sort(key=lambda r: (r[key] is None, r[key], r["escalation_id"]))
            return rows[offset : offset + limit]
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            clause, extra = _status_sql(status, now)
            where.append(clause)
            params += extra
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
        rows = self._read(
            f"SELECT {', '.join(COLUMNS)} FROM reliable_graph_inbox {clause} "
            f"ORDER BY {column}, escalation_id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]

    def claim_continuation(
        self, row: Mapping[str, Any], claim: Mapping[str, Any], *, now: str, force: bool = False
    ) -> bool:
        """Claim a decision's continuation for the checkpoint a run continues from; whether this run holds it.

        The claim covers every decision answered in the same superstep (`answered_at`) of the
        thread, so that of two runs continuing that superstep one takes all its decisions. A row
        is free when unclaimed, claimed for the same checkpoint (the same run re-executed), its
        claim lapsed, or with `force` (the holder of the thread's lock).
        """
        mine = claim["continued_at"]
        group = (
            "thread_id = ? AND answered_at = ?" if row.get("answered_at") else "escalation_id = ?",
            [row["thread_id"], row["answered_at"]] if row.get("answered_at") else [row["escalation_id"]],
        )
        if self.kind == "memory":
            with self.lock:
                for other in self.rows.values():
                    same = (
                        other.get("thread_id") == row["thread_id"] and other.get("answered_at") == row["answered_at"]
                        if row.get("answered_at")
                        else other["escalation_id"] == row["escalation_id"]
                    )
                    free = force or other.get("continued_at") is None or (other.get("continued_until") or "") < now
                    if same and free:
                        other.update(claim)
                held = self.rows.get(str(row["escalation_id"])) or {}
                return bool(held.get("continued_at") == mine)
        free = "1 = 1" if force else "(continued_at IS NULL OR COALESCE(continued_until, '') < ?)"
        with self._transaction() as run:
            if self.kind == "postgres":  # lock the group's rows in one order: two claims never deadlock
                run(f"SELECT 1 FROM reliable_graph_inbox WHERE {group[0]} ORDER BY escalation_id FOR UPDATE", group[1])
            run(
                f"UPDATE reliable_graph_inbox SET continued_at = ?, continued_until = ? WHERE {group[0]} AND {free}",
                [mine, claim["continued_until"], *group[1], *([] if force else [now])],
            )
            found = run("SELECT continued_at FROM reliable_graph_inbox WHERE escalation_id = ?", [row["escalation_id"]])
        return bool(found) and found[0][0] == mine

    def select_all(self, **filters: Any) -> list[dict[str, Any]]:
        """Every row `select(**filters)` matches, page after page (reconcile and sweep must see them all)."""
        rows: list[dict[str, Any]] = []
        while True:
            found = self.select(**filters, limit=PAGE, offset=len(rows))
            rows += found
            if len(found) < PAGE:
                return rows

    def lock_holder(self, thread_id: str, *, now: str) -> str | None:
        """Who holds `thread_id`'s lock now (None when free or lapsed)."""
        if self.kind == "memory":
            with self.lock:
                held = self.threads.get(thread_id)
                return held[0] if held is not None and held[1] >= now else None
        found = self._read("SELECT owner, until FROM reliable_graph_thread_locks WHERE thread_id = ?", [thread_id])
        return str(found[0][0]) if found and str(found[0][1]) >= now else None

    # -- the audit trail -----------------------------------------------------------------------

    def _log(self, run: Callable[..., list[Any]], line: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        run(
            "INSERT INTO reliable_graph_inbox_audit (escalation_id, at, actor, event, body) VALUES (?, ?, ?, ?, ?)",
            [line["escalation_id"], line["at"], line["actor"], line["event"], json.dumps(dict(body), default=str)],
        )

    def log(self, escalation_id: str, actor: str, event: str, body: Mapping[str, Any], *, at: str) -> None:
        """Append one audit line."""
        line = {"escalation_id": escalation_id, "at": at, "actor": actor, "event": event}
        if self.kind == "memory":
            with self.lock:
                self.audit_rows.append({**line, "body": dict(body)})
            return
        with self._transaction() as run:
            self._log(run, line, body)

    def audit(self, escalation_id: str | None) -> list[dict[str, Any]]:
        """The audit lines (of one escalation, or all), oldest first."""
        if self.kind == "memory":
            with self.lock:
                return [
                    dict(r) for r in self.audit_rows if escalation_id is None or r["escalation_id"] == escalation_id
                ]
        where = "WHERE escalation_id = ?" if escalation_id else ""
        rows = self._read(
            f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM reliable_graph_inbox_audit {where} ORDER BY seq",
            [escalation_id] if escalation_id else [],
        )
        out = []
        for raw in rows:
            row = dict(zip(_AUDIT_COLUMNS, raw, strict=True))
            row["body"] = json.loads(row["body"]) if row.get("body") else {}
            out.append(row)
        return out

    # -- per-thread locks ----------------------------------------------------------------------

    def lock_thread(self, thread_id: str, owner: str, *, until: str, now: str) -> bool:
        """Take (or renew) the lock of `thread_id` for `owner` unless another owner holds it unexpired."""
        if self.kind == "memory":
            with self.lock:
                held = self.threads.get(thread_id)
                if held is not None and held[0] != owner and held[1] >= now:
                    return False
                self.threads[thread_id] = (owner, until)
                return True
        done = self._exec(
            "INSERT INTO reliable_graph_thread_locks (thread_id, owner, until) VALUES (?, ?, ?) "
            "ON CONFLICT (thread_id) DO UPDATE SET owner = excluded.owner, until = excluded.until "
            "WHERE reliable_graph_thread_locks.owner = excluded.owner OR reliable_graph_thread_locks.until < ? "
            "RETURNING thread_id",
            [thread_id, owner, until, now],
        )
        return bool(done)

    def unlock_thread(self, thread_id: str, owner: str) -> None:
        """Give the lock of `thread_id` back (only its owner can)."""
        if self.kind == "memory":
            with self.lock:
                if self.threads.get(thread_id, ("",))[0] == owner:
                    del self.threads[thread_id]
            return
        self._exec("DELETE FROM reliable_graph_thread_locks WHERE thread_id = ? AND owner = ?", [thread_id, owner])

    def beat(self, owner: str, *, until: str, escalation_ids: Sequence[str], thread_id: str | None) -> None:
        """Extend `owner`'s heartbeat on its resolutions and its thread lock to `until`."""
        if self.kind == "memory":
            with self.lock:
                for escalation_id in escalation_ids:
                    row = self.rows.get(escalation_id)
                    if row is not None and row.get("owner") == owner and row["status"] == "resolving":
                        row["heartbeat"] = until
                if thread_id is not None and self.threads.get(thread_id, ("",))[0] == owner:
                    self.threads[thread_id] = (owner, until)
            return
        with self._transaction() as run:
            for escalation_id in escalation_ids:
                run(
                    "UPDATE reliable_graph_inbox SET heartbeat = ? "
                    "WHERE escalation_id = ? AND owner = ? AND status = 'resolving'",
                    [until, escalation_id, owner],
                )
            if thread_id is not None:
                run(
                    "UPDATE reliable_graph_thread_locks SET until = ? WHERE thread_id = ? AND owner = ?",
                    [until, thread_id, owner],
                )


_MIGRATIONS: dict[int, Callable[[Ledger, Callable[..., list[Any]]], None]] = {
    1: Ledger._schema_1,
    2: Ledger._schema_2,
}


def _stale(other: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `other` is an open escalation of the task `new` escalates anew (in process)."""
    return (
        other["escalation_id"] != new["escalation_id"]
        and new.get("task") is not None
        and new["kind"] == "escalation"
        and other.get("thread_id") == new.get("thread_id")
        and other.get("task") == new.get("task")
        and other["status"] in ("pending", "claimed")
        and (other.get("kind") or "escalation") == new["kind"]
    )


def _superseded_line(escalation_id: str, by: str, at: str) -> dict[str, Any]:
    return {
        "escalation_id": escalation_id,
        "at": at,
        "actor": "system",
        "event": "superseded",
        "body": {"reason": f"the same task escalated again ({by})"},
    }


def _effective(row: Mapping[str, Any], now: str) -> str:
    """A row's status as listed: a claim whose lease lapsed is `pending` again."""
    if row["status"] == "claimed" and (row.get("lease_until") or "") < now:
        return "pending"
    return str(row["status"])


def effective_status(row: Mapping[str, Any], now: str) -> str:
    """A row's status as a reviewer sees it (a lapsed claim is `pending`)."""
    return _effective(row, now)


def _status_sql(statuses: Sequence[str], now: str) -> tuple[str, list[Any]]:
    plain = [s for s in statuses if s not in ("pending", "claimed")]
    parts, params = [], []
    if plain:
        parts.append(f"status IN ({', '.join('?' for _ in plain)})")
        params += plain
    if "pending" in statuses:
        parts.append("status = 'pending'")
    if "pending" in statuses and "claimed" in statuses:
        parts.append("status = 'claimed'")
    elif "pending" in statuses:
        parts.append("(status = 'claimed' AND COALESCE(lease_until, '') < ?)")
        params.append(now)
    elif "claimed" in statuses:
        parts.append("(status = 'claimed' AND COALESCE(lease_until, '') >= ?)")
        params.append(now)
    return (f"({' OR '.join(parts)})" if parts else "1 = 0"), params


def _sqlite_file(conn: Any, lock: Any) -> str:
    """The file behind a sqlite3 connection's main database ('' for an in-memory one)."""
    guard = lock if lock is not None else threading.Lock()
    with guard:
        for _seq, name, path in conn.execute("PRAGMA database_list").fetchall():
            if name == "main":
                return str(path or "")
    return ""


def _aiosqlite_file(conn: Any) -> str:
    """The file an `aiosqlite.Connection` opens ('' when it cannot be told, or in memory).

    aiosqlite keeps how it connects as a closure over `database` (`aiosqlite.connect`).
    """
    connector = getattr(conn, "_connector", None)
    code = getattr(connector, "__code__", None)
    cells = getattr(connector, "__closure__", None) or ()
    names = getattr(code, "co_freevars", ())
    found = dict(zip(names, (c.cell_contents for c in cells), strict=False)).get("database")
    path = found.decode() if isinstance(found, bytes) else str(found or "")
    return "" if path in ("", ":memory:") or path.startswith("file::memory:") else path


def _is_async(conn: Any) -> bool:
    return "Async" in type(conn).__name__


def _postgres_conninfo(target: Any) -> str:
    """The connection string of a psycopg connection or pool, password included."""
    from psycopg.conninfo import make_conninfo

    conninfo = getattr(target, "conninfo", None)
    if isinstance(conninfo, str):  # a pool
        return conninfo
    info = target.info
    password = info.password
    return make_conninfo(info.dsn, **({"password": password} if password else {}))
