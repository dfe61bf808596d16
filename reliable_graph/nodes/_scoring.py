"""The scoring core shared by `ConfidenceRouter` and `reliable_step`: attempts, verdicts, records."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reliable_graph._messages import PLAIN, is_messages, query_of, scorable
from reliable_graph._node import TaskRef, check_count, check_evaluators, check_threshold
from reliable_graph._state_access import as_mapping, read_optional
from reliable_graph.evaluators.base import EvalInput, Score, arun_evaluator, eval_input, run_evaluator
from reliable_graph.nodes._task import TaskContext, build_escalation, compact, new_record, raise_audit
from reliable_graph.state import AttemptRecord, Verdict, emit, stream_writer

__all__ = ["MESSAGES_KEY", "Attempt", "OutputScoring", "Scored", "shown_attempts"]

MESSAGES_KEY = "messages"
"""Where a chat graph keeps its conversation (`MessagesState`)."""


@dataclass(slots=True)  # not frozen: built on every step, and a frozen init costs a setattr per field
class Attempt:
    """Where an attempt stands: its number and the number at which the task escalates."""

    number: int
    budget: int
    human: bool
    """This attempt was asked for by a reviewer (retry or provide_context)."""


@dataclass(slots=True)  # not frozen: built on every step, and a frozen init costs a setattr per field
class Scored:
    """A scored attempt: its verdict and the task's record after it."""

    verdict: Verdict
    record: dict[str, Any]
    entry: AttemptRecord


