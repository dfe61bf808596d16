"""HumanEscalation: pause on `interrupt()` with a structured escalation; apply the decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from reliable_graph._state_access import read_optional
from reliable_graph.nodes._common import DECISIONS, ReliableNode, outcome_event, routed
from reliable_graph.nodes.refetch import merge_context
from reliable_graph.state import RELIABILITY_KEY, emit

__all__ = ["Decision", "HumanEscalation", "decision_from_agent_inbox", "to_agent_inbox"]

Action = Literal["approve", "edit", "provide_context", "retry", "terminate"]


class Decision(BaseModel):
    """A reviewer's answer to an escalation, validated on resume.

    `approve` keeps the step's output; `edit` replaces it with `output`; `provide_context`
    adds `context` and re-runs the step; `retry` re-runs it as is; `terminate` ends the task.

    Example:
        ```python
        import pydantic
        from reliable_graph import Decision

        assert Decision(action="edit", output={"answer": "fixed"}).output == {"answer": "fixed"}
        try:
            Decision(action="edit")
        except pydantic.ValidationError as err:
            assert "output" in str(err)
        ```
    """

    model_config = ConfigDict(extra="forbid")

    action: Action
    """What to do."""
    output: Any = None
    """The replacement output (`edit` only)."""
    context: list[str | dict[str, Any]] | None = None
    """Chunks to add before re-running (`provide_context` only)."""
    reason: str | None = None
    """Why, in the reviewer's words (recorded)."""
    reviewer: str | None = None
    """Who decided (recorded)."""

    @model_validator(mode="after")
    def _fields_match_action(self) -> Decision:
        given = self.model_fields_set
        if self.action == "edit" and "output" not in given:
            msg = "an 'edit' decision needs 'output': the replacement output"
            raise ValueError(msg)
        if self.action != "edit" and "output" in given:
            msg = f"'output' is only for 'edit'; a {self.action!r} decision would silently drop it"
            raise ValueError(msg)
        if self.action == "provide_context" and not self.context:
            msg = "a 'provide_context' decision needs a non-empty 'context' list"
            raise ValueError(msg)
        if self.action != "provide_context" and "context" in given:
            msg = f"'context' is only for 'provide_context'; a {self.action!r} decision would drop it"
            raise ValueError(msg)
        return self


class AgentInboxResponse(BaseModel):
    """A LangChain Agent Inbox `HumanResponse`."""

    type: Literal["accept", "edit", "response", "ignore"]
    args: Any = None


def to_agent_inbox(escalation: dict[str, Any]) -> dict[str, Any]:
    """Render an escalation in Agent Inbox's `HumanInterrupt` shape.

    accept -> approve, edit -> edit, response -> provide_context, ignore -> terminate.

    Example:
        ```python
        from reliable_graph import to_agent_inbox

        inbox = to_agent_inbox({"step": "draft", "confidence": 0.4, "threshold": 0.8,
                                "reason": "cites no source", "output": "text",
                                "allowed_decisions": ["approve", "edit", "terminate"]})
        assert inbox["action_request"] == {"action": "draft", "args": {"output": "text"}}
        assert inbox["config"]["allow_respond"] is False and inbox["config"]["allow_ignore"] is True
        ```
    """
    allowed = set(escalation.get("allowed_decisions", DECISIONS))
    return {
        "action_request": {"action": escalation["step"], "args": {"output": escalation.get("output")}},
        "config": {
            "allow_accept": "approve" in allowed,
            "allow_edit": "edit" in allowed,
            "allow_respond": "provide_context" in allowed,
            "allow_ignore": "terminate" in allowed,
        },
        "description": (
            f"Step {escalation['step']!r} scored {escalation['confidence']:.2f} "
            f"(threshold {escalation['threshold']:.2f}): {escalation['reason']}"
        ),
    }


def decision_from_agent_inbox(response: Any) -> Decision:
    """Map an Agent Inbox `HumanResponse` (or a one-item list of them) to a `Decision`.

    Example:
        ```python
        from reliable_graph import decision_from_agent_inbox

        d = decision_from_agent_inbox([{"type": "response", "args": "the Q3 figure is 4.2M"}])
        assert d.action == "provide_context" and d.context == ["the Q3 figure is 4.2M"]
        ```
    """
    if isinstance(response, list):
        if len(response) != 1:
            msg = f"expected one Agent Inbox response, got {len(response)}"
            raise ValueError(msg)
        response = response[0]
    item = response if isinstance(response, AgentInboxResponse) else AgentInboxResponse.model_validate(response)
    if item.type == "accept":
        return Decision(action="approve")
    if item.type == "ignore":
        return Decision(action="terminate")
    if item.type == "response":
        return Decision(action="provide_context", context=[str(item.args)])
    args = item.args.get("args", item.args) if isinstance(item.args, dict) else item.args
    output = args.get("output", args) if isinstance(args, dict) else args
    return Decision(action="edit", output=output)


