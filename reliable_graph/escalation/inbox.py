"""EscalationInbox: a cross-thread review queue over LangGraph's Store, each answer applied exactly once.

Every escalation is indexed when it is raised: the escalating node writes it through
`get_store()` (compile the graph with `store=`) under `("reliable_graph", "escalations")`,
keyed by the escalation's id, so a node that runs again writes the same item and never a
second one. Beside the store, in the same database, a ledger keeps what must change atomically
(status, claim, the resolution's ticket, owner and heartbeat, the decision) and an append-only
audit trail. Every change is a compare-and-set in the resolution protocol
(`reliable_graph.escalation.protocol`): of two reviewers resolving the same escalation exactly
one wins and the other gets `AlreadyResolvedError` naming who and when; reviewers of different
escalations of one thread take turns on the thread's lock, so every answer is applied; a process
that dies mid-way leaves a resolution `reconcile()` finishes once its heartbeat lapses. The
checkpoints stay the source of truth: `reconcile()` rebuilds the index from them.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.store.base import BaseStore

from reliable_graph.errors import NoPendingEscalationError, ReliableGraphError, ThreadBusyError
from reliable_graph.escalation._ledger import Expect, effective_status, ledger_for
from reliable_graph.escalation.decision import parse_answer
from reliable_graph.escalation.protocol import (
    APPLIED,
    CLAIMED,
    DIRECT,
    OPEN,
    PENDING,
    RESOLVER_KEY,
    RESOLVING,
    STATUSES,
    SWEEP,
    Resolver,
    owner_token,
    read_thread,
    repair_race,
    stopped_by_race,
)
from reliable_graph.escalation.resume import _collect as pending_in_snapshot

__all__ = [
    "INBOX_NAMESPACE",
    "aindex_escalation",
    "AlreadyResolvedError",
    "AuditEntry",
    "EscalationInbox",
    "InboxItem",
    "anote_status",
    "displayable",
    "index_escalation",
    "note_status",
]

logger = logging.getLogger(__name__)

INBOX_NAMESPACE = ("reliable_graph", "escalations")
"""Where escalations are indexed in the store."""

Status = Literal["pending", "claimed", "resolving", "applied", "resolved", "expired", "dismissed", "superseded"]


class AlreadyResolvedError(ReliableGraphError, LookupError):
    """An escalation is not yours to act on: someone resolved it, is resolving it or holds its claim.

    Example:
        ```python
        from reliable_graph.escalation.inbox import AlreadyResolvedError

        err = AlreadyResolvedError(escalation_id="e1", by="ana", at="2026-01-01T00:00:00+00:00", status="resolved")
        assert err.by == "ana" and "resolved by ana" in str(err)
        claimed = AlreadyResolvedError(escalation_id="e1", by="bo", at="2026-01-01T00:15:00+00:00", status="claimed")
        assert "claimed by bo until" in str(claimed)
        ```
    """

    def __init__(self, *, escalation_id: str, by: str | None, at: str | None, status: str) -> None:
        self.escalation_id = escalation_id
        self.by = by
        self.at = at
        self.status = status
        who = by or "someone"
        if status == CLAIMED:
            text = f"escalation {escalation_id} is claimed by {who} until {at or '?'}"
        elif status == PENDING:
            text = f"escalation {escalation_id} is not claimed by {who}: there is no claim to give back"
        elif status in (RESOLVING, APPLIED):
            text = f"escalation {escalation_id} is being resolved by {who} (since {at or '?'})"
        elif status in ("dismissed", "superseded"):
            text = f"escalation {escalation_id} was {status} (its thread no longer waits on it) at {at or '?'}"
        else:
            text = f"escalation {escalation_id} is already {status} by {who} at {at or '?'}"
        super().__init__(text)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _public(decision: Any) -> dict[str, Any] | None:
    """A stored decision without the inbox's internal ticket."""
    if not isinstance(decision, dict):
        return None
    return {k: v for k, v in decision.items() if k != "ticket"}


_MAX_TEXT = 100_000
_MAX_DEPTH = 32


