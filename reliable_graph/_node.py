"""What the nodes and the escalation code both need: the node base class, value checks, JSON.

This module sits below `nodes/` and `escalation/`; it imports neither.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config
from pydantic import BaseModel

from reliable_graph._compat import declare_destinations, is_plain_task, is_push_task, namespace_path
from reliable_graph.errors import EscalationSerializationError
from reliable_graph.evaluators.base import check_evaluator

__all__ = [
    "ReliableNode",
    "TaskRef",
    "check_count",
    "check_evaluators",
    "check_name",
    "check_routes",
    "check_threshold",
    "jsonable_or_repr",
    "strict_json",
    "task_ref",
    "top_level_ref",
]


class ReliableNode(Runnable[Any, Any]):
    """Base of the library's nodes: a LangChain `Runnable` with real sync and async twins.

    Subclasses implement `_run(input, config)` and `_arun(input, config)` over one shared core,
    set `routes` (parameter name -> target) for `validate_graph`, and call `_declare(...)` with
    every node they can route to, so that `get_graph()` draws their edges.
    """

    routes: dict[str, str | None]
    name: str

    def __init__(self, name: str) -> None:
        self.name = check_name(name)
        self.routes = {}

    def _declare(self, *targets: str | None) -> None:
        declare_destinations(self, [t for t in targets if t])

    def __call__(self, state: Any, config: RunnableConfig | None = None) -> Any:
        """Run the node on `state` (what LangGraph does with `invoke`)."""
        return self.invoke(state, config)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node synchronously."""
        return self._run(input, config if config is not None else ensure_config())

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node asynchronously."""
        config = config if config is not None else ensure_config()
        with runnable_context(config):
            return await self._arun(input, config)

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        raise NotImplementedError

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        raise NotImplementedError


@contextmanager
def runnable_context(config: RunnableConfig) -> Iterator[None]:
    """Make `config` the running config for `interrupt()`, `get_store()` and the stream writer.

    LangGraph hands an async node its config in the call, and on Python 3.11+ also in the
    asyncio task's context; Python 3.10's tasks carry no context, so an async node sets it here.
    """
    token = var_child_runnable_config.set(config)
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


def check_name(value: Any) -> str:
    """A node name: a non-empty string without LangGraph's reserved characters."""
    if not isinstance(value, str) or not value or "|" in value or ":" in value:
        msg = f"a node name must be a non-empty string without '|' or ':', got {value!r}"
        raise ValueError(msg)
    return value


def check_threshold(value: Any, *, what: str) -> float:
    """`value` as a float in [0, 1], or a ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        msg = f"{what} must be a number in [0, 1], got {value!r}"
        raise ValueError(msg)
    if not 0.0 <= value <= 1.0:
        msg = f"{what} must be in [0, 1], got {value!r}"
        raise ValueError(msg)
    return float(value)


def check_count(value: Any, *, what: str) -> int:
    """`value` as a non-negative int, or a ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{what} must be a non-negative integer, got {value!r}"
        raise ValueError(msg)
    return value


def check_evaluators(evaluators: Any, *, what: str) -> list[Any]:
    """One evaluator or a non-empty sequence of them, as a list."""
    items = list(evaluators) if isinstance(evaluators, Sequence) else [evaluators]
    if not items:
        msg = f"{what} needs at least one evaluator"
        raise ValueError(msg)
    for ev in items:
        check_evaluator(ev, what=what)
    return items


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


@dataclass(slots=True)  # not frozen: built on every step, and a frozen init costs a setattr per field
class TaskRef:
    """Which execution of a step is running: the key its record is kept under."""

    key: str
    """The record's key under `reliability["tasks"]`: the step's name for a plain node of the
    top-level graph, else the path plus a short hash of the task's namespace."""
    step: str
    """The step's name."""
    path: str
    """The step's place in nested graphs, outermost first (`research/draft`)."""
    push: bool
    """The task was started by `Send`: its input is the `Send` argument, not the state."""