class HumanEscalation(ReliableNode):
    """The node where escalated steps wait for a human, via LangGraph's `interrupt()`.

    It surfaces the pending escalation (step, confidence, threshold, specific reason, attempts,
    task inputs, output, context, last good checkpoint id, created time, allowed decisions)
    and validates the resume value against `Decision` (`interrupt(..., response_schema=...)`):
    an invalid decision raises a `pydantic.ValidationError` from `invoke`, changes nothing,
    and the interrupt can be answered again. One node serves every step of a graph.

    Args:
        name: The node's name (`reliable_step`'s default `escalate_to`).
        allowed: The decisions a reviewer may take.
        format: `"reliable"` (the escalation dict, resumed with a `Decision`) or
            `"agent_inbox"` (a `HumanInterrupt` list, resumed with Agent Inbox responses).

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
        escalation = paused["__interrupt__"][0].value
        assert escalation["step"] == "answer" and escalation["confidence"] == 0.0
        out = graph.invoke(Command(resume={"action": "edit", "output": "42"}), config)
        assert out["answer"] == "42" and step_outcomes(out) == {"answer": "edited"}
        ```
    """

    def __init__(
        self,
        *,
        name: str = "human_escalation",
        allowed: Sequence[Action] = DECISIONS,  # type: ignore[assignment]
        format: Literal["reliable", "agent_inbox"] = "reliable",
    ) -> None:
        super().__init__(name)
        unknown = [a for a in allowed if a not in DECISIONS]
        if not allowed or unknown or isinstance(allowed, str):
            msg = f"HumanEscalation(allowed=...) takes a non-empty list from {DECISIONS}, got {allowed!r}"
            raise ValueError(msg)
        if format not in ("reliable", "agent_inbox"):
            msg = f"HumanEscalation(format={format!r}) must be 'reliable' or 'agent_inbox'"
            raise ValueError(msg)
        self.allowed = tuple(allowed)
        self.format = format
        self.routes = {}
        self.schema: type[BaseModel] = (
            Decision
            if set(self.allowed) == set(DECISIONS)
            else create_model(
                "Decision",
                __base__=Decision,
                action=(Literal[self.allowed], Field(description="one of the allowed decisions")),  # type: ignore[arg-type]
            )
        )

    def _ask(self, escalation: dict[str, Any]) -> Decision:
        payload = {**escalation, "allowed_decisions": list(self.allowed)}
        if self.format == "agent_inbox":
            answer = interrupt([to_agent_inbox(payload)], response_schema=list[AgentInboxResponse])
            decision = decision_from_agent_inbox(answer)
            if decision.action not in self.allowed:
                msg = f"decision {decision.action!r} is not allowed here (allowed: {', '.join(self.allowed)})"
                raise ValueError(msg)
            return decision
        result = interrupt(payload, response_schema=self.schema)
        assert isinstance(result, Decision)
        return result

    def _func(self, state: Any, config: RunnableConfig) -> Any:
        record = read_optional(state, RELIABILITY_KEY) or {}
        escalation = record.get("escalation")
        if not escalation:
            msg = (
                f"node {self.name!r} ran with no pending escalation in state[{RELIABILITY_KEY!r}]; "
                "route to it only from reliable_step or ConfidenceRouter (escalate_to=...)"
            )
            raise ValueError(msg)
        decision = self._ask(escalation)
        return self._apply(state, escalation, record.get("escalation_route") or {}, decision)

    async def _afunc(self, state: Any, config: RunnableConfig) -> Any:
        return self._func(state, config)

    def _apply(self, state: Any, escalation: dict[str, Any], route: dict[str, Any], decision: Decision) -> Any:
        step = escalation["step"]
        taken = decision.model_dump(mode="json", exclude_none=True)
        events = [emit({"type": "decision", "step": step, **taken})]
        record: dict[str, Any] = {"decision": taken, "pending": None}
        rel: dict[str, Any] = {"escalation": None, "escalation_route": None, "steps": {step: record}}
        update: dict[str, Any] = {}
        action = decision.action
        goto: str | None
        if action in ("approve", "edit"):
            record["outcome"] = "approved" if action == "approve" else "edited"
            output = route.get("raw_output", escalation.get("output")) if action == "approve" else decision.output
            update[route.get("output_key", "output")] = output
            goto = route.get("pass_to")
        elif action == "terminate":
            record["outcome"] = "terminated"
            rel["status"] = "terminated"
            goto = END
        else:
            record["outcome"] = None
            if route.get("kind") != "gate":
                record["pending"] = "human_context" if action == "provide_context" else "human_retry"
            if action == "provide_context":
                key = route.get("context_key", "context")
                update[key] = merge_context(read_optional(state, key), decision.context, "append")
            goto = route.get("rerun_to", step)
        if record["outcome"]:
            events.append(outcome_event(step, record["outcome"], decision=action))
        rel["events"] = events
        update[RELIABILITY_KEY] = rel
        return routed(goto, update)
