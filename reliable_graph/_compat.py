"""The few things LangGraph has no public API for, in one place.

Each function here reads a documented-by-behaviour but not-exported detail of LangGraph (the
metadata of a task, the format of a checkpoint namespace, how `add_node` infers a node's
destinations). `tests/test_compat.py` checks every one against the installed LangGraph, so an
upgrade that changes them fails loudly there instead of silently misrouting a run.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.config import get_stream_writer
from langgraph.types import Command

__all__ = [
    "channel_snapshot",
    "command",
    "is_plain_task",
    "is_silent_writer",
    "listening_writer",
    "current_checkpoint_id",
    "declare_destinations",
    "is_push_task",
    "namespace_path",
    "pending_write_kinds",
    "strict_resume",
    "copy_checkpoint",
    "run_error",
]

_PUSH = "__pregel_push"
"""The trigger LangGraph records in a task's metadata when the task was started by `Send`."""
_NS_SEP = "|"
"""Separates the levels of a checkpoint namespace (`parent:task_id|child:task_id`)."""
_NS_END = ":"
"""Separates a level's node name from its task id."""
_ERROR = "__error__"
"""The channel of the pending write LangGraph saves for a task that raised."""
_INTERRUPT = "__interrupt__"
"""The channel of the pending write LangGraph saves for a task that called `interrupt()`."""
_COPY = "__copy__"
"""The `as_node` of `update_state` that copies a checkpoint as the thread's newest (with `values=None`)."""
_STRICT_RESUME = "__pregel_strict_resume"
"""The configurable key of LangGraph's strict resume (what LangGraph Server's `strict_resume=True` sets)."""


def channel_snapshot(value: Any) -> dict[str, Any] | None:
    """A channel value as a checkpoint stores it: the value, a `DeltaChannel` snapshot's value, or None.

    A `DeltaChannel` stores a sentinel (nothing) or a snapshot object holding the value in
    `.value`; a plain reducer channel stores the value itself.
    """
    if isinstance(value, dict):
        return value
    inner = getattr(value, "value", None)
    return inner if isinstance(inner, dict) else None


def pending_write_kinds(pending_writes: Any) -> set[str]:
    """Of a `CheckpointTuple.pending_writes`: `"error"` if a task raised, `"interrupt"` if one waits."""
    kinds: set[str] = set()
    for write in pending_writes or ():
        if write[1] == _ERROR:
            kinds.add("error")
        elif write[1] == _INTERRUPT:
            kinds.add("interrupt")
    return kinds


_RUNTIME = "__pregel_runtime"
"""The configurable key of the running task's `Runtime` (its store, context and stream writer)."""

_silent: list[Any] = [None]
"""The last writer found silent: LangGraph makes one per run, and every step of the run gets it."""


def listening_writer() -> Any:
    """The custom stream's writer, or `None` when nobody listens (outside a run, or no `custom` stream).

    What `langgraph.config.get_stream_writer()` returns (None where it raises `RuntimeError`),
    unless it is the silent writer LangGraph hands a node when nobody streams `custom`. On Python
    3.11+ the writer is read from the running config directly, without the two calls LangGraph's
    function makes (a node looks it up on every step); on 3.10 it is LangGraph's function.
    """
    if _OLD_PYTHON:
        try:
            writer = get_stream_writer()
        except RuntimeError:
            return None
    else:
        config = var_child_runnable_config.get()
        if not config:
            return None
        writer = config["configurable"][_RUNTIME].stream_writer
    if writer is _silent[0]:
        return None
    if is_silent_writer(writer):
        _silent[0] = writer
        return None
    return writer


_OLD_PYTHON = sys.version_info < (3, 11)
"""Python 3.10: LangGraph's `get_config` refuses inside an asyncio task, so its function decides."""


def is_silent_writer(writer: Any) -> bool:
    """Whether `writer` is the stream writer LangGraph hands a node when nobody streams `custom`.

    Lets a node skip building events that would go nowhere.
    """
    # LangGraph's silent writer is a nested `def stream_writer(c): pass` closing over nothing;
    # the writer of a `custom` stream is the same name closing over the stream it feeds.
    return (
        getattr(writer, "__qualname__", "").endswith("stream.<locals>.stream_writer")
        and getattr(writer, "__closure__", ()) is None
    )


def is_push_task(config: RunnableConfig) -> bool:
    """Whether the running task was started by `Send` (its input is the `Send` argument)."""
    metadata = config.get("metadata") or {}
    triggers = metadata.get("langgraph_triggers")
    if triggers is not None:
        return _PUSH in triggers
    path: tuple[Any, ...] = tuple(metadata.get("langgraph_path") or ())
    return len(path) > 0 and path[0] == _PUSH


