"""The resolution protocol: one reviewer's answer applied to its thread exactly once, crash or no crash.

Each escalation has one row in the inbox's ledger. Its states and the transitions between them,
each a compare-and-set on the row (`Expect`), so that of any number of processes doing the same
transition at once exactly one succeeds::

    pending  --claim-->  claimed  --release, or the claim's lease lapses-->  pending
    pending | claimed  --win: a ticket, an owner, a heartbeat-->  resolving
    resolving  --the resume (durability="sync") returned; the answer is in the thread-->  applied
    applied  --the checkpoint holding the applied decision is durable-->  resolved
                                                       (expired, for sweep()'s default decision)
    resolving, heartbeat lapsed  --take over: a new owner, the same ticket-->  resolving
    pending | claimed  --the thread no longer holds it-->  dismissed  (superseded: a later round of
                                                                      the same task is in the index)

Who drives a resolution: the process that won it (`EscalationInbox.resolve`, `sweep`), holding
the thread's lock (one resolution at a time per thread, so reviewers of different escalations
of one fan-out never resume the thread at once) and renewing a heartbeat on its row and the
lock while it works. `reconcile()` (and `sweep()`) take over a `resolving` row only once its
heartbeat has lapsed, and finish it from what the checkpoint says: the answer not yet in the
thread -> resume with the same ticket; in the thread but the run cut short -> run it to the end;
applied -> mark resolved. Nothing else finishes a resolution.

Inside the graph, two checks keep an answer from applying twice: the review node accepts an
answer only if it carries the row's ticket, or (a direct `Command(resume=...)`) wins the row by
compare-and-set (`accept`); the node that applies the decision claims its continuation for the
checkpoint it runs from, so a second run of the same thread continuing from another checkpoint
(two resumes racing) stops with `ConcurrentResumeError` before anything downstream runs again
(`continuing`).

Crash points, in the order a resolution passes them (`CrashPoint`); tests SIGKILL a process at
each (`on_crash_point`):

- `won`: the row says `resolving`; nothing was sent to the thread.
- `accepted`: inside the resume, the review node accepted the answer; its write is not durable.
- `continuing`: inside the resume, the node applying the decision claimed it; not yet checkpointed.
- `resumed`: the resume returned (every checkpoint it wrote is durable); the row still `resolving`.
- `applied`: the row says `applied`; not yet `resolved`.
- `taken_over`: `reconcile()` took over a lapsed resolution; nothing driven yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config, get_store
from langgraph.errors import UnknownInterruptError
from langgraph.store.base import BaseStore
from langgraph.types import Command

from reliable_graph._compat import copy_checkpoint, current_checkpoint_id, strict_resume
from reliable_graph.errors import ConcurrentResumeError, InvalidAnswerError, ThreadBusyError
from reliable_graph.escalation._ledger import Expect, Ledger, ledger_for
from reliable_graph.escalation.decision import Decision
from reliable_graph.escalation.resume import escalations_of

__all__ = [
    "APPLIED",
    "CLAIMED",
    "DIRECT",
    "DISMISSED",
    "EXPIRED",
    "FINAL",
    "OPEN",
    "PENDING",
    "RESOLVED",
    "RESOLVING",
    "STATUSES",
    "SUPERSEDED",
    "CrashPoint",
    "ThreadView",
    "accept",
    "acontinuing",
    "aread_thread",
    "continuing",
    "on_crash_point",
    "read_thread",
    "repair_race",
    "stopped_by_race",
]

PENDING = "pending"
CLAIMED = "claimed"
RESOLVING = "resolving"
APPLIED = "applied"
RESOLVED = "resolved"
EXPIRED = "expired"
DISMISSED = "dismissed"
SUPERSEDED = "superseded"
OPEN = (PENDING, CLAIMED)
"""Waiting for a reviewer."""
FINAL = (RESOLVED, EXPIRED, DISMISSED, SUPERSEDED)
"""Nothing will change any more."""
STATUSES = (PENDING, CLAIMED, RESOLVING, APPLIED, RESOLVED, EXPIRED, DISMISSED, SUPERSEDED)
"""Every status an inbox item can have, in the order of its life."""

DIRECT = "a direct resume"
"""The owner (and resolver) of an escalation answered straight through the graph (`Command(resume=...)`)."""
SWEEP = "sweep"
"""Who applies `EscalationInbox(on_expiry=...)`'s default decision."""
RESOLVER_KEY = "reliable_graph_resolver"
"""The configurable key a resolution's runs carry: the owner of the thread's lock they run under."""
DIRECT_LEASE = timedelta(minutes=10)
"""How long a direct answer's claim on an escalation (and a continuation's claim) holds against another run."""


