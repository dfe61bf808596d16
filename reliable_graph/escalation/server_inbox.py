"""ServerInbox: the escalation inbox of a LangGraph Server deployment, through `langgraph_sdk`.

The graphs of a deployment index their escalations in the server's store under
`("reliable_graph", "escalations")` and keep each item's status true themselves: the review node
notes `applied` (with the decision and `resolved_by`, the reviewer) when it takes an answer,
whatever client sent it, the node applying the decision notes `resolved`, and
`reliable_graph.server`'s middleware notes `dismissed` when a thread is "Marked as Resolved".
`ServerInbox` reads that index, keeps claims in `("reliable_graph", "claims")` and an
append-only audit trail in `("reliable_graph", "audit", <escalation id>)` (one item per line,
keyed by time: no writer rewrites a shared list), and resolves by resuming the thread.

Exactly once, without a ledger. The server's store has no compare-and-set (a put replaces an
item, whatever it held), so the compare step is the thread itself:

1. Runs of one thread execute one at a time (the server's per-thread run serialisation), and a
   resume sent with `multitask_strategy="reject"` is refused (HTTP 409) while any other run of
   the thread is pending or running. `resolve` then waits a little and tries again (for at most
   `wait`). An accepted resume therefore runs alone, against the thread as every earlier run
   left it. (Verified on `langgraph dev`'s in-memory runtime, langgraph-api 0.16.7; the
   Postgres-backed server's queue lives outside this package and was not tested here.)
2. `resolve` answers by interrupt id and escalation id (`{interrupt_id: {escalation_id:
   decision}}`), reading the interrupt that carries the escalation right before it sends. An
   interrupt is answered once: its answer is recorded in the checkpoint and never asked for
   again. A resume naming an interrupt another run consumed between that read and the send
   cannot apply the answer twice: LangGraph ignores an answer to an interrupt that is not
   pending (langgraph-api 0.16.7 ignores `strict_resume`), except that an answer naming a
   task's first interrupt goes to the same task's next question when the task asked again
   (LangGraph's compatibility with older interrupt ids), as a `mode="single"` review task does
   after a partial answer. There the review node reads the answer by escalation id: for an
   escalation still shown, it is that escalation's answer (the first to arrive); one naming an
   escalation no longer shown is ignored (the open escalations are asked again, unchanged, and
   the stream says `late_answer_ignored`), never applied to another escalation.
3. The review node takes at most one answer per escalation (it stops asking once it has one) and,
   inside the run that takes it, notes the item `applied` with `resolved_by` = the answer's
   reviewer, never moving an item back. So once that run has ended, the item names the one
   answer the thread took.
4. After its run, `resolve` reads the item back. It names this reviewer and decision: the
   resolution is this caller's. Another name: `AlreadyResolvedError` naming who and when. Still
   open: this answer arrived too late (step 2); `resolve` reads the thread again and retries.

Each escalation is therefore resolved, and its decision applied, exactly once, however many
reviewers race. What is weaker than the local inbox's ledger (`EscalationInbox`):

- Claims are advisory. A claim is a store item written, then read back (the caller holds it if
  the item carries its token); two reviewers claiming at the same instant can both read their
  own token back before the other's write lands. This narrows the window, it does not close it.
  Resolutions are exactly once regardless.
- There is no `resolving` state: while a resume runs, others still read `pending`, try, and lose
  on the thread.
- The winner is told apart by reviewer name and decision: two callers using the same name and
  the same decision cannot tell which of them sent it.
- The audit trail is written by the clients, not atomically with the resolution: a client that
  stops between its run and its `resolve` line leaves none; `audit()` then shows the resolution
  the item records (as it shows answers other clients sent).
- `reconcile()`'s `dismissed`/`superseded` and an audit item's label are read-modify-writes of
  the item (a label is written, then read back, as a claim is: two labellers at the same
  instant may both be told theirs was recorded; the last write wins).
- No deadlines: `sweep` is not offered.
"""

from __future__ import annotations

import builtins
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Literal

