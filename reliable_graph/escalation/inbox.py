"""EscalationInbox: a cross-thread review queue over LangGraph's Store, resolved exactly once.

Every escalation is indexed when it is raised: the escalating node writes it through
`get_store()` (compile the graph with `store=`) under `("reliable_graph", "escalations")`,
keyed by the escalation's id, so a node that runs again writes the same item and never a
second one. Alongside the store, in the same database, a small ledger keeps what must change
atomically: status (`pending`, `claimed`, `resolved`, `expired`), assignee and lease, the
decision, and an append-only audit trail. Claims and resolutions are compare-and-set on the
ledger (one SQL statement on SQLite and on Postgres), so of two reviewers resolving the same
escalation exactly one wins and the other gets `AlreadyResolvedError` naming who and when. The
checkpoints stay the source of truth: `reconcile()` rebuilds the index from them.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.store.base import BaseStore
from langgraph.types import Command

from reliable_graph.errors import InvalidAnswerError, NoPendingEscalationError, ReliableGraphError
from reliable_graph.escalation._ledger import ledger_for
from reliable_graph.escalation.decision import Decision, parse_answer
from reliable_graph.escalation.resume import pending_escalations

__all__ = [
    "INBOX_NAMESPACE",
    "aindex_escalation",
    "AlreadyResolvedError",
    "AuditEntry",
    "EscalationInbox",
    "InboxItem",
    "index_escalation",
]

INBOX_NAMESPACE = ("reliable_graph", "escalations")
"""Where escalations are indexed in the store."""

Status = Literal["pending", "claimed", "resolving", "resolved", "expired"]
_OPEN = ("pending", "claimed")
DIRECT = "a direct resume"
"""Who resolved an escalation answered straight through the graph (`Command(resume=...)`)."""


class AlreadyResolvedError(ReliableGraphError, LookupError):
    """An escalation was resolved (or is being resolved) by someone else first.

    Example:
        ```python
        from reliable_graph.escalation.inbox import AlreadyResolvedError

        err = AlreadyResolvedError(escalation_id="e1", by="ana", at="2026-01-01T00:00:00+00:00", status="resolved")
        assert err.by == "ana" and "ana" in str(err)
        ```
    """

    def __init__(self, *, escalation_id: str, by: str | None, at: str | None, status: str) -> None:
        self.escalation_id = escalation_id
        self.by = by
        self.at = at
        self.status = status
        super().__init__(f"escalation {escalation_id} is already {status} by {by or 'someone'} at {at or '?'}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _public(decision: Any) -> dict[str, Any] | None:
    """A stored decision without the inbox's internal ticket."""
    if not isinstance(decision, dict):
        return None
    return {k: v for k, v in decision.items() if k != "ticket"}


def current_store() -> BaseStore | None:
    """The running graph's store, or None (no store, or outside a run)."""
    try:
        return get_store()
    except RuntimeError:
        return None


def guard_answer(escalation_id: str, decision: Decision) -> None:
    """Refuse an answer when the inbox resolved the escalation otherwise; record a direct answer.

    Called by `HumanEscalation` on every valid answer when the graph has a store with a ledger:
    an answer sent straight to the graph (`Command(resume=...)`) takes the escalation in the
    ledger by compare-and-set, so the inbox cannot also resolve it; an answer that arrives
    after the inbox took it, and is not the inbox's own, is refused (the reviewer is asked
    again, with the reason). The same answer read back on a later run of the node passes.

    Raises:
        InvalidAnswerError: the inbox resolved (or is resolving) the escalation with another decision.
    """
    store = current_store()
    if store is None:
        return
    ledger = ledger_for(store)
    row = ledger.get(escalation_id)
    if row is None:
        return
    mine = decision.model_dump(mode="json", exclude_unset=True)
    if row["status"] in _OPEN and decision.ticket is None:
        now = _now().isoformat()
        changes = {"status": "resolving", "decision": json.dumps(mine), "resolved_by": DIRECT, "resolved_at": now}
        if ledger.transition(escalation_id, statuses=list(_OPEN), now=now, changes=changes):
            ledger.log(escalation_id, DIRECT, "answer", {"decision": mine})
            return
        row = ledger.get(escalation_id) or row
    raw = row.get("decision")
    stored = json.loads(raw) if isinstance(raw, str) else raw
    if row["status"] in _OPEN or stored == mine:
        return  # the inbox's own answer, or this answer read back on the node's next run
    msg = (
        f"this escalation was already resolved through the inbox by {row.get('resolved_by') or 'someone'} "
        f"at {row.get('resolved_at') or '?'}"
    )
    raise InvalidAnswerError(msg)