class CrashPoint:
    """The named points of a resolution where a process may die; tests kill a process at each.

    Example:
        ```python
        from reliable_graph.escalation.protocol import CrashPoint

        assert CrashPoint.WON in CrashPoint.ALL and len(CrashPoint.ALL) == 6
        ```
    """

    WON = "won"
    """The row says `resolving` (ticket, owner, heartbeat); nothing was sent to the thread."""
    ACCEPTED = "accepted"
    """Inside the resume: the review node accepted the answer; its write is not durable yet."""
    CONTINUING = "continuing"
    """Inside the resume: the node applying the decision claimed it; the checkpoint is not written yet."""
    RESUMED = "resumed"
    """The resume returned, its checkpoints durable; the row still says `resolving`."""
    APPLIED = "applied"
    """The row says `applied`; not yet `resolved`."""
    TAKEN_OVER = "taken_over"
    """`reconcile()` took over a resolution whose owner stopped; nothing driven yet."""
    ALL = (WON, ACCEPTED, CONTINUING, RESUMED, APPLIED, TAKEN_OVER)


_hook: Callable[[str], None] | None = None


def on_crash_point(hook: Callable[[str], None] | None) -> None:
    """Call `hook(point)` at every crash point this process passes (None: stop). For fault-injection tests.

    Example:
        ```python
        from reliable_graph.escalation.protocol import CrashPoint, on_crash_point

        seen = []
        on_crash_point(seen.append)
        on_crash_point(None)
        assert seen == [] and CrashPoint.RESUMED == "resumed"
        ```
    """
    global _hook
    _hook = hook


def crash_point(point: str) -> None:
    """Mark that this process reached `point` (the hook may kill it here)."""
    if _hook is not None:
        _hook(point)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def current_store() -> BaseStore | None:
    """The running graph's store, or None (no store, or outside a run)."""
    try:
        return get_store()
    except RuntimeError:
        return None


def _decision(raw: Any) -> dict[str, Any] | None:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else None


# -- reading a thread -----------------------------------------------------------------------------


@dataclass(slots=True)
class ThreadView:
    """Where a thread stands, as far as review is concerned (read from its latest checkpoint).

    Example:
        ```python
        from reliable_graph.escalation.protocol import ThreadView

        view = ThreadView(pending={"e1": "i1"}, checkpoints={"c2"})
        assert view.waits_on("e1") and not view.runnable
        assert not view.past("e2", answered_at="c2") and view.past("e2", answered_at="c1")
        ```
    """

    pending: dict[str, str] = field(default_factory=dict)
    """Escalation id -> the interrupt id that answers it, for every escalation waiting."""
    checkpoints: set[str] = field(default_factory=set)
    """The latest checkpoint of the thread and of every subgraph in it."""
    runnable: bool = False
    """Tasks are due that neither wait on a human nor failed (a run in flight, or cut short), or
    every task of a superstep finished and its checkpoint was never written (cut short)."""
    failed: bool = False
    """A task of the current superstep raised."""
    interrupted: bool = False
    """Some task waits on an interrupt (an escalation's, or one of the user's own)."""
    values: Any = None
    """The thread's values."""

    def waits_on(self, escalation_id: str) -> bool:
        """Whether the answer to `escalation_id` is not in the thread yet."""
        return escalation_id in self.pending

    def past(self, escalation_id: str, answered_at: str | None) -> bool:
        """Whether the thread moved past the superstep that took `escalation_id`'s answer (at `answered_at`).

        An answer taken at a checkpoint that is still a latest one waits for its superstep's
        other answers: the decision is in the thread but not applied yet.
        """
        return escalation_id not in self.pending and (answered_at is None or answered_at not in self.checkpoints)

    @property
    def at_rest(self) -> bool:
        """No run can be in flight: nothing is due but answers from reviewers."""
        return not self.runnable


