"""Read a thread's pending escalations and answer them, validated before anything is sent."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from reliable_graph.errors import AlreadyAnsweredError, InvalidAnswerError, NoPendingEscalationError
from reliable_graph.escalation.decision import parse_answer

_ID = re.compile(r"[0-9a-f]{20}|[0-9a-f]{32}")

__all__ = [
    "PendingEscalation",
    "aanswer_escalations",
    "answer_escalations",
    "apending_escalations",
    "escalation_of",
    "escalations_of",
    "pending_escalations",
]


@dataclass(frozen=True, slots=True)
class PendingEscalation:
    """An escalation waiting for a reviewer, with the interrupt that answers it.

    Example:
        ```python
        from reliable_graph import PendingEscalation

        pending = PendingEscalation(interrupt_id="abc", escalation={"id": "e1", "step": "draft"})
        assert pending.escalation["step"] == "draft"
        ```
    """

    interrupt_id: str
    """Answer with `Command(resume={interrupt_id: answer})`."""
    escalation: dict[str, Any]
    """The `Escalation`, as JSON, whatever format it was shown in."""


def _is_escalation(value: Any) -> bool:
    return isinstance(value, Mapping) and {"id", "step", "task", "confidence", "reason"} <= set(value)


def escalations_of(value: Any) -> list[dict[str, Any]]:
    """Every escalation an interrupt value carries, in any of the three formats (one, or several in order).

    Example:
        ```python
        from reliable_graph.escalation import escalations_of, render

        esc = {"id": "e1", "step": "draft", "task": "draft", "confidence": 0.2, "threshold": 0.5,
               "reason": "r", "output": "x"}
        two = [esc, {**esc, "id": "e2"}]
        for shape in ("reliable", "agent_inbox", "hitl"):
            assert [e["id"] for e in escalations_of(render(two, shape))] == ["e1", "e2"]
        assert escalations_of({"question": "not ours"}) == []
        ```
    """
    if isinstance(value, list):
        found = []
        for item in value:
            if not isinstance(item, Mapping):
                return []
            carried = item.get("escalation")
            request = item.get("action_request")
            legacy = request.get("args") if isinstance(request, Mapping) else None  # the whole escalation in args
            esc = carried if _is_escalation(carried) else legacy if _is_escalation(legacy) else None
            if not isinstance(esc, Mapping):
                return []
            found.append(dict(esc))
        return found
    if not isinstance(value, Mapping):
        return []
    if isinstance(value.get("escalations"), list):
        return [dict(e) for e in value["escalations"] if _is_escalation(e)]
    if isinstance(value.get("action_requests"), list):
        requests = [r.get("args") if isinstance(r, Mapping) else None for r in value["action_requests"]]
        return [dict(r) for r in requests if isinstance(r, Mapping) and _is_escalation(r)]
    return [dict(value)] if _is_escalation(value) else []


def escalation_of(value: Any) -> dict[str, Any] | None:
    """The (first) escalation inside an interrupt value in any of the three formats, or None.

    Example:
        ```python
        from reliable_graph import escalation_of, to_agent_inbox

        esc = {"id": "e1", "step": "draft", "task": "draft", "confidence": 0.2, "threshold": 0.5,
               "reason": "r", "output": "x"}
        assert escalation_of(esc) == esc
        assert escalation_of([to_agent_inbox(esc)])["id"] == "e1"
        assert escalation_of({"question": "not ours"}) is None
        ```
    """
    found = escalations_of(value)
    return found[0] if found else None


def _answered(snapshot: Any) -> set[str]:
    """Interrupt ids whose task finished at this checkpoint: answered in the thread's history."""
    done: set[str] = set()
    for task in getattr(snapshot, "tasks", ()) or ():
        if task.result is not None:
            done.update(item.id for item in task.interrupts or ())
        if task.state is not None and hasattr(task.state, "tasks"):
            done |= _answered(task.state)
    return done