class OutputScoring:
    """Scores a step's output against its threshold and keeps the task's record."""

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
        audit_rate: float = 0.0,
        audit_seed: int = 0,
    ) -> None:
        self.evaluator = check_evaluators(evaluator, what=f"{what}(evaluator=...)")[0]
        self.threshold = check_threshold(threshold, what=f"{what}(threshold=...)")
        self.max_retries = check_count(max_retries, what=f"{what}(max_retries=...)")
        for key, value in (("query_key", query_key), ("context_key", context_key), ("output_key", output_key)):
            if not isinstance(value, str) or not value:
                msg = f"{what}({key}=...) must be a state key (a non-empty string), got {value!r}"
                raise ValueError(msg)
        self.query_key = query_key
        self.context_key = context_key
        self.output_key = output_key
        if isinstance(input_keys, str):
            msg = f"{what}(input_keys=...) takes a list of state keys, got the string {input_keys!r}"
            raise TypeError(msg)
        self.input_keys = tuple(input_keys) if input_keys is not None else (query_key,)
        self.explicit_inputs = input_keys is not None
        self.raise_errors = raise_errors
        if isinstance(audit_rate, bool) or not isinstance(audit_rate, (int, float)) or not 0 <= audit_rate <= 1:
            msg = f"{what}(audit_rate=...) must be a number in [0, 1], got {audit_rate!r}"
            raise ValueError(msg)
        if isinstance(audit_seed, bool) or not isinstance(audit_seed, int):
            msg = f"{what}(audit_seed=...) must be an integer, got {audit_seed!r}"
            raise TypeError(msg)
        self.audit_rate = float(audit_rate)
        self.audit_seed = audit_seed
        self._first = Attempt(1, 1 + self.max_retries, False)

    def audited(self, ctx: TaskContext, rev: int) -> bool:
        """Whether this passing output goes to reviewers for an audit: a seeded draw per task and revision."""
        if self.audit_rate <= 0.0:
            return False
        draw = hashlib.sha256(f"{self.audit_seed}|{ctx.thread_id}|{ctx.ref.key}|{rev}".encode()).digest()
        return int.from_bytes(draw[:8], "big") / 2**64 < self.audit_rate

    def audit(self, ctx: TaskContext, record: Any, score: Score, output: Any, context: Any) -> str:
        """Send a passing output to reviewers as an audit item (nothing waits on it); its id."""
        escalation = build_escalation(
            ctx,
            kind="audit",
            score=score,
            threshold=self.threshold,
            attempts=shown_attempts(record, self.threshold),
            output=output,
            update={},
            context=context,
            input_keys=self.input_keys,
            rev=int(record.get("rev", 0)) + 1,
        )
        return raise_audit(ctx, escalation, self.audit_rate)

    def attempt(self, ctx: TaskContext) -> Attempt:
        """Number this attempt from the task's record: a new task starts at 1."""
        if ctx.fresh:
            return self._first  # never changed by its users
        number = len(ctx.record.get("attempts") or []) + 1
        if ctx.record.get("pending") in ("human_retry", "human_context"):
            return Attempt(number, number, True)
        return Attempt(number, 1 + self.max_retries, False)

    def sample(self, state: Any, output: Any, context: Any, step: str) -> EvalInput:
        """The evaluator's input for `output`.

        Chat graphs: an output that is a message list (or a message) is scored as the last AI
        message's text; a query that is a message list is its last human message; with no query
        in the state, the last human message of `messages` is the query.
        """
        query = state.get(self.query_key) if type(state) is dict else read_optional(state, self.query_key)
        if query is None:
            query = query_of(read_optional(state, MESSAGES_KEY))
        elif type(query) is not str and is_messages(query):
            query = query_of(query)
        return eval_input(
            query if query is None or type(query) is str else str(query),
            list(context) if context else [],
            output if type(output) in PLAIN else scorable(output),
            step,
            state if type(state) is dict else as_mapping(state) if state is not None else {},
        )

    def score(self, sample: EvalInput) -> Score:
        """Score synchronously."""
        return run_evaluator(self.evaluator, sample, raise_errors=self.raise_errors)

    async def ascore(self, sample: EvalInput) -> Score:
        """Score asynchronously."""
        return await arun_evaluator(self.evaluator, sample, raise_errors=self.raise_errors)

    def judge(self, ctx: TaskContext, attempt: Attempt, score: Score, *, node: str, final: bool = False) -> Scored:
        """The verdict on a scored attempt and the task's record after it (events emitted)."""
        if score.value >= self.threshold and not final:  # `Score.passes`, inlined on the passing path
            verdict: Verdict = "pass"
            outcome = "pass" if attempt.number == 1 and ctx.fresh else "retry_pass"
        elif attempt.number < attempt.budget and not final:
            verdict, outcome = "retry", None
        else:
            verdict, outcome = "escalate", "escalate"
        writer = stream_writer()
        entry: AttemptRecord = {"n": attempt.number, "score": score.value, "verdict": verdict}
        if verdict != "pass":
            entry["reason"] = score.reason
            missing = score.details.get("missing")
            if isinstance(missing, list) and all(isinstance(m, str) for m in missing):
                entry["missing"] = list(missing)
        if writer is not None:
            emit(self._verdict_event(ctx.ref, node, attempt.number, verdict, score), writer)
        record: dict[str, Any]
        if verdict == "pass" and ctx.fresh:  # the common path: a compact record, built directly
            record = {**ctx.record, "attempts": [entry]}
        else:
            record = {
                **ctx.record,
                "threshold": self.threshold,
                "attempts": [*(() if ctx.fresh else ctx.record.get("attempts") or ()), entry],
            }
        record.pop("outcome", None)
        if ctx.fresh and verdict != "pass" and (checkpoint := ctx.checkpoint_id()):
            record["checkpoint"] = checkpoint
        if verdict == "retry":
            record["pending"] = "retry"
        else:
            record["outcome"] = outcome
            if verdict == "pass" and not ctx.fresh:
                record = dict(compact(record))
            if writer is not None:
                emit(_outcome_event(ctx.ref, outcome, attempt.number, score), writer)
        return Scored(verdict, record, entry)

    def first_pass(self, ref: TaskRef, current: Any, score: Score, *, node: str) -> dict[str, Any]:
        """`judge`, then `with_key`, for a new task whose first attempt passed: its finished record (events emitted).

        `current` is the record the task starts from (`new_task`); the result is what `with_key`
        would write for the record `judge` returns, built in one step (the passing path's shortcut).
        """
        writer = stream_writer()
        if writer is not None:
            emit(self._verdict_event(ref, node, 1, "pass", score), writer)
            emit(_outcome_event(ref, "pass", 1, score), writer)
        entry = {"n": 1, "score": score.value, "verdict": "pass"}
        if current is None and ref.path == ref.step:  # what `new_record` starts it with: step and rev 0
            return {"step": ref.step, "rev": 1, "attempts": [entry], "outcome": "pass"}
        record = new_record(ref, current)
        return {**record, "rev": int(record.get("rev", 0)) + 1, "attempts": [entry], "outcome": "pass"}

    def _verdict_event(self, ref: TaskRef, node: str, attempt: int, verdict: Verdict, score: Score) -> dict[str, Any]:
        return {
            "type": "verdict",
            "step": ref.step,
            "task": ref.key,
            "node": node,
            "attempt": attempt,
            "kind": "output",
            "verdict": verdict,
            "score": score.value,
            "threshold": self.threshold,
            "reason": score.reason,
            "evaluator": score.evaluator,
        }


def _outcome_event(ref: TaskRef, outcome: str | None, attempts: int, score: Score) -> dict[str, Any]:
    return {
        "type": "outcome",
        "step": ref.step,
        "task": ref.key,
        "outcome": outcome,
        "attempts": attempts,
        "confidence": score.value,
    }


def shown_attempts(record: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    """A task's attempts as a reviewer sees them."""
    return [
        {
            "attempt": a["n"],
            "kind": a.get("kind", "output"),
            "score": a["score"],
            "threshold": threshold,
            "verdict": a["verdict"],
            "reason": a.get("reason", ""),
        }
        for a in record.get("attempts") or ()
    ]
