"""HumanEscalation: where escalated tasks wait for a human; the validated decision goes back to its node.

Two modes. `per_task`: one interrupt per escalated task, answered by interrupt id (the library's
clients, the SDK). `single`: one interrupt per graph carrying every escalation waiting there,
answerable without an id (Agent Inbox, Agent Chat UI, any client that sends one un-keyed answer);
a thread then never has two interrupts of one graph pending, so LangGraph never refuses an answer
for want of an interrupt id.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command, Send, interrupt

from reliable_graph._node import ReliableNode
from reliable_graph.errors import InvalidAnswerError
from reliable_graph.escalation.decision import Decision, named_action, parse_answer
from reliable_graph.escalation.formats import Format, action_name, render, response_schema
from reliable_graph.escalation.inbox import anote_status, note_status
from reliable_graph.escalation.protocol import DIRECT, accept, current_store
from reliable_graph.escalation.record import DECISIONS, Action, ReviewTask, StepTask, payload_kind
from reliable_graph.state import RELIABILITY_KEY, emit, task_records

__all__ = ["HumanEscalation", "Mode"]

Mode = Literal["per_task", "single"]
"""How escalations are put to reviewers: one interrupt per task, or one per graph carrying them all."""

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


@dataclass(slots=True)
class _Waiting:
    """One escalation waiting in a `single` interrupt: its task's key, the escalation, its review payload."""

    key: str
    escalation: dict[str, Any]
    review: ReviewTask

    @property
    def id(self) -> str:
        return str(self.escalation["id"])


_ESCALATION_ID = re.compile(r"[0-9a-f]{20}")


def _keyed(answer: Any) -> bool:
    """Whether `answer` is `{escalation_id: answer, ...}` (the shape the library's clients send)."""
    return (
        isinstance(answer, Mapping)
        and bool(answer)
        and all(isinstance(k, str) and _ESCALATION_ID.fullmatch(k) for k in answer)
    )


def _late(answer: Mapping[str, Any], shown: Sequence[str]) -> None:
    """Say on the stream that parts of a keyed answer named escalations no longer asked (answered already)."""
    for escalation in answer:
        if escalation not in shown:
            emit({"type": "late_answer_ignored", "escalation": escalation})


def _assign(answer: Any, shown: list[_Waiting]) -> list[tuple[_Waiting, Any]]:
    """Which shown escalation each part of an answer is for.

    `{escalation_id: answer, ...}` names them; a part naming an escalation no longer shown (a late
    answer: another reviewer's answer reached it first, and LangGraph hands an answer keyed by a
    task's first interrupt to that task's next question) is ignored, never taken for another
    escalation. A HITL `{"decisions": [...]}` or an Agent Inbox response list answers them in
    order (a shorter list, the first ones); anything else is one answer, for the first.
    """
    ids = {w.id: w for w in shown}
    if _keyed(answer):
        _late(answer, list(ids))
        return [(ids[k], v) for k, v in answer.items() if k in ids]
    if isinstance(answer, Mapping) and set(answer) == {"decisions"} and isinstance(answer["decisions"], list):
        items = answer["decisions"]
        if 1 <= len(items) <= len(shown):
            return [(w, {"decisions": [d]}) for w, d in zip(shown, items, strict=False)]
    if isinstance(answer, list) and 1 <= len(answer) <= len(shown):
        return [(w, [r]) for w, r in zip(shown, answer, strict=False)]
    return [(shown[0], answer)]


