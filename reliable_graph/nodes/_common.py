"""Shared machinery of the nodes: the node base class, validation, records, escalations."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable
from langgraph.types import Command
from pydantic import BaseModel

from reliable_graph._state_access import read_optional
from reliable_graph.errors import EscalationSerializationError
from reliable_graph.evaluators.base import Score, as_chunks, check_evaluator
from reliable_graph.state import RELIABILITY_KEY, emit

DECISIONS = ("approve", "edit", "provide_context", "retry", "terminate")


class ReliableNode(RunnableCallable):
    """Base of the library's nodes: a LangGraph node callable with `invoke` and `ainvoke`.

    Subclasses implement `_func(state, config)` and `_afunc(state, config)` over one shared core
    and list their route targets in `routes` for `validate_graph`.
    """

    routes: dict[str, str | None]
    name: str

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            msg = f"a node name must be a non-empty string, got {name!r}"
            raise ValueError(msg)
        super().__init__(self._func, self._afunc, name=name, trace=False)

    def _func(self, state: Any, config: RunnableConfig) -> Any:
        raise NotImplementedError

    async def _afunc(self, state: Any, config: RunnableConfig) -> Any:
        raise NotImplementedError


def check_threshold(value: Any, *, what: str) -> float:
    """`value` as a float in [0, 1], or a ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        msg = f"{what} must be a number in [0, 1], got {value!r}"
        raise ValueError(msg)
    if not 0.0 <= value <= 1.0:
        msg = f"{what} must be in [0, 1], got {value!r}"
        raise ValueError(msg)
    return float(value)


def check_evaluators(evaluators: Any, *, what: str) -> list[Any]:
    """One evaluator or a non-empty sequence of them, as a list."""
    items = list(evaluators) if isinstance(evaluators, Sequence) else [evaluators]
    if not items:
        msg = f"{what} needs at least one evaluator"
        raise ValueError(msg)
    for ev in items:
        check_evaluator(ev, what=what)
    return items


def check_count(value: Any, *, what: str) -> int:
    """`value` as a non-negative int, or a ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{what} must be a non-negative integer, got {value!r}"
        raise ValueError(msg)
    return value


def check_routes(routes: Mapping[str, str | None], *, node: str) -> dict[str, str | None]:
    """Route targets must all be set (Command routing) or all None (conditional edges)."""
    given = [k for k, v in routes.items() if v is not None]
    for key in given:
        if not isinstance(routes[key], str) or not routes[key]:
            msg = f"node {node!r}: {key} must be a node name, got {routes[key]!r}"
            raise ValueError(msg)
    if given and len(given) != len(routes):
        missing = [k for k in routes if routes[k] is None]
        msg = (
            f"node {node!r} routes with Command when a target is given, so it needs all of "
            f"{', '.join(routes)}; missing {', '.join(missing)} (or give none and route with "
            "conditional edges on latest_verdict)"
        )
        raise ValueError(msg)
    return dict(routes)


def step_record(state: Any, step: str) -> dict[str, Any]:
    """The `reliability` record of `step` in `state` (empty when there is none)."""
    record = read_optional(state, RELIABILITY_KEY) or {}
    return dict((record.get("steps") or {}).get(step) or {})


def routed(goto: str | None, update: dict[str, Any]) -> Any:
    """A `Command` to `goto` with `update`, or the bare update when routing is left to edges."""
    if goto is None:
        return update
    return Command(goto=goto, update=update)


def attempt_entry(attempt: int, score: Score, verdict: str, threshold: float, kind: str) -> dict[str, Any]:
    """One attempt as recorded in state and shown in escalations."""
    return {
        "attempt": attempt,
        "kind": kind,
        "score": score.value,
        "threshold": threshold,
        "verdict": verdict,
        "reason": score.reason,
        "evaluator": score.evaluator,
        "details": jsonable_or_repr(score.details),
    }


def verdict_event(step: str, node: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Emit and return the custom-stream event of one verdict."""
    return emit(
        {
            "type": "verdict",
            "step": step,
            "node": node,
            **{k: entry[k] for k in ("attempt", "kind", "verdict", "score", "threshold", "reason", "evaluator")},
        }
    )


def outcome_event(step: str, outcome: str, **extra: Any) -> dict[str, Any]:
    """Emit and return the custom-stream event of a step's outcome."""
    return emit({"type": "outcome", "step": step, "outcome": outcome, **extra})


def to_jsonable(value: Any, *, step: str, field: str) -> Any:
    """Plain JSON data from `value` (pydantic models, dataclasses, Documents, datetimes included).

    Raises:
        EscalationSerializationError: something in `value` has no JSON form.
    """
    try:
        return json.loads(json.dumps(value, default=_default))
    except (TypeError, ValueError) as exc:
        raise EscalationSerializationError(step=step, field=field, value=value) from exc


def jsonable_or_repr(value: Any) -> Any:
    """Plain JSON data from `value`, with `repr` for what has no JSON form (for details only)."""
    return json.loads(json.dumps(value, default=lambda o: _default_or(o, repr)))


def _default_or(obj: Any, fallback: Any) -> Any:
    try:
        return _default(obj)
    except TypeError:
        return fallback(obj)


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "page_content"):
        return {"text": obj.page_content, "metadata": dict(getattr(obj, "metadata", {}) or {})}
    msg = f"{type(obj).__name__} is not JSON serialisable"
    raise TypeError(msg)


def last_good_checkpoint(config: RunnableConfig) -> str | None:
    """The id of the checkpoint the current step started from: the state before it failed."""
    configurable = config.get("configurable") or {}
    mapping = configurable.get("checkpoint_map") or {}
    return mapping.get("") or configurable.get("checkpoint_id")


def build_escalation(
    *,
    step: str,
    node: str,
    config: RunnableConfig,
    state: Any,
    score: Score,
    threshold: float,
    attempts: list[dict[str, Any]],
    output: Any,
    context: Any,
    input_keys: Sequence[str],
    last_good: str | None,
    allowed: Sequence[str] = DECISIONS,
) -> dict[str, Any]:
    """The reviewer-facing escalation of `step`, as plain JSON data."""
    configurable = config.get("configurable") or {}
    thread_id = configurable.get("thread_id")
    payload = {
        "thread_id": None if thread_id is None else str(thread_id),
        "step": step,
        "node": node,
        "confidence": score.value,
        "threshold": threshold,
        "reason": score.reason,
        "attempts": attempts,
        "inputs": {k: read_optional(state, k) for k in input_keys},
        "output": output,
        "context": [c.to_dict() for c in as_chunks(context)],
        "last_good_checkpoint_id": last_good,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "allowed_decisions": list(allowed),
    }
    for field in ("output", "inputs", "context"):
        payload[field] = to_jsonable(payload[field], step=step, field=field)
    return payload


def escalation_update(
    payload: dict[str, Any],
    *,
    raw_output: Any,
    output_key: str,
    context_key: str,
    pass_to: str | None,
    rerun_to: str,
) -> dict[str, Any]:
    """The `reliability` fields that park an escalation until a human decides."""
    return {
        "escalation": payload,
        "escalation_route": {
            "raw_output": raw_output,
            "output_key": output_key,
            "context_key": context_key,
            "pass_to": pass_to,
            "rerun_to": rerun_to,
        },
    }