def _collect(snapshot: Any, *, skip: set[str] | None = None) -> list[PendingEscalation]:
    skip = _answered(snapshot) if skip is None else skip
    found: dict[tuple[str, str], PendingEscalation] = {}
    items = list(getattr(snapshot, "interrupts", ()) or ())
    for task in getattr(snapshot, "tasks", ()) or ():
        items += list(getattr(task, "interrupts", ()) or ())
    for item in items:
        if item.id in skip:
            continue
        for esc in escalations_of(item.value):
            key = (item.id, str(esc["id"]))
            if key not in found:
                found[key] = PendingEscalation(item.id, {k: v for k, v in esc.items() if k != "rejected"})
    for task in getattr(snapshot, "tasks", ()) or ():
        if task.state is not None and hasattr(task.state, "interrupts"):
            for nested in _collect(task.state, skip=skip):
                found.setdefault((nested.interrupt_id, str(nested.escalation["id"])), nested)
    return list(found.values())


def pending_escalations(graph: Any, config: RunnableConfig) -> list[PendingEscalation]:
    """Every escalation waiting in a thread, subgraphs' included.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import HumanEscalation, Predicate, ReliabilityState, pending_escalations, reliable_step

        class State(ReliabilityState, total=False):
            question: str
            output: str

        builder = StateGraph(State)
        builder.add_node(reliable_step(lambda s: {"output": "?"}, name="draft", threshold=1.0, max_retries=0,
                                       evaluator=Predicate(fn=lambda o: o != "?"), pass_to=END))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "draft")
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "p1"}}
        graph.invoke({"question": "q"}, config)
        [pending] = pending_escalations(graph, config)
        assert pending.escalation["step"] == "draft"
        ```
    """
    return _collect(graph.get_state(config, subgraphs=True))


def _state(snapshot: Any) -> tuple[list[PendingEscalation], set[str], str | None]:
    checkpoint = (snapshot.config.get("configurable") or {}).get("checkpoint_id") if snapshot.config else None
    answered = _answered(snapshot)
    return _collect(snapshot, skip=answered), answered, checkpoint


async def apending_escalations(graph: Any, config: RunnableConfig) -> list[PendingEscalation]:
    """Async twin of `pending_escalations`.

    Example:
        ```python
        import asyncio
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import HumanEscalation, ReliabilityState, apending_escalations

        class State(ReliabilityState, total=False):
            question: str

        builder = StateGraph(State)
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "human_escalation")
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "none"}}
        graph.invoke({"question": "q"}, config)
        assert asyncio.run(apending_escalations(graph, config)) == []
        ```
    """
    return _collect(await graph.aget_state(config, subgraphs=True))


def _resume_map(state: tuple[list[PendingEscalation], set[str], str | None], answers: Any) -> dict[str, Any]:
    """The resume map: `{interrupt_id: {escalation_id: decision}}`, every answer validated first."""
    pending, answered, checkpoint = state
    by_id: dict[str, PendingEscalation] = {}
    for p in pending:  # an interrupt carrying several escalations answers its first by interrupt id
        by_id.setdefault(p.interrupt_id, p)
    by_escalation = {p.escalation.get("id"): p for p in pending}
    if answers is None or (isinstance(answers, Mapping) and not answers):
        msg = "no answer given: pass {interrupt_id: decision} or, with one escalation pending, the decision itself"
        raise InvalidAnswerError(msg, answer=answers)
    keyed = isinstance(answers, Mapping) and all(
        isinstance(k, str) and (k in by_id or k in by_escalation or _ID.fullmatch(k) is not None) for k in answers
    )
    if not keyed:
        if len(by_id) != 1:
            ids = list(by_id)
            if not pending and answered:
                raise AlreadyAnsweredError(interrupt_id=sorted(answered)[0], checkpoint_id=checkpoint)
            if not pending:
                raise NoPendingEscalationError(interrupt_ids=["(any)"], pending=[])
            msg = f"{len(pending)} escalations are pending: answer them by interrupt id ({', '.join(ids)})"
            raise InvalidAnswerError(msg, answer=answers)
        answers = {pending[0].interrupt_id: answers}
    again = [k for k in answers if k in answered]
    if again:
        raise AlreadyAnsweredError(interrupt_id=again[0], checkpoint_id=checkpoint)
    unknown = [k for k in answers if k not in by_id and k not in by_escalation]
    if unknown:
        raise NoPendingEscalationError(interrupt_ids=unknown, pending=sorted(by_id))
    resume: dict[str, dict[str, Any]] = {}
    for key, answer in answers.items():
        target = by_escalation.get(key) or by_id[key]
        esc = target.escalation
        try:
            decision = parse_answer(
                answer,
                allowed=esc.get("allowed_decisions") or ("approve", "edit", "provide_context", "retry", "terminate"),
                kind=esc.get("kind", "output"),
                original=esc.get("output"),
            )
        except InvalidAnswerError as err:
            raise InvalidAnswerError(err.reason, answer=answer, interrupt_id=target.interrupt_id) from None
        resume.setdefault(target.interrupt_id, {})[str(esc["id"])] = decision.model_dump(
            mode="json", exclude_unset=True
        )
    return resume