class HumanEscalation(ReliableNode):
    """The node where escalated tasks wait for a human.

    A node that escalates (`reliable_step`, `ConfidenceRouter`, `ContextGate`) sends its task
    here with `Send`, so any number of escalations can wait at once (parallel branches, `Send`
    items, subgraphs). With `mode="per_task"` each waits on its own interrupt, answerable by
    interrupt id with `Command(resume={interrupt_id: answer, ...})`. With `mode="single"` the
    escalations of one superstep (and any that arrive while they wait) gather on ONE interrupt
    of this node, whose value carries them all: a client that sends one answer without an id
    (Agent Inbox, Agent Chat UI) answers the first, a HITL `{"decisions": [...]}` or a list of
    Agent Inbox responses answers them in order, `{escalation_id: answer}` names them; the rest
    are asked again until every one is answered, then every decision goes back at once. The
    interrupt's value is the `Escalation` (or a list of them, or its Agent Inbox / HITL
    middleware rendering, by `format`); an answer may come in any of the three formats. Every
    answer is validated completely before anything is applied (`parse_answer`); a rejected answer
    applies nothing, and the same escalation is asked again with `rejected` saying why (the thread
    stays `interrupted`, nothing errors). A valid decision goes back to the node that escalated,
    which applies it exactly once.

    Args:
        name: The node's name (`reliable_step`'s default `escalate_to`).
        allowed: The decisions a reviewer may take.
        format: `"reliable"` (the `Escalation` as a dict), `"agent_inbox"` (a `HumanInterrupt`
            list) or `"hitl"` (a `HumanInTheLoopMiddleware` `HITLRequest`).
        mode: `"per_task"` or `"single"`; default `"single"` for the `agent_inbox` and `hitl`
            formats (their stock UIs answer without an interrupt id) and `"per_task"` for
            `"reliable"`. Escalations in separate subgraph instances (a `Send` into a subgraph)
            wait on their own subgraph's node: one interrupt per instance.

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
        mode: Mode | None = None,
    ) -> None:
        super().__init__(name)
        if isinstance(allowed, str) or not allowed or any(a not in DECISIONS for a in allowed):
            msg = f"HumanEscalation(allowed=...) takes a non-empty list from {DECISIONS}, got {allowed!r}"
            raise ValueError(msg)
        if format not in ("reliable", "agent_inbox", "hitl"):
            msg = f"HumanEscalation(format={format!r}) must be 'reliable', 'agent_inbox' or 'hitl'"
            raise ValueError(msg)
        if mode not in (None, "per_task", "single"):
            msg = f"HumanEscalation(mode={mode!r}) must be 'per_task' or 'single'"
            raise ValueError(msg)
        self.allowed: tuple[Action, ...] = tuple(dict.fromkeys(allowed))
        self.format: Format = format
        self.mode: Mode = mode or ("per_task" if format == "reliable" else "single")
        self.schema = response_schema(format, self.allowed)

    # -- the drivers -------------------------------------------------------------------------------
    # The questions are generators: they yield each decision to accept (the ledger's compare-and-set)
    # and get back None or the error that refused it, so the sync and async drivers share them; the
    # async one accepts off the event loop (the ledger may wait on a database lock).

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        questions = self._questions(input)
        if not isinstance(questions, Generator):
            return questions
        try:
            escalation_id, decision = next(questions)
            while True:
                refused = _accepted(escalation_id, decision)
                if refused is None and (store := current_store()) is not None:
                    note_status(store, escalation_id, "applied", decision=_body(decision), by=_who(decision))
                escalation_id, decision = questions.send(refused)
        except StopIteration as done:
            return done.value

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        questions = self._questions(input)
        if not isinstance(questions, Generator):
            return questions
        try:
            escalation_id, decision = next(questions)
            while True:
                refused = await asyncio.to_thread(_accepted, escalation_id, decision)
                if refused is None and (store := current_store()) is not None:
                    await anote_status(store, escalation_id, "applied", decision=_body(decision), by=_who(decision))
                escalation_id, decision = questions.send(refused)
        except StopIteration as done:
            return done.value

    def _questions(self, input: Any) -> Any:
        """What this run does: a generator of questions, or (nothing to ask) the node's result."""
        kind = payload_kind(input)
        if kind not in (None, "review"):
            msg = f"node {self.name!r} received a {kind!r} payload meant for the step that escalated"
            raise ValueError(msg)
        if kind == "review":
            return self._park(input) if self.mode == "single" else self._review(input)
        # Reached plainly: by a conditional edge (a router or gate parked its escalations in state),
        # as the keep-alive trigger of a review in flight (a no-op), or (`single`) to ask what waits.
        records = task_records(input)
        parked = {key: rec for key, rec in records.items() if rec.get("pending") == "review" and "review" in rec}
        if not parked:
            return {}
        if self.mode == "single":
            return self._single(self._waiting(input))
        unparked = {
            key: {**{k: v for k, v in rec.items() if k != "review"}, "rev": rec["rev"] + 1}
            for key, rec in parked.items()
        }
        return Command(
            goto=[Send(self.name, rec["review"]) for rec in parked.values()],
            update={RELIABILITY_KEY: {"tasks": unparked}},
        )

    # -- per_task: one interrupt per escalated task -------------------------------------------------

    def _review(self, task: ReviewTask) -> Generator[tuple[str, Decision], Any, Command[Any]]:
        escalation = {**task["escalation"], "allowed_decisions": list(self.allowed)}
        shown, rejected = escalation, 0
        while True:
            decision, error = self._ask(escalation, shown)
            if decision is None and error is None:
                continue  # a late answer for an escalation answered before: asked again, unchanged
            if decision is not None:
                error = yield escalation["id"], decision
                if error is None:
                    return self._back(task, escalation, decision)
            rejected += 1
            shown = self._rejected(task, escalation, error, rejected)

    def _ask(self, escalation: dict[str, Any], shown: dict[str, Any]) -> tuple[Decision | None, Any]:
        """Interrupt with `shown`; the answer as a validated decision, or the error that refused it."""
        answer = interrupt(render(shown, self.format), response_schema=self.schema)
        if _keyed(answer):  # keyed by escalation id, as the library's clients send it
            _late(answer, [escalation["id"]])
            if escalation["id"] not in answer:
                return None, None
            answer = answer[escalation["id"]]
        return self._parse(answer, escalation)

    def _parse(self, answer: Any, escalation: dict[str, Any]) -> tuple[Decision | None, Any]:
        try:
            answer = as_stored(answer)
            named, expected = named_action(answer), action_name(escalation)
            if named is not None and named != expected:  # an answer to what another escalation showed
                msg = (
                    f"this answer is for {named!r}, but the escalation waiting here is {expected!r} "
                    "(the one you answered was probably answered by someone else first); nothing was applied"
                )
                raise InvalidAnswerError(msg, answer=answer)
            kind = escalation.get("kind", "output")
            return parse_answer(answer, allowed=self.allowed, kind=kind, original=escalation["output"]), None
        except InvalidAnswerError as err:
            return None, err

    @staticmethod
    def _rejected(task: ReviewTask, escalation: dict[str, Any], error: Any, count: int) -> dict[str, Any]:
        emit({"type": "answer_rejected", "step": escalation["step"], "task": task["key"], "reason": error.reason})
        return {**escalation, "rejected": {"reason": error.reason, "count": count}}

    def _back(self, task: ReviewTask, escalation: dict[str, Any], decision: Decision) -> Command[Any]:
        return Command(goto=[Send(task["return_to"], self._payload(task, decision, task["record"])), self.name])

    def _payload(self, task: ReviewTask, decision: Decision, record: Any) -> StepTask:
        emit({"type": "decision", "step": task["escalation"]["step"], "task": task["key"], **decision.recorded()})
        return {
            "__reliable_graph__": "step",
            "key": task["key"],
            "push": task["push"],
            "input": task["input"],
            "record": record,
            "decision": decision.model_dump(mode="json", exclude_unset=True),
            "update": task["update"],
            "escalation": task["escalation"],
        }

    # -- single: one interrupt carrying every escalation waiting in the graph -------------------------

    def _park(self, task: ReviewTask) -> Command[Any]:
        """Keep a review in the task's record (in state) and come back plainly, to ask them all together."""
        record: dict[str, Any] = {**task["record"], "review": task}
        record["rev"] = int(task["record"].get("rev", 0)) + 1
        return Command(goto=self.name, update={RELIABILITY_KEY: {"tasks": {task["key"]: record}}})

    def _waiting(self, state: Any) -> list[_Waiting]:
        """The reviews parked in `state`, oldest first (the same order on every run of the node)."""
        found = []
        for key, rec in task_records(state).items():
            review = rec.get("review") if rec.get("pending") == "review" else None
            if isinstance(review, Mapping):
                escalation = {**review["escalation"], "allowed_decisions": list(self.allowed)}
                found.append(_Waiting(key=key, escalation=escalation, review=review))  # type: ignore[arg-type]
        return sorted(found, key=lambda w: (str(w.escalation.get("created_at") or ""), w.id))

    def _single(self, waiting: list[_Waiting]) -> Generator[tuple[str, Decision], Any, Command[Any]]:
        decisions: dict[str, Decision] = {}
        rejected: dict[str, dict[str, Any]] = {}
        while len(decisions) < len(waiting):
            for item, decision, error in self._ask_all(waiting, decisions, rejected):
                if decision is not None:
                    error = yield item.id, decision
                    if error is None:
                        decisions[item.id] = decision
                        continue
                self._reject(item, error, rejected)
        return self._send_back(waiting, decisions)

    def _ask_all(
        self, waiting: list[_Waiting], decisions: Mapping[str, Decision], rejected: Mapping[str, dict[str, Any]]
    ) -> list[tuple[_Waiting, Decision | None, Any]]:
        """One interrupt for every escalation still unanswered; each part of the answer parsed for its escalation."""
        shown = [w for w in waiting if w.id not in decisions]
        value = render(
            [{**w.escalation, **({"rejected": rejected[w.id]} if w.id in rejected else {})} for w in shown], self.format
        )
        answer = interrupt(value, response_schema=response_schema(self.format, self.allowed, count=len(shown)))
        return [(w, *self._parse(part, w.escalation)) for w, part in _assign(answer, shown)]

    @staticmethod
    def _reject(item: _Waiting, error: Any, rejected: dict[str, dict[str, Any]]) -> None:
        count = int(rejected.get(item.id, {}).get("count", 0)) + 1
        rejected[item.id] = {"reason": error.reason, "count": count}
        emit({"type": "answer_rejected", "step": item.escalation["step"], "task": item.key, "reason": error.reason})

    def _send_back(self, waiting: list[_Waiting], decisions: Mapping[str, Decision]) -> Command[Any]:
        """Every decision back to its node at once; the reviews taken out of the records."""
        sends: list[Send | str] = []
        records: dict[str, Any] = {}
        for item in waiting:
            record: dict[str, Any] = {k: v for k, v in item.review["record"].items() if k != "review"}
            record["rev"] = int(item.review["record"].get("rev", 0)) + 2  # past the parked record's revision
            records[item.key] = record
            sends.append(Send(item.review["return_to"], self._payload(item.review, decisions[item.id], record)))
        return Command(goto=[*sends, self.name], update={RELIABILITY_KEY: {"tasks": records}})


def _body(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(mode="json", exclude_unset=True)


def _who(decision: Decision) -> str:
    """Who took a decision: its reviewer, or (a raw answer naming nobody) a direct resume."""
    return decision.reviewer or DIRECT


def _accepted(escalation_id: str, decision: Decision) -> InvalidAnswerError | None:
    """Accept `decision` in the ledger: None, or the error that refused it."""
    try:
        accept(escalation_id, decision)
    except InvalidAnswerError as err:
        return err
    return None


def decision_of(task: StepTask) -> Decision | None:
    """The validated decision a continuation carries, if any."""
    raw = task.get("decision")
    return None if raw is None else Decision.model_validate(raw)
