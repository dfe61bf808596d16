"""HumanEscalation: one interrupt per escalated task; the validated decision goes back to its node."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command, Send, interrupt

from reliable_graph._node import ReliableNode
from reliable_graph.errors import InvalidAnswerError
from reliable_graph.escalation.decision import Decision, parse_answer
from reliable_graph.escalation.formats import Format, render, response_schema
from reliable_graph.escalation.protocol import accept
from reliable_graph.escalation.record import DECISIONS, Action, ReviewTask, StepTask, payload_kind
from reliable_graph.state import RELIABILITY_KEY, emit, task_records

__all__ = ["HumanEscalation"]


_SERDE = JsonPlusSerializer()


def as_stored(answer: Any) -> Any:
    """`answer` as the checkpointer hands it back when the node runs again.

    LangGraph stores a resume value and replays the stored copy on the node's later runs
    (tuples come back as lists, text that is not valid Unicode with `?`): judging the stored
    form gives an answer the same verdict on every run, so a rejected answer never applies later.
    """
    try:
        return _SERDE.loads_typed(_SERDE.dumps_typed(answer))
    except (TypeError, ValueError, RecursionError, OverflowError) as exc:
        msg = f"the answer cannot be stored by a checkpointer: {exc}"
        raise InvalidAnswerError(msg, answer=answer) from None


class HumanEscalation(ReliableNode):
    """The node where escalated tasks wait for a human, each on its own `interrupt()`.

    A node that escalates (`reliable_step`, `ConfidenceRouter`, `ContextGate`) sends its task
    here with `Send`, so any number of escalations can be pending at once (parallel branches,
    `Send` items, subgraphs), each its own interrupt, answerable by interrupt id with
    `Command(resume={interrupt_id: answer, ...})` or one at a time. The interrupt's value is
    the `Escalation` (or its Agent Inbox / HITL middleware rendering, by `format`); the answer
    may come in any of the three formats. Every answer is validated completely before anything
    is applied (`parse_answer`); a rejected answer applies nothing, and the same escalation is
    asked again with `rejected` saying why (the thread stays `interrupted`, nothing errors). A
    valid decision goes back to the node that escalated, which applies it exactly once.

    Args:
        name: The node's name (`reliable_step`'s default `escalate_to`).
        allowed: The decisions a reviewer may take.
        format: `"reliable"` (the `Escalation` as a dict), `"agent_inbox"` (a `HumanInterrupt`
            list) or `"hitl"` (a `HumanInTheLoopMiddleware` `HITLRequest`).

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import Command
        from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step, step_outcomes

        class State(ReliabilityState, total=False):
            question: str
            answer: str

        builder = StateGraph(State)
        builder.add_node(reliable_step(lambda s: {"answer": "?"}, name="answer", output_key="answer",
                                       evaluator=Predicate(fn=lambda a: a != "?"), threshold=1.0,
                                       max_retries=0, pass_to=END))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "answer")
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "t1"}}
        paused = graph.invoke({"question": "q"}, config)
        [pending] = paused["__interrupt__"]
        assert pending.value["step"] == "answer" and pending.value["confidence"] == 0.0
        out = graph.invoke(Command(resume={pending.id: {"action": "edit", "output": "42"}}), config)
        assert out["answer"] == "42" and step_outcomes(out) == {"answer": "edited"}
        ```
    """

    def __init__(
        self,
        *,
        name: str = "human_escalation",
        allowed: Sequence[Action] = DECISIONS,
        format: Format = "reliable",
    ) -> None:
        super().__init__(name)
        if isinstance(allowed, str) or not allowed or any(a not in DECISIONS for a in allowed):
            msg = f"HumanEscalation(allowed=...) takes a non-empty list from {DECISIONS}, got {allowed!r}"
            raise ValueError(msg)
        if format not in ("reliable", "agent_inbox", "hitl"):
            msg = f"HumanEscalation(format={format!r}) must be 'reliable', 'agent_inbox' or 'hitl'"
            raise ValueError(msg)
        self.allowed: tuple[Action, ...] = tuple(dict.fromkeys(allowed))
        self.format: Format = format
        self.schema = response_schema(format, self.allowed)

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        kind = payload_kind(input)
        if kind == "review":
            return self._review(input)
        if kind is not None:
            msg = f"node {self.name!r} received a {kind!r} payload meant for the step that escalated"
            raise ValueError(msg)
        # Reached plainly: by a conditional edge (a router or gate without targets parked its
        # escalations in state), or as the keep-alive trigger of a review in flight (a no-op).
        records = task_records(input)
        parked = {key: rec for key, rec in records.items() if rec.get("pending") == "review" and "review" in rec}
        if not parked:
            return {}
        unparked = {
            key: {**{k: v for k, v in rec.items() if k != "review"}, "rev": rec["rev"] + 1}
            for key, rec in parked.items()
        }
        return Command(
            goto=[Send(self.name, rec["review"]) for rec in parked.values()],
            update={RELIABILITY_KEY: {"tasks": unparked}},
        )

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        if payload_kind(input) == "review":
            return await self._areview(input)
        return self._run(input, config)

    def _review(self, task: ReviewTask) -> Command[Any]:
        escalation = {**task["escalation"], "allowed_decisions": list(self.allowed)}
        shown, rejected = escalation, 0
        while True:
            decision, error = self._ask(escalation, shown)
            if decision is not None:
                try:
                    accept(escalation["id"], decision)
                    return self._back(task, escalation, decision)
                except InvalidAnswerError as err:
                    error = err
            rejected += 1
            shown = self._rejected(task, escalation, error, rejected)

    async def _areview(self, task: ReviewTask) -> Command[Any]:
        """`_review`, with the ledger's compare-and-set off the event loop (it may wait on a lock)."""
        escalation = {**task["escalation"], "allowed_decisions": list(self.allowed)}
        shown, rejected = escalation, 0
        while True:
            decision, error = self._ask(escalation, shown)
            if decision is not None:
                try:
                    await asyncio.to_thread(accept, escalation["id"], decision)
                    return self._back(task, escalation, decision)
                except InvalidAnswerError as err:
                    error = err
            rejected += 1
            shown = self._rejected(task, escalation, error, rejected)

    def _ask(self, escalation: dict[str, Any], shown: dict[str, Any]) -> tuple[Decision | None, Any]:
        """Interrupt with `shown`; the answer as a validated decision, or the error that refused it."""
        answer = interrupt(render(shown, self.format), response_schema=self.schema)
        try:
            answer = as_stored(answer)
            kind = escalation.get("kind", "output")
            return parse_answer(answer, allowed=self.allowed, kind=kind, original=escalation["output"]), None
        except InvalidAnswerError as err:
            return None, err

    @staticmethod
    def _rejected(task: ReviewTask, escalation: dict[str, Any], error: Any, count: int) -> dict[str, Any]:
        emit({"type": "answer_rejected", "step": escalation["step"], "task": task["key"], "reason": error.reason})
        return {**escalation, "rejected": {"reason": error.reason, "count": count}}

    def _back(self, task: ReviewTask, escalation: dict[str, Any], decision: Decision) -> Command[Any]:
        emit({"type": "decision", "step": escalation["step"], "task": task["key"], **decision.recorded()})
        back: StepTask = {
            "__reliable_graph__": "step",
            "key": task["key"],
            "push": task["push"],
            "input": task["input"],
            "record": task["record"],
            "decision": decision.model_dump(mode="json", exclude_unset=True),
            "update": task["update"],
            "escalation": task["escalation"],
        }
        return Command(goto=[Send(task["return_to"], back), self.name])


def decision_of(task: StepTask) -> Decision | None:
    """The validated decision a continuation carries, if any."""
    raw = task.get("decision")
    return None if raw is None else Decision.model_validate(raw)
