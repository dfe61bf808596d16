"""ConfidenceRouter: score a step's output against its threshold; pass, retry or escalate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from reliable_graph._state_access import as_mapping, read, read_optional
from reliable_graph.evaluators.base import EvalInput, Score, arun_evaluator, run_evaluator
from reliable_graph.nodes._common import (
    ReliableNode,
    attempt_entry,
    build_escalation,
    check_count,
    check_evaluators,
    check_routes,
    check_threshold,
    escalation_update,
    last_good_checkpoint,
    outcome_event,
    routed,
    step_record,
    verdict_event,
)
from reliable_graph.state import RELIABILITY_KEY

__all__ = ["ConfidenceRouter", "latest_verdict"]

HUMAN_RERUNS = ("human_retry", "human_context")


def latest_verdict(state: Any, step: str) -> str | None:
    """The latest verdict recorded for `step` (`pass`, `retry`, `escalate`), for conditional edges.

    Example:
        ```python
        from reliable_graph import latest_verdict

        state = {"reliability": {"steps": {"draft": {"attempts": [{"verdict": "retry"}, {"verdict": "pass"}]}}}}
        assert latest_verdict(state, "draft") == "pass"
        assert latest_verdict({}, "draft") is None
        ```
    """
    attempts = step_record(state, step).get("attempts") or []
    return attempts[-1]["verdict"] if attempts else None


@dataclass(frozen=True, slots=True)
class Attempt:
    """Where an attempt stands: its number, how many are allowed, what started it."""

    number: int
    budget: int
    pending: str | None
    last_good: str | None


class OutputScoring:
    """The scoring core shared by `ConfidenceRouter` and `reliable_step`."""

    def __init__(
        self,
        evaluator: Any,
        *,
        threshold: float,
        max_retries: int,
        query_key: str,
        context_key: str,
        output_key: str,
        input_keys: Sequence[str] | None,
        raise_errors: bool,
        what: str,
    ) -> None:
        self.evaluator = check_evaluators(evaluator, what=f"{what}(evaluator=...)")[0]
        self.threshold = check_threshold(threshold, what=f"{what}(threshold=...)")
        self.max_retries = check_count(max_retries, what=f"{what}(max_retries=...)")
        self.query_key = query_key
        self.context_key = context_key
        self.output_key = output_key
        self.input_keys = tuple(input_keys) if input_keys is not None else (query_key,)
        self.raise_errors = raise_errors

    def attempt(self, state: Any, step: str, config: RunnableConfig) -> Attempt:
        """Number this attempt from the step's record: a fresh visit starts at 1."""
        record = step_record(state, step)
        pending = record.get("pending")
        if pending is None:
            return Attempt(1, 1 + self.max_retries, None, last_good_checkpoint(config))
        number = len(record.get("attempts") or []) + 1
        budget = number if pending in HUMAN_RERUNS else 1 + self.max_retries
        return Attempt(number, budget, pending, record.get("last_good_checkpoint_id"))

    def sample(self, state: Any, output: Any, context: Any, step: str) -> EvalInput:
        """The evaluator's input for `output`."""
        query = read_optional(state, self.query_key)
        return EvalInput(
            query=None if query is None else str(query),
            contexts=list(context or []),
            output=output,
            step=step,
            state=as_mapping(state),
        )

    def score(self, sample: EvalInput) -> Score:
        """Score synchronously."""
        return run_evaluator(self.evaluator, sample, raise_errors=self.raise_errors)

    async def ascore(self, sample: EvalInput) -> Score:
        """Score asynchronously."""
        return await arun_evaluator(self.evaluator, sample, raise_errors=self.raise_errors)

    def decide(
        self,
        *,
        state: Any,
        config: RunnableConfig,
        step: str,
        node: str,
        attempt: Attempt,
        score: Score,
        output: Any,
        context: Any,
        pass_to: str | None,
        rerun_to: str,
        final: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """The verdict and the `reliability` update for one scored attempt (`final`: no retry)."""
        if score.passes(self.threshold) and not final:
            verdict = "pass"
            outcome: str | None = "pass" if attempt.number == 1 and attempt.pending is None else "retry_pass"
        elif attempt.number < attempt.budget and not final:
            verdict, outcome = "retry", None
        else:
            verdict, outcome = "escalate", "escalate"
        entry = attempt_entry(attempt.number, score, verdict, self.threshold, "output")
        events = [verdict_event(step, node, entry)]
        if outcome is not None:
            events.append(outcome_event(step, outcome, attempts=attempt.number, confidence=score.value))
        record: dict[str, Any] = {
            "attempts": [entry],
            "threshold": self.threshold,
            "pending": "retry" if verdict == "retry" else None,
            "outcome": outcome,
            "last_good_checkpoint_id": attempt.last_good,
        }
        if attempt.pending is None:
            record["reset"] = True
        update: dict[str, Any] = {"steps": {step: record}, "events": events}
        if verdict == "escalate":
            prior = (step_record(state, step).get("attempts") or []) if attempt.pending else []
            payload = build_escalation(
                step=step,
                node=node,
                config=config,
                state=state,
                score=score,
                threshold=self.threshold,
                attempts=[*prior, entry],
                output=output,
                context=context,
                input_keys=self.input_keys,
                last_good=attempt.last_good,
            )
            update.update(
                escalation_update(
                    payload,
                    raw_output=output,
                    output_key=self.output_key,
                    context_key=self.context_key,
                    pass_to=pass_to,
                    rerun_to=rerun_to,
                )
            )
        return verdict, update


class ConfidenceRouter(ReliableNode):
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
    ) -> None:
        super().__init__(name)
        self.step = step or name
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
        )
        self.routes = check_routes({"pass_to": pass_to, "retry_to": retry_to, "escalate_to": escalate_to}, node=name)
        self.rerun_to = rerun_to or retry_to or self.step

    def _prepare(self, state: Any, config: RunnableConfig) -> tuple[Attempt, Any, Any, EvalInput]:
        attempt = self.scoring.attempt(state, self.step, config)
        output = read(state, self.scoring.output_key, node=self.name)
        context = read_optional(state, self.scoring.context_key)
        return attempt, output, context, self.scoring.sample(state, output, context, self.step)

    def _finish(
        self, state: Any, config: RunnableConfig, attempt: Attempt, score: Score, output: Any, context: Any
    ) -> Any:
        verdict, record = self.scoring.decide(
            state=state,
            config=config,
            step=self.step,
            node=self.name,
            attempt=attempt,
            score=score,
            output=output,
            context=context,
            pass_to=self.routes["pass_to"],
            rerun_to=self.rerun_to,
        )
        target = self.routes[{"pass": "pass_to", "retry": "retry_to", "escalate": "escalate_to"}[verdict]]
        return routed(target, {RELIABILITY_KEY: record})

    def _func(self, state: Any, config: RunnableConfig) -> Any:
        attempt, output, context, sample = self._prepare(state, config)
        return self._finish(state, config, attempt, self.scoring.score(sample), output, context)

    async def _afunc(self, state: Any, config: RunnableConfig) -> Any:
        attempt, output, context, sample = self._prepare(state, config)
        return self._finish(state, config, attempt, await self.scoring.ascore(sample), output, context)