def _walk(snapshot: Any, view: ThreadView) -> None:
    checkpoint = ((getattr(snapshot, "config", None) or {}).get("configurable") or {}).get("checkpoint_id")
    if checkpoint:
        view.checkpoints.add(str(checkpoint))
    tasks = list(getattr(snapshot, "tasks", ()) or ())
    done = 0
    for task in tasks:
        nested = task.state if task.state is not None and hasattr(task.state, "tasks") else None
        if task.result is not None:
            # finished (LangGraph reads a task with an output write as done, and does not run it
            # again), even when a run of it stopped for racing another (`ConcurrentResumeError`)
            # left an error or an interrupt beside the winner's output
            done += 1
        elif task.error is not None:
            view.failed = True
        elif task.interrupts:
            view.interrupted = True
            for item in task.interrupts:
                for esc in escalations_of(item.value):
                    view.pending.setdefault(str(esc["id"]), item.id)
        elif nested is None:
            view.runnable = True
        if nested is not None:
            _walk(nested, view)
    if tasks and done == len(tasks):
        view.runnable = True  # every task of the superstep finished, its checkpoint never written: cut short


def read_thread(graph: Any, config: RunnableConfig) -> ThreadView:
    """Read `config`'s thread from its latest checkpoint (subgraphs included).

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step
        from reliable_graph.escalation.protocol import read_thread

        class State(ReliabilityState, total=False):
            question: str
            output: str

        builder = StateGraph(State)
        builder.add_node(reliable_step(lambda s: {"output": "?"}, name="draft", threshold=1.0, max_retries=0,
                                       evaluator=Predicate(fn=lambda o: o != "?"), pass_to=END))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "draft")
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "v1"}}
        graph.invoke({"question": "q"}, config)
        view = read_thread(graph, config)
        assert len(view.pending) == 1 and view.at_rest
        ```
    """
    return _view(graph.get_state(config, subgraphs=True))


async def aread_thread(graph: Any, config: RunnableConfig) -> ThreadView:
    """Async twin of `read_thread`.

    Example:
        ```python
        import asyncio
        from reliable_graph.escalation.protocol import aread_thread

        assert asyncio.iscoroutinefunction(aread_thread)
        ```
    """
    return _view(await graph.aget_state(config, subgraphs=True))


def _view(snapshot: Any) -> ThreadView:
    view = ThreadView(values=snapshot.values)
    _walk(snapshot, view)
    return view


def stopped_by_race(snapshot: Any) -> bool:
    """Whether a task of `snapshot` (subgraphs' included) stopped with `ConcurrentResumeError`.

    Example:
        ```python
        from types import SimpleNamespace
        from reliable_graph import ConcurrentResumeError
        from reliable_graph.escalation.protocol import stopped_by_race

        err = ConcurrentResumeError(escalation_id="e1", thread_id="t1", holder="another run")
        task = SimpleNamespace(error=err, state=None)
        assert stopped_by_race(SimpleNamespace(tasks=[task])) and not stopped_by_race(SimpleNamespace(tasks=[]))
        ```
    """
    for task in getattr(snapshot, "tasks", ()) or ():
        error = task.error
        if isinstance(error, ConcurrentResumeError) or "ConcurrentResumeError" in str(error or ""):
            return True
        if task.state is not None and hasattr(task.state, "tasks") and stopped_by_race(task.state):
            return True
    return False


def repair_race(graph: Any, config: RunnableConfig) -> bool:
    """Make the newest checkpoint of the run that carried a thread on its newest again, after a race.

    Two runs resuming one thread both write a checkpoint before the node that applies a decision
    stops the second (`ConcurrentResumeError`); when the stopped run's checkpoint happens to be
    the newer one, the thread would read as failed although the other run carried it on. This
    copies the other run's newest checkpoint (`update_state(..., as_node="__copy__")`), which
    becomes the thread's newest. `reconcile()` calls it.

    Returns:
        Whether it repaired the thread.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from typing_extensions import TypedDict
        from reliable_graph.escalation.protocol import repair_race

        class State(TypedDict, total=False):
            n: int

        builder = StateGraph(State)
        builder.add_node("one", lambda s: {"n": 1})
        builder.add_edge(START, "one")
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "r1"}}
        graph.invoke({"n": 0}, config)
        assert repair_race(graph, config) is False  # no race stopped a run here
        ```
    """
    if not stopped_by_race(graph.get_state(config, subgraphs=True)):
        return False
    history = list(graph.get_state_history(config))  # newest first
    parent = {_cid(s.config): _cid(s.parent_config) if s.parent_config else None for s in history}
    children: dict[str | None, list[str]] = {}
    for child, up in parent.items():
        children.setdefault(up, []).append(child)
    latest = _cid(history[0].config)
    fork = parent.get(latest)
    while fork is not None and len(children.get(fork, [])) < 2:
        fork = parent.get(fork)
    if fork is None:
        return False
    below = set()
    stack = [c for c in children.get(fork, []) if not _under(latest, c, parent)]
    while stack:
        node = stack.pop()
        below.add(node)
        stack.extend(children.get(node, []))
    for snapshot in history:  # the newest head of another branch that no race stopped
        cid = _cid(snapshot.config)
        if cid in below and not children.get(cid):
            head = graph.get_state(snapshot.config, subgraphs=True)
            if not stopped_by_race(head):
                copy_checkpoint(graph, snapshot.config)
                return True
    return False


