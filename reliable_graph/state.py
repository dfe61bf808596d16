"""The library's one state key, `reliability`, its reducer, and readers over it.

Every node records its verdicts, attempts and outcomes under this key, so a run's outcomes
can be read back from checkpoints alone; users' own keys are never touched. Records are
plain JSON-friendly dicts so that any checkpointer serialises them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from langgraph.config import get_stream_writer
from typing_extensions import TypedDict

from reliable_graph._state_access import read_optional

__all__ = [
    "RELIABILITY_KEY",
    "Outcome",
    "ReliabilityState",
    "Verdict",
    "merge_reliability",
    "run_outcome",
    "step_outcomes",
]

RELIABILITY_KEY = "reliability"
"""The state key the library records under."""

Verdict = Literal["pass", "refetch", "retry", "escalate"]
"""A gate's or router's verdict on one attempt."""

Outcome = Literal["pass", "retry_pass", "escalate", "approved", "edited", "terminated"]
"""A step's outcome: the first three from scoring, the last three after human review."""

EVENT_PREFIX = "reliable_graph."


def merge_reliability(left: Mapping[str, Any] | None, right: Mapping[str, Any] | None) -> dict[str, Any]:
    """Reducer of the `reliability` key: merge per-step records, append attempts and events.

    Parallel branches that record different steps merge without loss; for one step, the
    newer record's fields win and its attempts are appended to the older ones.

    Example:
        ```python
        from reliable_graph import merge_reliability

        a = {"steps": {"s1": {"outcome": "pass", "attempts": [{"attempt": 1}]}}, "events": [{"n": 1}]}
        b = {"steps": {"s2": {"outcome": "escalate", "attempts": [{"attempt": 1}]}}, "events": [{"n": 2}]}
        merged = merge_reliability(a, b)
        assert set(merged["steps"]) == {"s1", "s2"} and len(merged["events"]) == 2
        ```
    """
    left = left or {}
    right = right or {}
    merged: dict[str, Any] = {**left, **{k: v for k, v in right.items() if k not in ("steps", "events")}}
    steps = dict(left.get("steps") or {})
    for name, record in (right.get("steps") or {}).items():
        current = steps.get(name) or {}
        new = {**current, **record}
        if "attempts" in record and not record.get("reset"):
            new["attempts"] = [*current.get("attempts", []), *record["attempts"]]
        new.pop("reset", None)
        steps[name] = new
    merged["steps"] = steps
    merged["events"] = [*(left.get("events") or []), *(right.get("events") or [])]
    return merged


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

    reliability: Annotated[dict[str, Any], merge_reliability]


def emit(event: dict[str, Any]) -> dict[str, Any]:
    """Send `event` on the custom stream (a no-op outside a streaming run) and return it."""
    event["type"] = EVENT_PREFIX + event["type"]
    try:
        get_stream_writer()(event)
    except RuntimeError:
        pass  # called outside a LangGraph run
    return event


def _record(values: Any) -> Mapping[str, Any]:
    if isinstance(values, Mapping) and "steps" in values and RELIABILITY_KEY not in values:
        return values
    return read_optional(values, RELIABILITY_KEY) or {}


def step_outcomes(values: Any) -> dict[str, str]:
    """Each recorded step's latest outcome, from a state (or its `reliability` record).

    Example:
        ```python
        from reliable_graph import step_outcomes

        values = {"reliability": {"steps": {"s1": {"outcome": "pass"}, "s2": {"outcome": "retry_pass"}}}}
        assert step_outcomes(values) == {"s1": "pass", "s2": "retry_pass"}
        ```
    """
    steps = _record(values).get("steps") or {}
    return {name: rec["outcome"] for name, rec in steps.items() if rec.get("outcome")}


def run_outcome(values: Any) -> str:
    """The run's status from its state: `terminated`, `escalated` (pending review), or `ok`.

    Example:
        ```python
        from reliable_graph import run_outcome

        assert run_outcome({"reliability": {"steps": {"s1": {"outcome": "pass"}}}}) == "ok"
        assert run_outcome({"reliability": {"status": "terminated"}}) == "terminated"
        ```
    """
    record = _record(values)
    if record.get("status") == "terminated":
        return "terminated"
    if record.get("escalation"):
        return "escalated"
    return "ok"
