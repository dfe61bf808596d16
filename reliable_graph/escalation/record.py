"""The escalation a reviewer receives, and the payloads that carry a task through review.

An escalation travels as the argument of a `Send` to the `HumanEscalation` node, so every
escalated task has its own review task and its own interrupt, whatever the graph's shape.
Payloads are plain dicts (any checkpointer and LangGraph Server store them); the reviewer-facing
part is an `Escalation`, strict JSON.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from typing_extensions import NotRequired, TypedDict

from reliable_graph.state import StepRecord

__all__ = ["DECISIONS", "Action", "Escalation", "ReviewTask", "StepTask", "escalation_id", "payload_kind"]

Action = Literal["approve", "edit", "provide_context", "retry", "terminate"]
"""A reviewer's decision."""

DECISIONS: tuple[Action, ...] = ("approve", "edit", "provide_context", "retry", "terminate")

MARKER = "__reliable_graph__"
"""The key that marks a `Send` argument as one of the library's payloads."""


class Escalation(BaseModel):
    """The structured request a reviewer receives: everything needed to decide, as strict JSON.

    Example:
        ```python
        from reliable_graph import Escalation

        esc = Escalation(id="e1", step="draft", task="draft", path="draft", confidence=0.4, threshold=0.8,
                         reason="cites no source", output="text", created_at="2026-01-01T00:00:00+00:00")
        assert esc.model_dump(mode="json")["reason"] == "cites no source"
        try:
            Escalation(id="e2", step="s", task="s", path="s", confidence=float("nan"), threshold=0.5,
                       reason="r", created_at="2026-01-01T00:00:00+00:00")
        except ValueError:
            pass  # NaN is not JSON: rejected
        ```
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str
    """Stable id of this escalation (thread, task and revision)."""
    thread_id: str | None = None
    """The thread it belongs to."""
    step: str
    """The step that failed."""
    task: str
    """The task's record key (one step may run as many tasks)."""
    path: str
    """The step's place in nested graphs (`research/draft`)."""
    kind: Literal["output", "gate", "audit"] = "output"
    """What failed: the step's output, or the context gate before it; `audit`: a passing output
    sampled for reviewers to label (nothing waits on it)."""
    round: int = 1
    """1 for a first escalation; n for the n-th escalation of this task after reviewers' answers."""
    confidence: float = Field(ge=0.0, le=1.0)
    """The failing score."""
    threshold: float = Field(ge=0.0, le=1.0)
    """The step's threshold."""
    reason: str
    """The specific reason, in words a reviewer can act on."""
    description: str = ""
    """One paragraph a reviewer reads first."""
    attempts: list[dict[str, JsonValue]] = Field(default_factory=list)
    """Every attempt with its score, verdict and reason."""
    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    """The task's inputs."""
    output: JsonValue = None
    """The output that failed (for a gate: the context)."""
    update: dict[str, JsonValue] = Field(default_factory=dict)
    """The whole update the step proposed (what `approve` applies)."""
    context: list[dict[str, JsonValue]] = Field(default_factory=list)
    """The context the step used."""
    conversation: list[dict[str, JsonValue]] | None = None
    """The conversation, for a chat step (messages as role/content)."""
    last_good_checkpoint_id: str | None = None
    """The checkpoint the task started from: the state before it failed."""
    created_at: str
    """When it was raised (ISO 8601, UTC)."""
    allowed_decisions: list[Action] = Field(default_factory=lambda: list(DECISIONS))
    """The decisions a reviewer may take."""
    previous_decision: dict[str, JsonValue] | None = None
    """On a re-escalation: the last reviewer's decision."""
    rejected: dict[str, JsonValue] | None = None
    """Set when the escalation is asked again because an answer was rejected: why."""
    notes: list[str] = Field(default_factory=list)
    """What was changed to show this escalation as strict JSON (NaN shown as text...); the
    checkpoint keeps the step's update as it was, and `approve` applies that."""

    @field_validator("attempts", "inputs", "output", "update", "context", "conversation", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if not _all_finite(value):
            msg = "escalation data must be strict JSON: NaN and Infinity are not allowed"
            raise ValueError(msg)
        return value


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    return True


def escalation_id(thread_id: str | None, key: str, rev: int) -> str:
    """A stable id for the escalation of task `key` at revision `rev` in `thread_id`.

    Example:
        ```python
        from reliable_graph.escalation import escalation_id

        assert escalation_id("t1", "draft", 2) == escalation_id("t1", "draft", 2) != escalation_id("t1", "draft", 3)
        assert len(escalation_id("t1", "draft", 2)) == 20
        ```
    """
    return hashlib.sha1(f"{thread_id}|{key}|{rev}".encode()).hexdigest()[:20]


class ReviewTask(TypedDict):
    """The `Send` argument that takes an escalated task to the `HumanEscalation` node.

    Example:
        ```python
        from reliable_graph.escalation import ReviewTask

        assert {"return_to", "escalation", "update"} <= set(ReviewTask.__annotations__)
        ```
    """

    __reliable_graph__: Literal["review"]
    key: str
    """The task's record key."""
    return_to: str
    """The node that escalated, which applies the decision."""
    push: bool
    """The task was a `Send` item."""
    input: Any
    """The task's `Send` argument (None for a task that reads the state)."""
    record: StepRecord
    """The task's record when it escalated."""
    update: dict[str, Any]
    """The update the step proposed, as the step returned it."""
    escalation: dict[str, Any]
    """The `Escalation`, as JSON."""


class StepTask(TypedDict):
    """The `Send` argument that continues a task: a retry of a `Send` item, or a reviewer's decision.

    Example:
        ```python
        from reliable_graph.escalation import StepTask

        assert {"key", "record", "decision"} <= set(StepTask.__annotations__)
        ```
    """

    __reliable_graph__: Literal["step"]
    key: str
    push: bool
    input: Any
    record: StepRecord
    decision: NotRequired[dict[str, Any]]
    """The validated decision (`Decision` as JSON), when the task comes back from review."""
    update: NotRequired[dict[str, Any]]
    """The proposed update under review."""
    escalation: NotRequired[dict[str, Any]]
    """The escalation that was answered."""


def payload_kind(value: Any) -> str | None:
    """`"review"` or `"step"` when `value` is one of the library's payloads, else None."""
    if isinstance(value, dict):
        kind = value.get(MARKER)
        if kind in ("review", "step"):
            return str(kind)
    return None
