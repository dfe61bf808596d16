"""Per-task plumbing shared by the nodes: which task runs, its record, continuations, escalations."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from langchain_core.runnables import RunnableConfig, ensure_config
from langgraph.types import Command, Send

from reliable_graph._compat import current_checkpoint_id, is_plain_task
from reliable_graph._messages import conversation as conversation_of
from reliable_graph._messages import scorable
from reliable_graph._node import (
    ReliableNode,
    TaskRef,
    jsonable_or_repr,
    runnable_context,
    strict_json,
    task_ref,
    top_level_ref,
)
from reliable_graph._state_access import read_optional
from reliable_graph.escalation.decision import Decision
from reliable_graph.escalation.inbox import aindex_escalation, anote_status, index_escalation, note_status
from reliable_graph.escalation.protocol import acontinuing, continuing, current_store
from reliable_graph.escalation.record import (
    MARKER,
    Escalation,
    ReviewTask,
    StepTask,
    escalation_id,
    payload_kind,
)
from reliable_graph.evaluators.base import Score, as_chunks
from reliable_graph.state import RELIABILITY_KEY, AttemptRecord, StepRecord, emit, task_records

__all__ = ["TaskContext", "build_escalation", "compact", "new_task", "open_task", "with_key"]


@dataclass(slots=True)  # not frozen: built on every step, and a frozen init costs a setattr per field
class TaskContext:
    """The running task of a node: who it is, what it reads, where its record stands."""

    ref: TaskRef
    state: Any
    """What the step reads: the state, or a `Send` item's argument; None for a decision coming
    back to a task that reads the state (it applies without reading)."""
    record: StepRecord
    """The task's record as it stands (a fresh one for a new task)."""
    fresh: bool
    """A new execution: no live record."""
    decision: Decision | None
    """The reviewer's decision this task comes back with."""
    review: StepTask | None
    """The continuation payload this task was started with."""
    thread_id: str | None
    config: RunnableConfig | None
    """The task's config (None for a continuation: its record carries the checkpoint)."""

    def checkpoint_id(self) -> str | None:
        """The checkpoint this task started from: the last good one when it is new."""
        return None if self.config is None else current_checkpoint_id(self.config)


LIVE = ("retry", "refetch", "human_retry", "human_context")
"""What a live task's record waits for: the next run continues it instead of starting a new task."""


def thread_of(config: RunnableConfig) -> str | None:
    """The run's thread id, as text (None outside a checkpointed run)."""
    thread = (config.get("configurable") or {}).get("thread_id")
    return None if thread is None else str(thread)


def is_step_payload(input: Any) -> bool:
    """Whether a node's input is a task's continuation (a reviewer's decision, a `Send` item's re-run)."""
    return (input.get(MARKER) == "step") if type(input) is dict else (payload_kind(input) == "step")


def current_task(input: Any, config: RunnableConfig, step: str) -> tuple[TaskRef, Mapping[str, Any] | None]:
    """The running task's ref and the record the state holds for it (None for a `Send` item or none yet)."""
    ref = task_ref(config, step)
    if ref.push:
        return ref, None
    if type(input) is dict:  # a TypedDict state: look the record up without copying every record
        rel = input.get(RELIABILITY_KEY)
        tasks = rel.get("tasks") if isinstance(rel, dict) else None
        return ref, tasks.get(ref.key) if isinstance(tasks, dict) else None
    return ref, task_records(input).get(ref.key)


def new_task(input: Any, config: RunnableConfig, step: str) -> tuple[TaskRef, Mapping[str, Any] | None] | None:
    """The ref of a new task of `step` and the record it starts from, or None when the input continues one.

    None for a continuation payload (a reviewer's decision or a `Send` re-run) and for a task whose
    record is live (an automatic retry): `open_task` opens those. The record is the step's last one
    (a finished run's, or a context gate's that passed this step's context), or None.
    """
    if type(input) is not dict:
        if payload_kind(input) == "step":
            return None
        ref, current = current_task(input, config, step)
    else:  # a TypedDict state (`current_task`, inline: this runs on every step)
        if input.get(MARKER) == "step":
            return None
        ref = top_level_ref(step) if is_plain_task(config) else task_ref(config, step)
        if ref.push:
            return ref, None
        rel = input.get(RELIABILITY_KEY)
        tasks = rel.get("tasks") if isinstance(rel, dict) else None
        current = tasks.get(ref.key) if isinstance(tasks, dict) else None
    if current is not None and current.get("pending") in LIVE:
        return None
    return ref, current