from reliable_graph._compat import run_error
from reliable_graph.errors import InvalidAnswerError, NoPendingEscalationError, ThreadBusyError
from reliable_graph.escalation._remote import Remote, iso, when
from reliable_graph.escalation._server_items import (
    item_of,
    later_round,
    recorded_lines,
    same_decision,
)
from reliable_graph.escalation.decision import parse_answer
from reliable_graph.escalation.inbox import (
    INBOX_NAMESPACE,
    AlreadyResolvedError,
    AuditEntry,
    InboxItem,
    _index_value,
    _public,
    _reviewer,
    _utcnow,
    list_filters,
)
from reliable_graph.escalation.protocol import (
    APPLIED,
    CLAIMED,
    DISMISSED,
    OPEN,
    PENDING,
    RESOLVED,
    SUPERSEDED,
)

__all__ = ["AUDIT_NAMESPACE", "CLAIMS_NAMESPACE", "ServerInbox"]

CLAIMS_NAMESPACE = ("reliable_graph", "claims")
"""Where `ServerInbox` keeps claims: one item per claimed escalation."""
AUDIT_NAMESPACE = ("reliable_graph", "audit")
"""The prefix of the audit trail: one namespace per escalation, one item per line."""

_TAKES = 5
"""Runs that did not take an answer after which it is reported refused rather than raced."""
_DECISIONS = ("approve", "edit", "provide_context", "retry", "terminate")