def answer_escalations(graph: Any, config: RunnableConfig, answers: Any, **kwargs: Any) -> Any:
    """Validate answers to a thread's pending escalations, then resume the graph with them.

    `answers` maps interrupt ids (or escalation ids) to answers in any of the three formats;
    with one escalation pending, the answer alone will do. Every answer is validated first:
    nothing is sent unless all are valid. Calls on the same thread run one at a time (through
    the inbox ledger's thread lock when the graph has a store, across processes; through a lock
    of this process without one), so reviewers answering different escalations of one thread
    at once are all applied, each once. The resume is strict (an interrupt answered meanwhile is
    refused before anything is written) and durable (`durability="sync"` unless you pass one).

    Returns:
        What `graph.invoke` returns.

    Raises:
        InvalidAnswerError: an answer (or `None`, or `{}`) breaks a rule; its `interrupt_id` says which.
        NoPendingEscalationError: an id names no pending escalation (answered already?).
        AlreadyAnsweredError: `config` addresses an earlier checkpoint (time travel, a fork) where
            this escalation was already answered. LangGraph would replay the recorded answer there
            whatever the new one says; to decide again, resume from the checkpoint before the
            escalation was raised.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import (HumanEscalation, InvalidAnswerError, Predicate, ReliabilityState,
                                    answer_escalations, reliable_step, step_outcomes)

        class State(ReliabilityState, total=False):
            question: str
            output: str

        builder = StateGraph(State)
        builder.add_node(reliable_step(lambda s: {"output": "?"}, name="draft", threshold=1.0, max_retries=0,
                                       evaluator=Predicate(fn=lambda o: o != "?"), pass_to=END))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "draft")
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "a1"}}
        graph.invoke({"question": "q"}, config)
        try:
            answer_escalations(graph, config, {"action": "edit"})
        except InvalidAnswerError as err:
            assert "output" in err.reason
        out = answer_escalations(graph, config, {"action": "edit", "output": "42"})
        assert out["output"] == "42" and step_outcomes(out) == {"draft": "edited"}
        ```
    """
    from reliable_graph._compat import strict_resume
    from reliable_graph.escalation.protocol import serialized

    kwargs.setdefault("durability", "sync")
    with serialized(graph, _thread_of(config)) as resolver:
        resume = _resume_map(_state(graph.get_state(config, subgraphs=True)), answers)
        out = graph.invoke(Command(resume=resume), strict_resume(config), **kwargs)
        if resolver is not None:
            resolver.settle(_thread_of(config))
    return out


async def aanswer_escalations(graph: Any, config: RunnableConfig, answers: Any, **kwargs: Any) -> Any:
    """Async twin of `answer_escalations`.

    Example:
        ```python
        import asyncio
        from reliable_graph import aanswer_escalations

        assert asyncio.iscoroutinefunction(aanswer_escalations)
        ```
    """
    from reliable_graph._compat import strict_resume
    from reliable_graph.escalation.protocol import aread_thread, aserialized

    kwargs.setdefault("durability", "sync")
    async with aserialized(graph, _thread_of(config)) as resolver:
        resume = _resume_map(_state(await graph.aget_state(config, subgraphs=True)), answers)
        out = await graph.ainvoke(Command(resume=resume), strict_resume(config), **kwargs)
        if resolver is not None:
            view = await aread_thread(graph, config)
            await asyncio.to_thread(resolver.settle, _thread_of(config), view)
    return out


def _thread_of(config: RunnableConfig) -> str:
    thread = (config.get("configurable") or {}).get("thread_id")
    if thread is None:
        msg = "answering escalations needs config={'configurable': {'thread_id': ...}}"
        raise ValueError(msg)
    return str(thread)