def is_plain_task(config: RunnableConfig) -> bool:
    """Whether the running task is a node of the top-level graph an edge started (not `Send`, not in a subgraph).

    `not is_push_task(config)` and a one-level namespace, in one call (a node asks on every step).
    """
    metadata = config.get("metadata") or {}
    triggers = metadata.get("langgraph_triggers")
    if triggers is not None:
        if _PUSH in triggers:
            return False
    elif (path := metadata.get("langgraph_path")) and path[0] == _PUSH:
        return False
    return _NS_SEP not in str((config.get("configurable") or {}).get("checkpoint_ns") or "")


def namespace_path(config: RunnableConfig) -> tuple[list[str], list[str]]:
    """The running task's namespace as (node names, full levels), outermost first, own level last."""
    configurable = config.get("configurable") or {}
    ns = str(configurable.get("checkpoint_ns") or "")
    levels = [level for level in ns.split(_NS_SEP) if level]
    return [level.split(_NS_END, 1)[0] for level in levels], levels


def current_checkpoint_id(config: RunnableConfig) -> str | None:
    """The id of the checkpoint the running task started from (its graph's latest checkpoint)."""
    configurable = config.get("configurable") or {}
    mapping = configurable.get("checkpoint_map") or {}
    ns = str(configurable.get("checkpoint_ns") or "")
    parent = ns.rsplit(_NS_SEP, 1)[0] if _NS_SEP in ns else ""
    found = mapping.get(parent) if isinstance(mapping, dict) else None
    return found or configurable.get("checkpoint_id")


def _command_slots() -> tuple[Any, ...] | None:
    """The slots' setters of `Command`, a frozen slotted dataclass of these four fields and nothing else; or None."""
    try:
        names = tuple(f.name for f in dataclasses.fields(Command))
        if names != ("graph", "update", "resume", "goto") or hasattr(Command, "__post_init__"):
            return None
        return tuple(Command.__dict__[name].__set__ for name in names)
    except (TypeError, KeyError, AttributeError):
        return None


_COMMAND_SLOTS = _command_slots()


def command(goto: Any, update: dict[str, Any]) -> Command[Any]:
    """`Command(goto=goto, update=update)`, its slots set directly: a passing step returns one every time.

    A frozen dataclass's `__init__` sets each field through `object.__setattr__`, which costs more
    than the rest of building the result; this builds the same object (equal to the other) in
    about a third of the time, or calls the constructor when `Command` is not the dataclass it was.
    """
    if _COMMAND_SLOTS is None:
        return Command(goto=goto, update=update)
    set_graph, set_update, set_resume, set_goto = _COMMAND_SLOTS
    result: Command[Any] = object.__new__(Command)
    set_graph(result, None)
    set_update(result, update)
    set_resume(result, None)
    set_goto(result, goto)
    return result


def declare_destinations(node: Any, targets: Sequence[str]) -> None:
    """Make `StateGraph.add_node(node)` record `targets` as the node's destinations.

    LangGraph draws a node's `Command` edges from a `Command[Literal[...]]` return annotation
    of its `__call__`; this gives the instance such a `__call__` (calling it invokes the node).
    """
    unique = tuple(dict.fromkeys(t for t in targets if t))
    if not unique:
        return

    def __call__(self: Any, state: Any, config: RunnableConfig | None = None) -> Any:
        return self.invoke(state, config)

    __call__.__annotations__ = {"return": Command[Literal[unique]]}  # type: ignore[valid-type]
    object.__setattr__(node, "__call__", types.MethodType(__call__, node))


def strict_resume(config: RunnableConfig) -> RunnableConfig:
    """`config` for a strict resume: LangGraph refuses it before writing anything if it names a consumed interrupt.

    An interrupt answered by someone else meanwhile raises `UnknownInterruptError` instead of
    letting this run carry the other answer on.
    """
    return {**config, "configurable": {**(config.get("configurable") or {}), _STRICT_RESUME: True}}


def copy_checkpoint(graph: Any, config: RunnableConfig) -> RunnableConfig:
    """Make a copy of the checkpoint `config` addresses the thread's newest one; its config."""
    copied: RunnableConfig = graph.update_state(config, None, as_node=_COPY)
    return copied


def run_error(out: Any) -> dict[str, Any] | None:
    """The error a LangGraph Server run ended with, from `runs.wait(..., raise_error=False)`'s output, or None.

    The server answers a failed run with `{"__error__": {"error": <type>, "message": <text>}}`.
    """
    error = out.get(_ERROR) if isinstance(out, dict) else None
    return dict(error) if isinstance(error, dict) else None