def _cid(config: Any) -> str:
    return str((config.get("configurable") or {}).get("checkpoint_id"))


def _under(node: str | None, ancestor: str, parent: Mapping[str, str | None]) -> bool:
    while node is not None:
        if node == ancestor:
            return True
        node = parent.get(node)
    return False


# -- inside the graph: accepting an answer, continuing a decision ---------------------------------


def accept(escalation_id: str, decision: Decision, *, now: datetime | None = None) -> None:
    """Let the review node take `decision` for `escalation_id`, or refuse it (the reviewer is asked again).

    Called by `HumanEscalation` on every valid answer when the graph has a store. An answer the
    inbox sent carries the resolution's ticket and is accepted when it matches the row. A direct
    answer (`Command(resume=...)`) wins the row by compare-and-set, so the inbox cannot also
    resolve it; the same answer read back on a later run of the node passes; another answer
    is refused while someone else's resolution holds the row.

    Raises:
        InvalidAnswerError: the escalation is resolved, or being resolved, with another decision.

    Example:
        ```python
        from reliable_graph import Decision
        from reliable_graph.escalation.protocol import accept

        accept("e1", Decision(action="approve"))  # outside a run with a store: nothing to guard
        ```
    """
    store = current_store()
    if store is None:
        return
    ledger = ledger_for(store)
    row = ledger.get(escalation_id)
    if row is None:
        return
    answered_at = _checkpoint_here()
    if decision.ticket is not None:
        if row.get("ticket") == decision.ticket and row["status"] not in (*OPEN, DISMISSED, SUPERSEDED):
            if answered_at and row.get("answered_at") != answered_at:
                ledger.transition(escalation_id, Expect(statuses=(row["status"],)), {"answered_at": answered_at})
            crash_point(CrashPoint.ACCEPTED)
            return
        msg = "this answer's ticket is not the inbox's resolution of this escalation (an old or a forged answer)"
        raise InvalidAnswerError(msg)
    moment = now or _utcnow()
    mine = decision.model_dump(mode="json", exclude_unset=True)
    changes = {
        "status": RESOLVING,
        "decision": json.dumps(mine),
        "resolved_by": DIRECT,
        "resolved_at": _iso(moment),
        "owner": DIRECT,
        "ticket": None,
        "heartbeat": _iso(moment + DIRECT_LEASE),
        "answered_at": answered_at,
    }
    log = (DIRECT, "answer", {"decision": mine})
    at = _iso(moment)
    if row["status"] in OPEN and ledger.transition(
        escalation_id, Expect(statuses=OPEN, now=at), changes, log=log, at=at
    ):
        return
    row = ledger.get(escalation_id) or row
    if _decision(row.get("decision")) == mine:
        return  # this answer, read back on a later run of the node
    if (
        row["status"] == RESOLVING
        and row.get("owner") == DIRECT
        and ledger.transition(
            escalation_id, Expect(statuses=(RESOLVING,), owner=DIRECT, lapsed=True, now=at), changes, log=log, at=at
        )
    ):
        return  # an earlier direct answer that never reached the thread (its run died long ago)
    by = row.get("resolved_by") or row.get("assignee") or "someone"
    msg = (
        f"this escalation is already {row['status']} by {by} (at {row.get('resolved_at') or '?'}) with another decision"
    )
    raise InvalidAnswerError(msg)


_CLAIMED: ContextVar[frozenset[str]] = ContextVar("reliable_graph_claimed", default=frozenset())
"""The continuations this task already claimed (an async node claims off the event loop first)."""


