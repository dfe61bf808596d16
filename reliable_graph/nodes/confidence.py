"""ConfidenceRouter: score a step's output against its threshold; pass, retry or escalate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.types import Command

from reliable_graph._node import check_routes
from reliable_graph._state_access import read, read_optional
from reliable_graph.escalation.decision import Decision
from reliable_graph.evaluators.base import Score
from reliable_graph.nodes._scoring import Attempt, OutputScoring, shown_attempts
from reliable_graph.nodes._task import (
    EscalatingNode,
    TaskContext,
    after_review,
    build_escalation,
    compact,
    escalate,
    open_task,
    with_key,
)
from reliable_graph.nodes.refetch import merge_context
from reliable_graph.state import RELIABILITY_KEY, Verdict, task_records

__all__ = ["ConfidenceRouter", "latest_verdict"]


def latest_verdict(state: Any, step: str) -> Verdict | None:
    """The latest verdict recorded for `step` (`pass`, `retry`, `escalate`), for conditional edges.

    Example:
        ```python
        from reliable_graph import latest_verdict

        state = {"reliability": {"tasks": {"draft": {"step": "draft", "rev": 2, "attempts": [
            {"n": 1, "score": 0.2, "verdict": "retry"}, {"n": 2, "score": 0.9, "verdict": "pass"}]}}}}
        assert latest_verdict(state, "draft") == "pass"
        assert latest_verdict({}, "draft") is None
        ```
    """
    record: Any = task_records(state).get(step) or {}
    attempts = record.get("attempts") or []
    return attempts[-1]["verdict"] if attempts else None


class ConfidenceRouter(EscalatingNode):
    """A node that scores the output a step left in state and routes on its threshold.

    `pass` goes to `pass_to`; below threshold it goes to `retry_to` (a `Refetch` node or the
    step itself) until `max_retries` retries are spent, then to `escalate_to` with a structured
    escalation. Give no targets at all to route with conditional edges on `latest_verdict`.

    Args:
        evaluator: The evaluator that scores the output.
        name: The node's name.
        step: The step whose output is scored (default: `name`); its record lives under this name.
        threshold: The step's threshold in [0, 1] (inclusive).
        max_retries: Retries before escalation (the reliability pattern: one).
        query_key: State key of the task's query.
        context_key: State key of the context the step used.
        output_key: State key of the step's output.
        input_keys: State keys shown to a reviewer as the task's inputs (default: the query).
        pass_to: Target when the score meets the threshold.
        retry_to: Target for a retry.
        escalate_to: Target for an escalation (a `HumanEscalation` node).
        rerun_to: Target when a reviewer asks to re-run the step (default: `retry_to`).
        raise_errors: Re-raise an exception from the evaluator instead of scoring it 0.
        audit_rate: The share of passing outputs sent to the inbox as `audit` items (see
            `reliable_step`); needs a store.
        audit_seed: Seeds the audit draws.

    Example:
        ```python
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import ConfidenceRouter, ReliabilityState, RequiredFields, step_outcomes

        class State(ReliabilityState, total=False):
            question: str
            answer: dict

        builder = StateGraph(State)
        builder.add_node("answer", lambda s: {"answer": {"text": "42", "source": "guide"}})
        builder.add_node(ConfidenceRouter(
            RequiredFields(fields=["text", "source"]), name="check", step="answer", threshold=1.0,
            output_key="answer", pass_to=END, retry_to="answer", escalate_to="human_escalation",
        ))
        builder.add_node("human_escalation", lambda s: {})
        builder.add_edge(START, "answer")
        builder.add_edge("answer", "check")
        out = builder.compile().invoke({"question": "meaning of life?"})
        assert step_outcomes(out) == {"answer": "pass"}
        ```
    """

    def __init__(
        self,
        evaluator: Any,
        *,
        name: str = "confidence_router",
        step: str | None = None,
        threshold: float,
        max_retries: int = 1,
        query_key: str = "question",
        context_key: str = "context",
        output_key: str = "output",
        input_keys: Sequence[str] | None = None,
        pass_to: str | None = None,
        retry_to: str | None = None,
        escalate_to: str | None = None,
        rerun_to: str | None = None,
        raise_errors: bool = False,
        audit_rate: float = 0.0,
        audit_seed: int = 0,
    ) -> None:
        super().__init__(name)
        self.step: str = step or name
        self.scoring = OutputScoring(
            evaluator,
            threshold=threshold,
            max_retries=max_retries,
            query_key=query_key,
            context_key=context_key,
            output_key=output_key,
            input_keys=input_keys,
            raise_errors=raise_errors,
            what="ConfidenceRouter",
            audit_rate=audit_rate,
            audit_seed=audit_seed,
        )
        self.routes = check_routes({"pass_to": pass_to, "retry_to": retry_to, "escalate_to": escalate_to}, node=name)
        self.rerun_to = rerun_to or retry_to or self.step
        self._declare(pass_to, retry_to, escalate_to, self.rerun_to if pass_to else None)

    def _may_audit(self) -> bool:
        return self.scoring.audit_rate > 0.0

    def _goto(self, ctx: TaskContext, route: str, update: dict[str, Any]) -> Any:
        target = self.routes[route]
        if target is None:
            return update
        return Command(goto=target, update=update)

    def _apply(self, ctx: TaskContext, decision: Decision) -> Any:
        assert ctx.review is not None
        escalation = ctx.review.get("escalation") or {}
        base, outcome = after_review(ctx, decision)
        action = decision.action
        if outcome is not None:
            rel = {RELIABILITY_KEY: with_key(ctx.ref, compact({**base, "outcome": outcome}))}
            if action == "terminate":
                return Command(goto=END, update=rel)
            edited = {self.scoring.output_key: decision.output} if action == "edit" else {}
            return Command(goto=self.routes["pass_to"] or END, update={**edited, **rel})
        base["pending"] = "human_context" if action == "provide_context" else "human_retry"
        update: dict[str, Any] = {RELIABILITY_KEY: with_key(ctx.ref, base)}
        if action == "provide_context":
            update[self.scoring.context_key] = merge_context(
                escalation.get("context"), decision.context_chunks(), "append"
            )
        return Command(goto=self.rerun_to, update=update)

    def _prepare(self, input: Any, config: RunnableConfig) -> Any:
        ctx = open_task(input, config, self.step)
        if ctx.decision is not None:
            return self._apply(ctx, ctx.decision)
        attempt = self.scoring.attempt(ctx)
        output = read(ctx.state, self.scoring.output_key, node=self.name)
        context = read_optional(ctx.state, self.scoring.context_key)
        return ctx, attempt, output, context, self.scoring.sample(ctx.state, output, context, self.step)

    def _finish(self, ctx: TaskContext, attempt: Attempt, score: Score, output: Any, context: Any) -> Any:
        scored = self.scoring.judge(ctx, attempt, score, node=self.name)
        record = scored.record
        if scored.verdict == "pass":
            if self.scoring.audit_rate > 0.0 and self.scoring.audited(ctx, int(record.get("rev", 0))):
                record["audit"] = self.scoring.audit(ctx, record, score, output, context)
            return self._goto(ctx, "pass_to", {RELIABILITY_KEY: with_key(ctx.ref, record)})
        if scored.verdict == "retry":
            return self._goto(ctx, "retry_to", {RELIABILITY_KEY: with_key(ctx.ref, record)})
        escalation = build_escalation(
            ctx,
            kind="output",
            score=score,
            threshold=self.scoring.threshold,
            attempts=shown_attempts(record, self.scoring.threshold),
            output=output,
            update={self.scoring.output_key: output},
            context=context,
            input_keys=self.scoring.input_keys,
            rev=int(record.get("rev", 0)) + 1,
        )
        escalate_to = self.routes["escalate_to"]
        return escalate(
            self.name,
            escalate_to or "",
            ctx,
            record,
            escalation,
            {self.scoring.output_key: output},
            park=escalate_to is None,
        )

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        prepared = self._prepare(input, config)
        if not isinstance(prepared, tuple):
            return prepared
        ctx, attempt, output, context, sample = prepared
        return self._finish(ctx, attempt, self.scoring.score(sample), output, context)

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        prepared = self._prepare(input, config)
        if not isinstance(prepared, tuple):
            return prepared
        ctx, attempt, output, context, sample = prepared
        return self._finish(ctx, attempt, await self.scoring.ascore(sample), output, context)
