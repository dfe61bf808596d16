"""The library's one state key, `reliability`: small typed records per task, their reducer, readers.

A step may run many times in one run (parallel branches, each `Send` item, a subgraph's
steps, a loop); each execution is a *task* and keeps its own `StepRecord` under
`reliability["tasks"][key]`. Records are plain dicts (typed here with `TypedDict`), so every
checkpointer and LangGraph Server serialise them; each carries a revision `rev`, and the
reducer keeps the newer revision of each key, so merging is idempotent, commutative and
loses nothing: two branches, many `Send` items, and a subgraph that hands back the parent's
records all merge into one record per task. What is checkpointed is bounded: a finished task
keeps a compact record (step, outcome, one score per attempt); reasons, verdicts and outcomes
as they happen go to the custom stream (`stream_mode="custom"`), not into state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from langgraph.channels import DeltaChannel
from typing_extensions import NotRequired, TypedDict

from reliable_graph._compat import listening_writer
from reliable_graph._state_access import read_optional

__all__ = [
    "RELIABILITY_KEY",
    "AttemptRecord",
    "Outcome",
    "ReliabilityState",
    "RunStatus",
    "StepRecord",
    "Verdict",
    "merge_reliability",
    "reliability_channel",
    "run_outcome",
    "step_outcomes",
    "task_records",
]

RELIABILITY_KEY = "reliability"
"""The state key the library records under."""

Verdict = Literal["pass", "refetch", "retry", "escalate"]
"""A gate's or router's verdict on one attempt."""

Outcome = Literal["pass", "retry_pass", "escalate", "approved", "edited", "terminated"]
"""A step's outcome: the first three from scoring, the last three after human review."""

Pending = Literal["retry", "refetch", "review", "human_retry", "human_context"]
"""What a live task waits for: its next automatic attempt, a reviewer, or a re-run a reviewer asked for."""

RunStatus = Literal["ok", "escalated", "terminated", "dismissed"]
"""A run's status: `dismissed` is an escalation closed outside the library (e.g. Agent Inbox's
"Mark as Resolved" ending the thread) with no decision recorded."""

EVENT_PREFIX = "reliable_graph."


class AttemptRecord(TypedDict):
    """One scored attempt of a task, as kept in state."""

    n: int
    """The attempt's number, from 1."""
    score: float
    """The score it got."""
    verdict: Verdict
    """What the node decided on it."""
    kind: NotRequired[Literal["output", "gate"]]
    """What was scored (`output` when absent)."""
    reason: NotRequired[str]
    """Why it failed (kept while the task is live, for re-fetch enrichment and the escalation)."""
    missing: NotRequired[list[str]]
    """Topics the failing check found missing (live tasks only)."""


class StepRecord(TypedDict):
    """What the library keeps about one task (one execution of a step).

    Example:
        ```python
        from reliable_graph import StepRecord, task_records

        record: StepRecord = {"step": "draft", "rev": 2, "outcome": "retry_pass",
                              "attempts": [{"n": 1, "score": 0.2, "verdict": "retry"},
                                           {"n": 2, "score": 0.9, "verdict": "pass"}]}
        assert task_records({"reliability": {"tasks": {"draft": record}}})["draft"]["outcome"] == "retry_pass"
        ```
    """

    step: str
    """The step's name."""
    rev: int
    """Revision: each write of this record increments it; the reducer keeps the highest."""
    path: NotRequired[str]
    """The step's place in nested graphs (`research/draft`), when it is not the step itself."""
    outcome: NotRequired[Outcome]
    """The task's outcome, once it has one."""
    pending: NotRequired[Pending]
    """What the live task waits for."""
    attempts: NotRequired[list[AttemptRecord]]
    """Its scored attempts."""
    threshold: NotRequired[float]
    """The step's threshold."""
    refetches: NotRequired[int]
    """Re-fetches made for it."""
    gate: NotRequired[dict[str, Any]]
    """The context gate's last verdict and re-fetch count."""
    audit: NotRequired[str]
    """The id of the audit item its passing output was sent to reviewers as (`audit_rate`)."""
    fetch_error: NotRequired[str]
    """A retrieval that failed for good (a permanent error, or retries spent): the gate escalates."""
    escalation: NotRequired[str]
    """The id of its latest escalation."""
    reason: NotRequired[str]
    """Why it escalated."""
    decision: NotRequired[dict[str, Any]]
    """The reviewer's decision (action, reviewer, reason)."""
    checkpoint: NotRequired[str]
    """The last good checkpoint: the one the task started from (live tasks only)."""
    rounds: NotRequired[int]
    """How many times the task was escalated."""
    review: NotRequired[dict[str, Any]]
    """An escalation parked for a `HumanEscalation` node reached by an edge (conditional-edge routing)."""


