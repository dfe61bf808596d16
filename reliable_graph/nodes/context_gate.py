"""ContextGate: check the context before a step spends compute on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.types import Command

from reliable_graph._node import (
    check_count,
    check_evaluators,
    check_routes,
    check_threshold,
    jsonable_or_repr,
)
from reliable_graph._state_access import as_mapping, read
from reliable_graph.escalation.decision import Decision
from reliable_graph.evaluators.base import (
    EvalInput,
    Score,
    arun_evaluator,
    as_chunks,
    evaluator_name,
    run_evaluator,
)
from reliable_graph.nodes._task import (
    EscalatingNode,
    TaskContext,
    build_escalation,
    escalate,
    open_task,
    reviewed_record,
    with_key,
)
from reliable_graph.nodes.refetch import merge_context
from reliable_graph.state import RELIABILITY_KEY, emit

__all__ = ["ContextGate"]


def _failure(check: dict[str, Any]) -> dict[str, Any]:
    """A failing check as the record keeps it while the task is live: its reason and missing topics."""
    missing = check["details"].get("missing")
    return {"reason": check["reason"], **({"missing": missing} if isinstance(missing, list) else {})}


class ContextGate(EscalatingNode):
    """A node that scores the context in state (relevance, completeness, freshness...) before a step.

    Every evaluator must reach its threshold for `pass`. Otherwise the gate sends the run to
    `refetch_to` (a `Refetch` node that returns here) until `max_refetches` are spent, then
    to `escalate_to`. With `drop_below`, chunks whose per-chunk relevance (an evaluator's
    `details["per_chunk"]`) is below it are removed from the context before the step sees it.
    The gate report (each check's score and reason, dropped chunks, verdict) is recorded
    under the guarded step's name. A reviewer of a gate escalation decides on the context:
    `approve` keeps it, `edit` replaces it, `provide_context` adds to it and re-checks.

    Args:
        evaluators: One evaluator or a list (e.g. `LexicalRelevance`, `Completeness`, `Freshness`).
        name: The node's name.
        step: The step this gate guards (default: `name`).
        threshold: One threshold for all evaluators, or a mapping evaluator name -> threshold.
        query_key: State key of the query.
        context_key: State key of the context.
        max_refetches: Re-fetches before escalating.
        drop_below: Per-chunk relevance under which a chunk is dropped; None keeps all chunks.
        input_keys: State keys shown to a reviewer as the task's inputs (default: the query).
        pass_to: Target when the context passes.
        refetch_to: Target for a re-fetch.
        escalate_to: Target for an escalation.
        raise_errors: Re-raise an evaluator's exception instead of scoring it 0.

    Example:
        ```python
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import Completeness, ContextGate, LexicalRelevance, ReliabilityState

        class State(ReliabilityState, total=False):
            question: str
            context: list

        gate = ContextGate(
            [LexicalRelevance(), Completeness(topics=["boiling point"])],
            name="gate", step="answer", threshold=0.5, drop_below=0.3,
            pass_to=END, refetch_to="refetch", escalate_to="human_escalation",
        )
        builder = StateGraph(State)
        builder.add_node(gate)
        builder.add_node("refetch", lambda s: {})
        builder.add_node("human_escalation", lambda s: {})
        builder.add_edge(START, "gate")
        out = builder.compile().invoke({
            "question": "boiling point of water",
            "context": ["Water's boiling point is 100 C.", "Cats purr."],
        })
        assert [c["text"] for c in out["context"]] == ["Water's boiling point is 100 C."]
        assert out["reliability"]["tasks"]["answer"]["gate"]["verdict"] == "pass"
        ```
    """

    def __init__(
        self,
        evaluators: Any,
        *,
        name: str = "context_gate",
        step: str | None = None,
        threshold: float | Mapping[str, float] = 0.5,
        query_key: str = "question",
        context_key: str = "context",
        max_refetches: int = 1,
        drop_below: float | None = None,
        input_keys: Sequence[str] | None = None,
        pass_to: str | None = None,
        refetch_to: str | None = None,
        escalate_to: str | None = None,
        raise_errors: bool = False,
    ) -> None:
        super().__init__(name)
        self.step: str = step or name
        self.evaluators = check_evaluators(evaluators, what="ContextGate(evaluators=...)")
        names = [evaluator_name(ev) for ev in self.evaluators]
        if len(set(names)) != len(names):
            msg = f"ContextGate evaluators need distinct names, got {names}"
            raise ValueError(msg)
        if isinstance(threshold, Mapping):
            unknown = sorted(set(threshold) - set(names))
            missing = [n for n in names if n not in threshold]
            if unknown or missing:
                msg = (
                    f"ContextGate(threshold=...) maps evaluator names to thresholds; evaluators are "
                    f"{names}, unknown: {unknown}, missing: {missing}"
                )
                raise ValueError(msg)
            self.thresholds = {n: check_threshold(threshold[n], what=f"ContextGate threshold of {n!r}") for n in names}
        else:
            value = check_threshold(threshold, what="ContextGate(threshold=...)")
            self.thresholds = dict.fromkeys(names, value)
        self.drop_below = (
            None if drop_below is None else check_threshold(drop_below, what="ContextGate(drop_below=...)")
        )
        self.max_refetches = check_count(max_refetches, what="ContextGate(max_refetches=...)")
        self.query_key = query_key
        self.context_key = context_key
        self.input_keys = tuple(input_keys) if input_keys is not None else (query_key,)
        self.raise_errors = raise_errors
        self.routes = check_routes(
            {"pass_to": pass_to, "refetch_to": refetch_to, "escalate_to": escalate_to}, node=name
        )
        self._declare(pass_to, refetch_to, escalate_to, name if pass_to else None)

    def _sample(self, state: Any) -> EvalInput:
        query = read(state, self.query_key, node=self.name)
        context = read(state, self.context_key, node=self.name)
        return EvalInput(
            query=None if query is None else str(query),
            contexts=list(as_chunks(context)),
            step=self.step,
            state=as_mapping(state),
        )

    def _goto(self, route: str, update: dict[str, Any]) -> Any:
        target = self.routes[route]
        return update if target is None else Command(goto=target, update=update)

    def _apply(self, ctx: TaskContext, decision: Decision) -> Any:
        assert ctx.review is not None
        kept = (ctx.review.get("update") or {}).get(self.context_key, [])
        base = reviewed_record(ctx, decision)
        action = decision.action
        emit({"type": "gate_decision", "step": self.step, "task": ctx.ref.key, "decision": action})
        if action == "terminate":
            emit({"type": "outcome", "step": self.step, "task": ctx.ref.key, "outcome": "terminated"})
            return Command(goto=END, update={RELIABILITY_KEY: with_key(ctx.ref, {**base, "outcome": "terminated"})})
        if action in ("approve", "edit"):
            context = kept if action == "approve" else merge_context(None, decision.output, "replace")
            gate: dict[str, Any] = dict(cast(dict[str, Any], base.get("gate") or {}))
            gate.pop("failed", None)
            base["gate"] = {**gate, "verdict": "approved" if action == "approve" else "edited"}
            update = {self.context_key: context, RELIABILITY_KEY: with_key(ctx.ref, base)}
            return Command(goto=self.routes["pass_to"] or END, update=update)
        if action == "provide_context":
            base["pending"] = "human_context"
            update = {
                self.context_key: merge_context(kept, decision.context_chunks(), "append"),
                RELIABILITY_KEY: with_key(ctx.ref, base),
            }
            return Command(goto=self.name, update=update)
        base["pending"] = "refetch"
        return Command(goto=self.routes["refetch_to"] or self.name, update={RELIABILITY_KEY: with_key(ctx.ref, base)})

    def _finish(self, ctx: TaskContext, sample: EvalInput, scores: list[Score]) -> Any:
        checks = []
        limits = list(self.thresholds.values())
        for score, limit in zip(scores, limits, strict=True):
            checks.append(
                {
                    "evaluator": score.evaluator,
                    "score": score.value,
                    "threshold": limit,
                    "passed": score.passes(limit),
                    "reason": score.reason,
                    "details": jsonable_or_repr(score.details),
                }
            )
        previous = ctx.record.get("gate") or {}
        pending = ctx.record.get("pending")
        counted = pending == "refetch" and previous.get("verdict") == "refetch"
        refetches = (
            int(previous.get("refetches", 0)) + 1 if counted else (previous.get("refetches", 0) if pending else 0)
        )
        human = pending == "human_context"
        fetch_error = None if human else ctx.record.get("fetch_error")
        if fetch_error:
            verdict = "escalate"  # the retriever failed for good: re-fetching cannot help
        elif all(c["passed"] for c in checks):
            verdict = "pass"
        elif refetches < self.max_refetches and not human:
            verdict = "refetch"
        else:
            verdict = "escalate"
        chunks = sample.chunks
        dropped = self._dropped(scores, len(chunks))
        kept = [c.to_dict() for i, c in enumerate(chunks) if i not in dropped]
        emit(
            {
                "type": "gate",
                "step": self.step,
                "task": ctx.ref.key,
                "node": self.name,
                "verdict": verdict,
                "refetches": refetches,
                "checks": checks,
                "dropped": sorted(dropped),
            }
        )
        failed = [
            {
                "reason": c["reason"],
                **({"missing": c["details"]["missing"]} if isinstance(c["details"].get("missing"), list) else {}),
            }
            for c in checks
            if not c["passed"]
        ]
        gate: dict[str, Any] = {
            "verdict": verdict,
            "refetches": refetches,
            "checks": [{"evaluator": c["evaluator"], "score": c["score"], "passed": c["passed"]} for c in checks],
        }
        if dropped:
            gate["dropped"] = sorted(dropped)
        record: dict[str, Any] = {
            k: v for k, v in ctx.record.items() if k not in ("pending", "outcome", "review", "attempts", "fetch_error")
        }
        if verdict != "pass":
            gate["failed"] = failed
        record["gate"] = gate
        update: dict[str, Any] = {self.context_key: kept} if dropped else {}
        if verdict == "pass":
            update[RELIABILITY_KEY] = with_key(ctx.ref, record)
            return self._goto("pass_to", update)
        if verdict == "refetch":
            record["pending"] = "refetch"
            update[RELIABILITY_KEY] = with_key(ctx.ref, record)
            return self._goto("refetch_to", update)
        worst, worst_limit = min(zip(scores, limits, strict=True), key=lambda p: p[0].value - p[1])
        reason = "; ".join(c["reason"] for c in checks if not c["passed"])
        if fetch_error:
            reason = f"{fetch_error}; {reason}" if reason else str(fetch_error)
        record["outcome"] = "escalate"
        emit(
            {
                "type": "outcome",
                "step": self.step,
                "task": ctx.ref.key,
                "outcome": "escalate",
                "confidence": worst.value,
            }
        )
        escalation = build_escalation(
            ctx,
            kind="gate",
            score=Score(value=worst.value, reason=reason, evaluator=worst.evaluator),
            threshold=worst_limit,
            attempts=[{"attempt": refetches + 1, "kind": "gate", "verdict": "escalate", "checks": checks}],
            output=kept,
            update={self.context_key: kept},
            context=kept,
            input_keys=self.input_keys,
            rev=int(record.get("rev", 0)) + 1,
        )
        escalate_to = self.routes["escalate_to"]
        command = escalate(
            self.name, escalate_to or "", ctx, record, escalation, {self.context_key: kept}, park=escalate_to is None
        )
        if dropped:
            command.update[self.context_key] = kept  # type: ignore[index]
        return command if escalate_to is not None else command.update

    def _dropped(self, scores: list[Score], n: int) -> set[int]:
        if self.drop_below is None:
            return set()
        dropped: set[int] = set()
        for score in scores:
            per_chunk = score.details.get("per_chunk")
            if isinstance(per_chunk, Sequence) and len(per_chunk) == n:
                dropped |= {i for i, v in enumerate(per_chunk) if v < self.drop_below}
        return dropped

    def _open(self, input: Any, config: RunnableConfig) -> Any:
        ctx = open_task(input, config, self.step)
        if ctx.decision is not None:
            return self._apply(ctx, ctx.decision)
        return ctx, self._sample(ctx.state)

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        opened = self._open(input, config)
        if not isinstance(opened, tuple):
            return opened
        ctx, sample = opened
        scores = [run_evaluator(ev, sample, raise_errors=self.raise_errors) for ev in self.evaluators]
        return self._finish(ctx, sample, scores)

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        opened = self._open(input, config)
        if not isinstance(opened, tuple):
            return opened
        ctx, sample = opened
        scores = [await arun_evaluator(ev, sample, raise_errors=self.raise_errors) for ev in self.evaluators]
        return self._finish(ctx, sample, scores)