class ServerInbox:
    """The review queue of a LangGraph Server deployment: list, show, claim, resolve exactly once, audit.

    The same methods and exceptions as `EscalationInbox`, over the server's store and threads
    through `langgraph_sdk` (no database of its own; the module's docstring gives the
    exactly-once argument and what is weaker than the local ledger). The deployment's graphs
    index their escalations themselves (`HumanEscalation` writes to the server's store); nothing
    needs setting up. Use it as a context manager (or call `close()`) to close its HTTP client.

    Args:
        url: The deployment's URL (e.g. `http://127.0.0.1:2024`).
        lease: How long a claim holds before the escalation returns to the queue.
        wait: How long `resolve` keeps trying while other runs hold the thread (HTTP 409).
        clock: The inbox's clock (a function returning an aware `datetime`; default UTC now).
        api_key: The deployment's API key; default the SDK's (`LANGGRAPH_API_KEY`,
            `LANGSMITH_API_KEY` or `LANGCHAIN_API_KEY` from the environment).
        timeout: Seconds an HTTP request may take (a resume runs the graph: keep it generous).

    Raises:
        ValueError: `url` is not an http(s) URL, or `lease` / `wait` is not a positive timedelta.

    Example:
        ```python
        from datetime import timedelta
        from reliable_graph import ServerInbox

        with ServerInbox("http://127.0.0.1:9", lease=timedelta(minutes=5)) as inbox:  # nothing sent yet
            assert inbox.url == "http://127.0.0.1:9" and inbox.deadline is None
            try:
                inbox.check()  # GET /info, once
            except ConnectionError as err:  # nothing listens there
                assert "cannot reach LangGraph Server at http://127.0.0.1:9" in str(err)
        try:
            ServerInbox("127.0.0.1:2024")
        except ValueError as err:
            assert "http://" in str(err)
        ```

        Against a deployment (`langgraph dev` serving `examples/server`, as tests/test_server_inbox.py
        drives it):

        ```text
        inbox = ServerInbox("http://127.0.0.1:2024")
        [item] = inbox.list(step="draft_answer", limit=1)
        inbox.claim(item.id, reviewer="ana")
        inbox.resolve(item.id, {"action": "edit", "output": "Card only."}, reviewer="ana")
        assert inbox.show(item.id).resolved_by == "ana"
        ```
    """

    deadline: timedelta | None = None
    """No deadlines on a server (`sweep` is not offered); the console reads this."""

    def __init__(
        self,
        url: str,
        *,
        lease: timedelta = timedelta(minutes=15),
        wait: timedelta = timedelta(minutes=2),
        clock: Callable[[], datetime] | None = None,
        api_key: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) < 8:
            msg = f"ServerInbox(url=...) must be the deployment's http:// or https:// URL, got {url!r}"
            raise ValueError(msg)
        for name, value in (("lease", lease), ("wait", wait)):
            if not isinstance(value, timedelta) or value <= timedelta(0):
                msg = f"ServerInbox({name}=...) must be a positive timedelta, got {value!r}"
                raise ValueError(msg)
        self.url = url.rstrip("/")
        self.lease = lease
        self.wait = wait
        self.clock: Callable[[], datetime] = clock or _utcnow
        self._remote = Remote(self.url, api_key=api_key, timeout=timeout)

    def __enter__(self) -> ServerInbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client (the inbox makes a new one if used again)."""
        self._remote.close()

    def check(self) -> dict[str, Any]:
        """The server's `/info` (its version and flags).

        Raises:
            ConnectionError: nothing answers at the URL, or what answers is not a LangGraph Server.
        """
        return self._remote.info()

    def _now(self) -> datetime:
        return self.clock().astimezone(timezone.utc)

    def _log(self, escalation_id: str, actor: str, event: str, body: Mapping[str, Any] | None = None) -> None:
        """Append one audit line: an item of its own, keyed by time (concurrent writers never lose one)."""
        at = iso(self._now())
        line = {"escalation_id": escalation_id, "at": at, "actor": actor, "event": event, **dict(body or {})}
        self._remote.put((*AUDIT_NAMESPACE, escalation_id), f"{at}~{uuid.uuid4().hex[:12]}", line)

    # -- reading -----------------------------------------------------------------------------------

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
    ) -> builtins.list[InboxItem]:
        """One page of items, filtered and sorted, as `EscalationInbox.list` gives it.

        The server's store filters by equality only: thread, step and kind are filtered there,
        the rest here, on the whole index read in pages.

        Raises:
            ValueError: an unknown status, kind or order, a bad page, or a negative `older_than`.
            ConnectionError: the server cannot be reached.
        """
        statuses = list_filters(status, kind, order, limit, offset, older_than)
        where = {k: v for k, v in (("thread_id", thread_id), ("step", step), ("kind", kind)) if v is not None}
        now = self._now()
        claims = {str(i["key"]): dict(i["value"]) for i in self._remote.search(CLAIMS_NAMESPACE)}
        found = self._remote.search(INBOX_NAMESPACE, **({"filter": where} if where else {}))
        items = [item_of(i["value"], claims.get(str(i["key"])), now, with_escalation=False) for i in found]
        cutoff = now - older_than if older_than is not None else None
        kept = [
            i
            for i in items
            if (statuses is None or i.status in statuses)
            and (kind is None or i.kind == kind)
            and (assignee is None or i.assignee == assignee)
            and (cutoff is None or ((created := when(i.created_at)) is not None and created < cutoff))
        ]
        if order == "confidence":
            kept.sort(key=lambda i: (i.confidence, i.created_at, i.id))
        else:
            kept.sort(key=lambda i: (i.created_at, i.id))
        return kept[offset : offset + limit]

    def show(self, escalation_id: str) -> InboxItem:
        """One escalation with everything a reviewer needs (the whole `Escalation` in `.escalation`).

        Raises:
            NoPendingEscalationError: no escalation has this id on this server.
            ConnectionError: the server cannot be reached.
        """
        value = self._remote.get(INBOX_NAMESPACE, escalation_id)
        if value is None:
            waiting = [i.id for i in self.list(limit=5)]
            raise NoPendingEscalationError(interrupt_ids=[escalation_id], pending=waiting, what="escalation id")
        claim = self._remote.get(CLAIMS_NAMESPACE, escalation_id)
        return item_of(value, claim, self._now(), with_escalation=True)

    def audit(self, escalation_id: str | None = None) -> builtins.list[AuditEntry]:
        """The audit trail (of one escalation, or all), oldest first.

        Besides the lines inboxes wrote (claims, releases, resolutions, reconcile's), each
        escalation's trail starts with its `index` line and ends, when no line says how it ended,
        with what its item records (an answer another client sent, "Mark as Resolved").
        """
        if escalation_id is not None:
            value = self._remote.get(INBOX_NAMESPACE, escalation_id)
            values = [value] if value is not None else []
            lines = [dict(i["value"]) for i in self._remote.search((*AUDIT_NAMESPACE, escalation_id))]
        else:
            values = [dict(i["value"]) for i in self._remote.search(INBOX_NAMESPACE)]
            lines = [dict(i["value"]) for i in self._remote.search(AUDIT_NAMESPACE)]
        written: dict[str, set[str]] = {}
        for line in lines:
            written.setdefault(str(line.get("escalation_id")), set()).add(str(line.get("event")))
        for value in values:
            lines.extend(recorded_lines(value, written.get(str(value.get("id")), set())))
        lines.sort(key=lambda line: (line.get("event") != "index", str(line.get("at") or "")))
        return [
            AuditEntry(
                escalation_id=str(line.get("escalation_id")),
                at=str(line.get("at") or ""),
                actor=str(line.get("actor") or ""),
                event=str(line.get("event") or ""),
                decision=line.get("decision"),
                reason=line.get("reason"),
                before=line.get("before"),
                after=line.get("after"),
            )
            for line in lines
        ]

    def audit_labels(self) -> dict[str, dict[str, int]]:
        """Per step, the audits labelled so far: `{"labelled": n, "wrong": k, "pending": m}`.

        A label is `wrong` when the reviewer edited or terminated the audited output.
        """
        found: dict[str, dict[str, int]] = {}
        for item in self._remote.search(INBOX_NAMESPACE, filter={"kind": "audit"}):
            value = item["value"]
            stats = found.setdefault(str(value.get("step") or ""), {"labelled": 0, "wrong": 0, "pending": 0})
            decision = value.get("decision")
            if value.get("status") == RESOLVED and isinstance(decision, dict):
                stats["labelled"] += 1
                stats["wrong"] += decision.get("action") != "approve"
            else:
                stats["pending"] += 1
        return found

    # -- claims ------------------------------------------------------------------------------------

    @staticmethod
    def _refuse_unless_open(item: InboxItem, reviewer: str) -> None:
        """Raise `AlreadyResolvedError` unless `reviewer` may act on `item` (open, and unclaimed or theirs)."""
        if item.status == CLAIMED and item.assignee != reviewer:
            raise AlreadyResolvedError(escalation_id=item.id, by=item.assignee, at=item.lease_until, status=CLAIMED)
        if item.status not in OPEN:
            raise AlreadyResolvedError(
                escalation_id=item.id, by=item.resolved_by, at=item.resolved_at, status=item.status
            )

    def claim(self, escalation_id: str, *, reviewer: str) -> InboxItem:
        """Take the escalation for `reviewer` for one lease (advisory: see the module's docstring).

        Raises:
            AlreadyResolvedError: someone else holds a live claim, or it is no longer open.
            NoPendingEscalationError: no escalation has this id.
        """
        reviewer = _reviewer(reviewer)
        self._refuse_unless_open(self.show(escalation_id), reviewer)
        until = iso(self._now() + self.lease)
        token = uuid.uuid4().hex
        claim = {"escalation_id": escalation_id, "assignee": reviewer, "lease_until": until, "token": token}
        self._remote.put(CLAIMS_NAMESPACE, escalation_id, claim)
        held = self._remote.get(CLAIMS_NAMESPACE, escalation_id) or {}
        if held.get("token") != token:  # another claim's write landed after ours
            raise AlreadyResolvedError(
                escalation_id=escalation_id, by=held.get("assignee"), at=held.get("lease_until"), status=CLAIMED
            )
        item = self.show(escalation_id)
        self._refuse_unless_open(item, reviewer)
        self._log(escalation_id, reviewer, "claim", {"lease_until": until})
        return item

    def release(self, escalation_id: str, *, reviewer: str) -> InboxItem:
        """Give `reviewer`'s claim back to the queue.

        Raises:
            AlreadyResolvedError: `reviewer` holds no claim on it (someone else does, or nobody).
        """
        reviewer = _reviewer(reviewer)
        item = self.show(escalation_id)
        if item.status != CLAIMED or item.assignee != reviewer:
            if item.status == CLAIMED:
                raise AlreadyResolvedError(
                    escalation_id=escalation_id, by=item.assignee, at=item.lease_until, status=CLAIMED
                )
            raise AlreadyResolvedError(escalation_id=escalation_id, by=reviewer, at=None, status=PENDING)
        self._remote.delete(CLAIMS_NAMESPACE, escalation_id)
        self._log(escalation_id, reviewer, "release")
        return self.show(escalation_id)

    # -- resolution --------------------------------------------------------------------------------

    @staticmethod
    def _decision(esc: Mapping[str, Any], answer: Any, reviewer: str, reason: str | None) -> dict[str, Any]:
        """The answer validated against the escalation, as the body the review node will take."""
        decision = parse_answer(
            answer,
            allowed=esc.get("allowed_decisions") or _DECISIONS,
            kind=esc.get("kind", "output"),
            original=esc.get("output"),
        )
        body = decision.model_dump(mode="json", exclude_unset=True)
        body.pop("ticket", None)
        if reason and "reason" not in body:
            body["reason"] = reason
        body["reviewer"] = reviewer
        return body

    def resolve(self, escalation_id: str, answer: Any, *, reviewer: str, reason: str | None = None) -> Any:
        """Validate `answer` and apply it to the escalation's thread, exactly once across every reviewer.

        The answer goes to the thread as `{interrupt_id: {escalation_id: decision}}` in a run
        created with `multitask_strategy="reject"` (tried again while other runs hold the thread,
        for at most `wait`); the item is then read back to learn whose answer the thread took (the
        module's docstring gives the argument). The decision carries `reviewer` (and `reason`).
        On an audit item the answer is a label (approve: right; edit or terminate: wrong); no
        thread is resumed.

        Returns:
            What the run returned (the thread's values), or None for an audit.

        Raises:
            InvalidAnswerError: the answer breaks a rule, or the thread refused it (nothing applied).
            AlreadyResolvedError: someone else resolved it or holds a live claim, or its thread
                no longer waits on it.
            ThreadBusyError: other runs held the thread for longer than `wait` (nothing applied).
            NoPendingEscalationError: no escalation has this id.
            ConnectionError: the server cannot be reached.
            RuntimeError: the run carrying the decision failed on the server.
        """
        reviewer = _reviewer(reviewer)
        item = self.show(escalation_id)
        self._refuse_unless_open(item, reviewer)
        body = self._decision(item.escalation, answer, reviewer, reason)  # refused before anything is sent
        if item.kind == "audit":
            return self._label(item, body, reviewer)
        if not item.thread_id:
            msg = f"escalation {escalation_id} names no thread: it cannot be resumed"
            raise ValueError(msg)
        thread_id = str(item.thread_id)
        start = time.monotonic()
        delay = 0.05
        missed = 0
        while True:
            waiting = self._remote.waiting(thread_id)
            found = next(((i, e) for i, e in waiting if str(e.get("id")) == escalation_id), None)
            self._refuse_unless_open(self.show(escalation_id), reviewer)  # answered or claimed meanwhile
            if found is None:
                if (self._remote.thread(thread_id) or {}).get("status") != "busy":
                    raise AlreadyResolvedError(escalation_id=escalation_id, by=None, at=None, status=DISMISSED)
            else:
                interrupt_id, esc = found
                body = self._decision(esc, answer, reviewer, reason)  # as the thread shows it now
                out = self._remote.resume(thread_id, {interrupt_id: {escalation_id: body}})
                if out is not None:
                    if self._settled(escalation_id, reviewer, body, out):
                        return out or None
                    missed += 1  # the interrupt we named was consumed by another run meanwhile
                    if missed >= _TAKES:
                        msg = "the thread did not take the answer; the escalation is still open"
                        raise InvalidAnswerError(msg, answer=answer)
                    continue
            if time.monotonic() - start > self.wait.total_seconds():
                raise ThreadBusyError(thread_id=thread_id, waited=round(time.monotonic() - start, 1))
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 1.0)

    def _settled(self, escalation_id: str, reviewer: str, body: Mapping[str, Any], out: Any) -> bool:
        """Read the item back: True if it records this answer, False if still open; raise if someone else's."""
        item = self.show(escalation_id)
        error = run_error(out)
        if item.status in OPEN:
            if error is not None:
                msg = f"the run on thread {item.thread_id} failed: {error.get('error')}: {error.get('message')}"
                raise RuntimeError(msg)
            return False
        if (
            item.status not in (APPLIED, RESOLVED)
            or item.resolved_by != reviewer
            or not same_decision(item.decision, body)
        ):
            raise AlreadyResolvedError(
                escalation_id=escalation_id, by=item.resolved_by, at=item.resolved_at, status=item.status
            )
        decision = _public(item.decision) or {}
        before = item.escalation.get("output")
        after = decision.get("output") if decision.get("action") == "edit" else before
        trail = {"decision": decision, "reason": decision.get("reason"), "before": before, "after": after}
        self._log(escalation_id, reviewer, "resolve", trail)
        self._remote.delete(CLAIMS_NAMESPACE, escalation_id)
        if error is not None:
            msg = (
                f"the decision was applied, then the run on thread {item.thread_id} failed: "
                f"{error.get('error')}: {error.get('message')}"
            )
            raise RuntimeError(msg)
        return True

    def _label(self, item: InboxItem, body: dict[str, Any], reviewer: str) -> None:
        """Record a label on an audit item: written, then read back (see the module's docstring)."""
        value = self._remote.get(INBOX_NAMESPACE, item.id) or {}
        now = iso(self._now())
        token = uuid.uuid4().hex
        labelled = {**value, "status": RESOLVED, "decision": body, "resolved_by": reviewer, "resolved_at": now}
        self._remote.put(INBOX_NAMESPACE, item.id, {**labelled, "updated_at": now, "label_token": token})
        back = self._remote.get(INBOX_NAMESPACE, item.id) or {}
        if back.get("label_token") != token:
            raise AlreadyResolvedError(
                escalation_id=item.id, by=back.get("resolved_by"), at=back.get("resolved_at"), status=RESOLVED
            )
        before = item.escalation.get("output")
        after = body.get("output") if body["action"] == "edit" else before
        label = "correct" if body["action"] == "approve" else "wrong"
        trail = {"decision": body, "reason": body.get("reason"), "before": before, "after": after, "label": label}
        self._log(item.id, reviewer, "resolve", trail)
        self._remote.delete(CLAIMS_NAMESPACE, item.id)

    # -- the index ---------------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Make the index match the threads; returns how many escalations were indexed anew.

        Indexes every escalation waiting in an `interrupted` (or `error`) thread that the store
        lacks, and marks each open item whose thread, at rest (not `busy`), no longer waits on
        it: `superseded` when a later round of the same task is in the index, else `dismissed`.
        Threads with a run in flight are left for the next call. Safe from many processes at once.

        Raises:
            ConnectionError: the server cannot be reached.
        """
        items = {str(i["key"]): dict(i["value"]) for i in self._remote.search(INBOX_NAMESPACE)}
        added = 0
        for status in ("interrupted", "error"):
            for thread in self._remote.threads(status=status, select=["thread_id", "status"]):
                for _, esc in self._remote.waiting(str(thread["thread_id"])):
                    key = str(esc["id"])
                    if key in items:
                        continue
                    value = _index_value({k: v for k, v in esc.items() if k != "rejected"})
                    self._remote.put(INBOX_NAMESPACE, key, value)
                    items[key] = value
                    self._log(key, "reconcile", "index", {"reason": "waiting in its thread, missing from the index"})
                    added += 1
        threads = {v.get("thread_id") for v in items.values() if v.get("status") in OPEN and v.get("kind") != "audit"}
        for thread_id in sorted(str(t) for t in threads if t):
            self._retire(thread_id, items)
        return added

    def _retire(self, thread_id: str, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Mark the open items of `thread_id` its thread no longer waits on: superseded or dismissed."""
        thread = self._remote.thread(thread_id)
        if thread is not None and thread.get("status") == "busy":
            return  # a run may be taking one of them now
        waiting = {str(esc["id"]) for _, esc in self._remote.waiting(thread_id)} if thread is not None else set()
        mine = {k: v for k, v in items.items() if v.get("thread_id") == thread_id and v.get("kind") != "audit"}
        for key, value in mine.items():
            if value.get("status") not in OPEN or key in waiting:
                continue
            later = any(
                other_key != key and other.get("task") == value.get("task") and later_round(other, value)
                for other_key, other in mine.items()
            )
            fresh = self._remote.get(INBOX_NAMESPACE, key)
            if fresh is None or fresh.get("status") not in OPEN:
                continue  # answered since it was read
            status = SUPERSEDED if later else DISMISSED
            now = iso(self._now())
            retired = {**fresh, "status": status, "resolved_by": "reconcile", "resolved_at": now, "updated_at": now}
            self._remote.put(INBOX_NAMESPACE, key, retired)
            why = "a later escalation of the same task replaced it" if later else "its thread no longer waits on it"
            self._log(key, "reconcile", status, {"reason": why})