@functools.lru_cache(maxsize=4096)
def top_level_ref(step: str) -> TaskRef:
    """The `TaskRef` of a plain node of the top-level graph: one per step, built once (never changed)."""
    return TaskRef(key=step, step=step, path=step, push=False)


def task_ref(config: RunnableConfig, step: str) -> TaskRef:
    """The `TaskRef` of the running task for `step` (stable across resumes of that task)."""
    if is_plain_task(config):
        return top_level_ref(step)
    push = is_push_task(config)
    names, levels = namespace_path(config)
    parents = levels[:-1]
    path = "/".join([*names[:-1], step])
    if not parents and not push:
        return TaskRef(key=step, step=step, path=path, push=False)
    seed = "|".join(parents) + ("|" + levels[-1] if push and levels else "")
    digest = hashlib.sha1(seed.encode()).hexdigest()[:10]
    return TaskRef(key=f"{path}#{digest}", step=step, path=path, push=push)


def strict_json(value: Any, *, step: str, field: str, notes: list[str] | None = None) -> Any:
    """Plain, strict JSON data from `value` (no NaN or Infinity; models and dataclasses dumped).

    With `notes`, what strict JSON cannot hold is shown instead of refused, and said in `notes`:
    NaN and the infinities become the text `"NaN"`, `"Infinity"`, `"-Infinity"`; nesting too
    deep to show (over 64 levels) is shown down to 64 levels, a placeholder text below.

    Raises:
        EscalationSerializationError: something in `value` has no JSON form at all (a type no
            encoder knows), or, without `notes`, is NaN, infinite or nested too deep.
    """
    try:
        data = json.loads(json.dumps(value, default=_default, allow_nan=False))
    except TypeError as exc:
        raise EscalationSerializationError(step=step, field=field, value=value) from exc
    except ValueError as exc:
        if notes is None:
            raise EscalationSerializationError(
                step=step, field=field, value=value, why="holds NaN or Infinity"
            ) from exc
        notes.append(f"{field}: NaN or Infinity, which strict JSON cannot hold, shown as text")
        return json.loads(json.dumps(value, default=_default), parse_constant=str)
    except RecursionError as exc:
        if notes is None:
            raise EscalationSerializationError(step=step, field=field, value=value, why="is nested too deep") from exc
        notes.append(f"{field}: nested deeper than {_SHOWN_DEPTH} levels; the deeper levels shown as text")
        return json.loads(json.dumps(_capped(value, 0), default=_default), parse_constant=str)
    if notes is not None and _deeper_than(data, _SHOWN_DEPTH):
        notes.append(f"{field}: nested deeper than {_SHOWN_DEPTH} levels; the deeper levels shown as text")
        return _capped(data, 0)
    return data


_SHOWN_DEPTH = 64


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON data nests more than `limit` levels (stops looking at the limit)."""
    if not isinstance(value, (dict, list)):
        return False
    if limit <= 0:
        return True
    children = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(child, limit - 1) for child in children)


def _capped(value: Any, depth: int) -> Any:
    """`value` down to `_SHOWN_DEPTH` levels; a container below that becomes a placeholder text."""
    if isinstance(value, (Mapping, list, tuple)) and depth >= _SHOWN_DEPTH:
        return f"<{type(value).__name__} nested deeper than {_SHOWN_DEPTH} levels>"
    if isinstance(value, Mapping):
        return {str(k): _capped(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_capped(v, depth + 1) for v in value]
    return value


def jsonable_or_repr(value: Any) -> Any:
    """Strict JSON data from `value`, with `repr` for what has none and `None` for NaN/Infinity."""
    return json.loads(json.dumps(_finite(value), default=lambda o: _finite(_default_or(o, repr)), allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


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
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "page_content"):
        return {"text": obj.page_content, "metadata": dict(getattr(obj, "metadata", {}) or {})}
    msg = f"{type(obj).__name__} is not JSON serialisable"
    raise TypeError(msg)