async def acontinuing(escalation_id: str, thread_id: str | None) -> None:
    """`continuing`, off the event loop (the ledger may wait on a database lock); the task's later call passes.

    Example:
        ```python
        import asyncio
        from reliable_graph.escalation.protocol import acontinuing

        asyncio.run(acontinuing("e1", "t1"))  # outside a run: nothing to claim
        ```
    """
    await asyncio.to_thread(continuing, escalation_id, thread_id)
    _CLAIMED.set(_CLAIMED.get() | {escalation_id})


def continuing(escalation_id: str, thread_id: str | None) -> None:
    """Claim the continuation of `escalation_id`'s decision for the checkpoint this run continues from.

    Called by the node applying a reviewer's decision, before it applies it. The first run to
    continue the superstep that took the decision claims it, and every decision that superstep
    took, for its checkpoint; a run continuing from the same checkpoint (the same run executed
    again after a crash) passes; a run continuing from another checkpoint while the claim holds
    is a second run of the thread racing the first, and stops. A run of the holder of the
    thread's lock (a resolution the inbox drives) takes the claim over.

    Raises:
        ConcurrentResumeError: another run of the thread is carrying this decision on.

    Example:
        ```python
        from reliable_graph.escalation.protocol import continuing

        continuing("e1", "t1")  # outside a run with a store: nothing to claim
        ```
    """
    if escalation_id in _CLAIMED.get():
        return
    store = current_store()
    if store is None:
        return
    ledger = ledger_for(store)
    row = ledger.get(escalation_id)
    if row is None or row["status"] in FINAL:
        return  # no inbox row, or a settled decision replayed on purpose (time travel)
    try:
        config = get_config()
    except RuntimeError:  # outside a run: nothing to race with
        return
    checkpoint = current_checkpoint_id(config) or "?"
    moment = _utcnow()
    token = (config.get("configurable") or {}).get(RESOLVER_KEY)
    force = (
        token is not None
        and row.get("thread_id") is not None
        and (ledger.lock_holder(str(row["thread_id"]), now=_iso(moment)) == token)
    )
    claim = {"continued_at": checkpoint, "continued_until": _iso(moment + DIRECT_LEASE)}
    if ledger.claim_continuation(row, claim, now=_iso(moment), force=force):
        crash_point(CrashPoint.CONTINUING)
        return
    fresh = ledger.get(escalation_id) or row
    if fresh["status"] in FINAL:
        return
    holder = f"the run that continued from checkpoint {fresh.get('continued_at')}"
    raise ConcurrentResumeError(escalation_id=escalation_id, thread_id=thread_id, holder=holder)


def _checkpoint_here() -> str | None:
    """The checkpoint the running task continues from (its graph's latest), or None outside a run."""
    try:
        return current_checkpoint_id(get_config()) or "?"
    except RuntimeError:
        return None


# -- driving a resolution --------------------------------------------------------------------------