def _rev(record: Any) -> int:
    value = record.get("rev", 0) if isinstance(record, Mapping) else 0
    return value if isinstance(value, int) else 0


def merge_reliability(
    left: Mapping[str, Any] | None, right: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    """Reducer of the `reliability` key: one record per task, the highest revision wins.

    Idempotent (merging a state with itself changes nothing, so a subgraph that returns the
    parent's records adds no duplicate), commutative across tasks, and lossless for records
    written by different tasks in one superstep.

    Example:
        ```python
        from reliable_graph import merge_reliability

        a = {"tasks": {"s1": {"step": "s1", "rev": 1, "outcome": "pass"}}}
        b = {"tasks": {"s2": {"step": "s2", "rev": 1, "outcome": "escalate"}}}
        merged = merge_reliability(a, b)
        assert set(merged["tasks"]) == {"s1", "s2"}
        assert merge_reliability(merged, merged) == merged
        newer = {"tasks": {"s1": {"step": "s1", "rev": 2, "outcome": "approved"}}}
        assert merge_reliability(merged, newer)["tasks"]["s1"]["outcome"] == "approved"
        assert merge_reliability(newer, merged)["tasks"]["s1"]["outcome"] == "approved"
        ```
    """
    tasks = dict((left or {}).get("tasks") or {})  # one copy; `left` is never changed
    if type(right) is list or (isinstance(right, Sequence) and not isinstance(right, (str, bytes))):
        for write in right:  # a batch of writes (`DeltaChannel`)
            if type(write) is dict and type(new := write.get("tasks")) is dict:  # a node's write, merged inline
                for key, record in new.items():
                    current = tasks.get(key)
                    if current is None or _rev(record) >= _rev(current):
                        tasks[key] = record
            else:
                _merge_into(tasks, write)
    else:
        _merge_into(tasks, right)
    return {"tasks": tasks}


def _merge_into(tasks: dict[str, Any], write: Any) -> None:
    """Merge one write (or a nested batch of them) into `tasks`, the highest revision winning."""
    if type(write) is not dict and isinstance(write, Sequence) and not isinstance(write, (str, bytes)):
        for item in write:
            _merge_into(tasks, item)
        return
    for key, record in ((write or {}).get("tasks") or {}).items():
        current = tasks.get(key)
        if current is None or _rev(record) >= _rev(current):
            tasks[key] = record


def reliability_channel() -> DeltaChannel[dict[str, Any]]:
    """The channel for a `reliability` key you declare yourself (pydantic, dataclass states).

    A LangGraph `DeltaChannel` over `merge_reliability`: checkpoints store each step's new
    records, not the whole `reliability` value again, so a long run's checkpoints do not grow
    with every step. `Annotated[dict, merge_reliability]` works too, but rewrites every record
    at every checkpoint.

    Example:
        ```python
        from typing import Annotated
        from pydantic import BaseModel
        from reliable_graph import reliability_channel

        class State(BaseModel):
            question: str = ""
            output: str = ""
            reliability: Annotated[dict, reliability_channel()] = {}
        ```
    """
    return DeltaChannel(merge_reliability)


class ReliabilityState(TypedDict, total=False):
    """A state mixin holding the `reliability` key with its reducer.

    Example:
        ```python
        from reliable_graph import ReliabilityState

        class State(ReliabilityState, total=False):
            question: str
            context: list[str]
            answer: str

        assert "reliability" in State.__annotations__
        ```
    """

    reliability: Annotated[dict[str, Any], reliability_channel()]


stream_writer = listening_writer
"""The custom stream's writer, or `None` when nobody listens (outside a run, or no `custom` stream)."""


def _no_writer(event: Any) -> None:
    return None


def emit(event: dict[str, Any], writer: Any = _no_writer) -> dict[str, Any]:
    """Send `event` on the custom stream (a no-op when nobody streams it) and return it.

    Pass `writer` (from `stream_writer()`, possibly None) to look the writer up once per node call.
    """
    event["type"] = EVENT_PREFIX + event["type"]
    target = stream_writer() if writer is _no_writer else writer
    if target is not None:
        target(event)
    return event


def _sdk_shape(source: Any) -> str | None:
    """What SDK shape `source` is: a thread state (`client.threads.get_state`), a thread, or neither."""
    if not isinstance(source, Mapping) or not isinstance(source.get("values"), (Mapping, type(None))):
        return None
    if "next" in source and "checkpoint" in source and "tasks" in source:
        return "state"
    if "thread_id" in source and "status" in source:
        return "thread"
    return None


def _values(source: Any) -> Any:
    """The state values of a state, an `invoke` result, a `StateSnapshot` or a LangGraph SDK thread (state)."""
    if hasattr(source, "values") and hasattr(source, "next") and hasattr(source, "interrupts"):
        return source.values
    if _sdk_shape(source) is not None:
        return source.get("values") or {}
    return source


def _waits(source: Any) -> tuple[bool, bool, bool]:
    """Of a snapshot (a `StateSnapshot`, an SDK thread or thread state): is it one, does one wait, is any due."""
    if hasattr(source, "values") and hasattr(source, "next") and hasattr(source, "interrupts"):
        nested = any(getattr(t, "interrupts", None) for t in getattr(source, "tasks", ()) or ())
        return True, bool(source.interrupts) or nested, bool(source.next)
    shape = _sdk_shape(source)
    if shape == "state":
        nested = any((t or {}).get("interrupts") for t in source.get("tasks") or ())
        return True, bool(source.get("interrupts")) or nested, bool(source.get("next"))
    if shape == "thread":
        interrupts = source.get("interrupts") or {}
        waiting = any(interrupts.values()) if isinstance(interrupts, Mapping) else bool(interrupts)
        return True, waiting or source.get("status") == "interrupted", source.get("status") in ("busy", "error")
    return False, False, False


def task_records(values: Any) -> dict[str, StepRecord]:
    """Every task's record, by key, from a state, an `invoke` result or a `StateSnapshot`.

    Example:
        ```python
        from reliable_graph import task_records

        values = {"reliability": {"tasks": {"draft": {"step": "draft", "rev": 1, "outcome": "pass"}}}}
        assert task_records(values)["draft"]["outcome"] == "pass"
        assert task_records({}) == {}
        ```
    """
    values = _values(values)
    if type(values) is dict:
        record = values.get(RELIABILITY_KEY)
        if record is None and "tasks" in values:
            record = values
        return dict(record.get("tasks") or {}) if isinstance(record, dict) else {}
    if isinstance(values, Mapping) and "tasks" in values and RELIABILITY_KEY not in values:
        record = values
    else:
        record = read_optional(values, RELIABILITY_KEY) or {}
    return dict(record.get("tasks") or {}) if isinstance(record, Mapping) else {}


def step_outcomes(values: Any) -> dict[str, str]:
    """Each task's outcome by key (the step's name for a top-level step), tasks without one left out.

    Example:
        ```python
        from reliable_graph import step_outcomes

        values = {"reliability": {"tasks": {
            "s1": {"step": "s1", "rev": 1, "outcome": "pass"},
            "s2": {"step": "s2", "rev": 2, "outcome": "retry_pass"},
        }}}
        assert step_outcomes(values) == {"s1": "pass", "s2": "retry_pass"}
        ```
    """
    return {key: rec["outcome"] for key, rec in task_records(values).items() if rec.get("outcome")}


def run_outcome(values: Any) -> RunStatus:
    """The run's status: `escalated` (something waits for a human), `terminated`, `dismissed`, or `ok`.

    Pass the result of `invoke` (its `__interrupt__` counts, subgraphs' included) or, better,
    `graph.get_state(config)`: a snapshot also tells a thread whose escalation was closed
    outside the library (`dismissed`: a record still waits for review but nothing is pending).
    A LangGraph Server thread read with the SDK works the same: `client.threads.get_state(tid)`,
    `client.threads.get(tid)` or an item of `client.threads.search(...)`.

    Example:
        ```python
        from reliable_graph import run_outcome

        assert run_outcome({"reliability": {"tasks": {"s1": {"step": "s1", "rev": 1, "outcome": "pass"}}}}) == "ok"
        waiting = {"reliability": {"tasks": {"s1": {"step": "s1", "rev": 1, "pending": "review"}}}}
        assert run_outcome(waiting) == "escalated"
        assert run_outcome({"reliability": {"tasks": {"s1": {"step": "s1", "rev": 3, "outcome": "terminated"}}}}) == (
            "terminated"
        )
        sdk_state = {"values": waiting, "next": [], "tasks": [], "checkpoint": {}, "interrupts": []}
        assert run_outcome(sdk_state) == "dismissed"  # client.threads.get_state(...) of a thread closed outside
        sdk_thread = {"thread_id": "t", "status": "interrupted", "values": waiting, "interrupts": {"task": [{}]}}
        assert run_outcome(sdk_thread) == "escalated"
        ```
    """
    records = task_records(values)
    waiting = any(rec.get("pending") == "review" for rec in records.values())
    is_snapshot, interrupted, due = _waits(values)
    if interrupted:
        return "escalated"
    if not is_snapshot and isinstance(values, Mapping) and values.get("__interrupt__"):
        return "escalated"
    if any(rec.get("outcome") == "terminated" for rec in records.values()):
        return "terminated"
    if is_snapshot and waiting and not due:
        return "dismissed"
    return "escalated" if waiting else "ok"
