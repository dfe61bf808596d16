"""ContextGate: check the context before a step spends compute on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig

from reliable_graph._state_access import as_mapping, read
from reliable_graph.evaluators.base import (
    EvalInput,
    Score,
    arun_evaluator,
    as_chunks,
    evaluator_name,
    run_evaluator,
)
from reliable_graph.nodes._common import (
    ReliableNode,
    build_escalation,
    check_count,
    check_evaluators,
    check_routes,
    check_threshold,
    escalation_update,
    jsonable_or_repr,
    last_good_checkpoint,
    outcome_event,
    routed,
    step_record,
)
from reliable_graph.state import RELIABILITY_KEY, emit

__all__ = ["ContextGate"]


class ContextGate(ReliableNode):
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
        assert out["reliability"]["steps"]["answer"]["gate"]["verdict"] == "pass"
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
        self.step = step or name
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

    def _sample(self, state: Any) -> EvalInput:
        query = read(state, self.query_key, node=self.name)
        context = read(state, self.context_key, node=self.name)
        return EvalInput(
            query=None if query is None else str(query),
            contexts=list(as_chunks(context)),
            step=self.step,
            state=as_mapping(state),
        )

    def _finish(self, state: Any, config: RunnableConfig, sample: EvalInput, scores: list[Score]) -> Any:
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
        previous = step_record(state, self.step).get("gate") or {}
        refetches = previous.get("refetches", 0) + 1 if previous.get("verdict") == "refetch" else 0
        if all(c["passed"] for c in checks):
            verdict = "pass"
        elif refetches < self.max_refetches:
            verdict = "refetch"
        else:
            verdict = "escalate"
        chunks = sample.chunks
        dropped = self._dropped(scores, len(chunks))
        kept = [c.to_dict() for i, c in enumerate(chunks) if i not in dropped]
        gate = {"verdict": verdict, "checks": checks, "refetches": refetches, "dropped": sorted(dropped)}
        events = [
            emit(
                {
                    "type": "gate",
                    "step": self.step,
                    "node": self.name,
                    "verdict": verdict,
                    "refetches": refetches,
                }
            )
        ]
        rel: dict[str, Any] = {"steps": {self.step: {"gate": gate}}, "events": events}
        update: dict[str, Any] = {self.context_key: kept} if dropped else {}
        if verdict == "escalate":
            worst, worst_limit = min(zip(scores, limits, strict=True), key=lambda p: p[0].value - p[1])
            failing = [c for c in checks if not c["passed"]]
            payload = build_escalation(
                step=self.step,
                node=self.name,
                config=config,
                state=state,
                score=Score(
                    value=worst.value,
                    reason="; ".join(c["reason"] for c in failing),
                    evaluator=worst.evaluator,
                ),
                threshold=worst_limit,
                attempts=[{"attempt": refetches + 1, "kind": "gate", "verdict": "escalate", "checks": checks}],
                output=None,
                context=kept,
                input_keys=self.input_keys,
                last_good=last_good_checkpoint(config),
            )
            rel["steps"][self.step]["outcome"] = "escalate"
            events.append(outcome_event(self.step, "escalate", confidence=worst.value, reason=payload["reason"]))
            rel.update(
                escalation_update(
                    payload,
                    raw_output=kept,
                    output_key=self.context_key,
                    context_key=self.context_key,
                    pass_to=self.routes["pass_to"],
                    rerun_to=self.name,
                )
            )
            rel["escalation_route"]["kind"] = "gate"
        update[RELIABILITY_KEY] = rel
        target_key = {"pass": "pass_to", "refetch": "refetch_to", "escalate": "escalate_to"}[verdict]
        return routed(self.routes[target_key], update)

    def _dropped(self, scores: list[Score], n: int) -> set[int]:
        if self.drop_below is None:
            return set()
        dropped: set[int] = set()
        for score in scores:
            per_chunk = score.details.get("per_chunk")
            if isinstance(per_chunk, Sequence) and len(per_chunk) == n:
                dropped |= {i for i, v in enumerate(per_chunk) if v < self.drop_below}
        return dropped

    def _func(self, state: Any, config: RunnableConfig) -> Any:
        sample = self._sample(state)
        scores = [run_evaluator(ev, sample, raise_errors=self.raise_errors) for ev in self.evaluators]
        return self._finish(state, config, sample, scores)

    async def _afunc(self, state: Any, config: RunnableConfig) -> Any:
        sample = self._sample(state)
        scores = [await arun_evaluator(ev, sample, raise_errors=self.raise_errors) for ev in self.evaluators]
        return self._finish(state, config, sample, scores)