def mark_applied(escalation_id: str) -> None:
    """Mark a resolution in flight as resolved once its decision is applied (by the node that applies it)."""
    store = current_store()
    if store is None:
        return
    ledger = ledger_for(store)
    if ledger.transition(escalation_id, statuses=["resolving"], now="", changes={"status": "resolved"}):
        row = ledger.get(escalation_id) or {}
        if row.get("resolved_by") == DIRECT:
            ledger.log(escalation_id, DIRECT, "resolve", {})


def _index_value(escalation: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(escalation["id"]),
        "kind": "audit" if escalation.get("kind") == "audit" else "escalation",
        "thread_id": escalation.get("thread_id"),
        "step": escalation.get("step"),
        "path": escalation.get("path"),
        "task": escalation.get("task"),
        "confidence": escalation.get("confidence"),
        "threshold": escalation.get("threshold"),
        "reason": escalation.get("reason"),
        "created_at": str(escalation.get("created_at") or _now().isoformat()),
        "deadline": None,  # the inbox's (`EscalationInbox(deadline=...)`), from `created_at`
        "status": "pending",
        "escalation": dict(escalation),
    }


def _admit(store: BaseStore, value: Mapping[str, Any]) -> None:
    """Give a newly indexed escalation its ledger row at once (listed without a sync), where the ledger is SQL."""
    ledger = ledger_for(store)
    if ledger.kind != "memory":
        ledger.index(value)


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
    """Async twin of `index_escalation` (the store's async API; the ledger row is written sync).

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
    if await store.aget(INBOX_NAMESPACE, key) is not None:
        return
    value = _index_value(escalation)
    await store.aput(INBOX_NAMESPACE, key, value, index=False)
    _admit(store, value)


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
    """`pending`, `claimed`, `resolving` (a resolution in flight), `resolved` or `expired`."""
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
    """`index`, `claim`, `release`, `resolve`, `expire`, `reconcile`."""
    decision: dict[str, Any] | None = None
    reason: str | None = None
    before: Any = None
    """The output before the decision."""
    after: Any = None
    """The output after it."""


class EscalationInbox:
    """The review queue across threads: list, show, claim, resolve exactly once, release, audit, sweep.

    Args:
        store: The graph's store (`SqliteStore` on the checkpoints' file, `PostgresStore`, or
            `InMemoryStore` for one process). Compile the graph with the same `store=`.
        graph: The compiled graph the escalations come from (to resolve, reconcile and sweep).
        lease: How long a claim holds before the escalation returns to the queue.
        deadline: How long an escalation may wait before `sweep()` applies `on_expiry`.
        on_expiry: The decision applied on expiry (e.g. `{"action": "terminate", "reason": "no review in time"}`),
            or `{"assign_to": "name"}` to hand it to someone instead; None leaves it pending.

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
    ) -> None:
        if not isinstance(store, BaseStore):
            msg = f"EscalationInbox needs a LangGraph BaseStore (SqliteStore, PostgresStore...), not {type(store)}"
            raise TypeError(msg)
        if lease <= timedelta(0):
            msg = f"EscalationInbox(lease=...) must be positive, got {lease}"
            raise ValueError(msg)
        if on_expiry is not None and "assign_to" not in on_expiry:
            parse_answer(on_expiry)  # fail at construction on a default action that cannot apply
        self.store = store
        self.graph = graph
        self.lease = lease
        self.deadline = deadline
        self.on_expiry = dict(on_expiry) if on_expiry is not None else None
        self.ledger = ledger_for(store)

    # -- the index ---------------------------------------------------------------------------

    def sync(self) -> int:
        """Bring escalations the nodes indexed in the store into the ledger; returns how many were new."""
        new = 0
        offset = 0
        while True:
            items = self.store.search(INBOX_NAMESPACE, limit=500, offset=offset)
            if not items:
                return new
            for item in items:
                value = dict(item.value)
                if self.deadline is not None and not value.get("deadline"):
                    value["deadline"] = (datetime.fromisoformat(value["created_at"]) + self.deadline).isoformat()
                new += self.ledger.index(value)
            offset += len(items)

    def reconcile(self) -> int:
        """Rebuild the index from the checkpoints (the source of truth); returns escalations re-indexed.

        Finds every thread's pending escalations through the graph's checkpointer, indexes any the
        store lacks (a process that died between the interrupt and the index write, a wiped store),
        and finishes resolutions left in flight by a process that died mid-way.
        """
        graph = self._graph()
        saver = graph.checkpointer
        threads = {
            str(t.config["configurable"]["thread_id"])
            for t in saver.list(None)
            if not t.config["configurable"].get("checkpoint_ns")
        }
        added = 0
        for thread in sorted(threads):
            config: RunnableConfig = {"configurable": {"thread_id": thread}}
            for pending in pending_escalations(graph, config):
                if self.store.get(INBOX_NAMESPACE, pending.escalation["id"]) is None:
                    index_escalation(self.store, pending.escalation)
                    added += 1
        self.sync()
        for row in self.ledger.select(status=["resolving"]):
            self._finish(row, actor="reconcile")
        return added

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

        `kind`: `escalation` (a run waits on it), `audit` (a passing output to label), or None for both.
        """
        if kind not in (None, "escalation", "audit"):
            msg = f"kind must be 'escalation', 'audit' or None, got {kind!r}"
            raise ValueError(msg)
        if order not in ("oldest", "confidence"):
            msg = f"order must be 'oldest' or 'confidence', got {order!r}"
            raise ValueError(msg)
        if limit < 1 or offset < 0:
            msg = f"limit must be >= 1 and offset >= 0, got {limit} and {offset}"
            raise ValueError(msg)
        if self.ledger.kind == "memory":  # the nodes could not write this ledger: read the store
            self.sync()
        statuses = [status] if isinstance(status, str) else (list(status) if status is not None else None)
        cutoff = (_now() - older_than).isoformat() if older_than is not None else None
        rows = self.ledger.select(
            status=statuses,
            step=step,
            thread_id=thread_id,
            assignee=assignee,
            older_than=cutoff,
            kind=kind,
            order="confidence" if order == "confidence" else "created",
            limit=limit,
            offset=offset,
        )
        return [self._item(row, with_escalation=False) for row in rows]

    def show(self, escalation_id: str) -> InboxItem:
        """One escalation with everything a reviewer needs (the whole `Escalation` in `.escalation`)."""
        row = self.ledger.get(escalation_id)
        if row is None:
            self.sync()
            row = self.ledger.get(escalation_id)
        if row is None:
            raise NoPendingEscalationError(interrupt_ids=[escalation_id], pending=[])
        return self._item(row, with_escalation=True)

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

    def _item(self, row: Mapping[str, Any], *, with_escalation: bool) -> InboxItem:
        value: dict[str, Any] = {}
        if with_escalation or row.get("reason") is None:
            stored = self.store.get(INBOX_NAMESPACE, row["escalation_id"])
            value = dict(stored.value) if stored is not None else {}
        decision = row.get("decision")
        return InboxItem(
            id=row["escalation_id"],
            thread_id=row.get("thread_id"),
            step=row.get("step") or value.get("step") or "",
            status=row["status"],
            confidence=float(row.get("confidence") or 0.0),
            threshold=float(row.get("threshold") or value.get("threshold") or 0.0),
            reason=str(row.get("reason") or value.get("reason") or ""),
            created_at=row.get("created_at") or "",
            deadline=row.get("deadline"),
            assignee=row.get("assignee"),
            lease_until=row.get("lease_until"),
            resolved_by=row.get("resolved_by"),
            resolved_at=row.get("resolved_at"),
            decision=_public(json.loads(decision) if isinstance(decision, str) else decision),
            escalation=dict(value.get("escalation") or {}) if with_escalation else {},
            kind=row.get("kind") or "escalation",
        )

    # -- claims ------------------------------------------------------------------------------

    def claim(self, escalation_id: str, *, reviewer: str) -> InboxItem:
        """Take the escalation for `reviewer` for one lease (an abandoned claim returns to the queue)."""
        self.show(escalation_id)  # indexed, or a clear error
        now = _now()
        until = (now + self.lease).isoformat()
        ok = self.ledger.transition(
            escalation_id,
            statuses=["pending"],
            now=now.isoformat(),
            changes={"status": "claimed", "assignee": reviewer, "lease_until": until},
            claimant=reviewer,
        )
        if not ok:
            raise self._refused(escalation_id)
        self.ledger.log(escalation_id, reviewer, "claim", {"lease_until": until})
        return self.show(escalation_id)

    def release(self, escalation_id: str, *, reviewer: str) -> InboxItem:
        """Give a claim back to the queue."""
        ok = self.ledger.transition(
            escalation_id,
            statuses=[],
            now="",  # only the holder may release: no lapsed-lease shortcut
            changes={"status": "pending", "assignee": None, "lease_until": None},
            claimant=reviewer,
        )
        if not ok:
            raise self._refused(escalation_id)
        self.ledger.log(escalation_id, reviewer, "release", {})
        return self.show(escalation_id)

    def _refused(self, escalation_id: str) -> Exception:
        row = self.ledger.get(escalation_id)
        if row is None:
            return NoPendingEscalationError(interrupt_ids=[escalation_id], pending=[])
        if row["status"] == "claimed":
            return AlreadyResolvedError(
                escalation_id=escalation_id, by=row.get("assignee"), at=row.get("lease_until"), status="claimed"
            )
        return AlreadyResolvedError(
            escalation_id=escalation_id, by=row.get("resolved_by"), at=row.get("resolved_at"), status=row["status"]
        )

    # -- resolution --------------------------------------------------------------------------

    def resolve(self, escalation_id: str, answer: Any, *, reviewer: str, reason: str | None = None) -> Any:
        """Validate `answer`, win the escalation (compare-and-set), apply it to its thread, exactly once.

        On an audit item the answer is a label (approve: right; edit or terminate: wrong),
        recorded exactly once; no thread is resumed.

        Returns:
            What the graph's `invoke` returned on the thread (None for an audit).

        Raises:
            InvalidAnswerError: the answer breaks a rule (nothing changed).
            AlreadyResolvedError: someone else resolved it, is resolving it, or holds the claim.
        """
        item = self.show(escalation_id)
        esc = item.escalation
        decision = parse_answer(
            answer,
            allowed=esc.get("allowed_decisions") or ("approve", "edit", "provide_context", "retry", "terminate"),
            kind=esc.get("kind", "output"),
            original=esc.get("output"),
        )
        body = decision.model_dump(mode="json", exclude_unset=True)
        if reason and "reason" not in body:
            body["reason"] = reason
        if item.kind == "audit":
            return self._label(item, body, reviewer=reviewer)
        body["ticket"] = uuid.uuid4().hex  # lets the node tell this answer from a direct one
        now = _now().isoformat()
        won = self.ledger.transition(
            escalation_id,
            statuses=["pending"],
            now=now,
            changes={"status": "resolving", "decision": json.dumps(body), "resolved_by": reviewer, "resolved_at": now},
            claimant=reviewer,
        )
        if not won:
            raise self._refused(escalation_id)
        row = self.ledger.get(escalation_id)
        assert row is not None
        return self._finish(row, actor=reviewer, strict=True)

    def _label(self, item: InboxItem, body: dict[str, Any], *, reviewer: str) -> None:
        """Record a reviewer's label on an audit, exactly once (nothing to resume: the run went on)."""
        now = _now().isoformat()
        changes = {"status": "resolved", "decision": json.dumps(body), "resolved_by": reviewer, "resolved_at": now}
        if not self.ledger.transition(item.id, statuses=["pending"], now=now, changes=changes, claimant=reviewer):
            raise self._refused(item.id)
        label = "correct" if body["action"] == "approve" else "wrong"
        before = item.escalation.get("output")
        after = body.get("output") if body["action"] == "edit" else before
        self.ledger.log(
            item.id,
            reviewer,
            "resolve",
            {"decision": body, "reason": body.get("reason"), "before": before, "after": after, "label": label},
        )
        self._mirror(item.id, "resolved")

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
        for row in self.ledger.select(status=None, kind="audit"):
            stats = found.setdefault(str(row.get("step") or ""), {"labelled": 0, "wrong": 0, "pending": 0})
            raw = row.get("decision")
            decision = json.loads(raw) if isinstance(raw, str) else raw
            if row["status"] == "resolved" and isinstance(decision, dict):
                stats["labelled"] += 1
                stats["wrong"] += decision.get("action") != "approve"
            else:
                stats["pending"] += 1
        return found

    def _finish(self, row: Mapping[str, Any], *, actor: str, strict: bool = False) -> Any:
        """Apply a won resolution to its thread (again, safely, after a crash) and mark it resolved.

        With `strict`, an escalation no longer pending in its thread (answered by a raw
        `Command(resume=...)` first) is refused instead of being marked resolved by this call.
        """
        escalation_id = row["escalation_id"]
        raw = row.get("decision")
        decision = json.loads(raw) if isinstance(raw, str) else raw
        graph = self._graph()
        config: RunnableConfig = {"configurable": {"thread_id": row["thread_id"]}}
        live = {p.escalation.get("id"): p for p in pending_escalations(graph, config)}
        stored = self.store.get(INBOX_NAMESPACE, escalation_id)
        before = (stored.value.get("escalation") or {}).get("output") if stored is not None else None
        result: Any = None
        if escalation_id in live:
            result = graph.invoke(Command(resume={live[escalation_id].interrupt_id: decision}), config)
        elif not strict and graph.get_state(config).next:
            # the decision was applied but its run was cut short (a crash): finish the run
            result = graph.invoke(None, config)
        elif strict:
            self.ledger.transition(
                escalation_id,
                statuses=["resolving"],
                now="",
                changes={"status": "resolved", "resolved_by": "outside the inbox", "decision": None},
            )
            self.ledger.log(escalation_id, actor, "resolve_refused", {"reason": "answered outside the inbox"})
            self._mirror(escalation_id, "resolved")
            raise AlreadyResolvedError(escalation_id=escalation_id, by="outside the inbox", at=None, status="resolved")
        self.ledger.transition(escalation_id, statuses=["resolving"], now="", changes={"status": "resolved"})
        after = decision.get("output") if decision and decision.get("action") == "edit" else before
        self.ledger.log(
            escalation_id,
            row.get("resolved_by") or actor,
            "resolve",
            {
                "decision": _public(decision),
                "reason": (decision or {}).get("reason"),
                "before": before,
                "after": after,
            },
        )
        self._mirror(escalation_id, "resolved")
        return result

    def _mirror(self, escalation_id: str, status: str) -> None:
        stored = self.store.get(INBOX_NAMESPACE, escalation_id)
        if stored is not None and stored.value.get("status") != status:
            self.store.put(INBOX_NAMESPACE, escalation_id, {**stored.value, "status": status}, index=False)

    def sweep(self, *, now: datetime | None = None) -> builtins.list[str]:
        """Apply the default action to escalations past their deadline; safe from many processes at once.

        Returns:
            The ids this call expired.
        """
        if self.on_expiry is None or self.deadline is None:
            return []
        self.sync()
        moment = (now or _now()).isoformat()
        rows = self.ledger.select(status=["pending", "claimed"], kind="escalation")  # audits never expire
        expired = []
        for row in rows:
            due = row.get("deadline") or (
                (datetime.fromisoformat(row["created_at"]) + self.deadline).isoformat()
                if row.get("created_at")
                else None
            )
            if due is None or due > moment:
                continue
            if "assign_to" in self.on_expiry:
                ok = self.ledger.transition(
                    row["escalation_id"],
                    statuses=["pending", "claimed"],
                    now=moment,
                    changes={
                        "status": "claimed",
                        "assignee": self.on_expiry["assign_to"],
                        "lease_until": (datetime.fromisoformat(moment) + self.lease).isoformat(),
                        "deadline": None,
                    },
                )
                if ok:
                    self.ledger.log(row["escalation_id"], "sweep", "reassign", {"to": self.on_expiry["assign_to"]})
                    expired.append(row["escalation_id"])
                continue
            won = self.ledger.transition(
                row["escalation_id"],
                statuses=["pending", "claimed"],
                now=moment,
                changes={
                    "status": "resolving",
                    "decision": json.dumps(self.on_expiry),
                    "resolved_by": "sweep",
                    "resolved_at": moment,
                },
            )
            if won:
                fresh = self.ledger.get(row["escalation_id"])
                assert fresh is not None
                self._finish(fresh, actor="sweep")
                self.ledger.transition(
                    row["escalation_id"], statuses=["resolved"], now="", changes={"status": "expired"}
                )
                self._mirror(row["escalation_id"], "expired")
                expired.append(row["escalation_id"])
        return expired

    def _graph(self) -> Any:
        if self.graph is None:
            msg = "this operation applies decisions to threads: build the inbox with graph=<the compiled graph>"
            raise ValueError(msg)
        return self.graph