def new_record(ref: TaskRef, current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record a new task starts with (`current`: what `new_task` found)."""
    step = ref.step
    record: dict[str, Any] = {"step": step, "rev": current["rev"] if current else 0}
    if current is not None and "outcome" not in current:
        # a context gate passed this step's context: its record carries on into the step
        record.update({k: v for k, v in current.items() if k in ("gate", "refetches", "fetch_error")})
    if ref.path != step:
        record["path"] = ref.path
    return record


def new_context(input: Any, config: RunnableConfig, ref: TaskRef, current: Mapping[str, Any] | None) -> TaskContext:
    """The `TaskContext` of a new task (`ref` and `current`: what `new_task` found)."""
    return TaskContext(
        ref=ref,
        state=input,
        record=new_record(ref, current),  # type: ignore[arg-type]
        fresh=True,
        decision=None,
        review=None,
        thread_id=thread_of(config),
        config=config,
    )


def open_task(input: Any, config: RunnableConfig, step: str) -> TaskContext:
    """Identify the running task of `step` from the node's input and config."""
    if is_step_payload(input):
        payload: StepTask = input
        record = dict(payload["record"])
        ref = TaskRef(key=payload["key"], step=step, path=str(record.get("path", step)), push=payload["push"])
        raw = payload.get("decision")
        return TaskContext(
            ref=ref,
            state=payload["input"] if payload["push"] else None,
            record=record,  # type: ignore[arg-type]
            fresh=False,
            decision=None if raw is None else Decision.model_validate(raw),
            review=payload,
            thread_id=thread_of(config),
            config=None,
        )
    ref, current = current_task(input, config, step)
    if current is None or current.get("pending") not in LIVE:
        return new_context(input, config, ref, current)
    return TaskContext(  # a live task: its next automatic attempt
        ref=ref,
        state=input,
        record=dict(current),  # type: ignore[arg-type]
        fresh=False,
        decision=None,
        review=None,
        thread_id=thread_of(config),
        config=config,
    )


def compact(record: Mapping[str, Any]) -> StepRecord:
    """A finished task's record: outcome and one score per attempt, the live-only fields dropped."""
    kept = {k: v for k, v in record.items() if k not in ("pending", "checkpoint", "review", "threshold", "supplied")}
    attempts: list[AttemptRecord] = [
        {"n": a["n"], "score": a["score"], "verdict": a["verdict"]} for a in record.get("attempts") or ()
    ]
    if attempts:
        kept["attempts"] = attempts
    return kept  # type: ignore[return-value]


def with_key(ref: TaskRef, record: Mapping[str, Any]) -> dict[str, Any]:
    """The `reliability` update that writes `record` for `ref` (its revision bumped)."""
    return {"tasks": {ref.key: {**record, "rev": int(record.get("rev", 0)) + 1}}}


REVIEW_OUTCOMES = {"approve": "approved", "edit": "edited", "terminate": "terminated"}
"""The outcome a reviewer's decision gives a task (retry and provide_context give it another run)."""


def reviewed_record(ctx: TaskContext, decision: Decision) -> dict[str, Any]:
    """The task's record once `decision` is taken (live fields dropped), once this run holds its continuation."""
    base = {k: v for k, v in ctx.record.items() if k not in ("pending", "outcome", "review")}
    base["decision"] = decision.recorded()
    if ctx.review is not None and (escalation_id := (ctx.review.get("escalation") or {}).get("id")):
        continuing(str(escalation_id), ctx.thread_id)
    return base


def after_review(ctx: TaskContext, decision: Decision) -> tuple[dict[str, Any], str | None]:
    """The task's record once `decision` is taken, and the outcome it gives (streamed)."""
    base = reviewed_record(ctx, decision)
    outcome = REVIEW_OUTCOMES.get(decision.action)
    if outcome is not None:
        emit(
            {
                "type": "outcome",
                "step": ctx.ref.step,
                "task": ctx.ref.key,
                "outcome": outcome,
                "decision": decision.action,
            }
        )
    return base, outcome


def continue_with(
    node: str, ctx: TaskContext, record: Mapping[str, Any], state: Any, keep_alive: str
) -> list[Send | str]:
    """Run `node` again for the same `Send` item (its record travels with it).

    `keep_alive` (the `HumanEscalation` node, a no-op when reached plainly) is triggered too, so
    that a `defer=True` fan-in waits for the re-run.
    """
    payload: StepTask = {
        "__reliable_graph__": "step",
        "key": ctx.ref.key,
        "push": True,
        "input": state,
        "record": {**record, "rev": int(record.get("rev", 0)) + 1},  # type: ignore[typeddict-item]
    }
    return [Send(node, payload), keep_alive]


def with_context(state: Any, key: str, context: list[Any] | None) -> Any:
    """`state` with `key` replaced by `context` (dicts, pydantic models and dataclasses)."""
    if context is None:
        return state
    if isinstance(state, Mapping):
        return {**state, key: context}
    copy = getattr(state, "model_copy", None)
    if callable(copy):
        return copy(update={key: context})
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(state, **{key: context})
    return state


def with_record(ref: TaskRef, state: Any, record: Mapping[str, Any]) -> Any:
    """`state` as the task's next node run would read it once `record` is written for `ref`.

    A node that runs its next attempt (or re-fetch) inside its own superstep gives it this view,
    so what reads the task's record from the state (`task_records(state)`) sees what it would
    have seen after a checkpoint. A `Send` item's task keeps its record outside the state: its
    state is returned as is, as is a state object without the `reliability` key.
    """
    if ref.push or state is None:
        return state
    if not isinstance(state, Mapping) and not hasattr(state, RELIABILITY_KEY):
        return state
    rel = read_optional(state, RELIABILITY_KEY)
    rel = dict(rel) if isinstance(rel, Mapping) else {}
    tasks = dict(rel.get("tasks") or {})
    tasks[ref.key] = dict(record)
    return with_context(state, RELIABILITY_KEY, {**rel, "tasks": tasks})  # type: ignore[arg-type]


def describe(esc: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    """One paragraph a reviewer reads first."""
    inputs = ", ".join(f"{k}={str(v)[:80]!r}" for k, v in (esc.get("inputs") or {}).items())
    what = "its context" if esc.get("kind") == "gate" else "its output"
    lines = [
        f"Step {esc['path']!r} needs a decision: {what} scored {esc['confidence']:.2f} against a threshold "
        f"of {esc['threshold']:.2f} after {len(esc.get('attempts') or [])} attempt(s).",
        f"Why: {esc['reason']}",
    ]
    if inputs:
        lines.append(f"Inputs: {inputs}.")
    if previous:
        said = previous.get("action")
        extra = f" ({previous['reason']})" if previous.get("reason") else ""
        lines.append(f"Escalation #{esc.get('round', 2)} of this task: the last reviewer chose {said!r}{extra}.")
    return "\n".join(lines)


def _conversation(state: Any) -> list[dict[str, Any]] | None:
    """A chat graph's latest messages, for the reviewer (None when the state keeps none)."""
    if state is None:
        return None
    shown = conversation_of(read_optional(state, "messages"))
    return None if shown is None else strict_json(shown, step="conversation", field="conversation")


def build_escalation(
    ctx: TaskContext,
    *,
    kind: str,
    score: Score,
    threshold: float,
    attempts: Sequence[Mapping[str, Any]],
    output: Any,
    update: Mapping[str, Any],
    context: Any,
    input_keys: Sequence[str],
    rev: int,
    conversation: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `Escalation` of a task as strict JSON."""
    step = ctx.ref.step
    previous = ctx.record.get("decision")
    round_ = int(ctx.record.get("rounds", 0)) + 1
    state = ctx.state
    notes: list[str] = []
    fields: dict[str, Any] = {
        "id": escalation_id(ctx.thread_id, ctx.ref.key, rev),
        "thread_id": ctx.thread_id,
        "step": step,
        "task": ctx.ref.key,
        "path": ctx.ref.path,
        "kind": kind,
        "round": round_,
        "confidence": score.value,
        "threshold": threshold,
        "reason": score.reason,
        "attempts": [jsonable_or_repr(a) for a in attempts],
        "inputs": strict_json(
            {k: v for k in input_keys if (v := read_optional(state, k)) is not None} if state is not None else {},
            step=step,
            field="inputs",
            notes=notes,
        ),
        "output": strict_json(scorable(output), step=step, field="output", notes=notes),
        "update": strict_json(dict(update), step=step, field="update", notes=notes),
        "context": [strict_json(c.to_dict(), step=step, field="context", notes=notes) for c in as_chunks(context)],
        "conversation": conversation if conversation is not None else _conversation(state),
        "last_good_checkpoint_id": ctx.record.get("checkpoint") or ctx.checkpoint_id(),
        "created_at": datetime.now(timezone.utc).isoformat(),
        "previous_decision": previous,
        "notes": list(dict.fromkeys(notes)),
    }
    fields["description"] = describe(fields, previous)
    return Escalation.model_validate(fields).model_dump(mode="json")


def _raised_escalations(result: Any) -> list[dict[str, Any]]:
    """The escalations a node's result sends to review (or parks in state for an edge).

    A passing step's result (a `Command` going to one node, its record without a parked review)
    is recognised in a few lookups.
    """
    if not isinstance(result, Command):
        return []
    found = []
    goto = result.goto
    if not isinstance(goto, str):  # a plain route sends nothing to review
        for target in goto if isinstance(goto, (list, tuple)) else [goto]:
            if isinstance(target, Send) and payload_kind(target.arg) == "review":
                found.append(target.arg["escalation"])
    update = result.update
    rel = update.get(RELIABILITY_KEY) if isinstance(update, dict) else None
    if rel:
        for record in (rel.get("tasks") or {}).values():
            review = record.get("review") if isinstance(record, dict) else None
            if review:
                found.append(review["escalation"])
    return found


_audits: ContextVar[list[dict[str, Any]] | None] = ContextVar("reliable_graph_audits", default=None)
"""The audits a running node raised, indexed once it returns (`EscalatingNode`)."""

AUDIT_DECISIONS = ["approve", "edit", "terminate"]
"""A reviewer labels an audited output: approve (it is right), edit (wrong: the right output), terminate (wrong)."""


def raise_audit(ctx: TaskContext, escalation: dict[str, Any], rate: float) -> str:
    """Turn a built `Escalation` of a passing output into an audit item, queue it for the inbox; its id."""
    audit = {
        **escalation,
        "id": f"audit-{escalation['id']}",
        "kind": "audit",
        "allowed_decisions": list(AUDIT_DECISIONS),
        "reason": f"a passing output sampled for audit (audit_rate={rate:g}); nothing waits on this label",
    }
    audit["description"] = (
        f"Audit of step {escalation['path']!r}: its output passed with a score of {escalation['confidence']:.2f} "
        f"(threshold {escalation['threshold']:.2f}). Is it right? approve = right; edit = wrong (give the right "
        "output); terminate = wrong. The run went on: this label only measures silent failures."
    )
    pending = _audits.get()
    if pending is not None:
        pending.append(Escalation.model_validate(audit).model_dump(mode="json"))
    emit({"type": "audit", "step": ctx.ref.step, "task": ctx.ref.key, "audit": audit["id"]})
    return str(audit["id"])


class EscalatingNode(ReliableNode):
    """A node that may escalate: with a store, each escalation it raises is indexed for the inbox.

    The index write goes through `get_store()` after the node's work, with the store's sync API
    from `invoke` and its async API from `ainvoke` (LangGraph Server's store refuses sync calls
    on its event loop). A node that cannot audit (`audit_rate=0`) keeps no list for audits, and
    a result that escalates nothing touches no store. A run that applies a reviewer's decision
    claims its continuation first (`continuing`; off the event loop in `ainvoke`) and notes the
    escalation `resolved` in the index after.
    """

    def _may_audit(self) -> bool:
        """Whether this node can send passing outputs for audit (then its audits are collected)."""
        return False

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node synchronously (and index what it escalated or sent for audit)."""
        config = config if config is not None else ensure_config()
        if not self._may_audit():
            result = self._run(input, config)
            escalations = _raised_escalations(result)
        else:
            token = _audits.set([])
            try:
                result = self._run(input, config)
                audits = _audits.get() or []
            finally:
                _audits.reset(token)
            escalations = _raised_escalations(result) + audits
        self._index(escalations)
        if (applied := _applied(input)) is not None and (store := current_store()) is not None:
            note_status(store, applied, "resolved")
        return result

    @staticmethod
    def _index(escalations: list[dict[str, Any]]) -> None:
        """Index `escalations` (from `_raised_escalations`) for the inbox, when the graph has a store."""
        if escalations and (store := current_store()) is not None:
            for escalation in escalations:
                index_escalation(store, escalation)

    @staticmethod
    async def _aindex(escalations: list[dict[str, Any]]) -> None:
        """Async twin of `_index`."""
        if escalations and (store := current_store()) is not None:
            for escalation in escalations:
                await aindex_escalation(store, escalation)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node asynchronously (and index what it escalated or sent for audit)."""
        config = config if config is not None else ensure_config()
        with runnable_context(config):  # the store is found through it (Python 3.10's tasks carry none)
            applying = _applied(input)
            if applying is not None:
                # claim the decision's continuation off the event loop: the node's own claim then passes
                await acontinuing(applying, (config.get("configurable") or {}).get("thread_id"))
            if not self._may_audit():
                result = await self._arun(input, config)
                escalations = _raised_escalations(result)
            else:
                token = _audits.set([])
                try:
                    result = await self._arun(input, config)
                    audits = _audits.get() or []
                finally:
                    _audits.reset(token)
                escalations = _raised_escalations(result) + audits
            await self._aindex(escalations)
            if applying is not None and (store := current_store()) is not None:
                await anote_status(store, applying, "resolved")
        return result


def _applied(input: Any) -> str | None:
    """The escalation whose decision a node's run applies (its input carries one), or None."""
    if payload_kind(input) != "step" or input.get("decision") is None:
        return None
    escalation_id = (input.get("escalation") or {}).get("id")
    return None if escalation_id is None else str(escalation_id)


def escalate(
    node: str,
    escalate_to: str,
    ctx: TaskContext,
    record: Mapping[str, Any],
    escalation: dict[str, Any],
    update: Mapping[str, Any],
    *,
    park: bool = False,
) -> Command[Any]:
    """Record the escalation and send the task to `escalate_to` (or park it for an edge to route).

    With a store (the graph compiled with `store=`), the escalation is also indexed for the
    `EscalationInbox`, idempotently (by `EscalatingNode`, sync or async, once the node returns).
    """
    rec = {
        **record,
        "pending": "review",
        "escalation": escalation["id"],
        "reason": escalation["reason"],
        "rounds": escalation["round"],
    }
    rel = with_key(ctx.ref, rec)
    review: ReviewTask = {
        "__reliable_graph__": "review",
        "key": ctx.ref.key,
        "return_to": node,
        "push": ctx.ref.push,
        "input": ctx.state if ctx.ref.push else None,
        "record": rel["tasks"][ctx.ref.key],
        "update": dict(update),
        "escalation": escalation,
    }
    if park:
        rel["tasks"][ctx.ref.key]["review"] = review
        return Command(update={RELIABILITY_KEY: rel})
    # `escalate_to` is also triggered plainly (a no-op there): LangGraph runs `defer=True` nodes
    # once no channel triggers a node, and a pending `Send` alone does not count, so without it
    # a deferred fan-in would run before the review and again after it.
    return Command(goto=[Send(escalate_to, review), escalate_to], update={RELIABILITY_KEY: rel})