def owner_token() -> str:
    """A name for this resolution's owner: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(slots=True, kw_only=True)
class Resolver:
    """Drives resolutions through the protocol for one inbox: win, apply, settle, take over, retire.

    The `EscalationInbox` builds one; it is not a public name.
    """

    ledger: Ledger
    store: BaseStore
    graph: Any
    clock: Callable[[], datetime] = _utcnow
    lease: timedelta = timedelta(seconds=60)
    """How long a resolution's heartbeat (and its thread lock) holds without being renewed."""
    wait: timedelta = timedelta(minutes=5)
    """How long a resolution waits for another one on the same thread."""

    def now(self) -> str:
        """The inbox's clock, as ISO 8601 UTC."""
        return _iso(self.clock())

    # -- the thread lock and the heartbeat ---------------------------------------------------------

    def try_lock(self, thread_id: str, owner: str) -> bool:
        """Take `thread_id`'s lock for `owner` now, or say it is held."""
        return self.ledger.lock_thread(thread_id, owner, until=_iso(self.clock() + self.lease), now=self.now())

    def _busy(self, thread_id: str, start: float) -> None:
        if time.monotonic() - start > self.wait.total_seconds():
            raise ThreadBusyError(thread_id=thread_id, waited=round(time.monotonic() - start, 1))

    @contextlib.contextmanager
    def holding(self, thread_id: str, owner: str, escalation_ids: list[str]) -> Iterator[None]:
        """Hold `thread_id`'s lock for `owner` (waiting for it), renewing it and the rows' heartbeats."""
        start = time.monotonic()
        delay = 0.005
        while not self.try_lock(thread_id, owner):
            self._busy(thread_id, start)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        with self._beating(thread_id, owner, escalation_ids):
            yield

    @contextlib.asynccontextmanager
    async def aholding(self, thread_id: str, owner: str) -> AsyncIterator[None]:
        """Async twin of `holding` (waits without blocking the event loop)."""
        start = time.monotonic()
        delay = 0.005
        while not await asyncio.to_thread(self.try_lock, thread_id, owner):
            self._busy(thread_id, start)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        with self._beating(thread_id, owner, []):
            yield

    @contextlib.contextmanager
    def _beating(self, thread_id: str, owner: str, escalation_ids: list[str]) -> Iterator[None]:
        """Renew the lock and the rows' heartbeats from a background thread until the block ends; then unlock."""
        stop = threading.Event()

        def beat() -> None:
            interval = max(self.lease.total_seconds() / 4, 0.05)
            while not stop.wait(interval):
                with contextlib.suppress(Exception):  # a missed beat is not fatal: the next one renews
                    self.ledger.beat(
                        owner, until=_iso(self.clock() + self.lease), escalation_ids=escalation_ids, thread_id=thread_id
                    )

        beater = threading.Thread(target=beat, name=f"reliable-graph-heartbeat-{thread_id}", daemon=True)
        beater.start()
        try:
            yield
        finally:
            stop.set()
            beater.join()
            self.ledger.unlock_thread(thread_id, owner)

    # -- the transitions ---------------------------------------------------------------------------

    def win(
        self, escalation_id: str, decision: Mapping[str, Any], *, reviewer: str, owner: str, overrule: bool = False
    ) -> dict[str, Any] | None:
        """Win: pending | claimed (by `reviewer`, lapsed, or any with `overrule`) -> resolving; the row, or None."""
        now = self.now()
        ticket = uuid.uuid4().hex
        body = {**decision, "ticket": ticket}
        changes = {
            "status": RESOLVING,
            "decision": json.dumps(body),
            "resolved_by": reviewer,
            "resolved_at": now,
            "ticket": ticket,
            "owner": owner,
            "heartbeat": _iso(self.clock() + self.lease),
        }
        expect = Expect(statuses=OPEN if overrule else (PENDING,), claimant=reviewer, now=now)
        if not self.ledger.transition(escalation_id, expect, changes):
            return None
        crash_point(CrashPoint.WON)
        return self.ledger.get(escalation_id)

    def take_over(self, row: Mapping[str, Any], *, owner: str) -> dict[str, Any] | None:
        """Take over: resolving (heartbeat lapsed) -> resolving with `owner`; the row taken, or None."""
        now = self.now()
        expect = Expect(statuses=(RESOLVING,), owner=row.get("owner"), lapsed=True, now=now)
        changes = {"owner": owner, "heartbeat": _iso(self.clock() + self.lease)}
        log = (owner, "takeover", {"from": row.get("owner")})
        if not self.ledger.transition(row["escalation_id"], expect, changes, log=log, at=now):
            return None
        crash_point(CrashPoint.TAKEN_OVER)
        return self.ledger.get(row["escalation_id"])

    def drive(self, row: Mapping[str, Any], *, owner: str, takeover: bool = False) -> Any:
        """Apply a resolution this owner holds to its thread, then settle the thread's applied rows.

        With `takeover`, the row's former owner died: a thread its resume left between
        supersteps (the answer in, the run cut short) is run to its end.

        Returns:
            What the resume returned (the thread's values), or None when nothing had to run.
        """
        escalation_id = str(row["escalation_id"])
        thread_id = str(row["thread_id"])
        with self.holding(thread_id, owner, [escalation_id]):
            result = self._apply(row, owner=owner, takeover=takeover)
        return result

    def _reopen(self, escalation_id: str, owner: str, reason: str) -> None:
        """Resolving -> pending: the thread did not take the answer (refused it, or a run failed before it)."""
        cleared = dict.fromkeys(
            ("owner", "ticket", "heartbeat", "decision", "resolved_by", "resolved_at", "assignee", "lease_until")
        )
        self.ledger.transition(
            escalation_id,
            Expect(statuses=(RESOLVING,), owner=owner, now=self.now()),
            {"status": PENDING, **cleared},
            log=(owner, "resolve_failed", {"reason": reason}),
            at=self.now(),
        )

    def _apply(self, row: Mapping[str, Any], *, owner: str, takeover: bool) -> Any:
        escalation_id = str(row["escalation_id"])
        config: RunnableConfig = {"configurable": {"thread_id": row["thread_id"], RESOLVER_KEY: owner}}
        answered_at = (self.ledger.get(escalation_id) or row).get("answered_at")
        result: Any = None
        error: BaseException | None = None
        deadline = time.monotonic() + self.wait.total_seconds()
        delay = 0.01
        sent = False
        while True:
            view = read_thread(self.graph, config)
            error = None
            try:
                if view.waits_on(escalation_id):
                    answer = {view.pending[escalation_id]: {escalation_id: _decision(row.get("decision"))}}
                    sent = True
                    result = self.graph.invoke(Command(resume=answer), strict_resume(config), durability="sync")
                    crash_point(CrashPoint.RESUMED)
                elif view.runnable and takeover and answered_at:
                    # the dead owner's answer is in; the run that carried it on was cut short: finish it
                    result = self.graph.invoke(None, config, durability="sync")
                    crash_point(CrashPoint.RESUMED)
                elif view.runnable and time.monotonic() < deadline:
                    # a run of the thread is in flight (the escalation indexed before its interrupt is): wait
                    time.sleep(delay)
                    delay = min(delay * 2, 0.25)
                    continue
                elif view.runnable:
                    self._reopen(escalation_id, owner, "the thread kept running: nothing was sent")
                    raise ThreadBusyError(thread_id=str(row["thread_id"]), waited=self.wait.total_seconds())
            except UnknownInterruptError as exc:  # consumed by a direct resume since we read it: read again
                error = exc
                if time.monotonic() < deadline:
                    continue
            except ThreadBusyError:
                raise
            except Exception as exc:  # noqa: BLE001 - the user's graph raised: settle what is durable, re-raise
                error = exc
            break
        view = read_thread(self.graph, config)
        answered_at = (self.ledger.get(escalation_id) or row).get("answered_at")
        if view.waits_on(escalation_id):
            self._reopen(escalation_id, owner, str(error) if error else "the thread did not take the answer")
            if error is not None:
                raise error
            msg = "the thread did not take the answer; the escalation is pending again"
            raise InvalidAnswerError(msg)
        if not sent and not answered_at and not view.runnable:
            # the answer never reached the thread, and the thread no longer waits on the escalation
            now = self.now()
            self.ledger.transition(
                escalation_id,
                Expect(statuses=(RESOLVING,), owner=owner, now=now),
                {"status": DISMISSED, "heartbeat": None},
                log=(owner, DISMISSED, {"reason": "its thread no longer waits on it; nothing was applied"}),
                at=now,
            )
            self.mirror(escalation_id, DISMISSED, {})
            from reliable_graph.escalation.inbox import AlreadyResolvedError

            raise AlreadyResolvedError(escalation_id=escalation_id, by="reconcile", at=now, status=DISMISSED)
        self.ledger.transition(
            escalation_id, Expect(statuses=(RESOLVING,), owner=owner, now=self.now()), {"status": APPLIED}
        )
        crash_point(CrashPoint.APPLIED)
        self.settle(str(row["thread_id"]), view)
        if error is not None:
            raise error
        return result if result is not None else None

    def settle(self, thread_id: str, view: ThreadView | None = None) -> list[str]:
        """Mark resolved every applied row of `thread_id` whose decision the thread has moved past.

        Returns:
            The ids this call settled.
        """
        if view is None:
            view = read_thread(self.graph, {"configurable": {"thread_id": thread_id}})
        if view.runnable or view.failed:
            return []
        settled = []
        now = self.now()
        for row in self.ledger.select(status=(APPLIED, RESOLVING), thread_id=thread_id, now=now):
            escalation_id = str(row["escalation_id"])
            if not view.past(escalation_id, row.get("answered_at")):
                continue
            if row["status"] == RESOLVING and row.get("owner") != DIRECT:
                continue  # its owner is at work (or reconcile takes it over once its heartbeat lapses)
            final = EXPIRED if row.get("resolved_by") == SWEEP else RESOLVED
            decision = _decision(row.get("decision"))
            public = {k: v for k, v in (decision or {}).items() if k != "ticket"}
            before = self._output(escalation_id)
            after = public.get("output") if public.get("action") == "edit" else before
            body = {"decision": public, "reason": public.get("reason"), "before": before, "after": after}
            event = "expire" if final == EXPIRED else "resolve"
            if self.ledger.transition(
                escalation_id,
                Expect(statuses=(row["status"],), owner=row.get("owner"), now=now),
                {"status": final, "heartbeat": None},
                log=(row.get("resolved_by") or DIRECT, event, body),
                at=now,
            ):
                self.mirror(escalation_id, final, row)
                settled.append(escalation_id)
        return settled

    def retire(self, thread_id: str, view: ThreadView) -> list[str]:
        """Open rows of `thread_id` whose escalation the thread no longer holds: dismissed or superseded."""
        if not view.at_rest:
            return []
        now = self.now()
        rows = self.ledger.select(status=None, thread_id=thread_id, now=now)
        retired = []
        for row in rows:
            escalation_id = str(row["escalation_id"])
            if (
                row["status"] not in OPEN
                or (row.get("kind") or "escalation") == "audit"
                or not view.past(escalation_id, row.get("answered_at"))
            ):
                continue
            later = any(
                other["escalation_id"] != escalation_id
                and other.get("task") == row.get("task")
                and (other.get("created_at") or "") > (row.get("created_at") or "")
                for other in rows
            )
            status = SUPERSEDED if later else DISMISSED
            why = "a later escalation of the same task replaced it" if later else "its thread no longer waits on it"
            if self.ledger.transition(
                escalation_id,
                Expect(statuses=OPEN, now=now),
                {"status": status, "resolved_by": "reconcile", "resolved_at": now},
                log=("reconcile", status, {"reason": why}),
                at=now,
            ):
                self.mirror(escalation_id, status, row)
                retired.append(escalation_id)
        return retired

    # -- the store's copy ------------------------------------------------------------------------

    def _output(self, escalation_id: str) -> Any:
        from reliable_graph.escalation.inbox import INBOX_NAMESPACE

        stored = self.store.get(INBOX_NAMESPACE, escalation_id)
        return (stored.value.get("escalation") or {}).get("output") if stored is not None else None

    def mirror(self, escalation_id: str, status: str, row: Mapping[str, Any]) -> None:
        """Write the row's status (and decision, reviewer) into the store's item, for store readers."""
        from reliable_graph.escalation.inbox import note_status

        note_status(
            self.store, escalation_id, status, decision=_decision(row.get("decision")), by=row.get("resolved_by")
        )