def displayable(value: Any, notes: list[str], where: str = "value", depth: int = 0) -> Any:
    r"""`value` as any store and database can hold it; what was changed is appended to `notes`.

    NUL characters (which PostgreSQL refuses) and lone surrogates become U+FFFD, NaN and the
    infinities become text, text longer than 100,000 characters is cut, and nesting deeper than
    32 levels is shown as text. The checkpoint keeps the original.

    Example:
        ```python
        from reliable_graph.escalation.inbox import displayable

        notes = []
        shown = displayable({"text": "a\\x00b", "score": float("nan")}, notes)
        assert shown == {"text": "a\\ufffdb", "score": "NaN"} and len(notes) == 2
        ```
    """
    if isinstance(value, str):
        clean = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
        if clean != value:
            notes.append(
                f"{where}: characters a database cannot store (NUL, lone surrogates) shown as U+FFFD; "
                "a PostgreSQL checkpointer cannot store a NUL either: edit such an output rather than approve it"
            )
        if len(clean) > _MAX_TEXT:
            notes.append(f"{where}: {len(clean):,} characters, cut to {_MAX_TEXT:,} for display")
            clean = clean[:_MAX_TEXT]
        return clean
    if isinstance(value, float) and not math.isfinite(value):
        notes.append(f"{where}: {value!r} is not JSON; shown as text")
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (dict, list, tuple)) and depth >= _MAX_DEPTH:
        notes.append(f"{where}: nested deeper than {_MAX_DEPTH} levels; shown as text")
        return displayable(json.dumps(value, default=repr)[:_MAX_TEXT], notes, where, 0)
    if isinstance(value, dict):
        return {
            displayable(str(k), notes, where, depth + 1): displayable(v, notes, f"{where}.{k}", depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [displayable(v, notes, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    return value


def _index_value(escalation: Mapping[str, Any]) -> dict[str, Any]:
    notes: list[str] = []
    shown = displayable(dict(escalation), notes, "escalation")
    if notes:
        shown["display_notes"] = list(dict.fromkeys(notes))[:20]
    return {
        "id": str(escalation["id"]),
        "kind": "audit" if escalation.get("kind") == "audit" else "escalation",
        "thread_id": shown.get("thread_id"),
        "step": shown.get("step"),
        "path": shown.get("path"),
        "task": shown.get("task"),
        "round": escalation.get("round"),
        "confidence": escalation.get("confidence"),
        "threshold": escalation.get("threshold"),
        "reason": shown.get("reason"),
        "created_at": str(escalation.get("created_at") or _utcnow().isoformat()),
        "deadline": None,  # the inbox's (`EscalationInbox(deadline=...)`), from `created_at`
        "status": PENDING,
        "escalation": shown,
    }


_RANK = {"pending": 0, "claimed": 0, "resolving": 1, "applied": 2}
"""How far along an item is; a note never moves it back (final statuses rank highest)."""


def _noted(current: Mapping[str, Any], status: str, decision: Any, by: str | None, at: str) -> dict[str, Any] | None:
    """The item's value once `status` is noted, or None when it is there already or further along."""
    now = _RANK.get(str(current.get("status")), 3)
    if now == 3 or now > _RANK.get(status, 3) or current.get("status") == status:
        return None  # final already, further along, or the same
    value = {**current, "status": status, "updated_at": at}
    if decision is not None:
        value["decision"] = {k: v for k, v in dict(decision).items() if k != "ticket"}
    if by is not None:
        value["resolved_by"], value["resolved_at"] = by, at
    return value


def note_status(
    store: BaseStore, escalation_id: str, status: str, *, decision: Any = None, by: str | None = None
) -> None:
    """Note an escalation's status (and the decision, who took it) in its store item, never moving it back.

    The store's items follow each escalation's life whatever answered it (the inbox, a raw
    resume, Agent Inbox or Agent Chat UI on LangGraph Server): the review node notes `applied`
    when it takes an answer, the node that applies the decision `resolved`. A store reader with
    no ledger (a LangGraph Server deployment's `client.store`) sees the true state.

    Example:
        ```python
        from langgraph.store.memory import InMemoryStore
        from reliable_graph.escalation.inbox import INBOX_NAMESPACE, index_escalation, note_status

        store = InMemoryStore()
        index_escalation(store, {"id": "e1", "step": "draft", "confidence": 0.1, "threshold": 0.5, "reason": "r",
                                 "created_at": "2026-01-01T00:00:00+00:00"})
        note_status(store, "e1", "resolved", decision={"action": "approve"}, by="ana")
        note_status(store, "e1", "applied")  # never back
        item = store.get(INBOX_NAMESPACE, "e1").value
        assert (item["status"], item["resolved_by"], item["decision"]) == ("resolved", "ana", {"action": "approve"})
        ```
    """
    stored = store.get(INBOX_NAMESPACE, escalation_id)
    if stored is not None and (value := _noted(stored.value, status, decision, by, _utcnow().isoformat())):
        store.put(INBOX_NAMESPACE, escalation_id, value, index=False)


async def anote_status(
    store: BaseStore, escalation_id: str, status: str, *, decision: Any = None, by: str | None = None
) -> None:
    """Async twin of `note_status` (the store's async API, as LangGraph Server's store needs).

    Example:
        ```python
        import asyncio
        from langgraph.store.memory import InMemoryStore
        from reliable_graph.escalation.inbox import anote_status

        asyncio.run(anote_status(InMemoryStore(), "nothing-here", "resolved"))  # no item: nothing to note
        ```
    """

    async def note() -> None:
        stored = await store.aget(INBOX_NAMESPACE, escalation_id)
        if stored is not None and (value := _noted(stored.value, status, decision, by, _utcnow().isoformat())):
            await store.aput(INBOX_NAMESPACE, escalation_id, value, index=False)

    await _retry_busy(note)


def _admit(store: BaseStore, value: Mapping[str, Any]) -> None:
    """Give a newly indexed escalation its ledger row at once (listed without a sync), where the ledger is SQL."""
    ledger = ledger_for(store)
    if ledger.kind != "memory":
        ledger.index(value, at=_utcnow().isoformat())


def index_escalation(store: BaseStore, escalation: Mapping[str, Any]) -> None:
    """Index `escalation` in `store` unless it is there already (a node that re-runs adds nothing).

    Example:
        ```python
        from langgraph.store.memory import InMemoryStore
        from reliable_graph.escalation.inbox import INBOX_NAMESPACE, index_escalation

        store = InMemoryStore()
        esc = {"id": "e1", "thread_id": "t1", "step": "draft", "path": "draft", "task": "draft",
               "confidence": 0.2, "threshold": 0.8, "reason": "no source", "created_at": "2026-01-01T00:00:00+00:00"}
        index_escalation(store, esc)
        index_escalation(store, esc)
        assert [i.key for i in store.search(INBOX_NAMESPACE)] == ["e1"]
        ```
    """
    key = str(escalation["id"])
    if store.get(INBOX_NAMESPACE, key) is not None:
        return
    value = _index_value(escalation)
    store.put(INBOX_NAMESPACE, key, value, index=False)
    _admit(store, value)


async def aindex_escalation(store: BaseStore, escalation: Mapping[str, Any]) -> None:
    """Async twin of `index_escalation` (the store's async API; the ledger row written off the event loop).

    Example:
        ```python
        import asyncio
        from langgraph.store.memory import InMemoryStore
        from reliable_graph.escalation.inbox import INBOX_NAMESPACE, aindex_escalation

        store = InMemoryStore()
        esc = {"id": "e1", "thread_id": "t1", "step": "draft", "confidence": 0.2, "threshold": 0.8,
               "reason": "no source", "created_at": "2026-01-01T00:00:00+00:00"}
        asyncio.run(aindex_escalation(store, esc))
        assert [i.key for i in store.search(INBOX_NAMESPACE)] == ["e1"]
        ```
    """
    key = str(escalation["id"])

    async def index() -> dict[str, Any] | None:
        if await store.aget(INBOX_NAMESPACE, key) is not None:
            return None
        value = _index_value(escalation)
        await store.aput(INBOX_NAMESPACE, key, value, index=False)
        return value

    if (value := await _retry_busy(index)) is not None:
        await asyncio.to_thread(_admit, store, value)  # the ledger's statement may wait on a database lock


BUSY_RETRIES = 40
"""How many times an async store write refused with SQLite's "database is locked" is tried again."""


T = TypeVar("T")


async def _retry_busy(write: Callable[[], Awaitable[T]]) -> T:
    """Run `write` (a read then a write of the store), again while SQLite answers "database is locked".

    `AsyncSqliteStore` batches the reads and writes of concurrent tasks into one deferred
    transaction; in WAL mode SQLite refuses its upgrade to a write at once (no busy wait) when
    another connection (the saver's, the ledger's) wrote since it read. Both writes here are
    idempotent (an item indexed once, a status never moved back), so they are simply run again.
    """
    for attempt in range(BUSY_RETRIES - 1):
        try:
            return await write()
        except Exception as exc:
            if not isinstance(exc, sqlite3.OperationalError) or "database is locked" not in str(exc):
                raise
            await asyncio.sleep(min(0.01 * (attempt + 1), 0.25))
    return await write()  # the last try: its error is the caller's


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxItem:
    """One escalation as the inbox lists it.

    Example:
        ```python
        from reliable_graph.escalation.inbox import InboxItem

        item = InboxItem(id="e1", thread_id="t1", step="draft", status="pending", confidence=0.2,
                         threshold=0.8, reason="no source", created_at="2026-01-01T00:00:00+00:00")
        assert item.status == "pending"
        ```
    """

    id: str
    """The escalation's id."""
    thread_id: str | None
    """Its thread."""
    step: str
    """The step that escalated."""
    status: str
    """`pending` (a lapsed claim is pending again), `claimed`, `resolving` (a resolution in flight),
    `applied` (its answer is in the thread, which waits on other escalations), `resolved`, `expired`
    (the default decision applied), `dismissed` (its thread no longer waits on it) or `superseded`
    (a later escalation of the same task replaced it)."""
    confidence: float
    """The failing score."""
    threshold: float
    """The step's threshold."""
    reason: str
    """The specific reason."""
    created_at: str
    """When it was raised."""
    deadline: str | None = None
    """When the default action applies, if the inbox has one."""
    assignee: str | None = None
    """Who holds the claim."""
    lease_until: str | None = None
    """When the claim lapses."""
    resolved_by: str | None = None
    """Who resolved it."""
    resolved_at: str | None = None
    """When."""
    decision: dict[str, Any] | None = None
    """The decision applied."""
    escalation: dict[str, Any] = field(default_factory=dict)
    """The whole escalation (what `show` displays)."""
    kind: str = "escalation"
    """`escalation` (a run waits on it) or `audit` (a passing output to label; nothing waits)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One line of the append-only audit trail.

    Example:
        ```python
        from reliable_graph.escalation.inbox import AuditEntry

        entry = AuditEntry(escalation_id="e1", at="2026-01-01T00:00:00+00:00", actor="ana", event="claim")
        assert entry.event == "claim"
        ```
    """

    escalation_id: str
    at: str
    actor: str
    event: str
    """`index`, `claim`, `release`, `answer` (a direct resume), `takeover`, `resolve`, `expire`,
    `reassign`, `dismissed`, `superseded`, `resolve_failed`."""
    decision: dict[str, Any] | None = None
    reason: str | None = None
    before: Any = None
    """The output before the decision."""
    after: Any = None
    """The output after it."""


def list_filters(
    status: Any, kind: Any, order: Any, limit: Any, offset: Any, older_than: timedelta | None
) -> list[str] | None:
    """The statuses a `list()` call asks for (None: all), its other arguments checked.

    Raises:
        ValueError: an unknown status, kind or order, a bad page, or a negative `older_than`.
    """
    statuses = [status] if isinstance(status, str) else (builtins.list(status) if status is not None else None)
    unknown = [s for s in statuses or () if s not in STATUSES]
    if unknown:
        msg = f"unknown status {unknown[0]!r}: choose from {', '.join(STATUSES)}"
        raise ValueError(msg)
    if kind not in (None, "escalation", "audit"):
        msg = f"kind must be 'escalation', 'audit' or None, got {kind!r}"
        raise ValueError(msg)
    if order not in ("oldest", "confidence"):
        msg = f"order must be 'oldest' or 'confidence', got {order!r}"
        raise ValueError(msg)
    if isinstance(limit, bool) or isinstance(offset, bool) or limit < 1 or offset < 0:
        msg = f"limit must be >= 1 and offset >= 0, got {limit} and {offset}"
        raise ValueError(msg)
    if older_than is not None and older_than < timedelta(0):
        msg = f"older_than must not be negative, got {older_than}"
        raise ValueError(msg)
    return statuses


def _reviewer(reviewer: Any) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        msg = f"reviewer must be a non-blank name (every claim and decision is recorded with it), got {reviewer!r}"
        raise ValueError(msg)
    if reviewer in (DIRECT, SWEEP, "reconcile", "system"):
        msg = f"reviewer {reviewer!r} is a name the inbox keeps for itself; use a person's name"
        raise ValueError(msg)
    return reviewer.strip()


class EscalationInbox:
    """The review queue across threads: list, show, claim, resolve exactly once, release, audit, sweep.

    Args:
        store: The graph's store (`SqliteStore` on the checkpoints' file, `PostgresStore`, or
            `InMemoryStore` for one process). Compile the graph with the same `store=`.
        graph: The compiled graph the escalations come from (to resolve, reconcile and sweep).
        lease: How long a claim holds before the escalation returns to the queue.
        deadline: How long an escalation may wait before `sweep()` applies `on_expiry`.
        on_expiry: The decision applied on expiry (e.g. `{"action": "terminate", "reason": "no review in time"}`),
            or `{"assign_to": "name"}` to hand it to someone instead (once); None leaves it pending.
        resolution_lease: How long a resolution in flight holds its thread and its row without a
            heartbeat (renewed while it works); `reconcile()` takes over only after it lapses.
        wait: How long a resolution waits for another one on the same thread before giving up
            (`ThreadBusyError`, nothing applied).
        clock: The inbox's clock (a function returning an aware `datetime`; default UTC now).
        connection: The ledger's database access, instead of one derived from the store: a
            `sqlite3.Connection`, a psycopg connection (autocommit) or `ConnectionPool`.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from langgraph.store.memory import InMemoryStore
        from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step, step_outcomes
        from reliable_graph.escalation.inbox import AlreadyResolvedError, EscalationInbox

        class State(ReliabilityState, total=False):
            question: str
            output: str

        builder = StateGraph(State)
        builder.add_node(reliable_step(lambda s: {"output": "?"}, name="draft", threshold=1.0, max_retries=0,
                                       evaluator=Predicate(fn=lambda o: o != "?"), pass_to=END))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "draft")
        store = InMemoryStore()
        graph = builder.compile(checkpointer=InMemorySaver(), store=store)
        for n in range(3):
            graph.invoke({"question": f"q{n}"}, {"configurable": {"thread_id": f"t{n}"}})

        inbox = EscalationInbox(store, graph=graph)
        page = inbox.list(status="pending")
        assert len(page) == 3
        inbox.claim(page[0].id, reviewer="ana")
        out = inbox.resolve(page[0].id, {"action": "edit", "output": "42"}, reviewer="ana")
        assert out["output"] == "42" and step_outcomes(out) == {"draft": "edited"}
        try:
            inbox.resolve(page[0].id, {"action": "approve"}, reviewer="bo")
        except AlreadyResolvedError as err:
            assert err.by == "ana"
        assert [e.event for e in inbox.audit(page[0].id)][-2:] == ["claim", "resolve"]
        ```
    """

    def __init__(
        self,
        store: BaseStore,
        *,
        graph: Any = None,
        lease: timedelta = timedelta(minutes=15),
        deadline: timedelta | None = None,
        on_expiry: Mapping[str, Any] | None = None,
        resolution_lease: timedelta = timedelta(seconds=60),
        wait: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] | None = None,
        connection: Any = None,
    ) -> None:
        if not isinstance(store, BaseStore):
            msg = f"EscalationInbox needs a LangGraph BaseStore (SqliteStore, PostgresStore...), not {type(store)}"
            raise TypeError(msg)
        for name, value in (("lease", lease), ("resolution_lease", resolution_lease), ("wait", wait)):
            if not isinstance(value, timedelta) or value <= timedelta(0):
                msg = f"EscalationInbox({name}=...) must be a positive timedelta, got {value!r}"
                raise ValueError(msg)
        if deadline is not None and (not isinstance(deadline, timedelta) or deadline <= timedelta(0)):
            msg = f"EscalationInbox(deadline=...) must be a positive timedelta or None, got {deadline!r}"
            raise ValueError(msg)
        if on_expiry is not None:
            if "assign_to" in on_expiry:
                _reviewer(on_expiry["assign_to"])
            else:
                parse_answer(on_expiry)  # fail at construction on a default action that cannot apply
        self.store = store
        self.graph = graph
        self.lease = lease
        self.deadline = deadline
        self.on_expiry = dict(on_expiry) if on_expiry is not None else None
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.ledger = ledger_for(store, connection)
        self.resolver = Resolver(
            ledger=self.ledger, store=store, graph=graph, clock=self.clock, lease=resolution_lease, wait=wait
        )

    def _now(self) -> datetime:
        return self.clock().astimezone(timezone.utc)

    # -- the index ---------------------------------------------------------------------------

    def sync(self) -> int:
        """Bring escalations the nodes indexed in the store into the ledger; returns how many were new."""
        new = 0
        offset = 0
        at = self._now().isoformat()
        while True:
            items = self.store.search(INBOX_NAMESPACE, limit=500, offset=offset)
            if not items:
                return new
            for item in items:
                value = dict(item.value)
                if self.deadline is not None and not value.get("deadline"):
                    value["deadline"] = (datetime.fromisoformat(value["created_at"]) + self.deadline).isoformat()
                new += self.ledger.index(value, at=at)
            offset += len(items)

    def reconcile(self) -> int:
        """Rebuild the index from the checkpoints and finish what was cut short; returns escalations re-indexed.

        Indexes every escalation waiting in a thread that the store lacks (a process that died
        between the interrupt and the index write, a wiped store); takes over every resolution
        whose owner stopped (its heartbeat lapsed) and finishes it from what the checkpoint says,
        exactly once; marks resolved the answers the threads have moved past; and retires the
        escalations their threads no longer wait on (`dismissed`, or `superseded` by a later
        round of the same task). A thread whose newest checkpoint is the branch of a run stopped
        for racing another run of the thread (`ConcurrentResumeError`) gets the other run's newest
        checkpoint back as its newest. A resolution in flight, or a thread another process holds,
        is left alone. Safe from many processes at once.
        """
        graph = self._graph()
        saver = graph.checkpointer
        threads = {
            str(t.config["configurable"]["thread_id"])
            for t in saver.list(None)
            if not t.config["configurable"].get("checkpoint_ns")
        }
        added = 0
        forked = set()
        for thread in sorted(threads):
            config: RunnableConfig = {"configurable": {"thread_id": thread}}
            snapshot = graph.get_state(config, subgraphs=True)
            if stopped_by_race(snapshot):
                forked.add(thread)
            for pending in pending_in_snapshot(snapshot):  # the state just read: one read per thread
                if self.store.get(INBOX_NAMESPACE, pending.escalation["id"]) is None:
                    index_escalation(self.store, pending.escalation)
                    added += 1
        self.sync()
        self._take_over_lapsed()
        now = self._now().isoformat()
        unsettled = self.ledger.select_all(status=(*OPEN, RESOLVING, APPLIED), now=now, kind="escalation")
        for thread_id in sorted(forked | {str(r["thread_id"]) for r in unsettled if r.get("thread_id") in threads}):
            self._tidy(thread_id)
        return added

    def _take_over_lapsed(self) -> builtins.list[str]:
        """Finish every resolution whose owner stopped renewing its heartbeat (never one in flight)."""
        finished = []
        now = self._now().isoformat()
        for row in self.ledger.select_all(status=(RESOLVING,), now=now):
            if row.get("owner") in (None, DIRECT) or (row.get("heartbeat") or "") >= now:
                continue
            owner = owner_token()
            taken = self.resolver.take_over(row, owner=owner)
            if taken is None:
                continue  # another process took it first
            try:
                self.resolver.drive(taken, owner=owner, takeover=True)
            except (ThreadBusyError, AlreadyResolvedError):
                continue  # held by a live resolution (the next reconcile finishes this one), or dismissed
            finished.append(str(row["escalation_id"]))
        return finished

    def _tidy(self, thread_id: str) -> None:
        """Finish, settle and retire one thread's rows, holding its lock (skipped while a resolution holds it)."""
        owner = owner_token()
        if not self.resolver.try_lock(thread_id, owner):
            return
        try:
            config: RunnableConfig = {"configurable": {"thread_id": thread_id, RESOLVER_KEY: owner}}
            repair_race(self._graph(), config)
            view = read_thread(self._graph(), config)
            if view.runnable and self._abandoned(thread_id):
                # answers are in, but the runs that carried them stopped between supersteps (two raw
                # resumes racing, or a crash): run the thread on, once nobody can be at it any more
                try:
                    self._graph().invoke(None, config, durability="sync")
                except Exception:  # noqa: BLE001 - the user's graph failed: the rows stay applied, reported
                    logger.exception("reconcile: running thread %s on failed", thread_id)
                view = read_thread(self._graph(), config)
            self.resolver.settle(thread_id, view)
            self.resolver.retire(thread_id, view)
        finally:
            self.ledger.unlock_thread(thread_id, owner)

    def _abandoned(self, thread_id: str) -> bool:
        """Whether the thread has answers in flight and every claim on them has lapsed (nobody is at it)."""
        now = self._now().isoformat()
        rows = self.ledger.select(status=(RESOLVING, APPLIED), thread_id=thread_id, now=now)
        return bool(rows) and all(
            (row.get("heartbeat") or "") < now and (row.get("continued_until") or "") < now for row in rows
        )

    # -- reading -----------------------------------------------------------------------------

    def list(
        self,
        *,
        status: str | Sequence[str] | None = ("pending", "claimed"),
        step: str | None = None,
        thread_id: str | None = None,
        assignee: str | None = None,
        older_than: timedelta | None = None,
        kind: Literal["escalation", "audit"] | None = None,
        order: Literal["oldest", "confidence"] = "oldest",
        limit: int = 50,
        offset: int = 0,
    ) -> list[InboxItem]:
        """One page of items, filtered and sorted (oldest first, or lowest confidence first).

        `status`: one status or several (a claim whose lease lapsed is listed as `pending`), or
        None for all. `kind`: `escalation` (a run waits on it), `audit` (a passing output to
        label), or None for both.

        Raises:
            ValueError: an unknown status, kind or order, a bad page, or a negative `older_than`.
        """
        statuses = list_filters(status, kind, order, limit, offset, older_than)
        if self.ledger.kind == "memory":  # the nodes could not write this ledger: read the store
            self.sync()
        now = self._now()
        cutoff = (now - older_than).isoformat() if older_than is not None else None
        rows = self.ledger.select(
            status=statuses,
            now=now.isoformat(),
            step=step,
            thread_id=thread_id,
            assignee=assignee,
            older_than=cutoff,
            kind=kind,
            order="confidence" if order == "confidence" else "created",
            limit=limit,
            offset=offset,
        )
        return [self._item(row, with_escalation=False, now=now.isoformat()) for row in rows]

    def show(self, escalation_id: str) -> InboxItem:
        """One escalation with everything a reviewer needs (the whole `Escalation` in `.escalation`).

        Raises:
            NoPendingEscalationError: no escalation has this id in this inbox.
        """
        row = self.ledger.get(escalation_id)
        if row is None:
            self.sync()
            row = self.ledger.get(escalation_id)
        if row is None:
            waiting = [
                r["escalation_id"] for r in self.ledger.select(status=OPEN, now=self._now().isoformat(), limit=5)
            ]
            raise NoPendingEscalationError(interrupt_ids=[escalation_id], pending=waiting, what="escalation id")
        return self._item(row, with_escalation=True, now=self._now().isoformat())

    def audit(self, escalation_id: str | None = None) -> builtins.list[AuditEntry]:
        """The audit trail (of one escalation, or all), oldest first."""
        return [
            AuditEntry(
                escalation_id=r["escalation_id"],
                at=r["at"],
                actor=r["actor"],
                event=r["event"],
                decision=r["body"].get("decision"),
                reason=r["body"].get("reason"),
                before=r["body"].get("before"),
                after=r["body"].get("after"),
            )
            for r in self.ledger.audit(escalation_id)
        ]

    def _item(self, row: Mapping[str, Any], *, with_escalation: bool, now: str) -> InboxItem:
        value: dict[str, Any] = {}
        if with_escalation or row.get("reason") is None:
            stored = self.store.get(INBOX_NAMESPACE, row["escalation_id"])
            value = dict(stored.value) if stored is not None else {}
        decision = row.get("decision")
        status = effective_status(row, now)
        lapsed = status != row["status"]
        return InboxItem(
            id=row["escalation_id"],
            thread_id=row.get("thread_id"),
            step=row.get("step") or value.get("step") or "",
            status=status,
            confidence=float(row.get("confidence") or 0.0),
            threshold=float(row.get("threshold") or value.get("threshold") or 0.0),
            reason=str(row.get("reason") or value.get("reason") or ""),
            created_at=row.get("created_at") or "",
            deadline=row.get("deadline"),
            assignee=None if lapsed else row.get("assignee"),
            lease_until=None if lapsed else row.get("lease_until"),
            resolved_by=row.get("resolved_by"),
            resolved_at=row.get("resolved_at"),
            decision=_public(json.loads(decision) if isinstance(decision, str) else decision),
            escalation=dict(value.get("escalation") or {}) if with_escalation else {},
            kind=row.get("kind") or "escalation",
        )

    # -- claims ------------------------------------------------------------------------------

    def claim(self, escalation_id: str, *, reviewer: str) -> InboxItem:
        """Take the escalation for `reviewer` for one lease (an abandoned claim returns to the queue)."""
        reviewer = _reviewer(reviewer)
        self.show(escalation_id)  # indexed, or a clear error
        now = self._now()
        until = (now + self.lease).isoformat()
        ok = self.ledger.transition(
            escalation_id,
            Expect(statuses=(PENDING,), claimant=reviewer, now=now.isoformat()),
            {"status": CLAIMED, "assignee": reviewer, "lease_until": until},
            log=(reviewer, "claim", {"lease_until": until}),
            at=now.isoformat(),
        )
        if not ok:
            raise self._refused(escalation_id, reviewer)
        return self.show(escalation_id)

    def release(self, escalation_id: str, *, reviewer: str) -> InboxItem:
        """Give `reviewer`'s claim back to the queue.

        Raises:
            AlreadyResolvedError: `reviewer` holds no claim on it (someone else does, or nobody).
        """
        reviewer = _reviewer(reviewer)
        self.show(escalation_id)
        now = self._now().isoformat()
        ok = self.ledger.transition(
            escalation_id,
            Expect(statuses=(CLAIMED,), assignee=reviewer, now=now),
            {"status": PENDING, "assignee": None, "lease_until": None},
            log=(reviewer, "release", {}),
            at=now,
        )
        if not ok:
            raise self._refused(escalation_id, reviewer)
        return self.show(escalation_id)

    def _refused(self, escalation_id: str, reviewer: str | None = None) -> Exception:
        row = self.ledger.get(escalation_id)
        if row is None:
            return NoPendingEscalationError(interrupt_ids=[escalation_id], pending=[], what="escalation id")
        status = effective_status(row, self._now().isoformat())
        if status == CLAIMED:
            return AlreadyResolvedError(
                escalation_id=escalation_id, by=row.get("assignee"), at=row.get("lease_until"), status=CLAIMED
            )
        if status == PENDING:
            return AlreadyResolvedError(escalation_id=escalation_id, by=reviewer, at=None, status=PENDING)
        return AlreadyResolvedError(
            escalation_id=escalation_id, by=row.get("resolved_by"), at=row.get("resolved_at"), status=status
        )

    # -- resolution --------------------------------------------------------------------------

    def resolve(self, escalation_id: str, answer: Any, *, reviewer: str, reason: str | None = None) -> Any:
        """Validate `answer`, win the escalation (compare-and-set), apply it to its thread, exactly once.

        The answer goes to the thread through the resolution protocol: the thread's lock is
        taken (waiting for another reviewer's resolution on the same thread), the resume runs
        with `durability="sync"`, and the escalation is `resolved` once the checkpoint holding
        the applied decision is durable (`applied` until then, when the thread still waits on
        other escalations). The decision recorded in the step's record and streamed carries
        `reviewer` (and `reason`). On an audit item the answer is a label (approve: right; edit
        or terminate: wrong), recorded exactly once; no thread is resumed.

        Returns:
            What the graph's `invoke` returned on the thread (None for an audit).

        Raises:
            InvalidAnswerError: the answer breaks a rule (nothing changed).
            AlreadyResolvedError: someone else resolved it, is resolving it, or holds the claim.
            ThreadBusyError: another resolution held the thread longer than `wait` (nothing changed).
        """
        reviewer = _reviewer(reviewer)
        item = self.show(escalation_id)
        if item.kind != "audit":
            self._graph()
        esc = item.escalation
        decision = parse_answer(
            answer,
            allowed=esc.get("allowed_decisions") or ("approve", "edit", "provide_context", "retry", "terminate"),
            kind=esc.get("kind", "output"),
            original=esc.get("output"),
        )
        body = decision.model_dump(mode="json", exclude_unset=True)
        body.pop("ticket", None)
        if reason and "reason" not in body:
            body["reason"] = reason
        body["reviewer"] = reviewer
        if item.kind == "audit":
            return self._label(item, body, reviewer=reviewer)
        owner = owner_token()
        row = self.resolver.win(escalation_id, body, reviewer=reviewer, owner=owner)
        if row is None:
            raise self._refused(escalation_id, reviewer)
        return self.resolver.drive(row, owner=owner)

    def _label(self, item: InboxItem, body: dict[str, Any], *, reviewer: str) -> None:
        """Record a reviewer's label on an audit, exactly once (nothing to resume: the run went on)."""
        now = self._now().isoformat()
        label = "correct" if body["action"] == "approve" else "wrong"
        before = item.escalation.get("output")
        after = body.get("output") if body["action"] == "edit" else before
        changes = {"status": "resolved", "decision": json.dumps(body), "resolved_by": reviewer, "resolved_at": now}
        log = (
            reviewer,
            "resolve",
            {"decision": body, "reason": body.get("reason"), "before": before, "after": after, "label": label},
        )
        if not self.ledger.transition(
            item.id, Expect(statuses=(PENDING,), claimant=reviewer, now=now), changes, log=log, at=now
        ):
            raise self._refused(item.id, reviewer)
        self.resolver.mirror(item.id, "resolved", changes)

    def audit_labels(self) -> dict[str, dict[str, int]]:
        """Per step, the audits labelled so far: `{"labelled": n, "wrong": k, "pending": m}`.

        A label is `wrong` when the reviewer edited or terminated the audited output.

        Example:
            ```python
            from langgraph.store.memory import InMemoryStore
            from reliable_graph import EscalationInbox

            assert EscalationInbox(InMemoryStore()).audit_labels() == {}
            ```
        """
        if self.ledger.kind == "memory":
            self.sync()
        found: dict[str, dict[str, int]] = {}
        for row in self.ledger.select_all(status=None, kind="audit", now=self._now().isoformat()):
            stats = found.setdefault(str(row.get("step") or ""), {"labelled": 0, "wrong": 0, "pending": 0})
            raw = row.get("decision")
            decision = json.loads(raw) if isinstance(raw, str) else raw
            if row["status"] == "resolved" and isinstance(decision, dict):
                stats["labelled"] += 1
                stats["wrong"] += decision.get("action") != "approve"
            else:
                stats["pending"] += 1
        return found

    def sweep(self, *, now: datetime | None = None) -> builtins.list[str]:
        """Apply the default action to escalations past their deadline; safe from many processes at once.

        With `on_expiry={"assign_to": name}` an escalation is handed over once (a reviewer who
        claims it after the hand-over keeps it). Also finishes resolutions whose owner stopped.

        Returns:
            The ids this call expired or handed over.
        """
        self._take_over_lapsed()
        if self.on_expiry is None or self.deadline is None:
            return []
        self.sync()
        moment = (now or self._now()).astimezone(timezone.utc)
        at = moment.isoformat()
        rows = self.ledger.select_all(status=OPEN, now=at, kind="escalation")  # audits never expire
        expired = []
        for row in rows:
            due = row.get("deadline") or (
                (datetime.fromisoformat(row["created_at"]) + self.deadline).isoformat()
                if row.get("created_at")
                else None
            )
            if due is None or due > at:
                continue
            escalation_id = str(row["escalation_id"])
            if "assign_to" in self.on_expiry:
                to = self.on_expiry["assign_to"]
                if self.ledger.transition(
                    escalation_id,
                    Expect(statuses=OPEN, unhanded=True, now=at),
                    {
                        "status": CLAIMED,
                        "assignee": to,
                        "lease_until": (moment + self.lease).isoformat(),
                        "handed_to": to,
                    },
                    log=(SWEEP, "reassign", {"to": to}),
                    at=at,
                ):
                    expired.append(escalation_id)
                continue
            owner = owner_token()
            won = self.resolver.win(escalation_id, dict(self.on_expiry), reviewer=SWEEP, owner=owner, overrule=True)
            if won is None:
                continue
            self.resolver.drive(won, owner=owner)
            expired.append(escalation_id)
        return expired

    def _graph(self) -> Any:
        if self.graph is None:
            msg = "this operation applies decisions to threads: build the inbox with graph=<the compiled graph>"
            raise ValueError(msg)
        return self.graph
