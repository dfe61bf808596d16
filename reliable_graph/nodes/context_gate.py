"""ContextGate: check the context before a step spends compute on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
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
    with_context,
    with_key,
    with_record,
)
from reliable_graph.nodes.refetch import Merge, RefetchCore, enrich_query, error_reason, merge_context
from reliable_graph.resilience.connectors import DEFAULT_RETRY, ConnectorRetry
from reliable_graph.state import RELIABILITY_KEY, emit

__all__ = ["ContextGate"]


def _failure(check: dict[str, Any]) -> dict[str, Any]:
    """A failing check as the record keeps it while the task is live: its reason and missing topics."""
    missing = check["details"].get("missing")
    return {"reason": check["reason"], **({"missing": missing} if isinstance(missing, list) else {})}


@dataclasses.dataclass(slots=True)
class _Again:
    """A `refetch` verdict of a gate that re-fetches itself: the record and context to go on from."""

    record: dict[str, Any]
    kept: list[Any] | None
    """The chunks the gate kept, when it dropped some (None: the context as it was)."""


class ContextGate(EscalatingNode):
    """A node that scores the context in state (relevance, completeness, freshness...) before a step.

    Every evaluator must reach its threshold for `pass`. Otherwise the gate re-fetches: with
    `refetch=` (a retriever) it re-fetches itself, inside its own node, with a query enriched by
    the failing checks' reasons and missing topics, and checks the new context again; with
    `refetch_to=` it sends the run to a `Refetch` node that returns here. After `max_refetches`
    re-fetches it sends the run to `escalate_to`. Re-fetching inside the gate costs no
    superstep and no checkpoint per re-fetch (a process that dies mid-gate re-runs the gate's
    retrievals, which are reads); the record, the events and the escalation are the same
    either way. With `drop_below`, chunks whose per-chunk relevance (an evaluator's
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
        refetch_to: Target for a re-fetch (a `Refetch` node); not with `refetch`.
        escalate_to: Target for an escalation.
        raise_errors: Re-raise an evaluator's exception instead of scoring it 0.
        refetch: A retriever (a LangChain Runnable such as a `BaseRetriever`, or a callable
            `query -> chunks` that may also take `state=`, which then sees the task's record as a
            `Refetch` node would) for re-fetching inside the gate; not with `refetch_to`. A
            re-fetch that fails for good (a permanent error, or the retries spent) escalates at
            once, naming the error; errors the classifier does not know propagate.
        merge: How re-fetched chunks join the context (with `refetch`): `"append"`
            (de-duplicated) or `"replace"`.
        enrich: `(query, reasons, missing) -> str` building the re-fetch query (with `refetch`).
        retry: Retries of the re-fetch on transient errors (with `refetch`); None: no retrying,
            transient errors propagate.

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

        # re-fetching inside the gate (no Refetch node): the query names what was missing
        def search(query: str) -> list[str]:
            return ["The boiling point of water is 100 C."] if "must cover: boiling point" in query else []

        inline = ContextGate(Completeness(topics=["boiling point"]), step="answer", threshold=1.0, refetch=search)
        update = inline.invoke({"question": "water", "context": ["Cats purr."]})
        assert [c["text"] for c in update["context"]] == ["Cats purr.", "The boiling point of water is 100 C."]
        record = update["reliability"]["tasks"]["answer"]
        assert record["gate"]["verdict"] == "pass" and record["refetches"] == 1
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
        refetch: Any = None,
        merge: Merge = "append",
        enrich: Callable[[str, Sequence[str], Sequence[str]], str] = enrich_query,
        retry: ConnectorRetry | None = DEFAULT_RETRY,
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
        if refetch is not None and refetch_to is not None:
            msg = (
                f"ContextGate {name!r}: pass refetch= (the gate re-fetches itself) or refetch_to= "
                f"(a Refetch node re-fetches), not both"
            )
            raise ValueError(msg)
        routes = {"pass_to": pass_to, "escalate_to": escalate_to}
        if refetch is None:  # with `refetch=` the gate re-fetches itself: no target for it
            routes["refetch_to"] = refetch_to
        self.routes = {"refetch_to": None, **check_routes(routes, node=name)}
        self.refetch = (
            None
            if refetch is None
            else RefetchCore(refetch, query_key=query_key, context_key=context_key, merge=merge, enrich=enrich)
        )
        if retry is not None and not isinstance(retry, ConnectorRetry):
            msg = f"ContextGate(retry=...) must be a ConnectorRetry or None (no retrying), got {retry!r}"
            raise TypeError(msg)
        self.retry = retry
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

    def _finish(self, ctx: TaskContext, sample: EvalInput, scores: list[Score], refetched: bool = False) -> Any:
        """Route on the checks: `pass`, `refetch` (an `_Again` when the gate re-fetches itself) or `escalate`.

        `refetched`: the gate re-fetched the context itself, so its update writes the context.
        """
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
        update: dict[str, Any] = {self.context_key: kept} if dropped or refetched else {}
        if verdict == "pass":
            update[RELIABILITY_KEY] = with_key(ctx.ref, record)
            return self._goto("pass_to", update)
        if verdict == "refetch":
            record["pending"] = "refetch"
            if self.refetch is not None:
                return _Again(record, kept if dropped else None)
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
        if dropped or refetched:
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

    # -- re-fetching inside the gate -------------------------------------------------------------
    # What a `Refetch` node would have done between two runs of the gate, done in the gate's own
    # node: the record it would have read (written by `with_key`, so its revision bumped) and the
    # record it would have written, the same query, event and merge. The retriever sees the state
    # with that record, as it would have in a `Refetch` node.

    def _before_fetch(self, ctx: TaskContext, again: _Again | None) -> tuple[dict[str, Any], Any]:
        """The record and state view the re-fetch starts from."""
        if again is None:  # a reviewer's retry: the record came back with `pending: refetch`
            record = dict(ctx.record)
            state = ctx.state
        else:
            record = {**again.record, "rev": int(again.record.get("rev", 0)) + 1}
            state = ctx.state if again.kept is None else with_context(ctx.state, self.context_key, again.kept)
        return record, with_record(ctx.ref, state, record)

    def _after_fetch(
        self, ctx: TaskContext, record: dict[str, Any], view: Any, context: list[Any] | None, error: str | None
    ) -> TaskContext:
        """The task after the re-fetch: its new record and the state holding the new context."""
        after = {k: v for k, v in record.items() if k != "fetch_error"}
        after["refetches"] = int(record.get("refetches", 0)) + 1
        after["rev"] = int(record.get("rev", 0)) + 1
        if error is not None:
            after["fetch_error"] = error
            emit({"type": "fetch_error", "step": self.step, "node": self.name, "reason": error})
        state = view if context is None else with_context(view, self.context_key, context)
        return dataclasses.replace(ctx, state=with_record(ctx.ref, state, after), record=after, fresh=False)  # type: ignore[arg-type]

    def _fetch_failed(self, exc: Exception, tries: int) -> str:
        reason = error_reason(exc, self.retry, tries, f"the re-fetch for step {self.step!r}")
        if reason is None:
            raise exc
        return reason

    def _fetch(self, ctx: TaskContext, config: RunnableConfig, again: _Again | None) -> TaskContext:
        assert self.refetch is not None
        core = self.refetch
        record, view = self._before_fetch(ctx, again)
        query = core.query(view, record, self.name)
        tries = [0]

        def once() -> Any:
            tries[0] += 1
            return core.retrieval.fetch(query, view, config)

        try:
            fetched = once() if self.retry is None else self.retry.call(once)
        except Exception as exc:
            return self._after_fetch(ctx, record, view, None, self._fetch_failed(exc, tries[0]))
        return self._after_fetch(ctx, record, view, core.merged(view, fetched, self.step, query), None)

    async def _afetch(self, ctx: TaskContext, config: RunnableConfig, again: _Again | None) -> TaskContext:
        assert self.refetch is not None
        core = self.refetch
        record, view = self._before_fetch(ctx, again)
        query = core.query(view, record, self.name)
        tries = [0]

        async def once() -> Any:
            tries[0] += 1
            return await core.retrieval.afetch(query, view, config)

        try:
            fetched = await once() if self.retry is None else await self.retry.acall(once)
        except Exception as exc:
            return self._after_fetch(ctx, record, view, None, self._fetch_failed(exc, tries[0]))
        return self._after_fetch(ctx, record, view, core.merged(view, fetched, self.step, query), None)

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        opened = self._open(input, config)
        if not isinstance(opened, tuple):
            return opened
        ctx, sample = opened
        refetched = False
        if self.refetch is not None and ctx.record.get("pending") == "refetch":  # a reviewer asked for a retry
            ctx, refetched = self._fetch(ctx, config, None), True
            sample = self._sample(ctx.state)
        while True:
            scores = [run_evaluator(ev, sample, raise_errors=self.raise_errors) for ev in self.evaluators]
            result = self._finish(ctx, sample, scores, refetched)
            if not isinstance(result, _Again):
                return result
            ctx, refetched = self._fetch(ctx, config, result), True
            sample = self._sample(ctx.state)

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        opened = self._open(input, config)
        if not isinstance(opened, tuple):
            return opened
        ctx, sample = opened
        refetched = False
        if self.refetch is not None and ctx.record.get("pending") == "refetch":  # a reviewer asked for a retry
            ctx, refetched = await self._afetch(ctx, config, None), True
            sample = self._sample(ctx.state)
        while True:
            scores = [await arun_evaluator(ev, sample, raise_errors=self.raise_errors) for ev in self.evaluators]
            result = self._finish(ctx, sample, scores, refetched)
            if not isinstance(result, _Again):
                return result
            ctx, refetched = await self._afetch(ctx, config, result), True
            sample = self._sample(ctx.state)