# -- serialising the library's own resumes ---------------------------------------------------------

_LOCAL: dict[tuple[int, str], list[Any]] = {}
"""Without a store: a lock per (checkpointer, thread) in this process, with its number of users."""
_LOCAL_GUARD = threading.Lock()


def _local_lock(graph: Any, thread_id: str) -> tuple[tuple[int, str], threading.Lock]:
    key = (id(getattr(graph, "checkpointer", None)), thread_id)
    with _LOCAL_GUARD:
        entry = _LOCAL.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
        return key, entry[0]


def _local_done(key: tuple[int, str]) -> None:
    with _LOCAL_GUARD:
        entry = _LOCAL[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _LOCAL[key]


def _resolver_of(graph: Any) -> Resolver | None:
    store = getattr(graph, "store", None)
    if not isinstance(store, BaseStore):
        return None
    return Resolver(ledger=ledger_for(store), store=store, graph=graph)


@contextlib.contextmanager
def serialized(graph: Any, thread_id: str) -> Iterator[Resolver | None]:
    """Run a resume of `thread_id` alone; yields the resolver (None without a store).

    With a store, under the ledger's thread lock (across processes); without one, under a lock
    of this process.
    """
    resolver = _resolver_of(graph)
    if resolver is not None:
        with resolver.holding(thread_id, owner_token(), []):
            yield resolver
        return
    key, lock = _local_lock(graph, thread_id)
    try:
        with lock:
            yield None
    finally:
        _local_done(key)


@contextlib.asynccontextmanager
async def aserialized(graph: Any, thread_id: str) -> AsyncIterator[Resolver | None]:
    """Async twin of `serialized`."""
    resolver = _resolver_of(graph)
    if resolver is not None:
        async with resolver.aholding(thread_id, owner_token()):
            yield resolver
        return
    key, lock = _local_lock(graph, thread_id)
    try:
        await asyncio.to_thread(lock.acquire)
        try:
            yield None
        finally:
            lock.release()
    finally:
        _local_done(key)
