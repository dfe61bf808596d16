"""reliable_step: one call that wraps a step in the whole reliability pattern."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import run_in_executor
from langgraph.graph import END
from langgraph.types import Command

from reliable_graph._compat import command
from reliable_graph._messages import is_messages, with_feedback
from reliable_graph._node import TaskRef, check_routes, runnable_context
from reliable_graph._state_access import read, read_optional
from reliable_graph.escalation.decision import Decision
from reliable_graph.evaluators.base import Score, run_evaluator
from reliable_graph.nodes._scoring import MESSAGES_KEY, Attempt, OutputScoring, shown_attempts
from reliable_graph.nodes._task import (
    EscalatingNode,
    TaskContext,
    _raised_escalations,
    after_review,
    build_escalation,
    compact,
    continue_with,
    escalate,
    new_context,
    new_task,
    open_task,
    with_context,
    with_key,
    with_record,
)
from reliable_graph.nodes.refetch import Merge, RefetchCore, enrich_query, error_reason, merge_context
from reliable_graph.resilience.classify import classify_error
from reliable_graph.resilience.connectors import DEFAULT_RETRY, ConnectorRetry
from reliable_graph.state import RELIABILITY_KEY, StepRecord

__all__ = ["ReliableStep", "reliable_step"]


@dataclasses.dataclass(slots=True)
class _Again:
    """A `retry` verdict of a step that retries inside its own superstep: the task's next attempt."""

    ctx: TaskContext


class ReliableStep(EscalatingNode):
    """A step wrapped in the pattern: run, score, retry on re-fetched context, escalate.

    Built by `reliable_step`; see there for the arguments.

    Example:
        ```python
        from langgraph.graph import END
        from reliable_graph import RequiredFields, ReliableStep, reliable_step

        node = reliable_step(lambda s: {"output": {"a": 1}}, name="extract", threshold=1.0,
                             evaluator=RequiredFields(fields=["a"]), pass_to=END)
        assert isinstance(node, ReliableStep) and node.name == "extract"
        assert node.invoke({"question": "q"}).update["output"] == {"a": 1}
        ```
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        evaluator: Any,
        threshold: float,
        pass_to: str,
        escalate_to: str,
        output_key: str,
        query_key: str,
        context_key: str,
        refetch: Any,
        max_retries: int,
        input_keys: Sequence[str] | None,
        raise_errors: bool,
        merge: Merge,
        enrich: Callable[[str, Sequence[str], Sequence[str]], str],
        escalate_on: tuple[type[BaseException], ...],
        retry: ConnectorRetry | None,
        audit_rate: float = 0.0,
        audit_seed: int = 0,
        checkpoint_attempts: bool = True,
    ) -> None:
        if not callable(fn):
            msg = f"reliable_step needs a step function state -> dict, got {type(fn).__name__}"
            raise TypeError(msg)
        node_name = name or getattr(fn, "__name__", None)
        if not node_name or node_name == "<lambda>":
            msg = "reliable_step(fn) needs name=... when fn has no usable __name__ (a lambda)"
            raise ValueError(msg)
        super().__init__(node_name)
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.scoring = OutputScoring(
            evaluator,
            threshold=threshold,
            max_retries=max_retries,
            query_key=query_key,
            context_key=context_key,
            output_key=output_key,
            input_keys=input_keys,
            raise_errors=raise_errors,
            what="reliable_step",
            audit_rate=audit_rate,
            audit_seed=audit_seed,
        )
        if pass_to is None or escalate_to is None:
            msg = f"reliable_step {node_name!r} needs pass_to and escalate_to (END is fine for pass_to)"
            raise ValueError(msg)
        self.routes = check_routes({"pass_to": pass_to, "escalate_to": escalate_to}, node=node_name)
        if not isinstance(escalate_on, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in escalate_on
        ):
            msg = f"reliable_step(escalate_on=...) must be a tuple of exception classes, got {escalate_on!r}"
            raise TypeError(msg)
        self.escalate_on = escalate_on
        if retry is not None and not isinstance(retry, ConnectorRetry):
            msg = f"reliable_step(retry=...) must be a ConnectorRetry or None (no retrying), got {retry!r}"
            raise TypeError(msg)
        self.retry = retry
        self.refetch = (
            None
            if refetch is None
            else RefetchCore(refetch, query_key=query_key, context_key=context_key, merge=merge, enrich=enrich)
        )
        if not isinstance(checkpoint_attempts, bool):
            msg = f"reliable_step(checkpoint_attempts=...) must be True or False, got {checkpoint_attempts!r}"
            raise TypeError(msg)
        self.checkpoint_attempts = checkpoint_attempts
        self.pass_to: str = pass_to
        self.escalate_to: str = escalate_to
        self._fast_new = not self._may_audit()
        """New tasks take `_run_new`/`_arun_new` (no audit can be raised, so no audit list is kept)."""
        self._fast_sync = self._fast_new and not self.is_async
        """`invoke` of a new task takes `_run_new` (an async step function makes `_run` raise)."""
        self._declare(pass_to, node_name, escalate_to)

    # -- the shared core -------------------------------------------------------------------

    def _may_audit(self) -> bool:
        return self.scoring.audit_rate > 0.0

    @staticmethod
    def _edited(proposed: Any, output: Any) -> Any:
        """A reviewer's edit of a chat step's answer becomes the AI message (a message list keeps its shape)."""
        if not is_messages(proposed) or isinstance(output, (BaseMessage, list)):
            return output
        text = output if isinstance(output, str) else json.dumps(output)
        return [AIMessage(content=text)] if isinstance(proposed, list) else AIMessage(content=text)

    def _check_input(self, state: Any) -> None:
        """What can be checked before the step function runs (fail before work is spent)."""
        if state is None:
            return
        if self.refetch is not None:
            read(state, self.scoring.query_key, node=self.name)

    def _check_update(self, update: Any) -> dict[str, Any]:
        if isinstance(update, Command):
            msg = f"step {self.name!r} returned a Command; a reliable_step routes itself: return a dict of updates"
            raise TypeError(msg)
        if type(update) is not dict and not isinstance(update, Mapping):
            msg = f"step {self.name!r} must return a dict of state updates, got {type(update).__name__}"
            raise TypeError(msg)
        if self.scoring.output_key not in update:
            msg = (
                f"step {self.name!r} returned keys {sorted(update)} but not its output key "
                f"{self.scoring.output_key!r}; return it or pass output_key=... to reliable_step"
            )
            raise KeyError(msg)
        if RELIABILITY_KEY in update:
            msg = f"step {self.name!r} must not write the library's own state key {RELIABILITY_KEY!r}"
            raise ValueError(msg)
        return update if type(update) is dict else dict(update)

    def _needs_refetch(self, ctx: TaskContext) -> bool:
        return self.refetch is not None and ctx.record.get("pending") == "retry"

    def _apply(self, ctx: TaskContext, decision: Decision) -> Command[Any] | TaskContext:
        """Apply a reviewer's decision: a `Command`, or the context of a re-run of a `Send` item."""
        assert ctx.review is not None
        proposed = dict(ctx.review.get("update") or {})
        escalation = ctx.review.get("escalation") or {}
        base, outcome = after_review(ctx, decision)
        action = decision.action
        if outcome is not None:
            rel = with_key(ctx.ref, compact({**base, "outcome": outcome}))
            if action == "terminate":
                return Command(goto=END, update={RELIABILITY_KEY: rel})
            if action == "edit":
                proposed[self.scoring.output_key] = self._edited(proposed.get(self.scoring.output_key), decision.output)
            return Command(goto=self.pass_to, update={**proposed, RELIABILITY_KEY: rel})
        base["pending"] = "human_context" if action == "provide_context" else "human_retry"
        key = self.scoring.context_key
        if ctx.ref.push:
            state = ctx.state
            if action == "provide_context":
                state = with_context(
                    state, key, merge_context(read_optional(state, key), decision.context_chunks(), "append")
                )
            return dataclasses.replace(
                ctx, state=state, record=cast(StepRecord, base), fresh=False, decision=None, review=None
            )
        if action == "provide_context":
            # the chunks also travel in the task's record: the re-run reads them even when the graph's
            # state has no `context_key` channel (an update to it would be dropped)
            base["supplied"] = decision.context_chunks()
        update: dict[str, Any] = {RELIABILITY_KEY: with_key(ctx.ref, base)}
        if action == "provide_context":
            update[key] = merge_context(escalation.get("context"), decision.context_chunks(), "append")
        return Command(goto=self.name, update=update)

    def _finish(
        self,
        ctx: TaskContext,
        attempt: Attempt,
        working: Any,
        update: dict[str, Any],
        refetched: list[Any] | None,
        score: Score,
        final: bool = False,
    ) -> Command[Any]:
        key = self.scoring.context_key
        scored = self.scoring.judge(ctx, attempt, score, node=self.name, final=final)
        record = scored.record
        new: dict[str, Any] = {}
        if refetched is not None:
            new[key] = refetched
            record["refetches"] = int(record.get("refetches", 0)) + 1
        if scored.verdict == "pass":
            if self.scoring.audit_rate > 0.0 and self.scoring.audited(ctx, int(record.get("rev", 0))):
                context = update.get(self.scoring.context_key, read_optional(working, self.scoring.context_key))
                record["audit"] = self.scoring.audit(
                    dataclasses.replace(ctx, state=working), record, score, update[self.scoring.output_key], context
                )
            return Command(goto=self.pass_to, update={**new, **update, RELIABILITY_KEY: with_key(ctx.ref, record)})
        if scored.verdict == "retry":
            if not self.checkpoint_attempts:
                return _Again(self._next_attempt(ctx, record, working, refetched))  # type: ignore[return-value]
            if ctx.ref.push:
                return Command(
                    goto=continue_with(self.name, ctx, record, working, self.escalate_to),
                    update={RELIABILITY_KEY: with_key(ctx.ref, record)},
                )
            return Command(goto=self.name, update={**new, RELIABILITY_KEY: with_key(ctx.ref, record)})
        proposed = {**new, **update}
        context = update.get(key, read_optional(working, key))
        working_ctx = dataclasses.replace(ctx, state=working)
        escalation = build_escalation(
            working_ctx,
            kind="output",
            score=score,
            threshold=self.scoring.threshold,
            attempts=shown_attempts(record, self.scoring.threshold),
            output=update[self.scoring.output_key],
            update=proposed,
            context=context,
            input_keys=self.scoring.input_keys,
            rev=int(record.get("rev", 0)) + 1,
        )
        command = escalate(self.name, self.escalate_to, working_ctx, record, escalation, proposed)
        if new and not ctx.ref.push:
            command.update[key] = new[key]  # type: ignore[index]
        return command

    def _next_attempt(self, ctx: TaskContext, record: dict[str, Any], working: Any, refetched: Any) -> TaskContext:
        """The task as its next attempt would open it after a checkpoint (`checkpoint_attempts=False`).

        The record as `with_key` (or `continue_with`, for a `Send` item) would have written it, and
        the state the next run would read: the graph's state with the re-fetched context and the
        record (a `Send` item: the input its re-run would be sent).
        """
        written = {**record, "rev": int(record.get("rev", 0)) + 1}
        if ctx.ref.push:
            state = working
        else:
            state = ctx.state if refetched is None else with_context(ctx.state, self.scoring.context_key, refetched)
            state = with_record(ctx.ref, state, written)
        return dataclasses.replace(ctx, state=state, record=cast(StepRecord, written), fresh=False)

    def _with_feedback(self, ctx: TaskContext, attempt: Attempt, working: Any) -> Any:
        """On an automatic retry of a chat step, what the model sees ends with why its last answer failed."""
        if attempt.number < 2 or attempt.human or working is None:
            return working
        messages = read_optional(working, MESSAGES_KEY)
        attempts = ctx.record.get("attempts") or []
        reason = attempts[-1].get("reason") if attempts else None
        if not is_messages(messages) or not reason:
            return working
        return with_context(working, MESSAGES_KEY, with_feedback(list(messages), str(reason)))

    def _failure(self, exc: Exception, what: str, tries: int) -> Score | None:
        """The failing score of an error to escalate on, or None when it must propagate."""
        reason = error_reason(exc, self.retry, tries, what, self.escalate_on)
        if reason is None:
            return None
        verdict = classify_error(exc)
        return Score.failing(self.name, reason, error=verdict.error, error_kind=verdict.kind, status=verdict.status)

    def _raised(self, ctx: TaskContext, attempt: Attempt, working: Any, refetched: Any, score: Score) -> Any:
        """Escalate at once on an error retrying cannot (or could not) fix, naming it."""
        return self._finish(ctx, attempt, working, {self.scoring.output_key: None}, refetched, score, final=True)

    # The first attempt runs directly; the retry machinery starts only once it raised an error
    # the policy retries (`ConnectorRetry.call` does the same; `tries` counts the attempts made).

    def _call(self, fn: Callable[..., Any], tries: list[int], *args: Any) -> Any:
        tries[0] = 1
        try:
            return fn(*args)
        except BaseException as exc:
            if self.retry is None or not self.retry.should_retry(exc):
                raise
            first = exc

        def again() -> Any:
            tries[0] += 1
            return fn(*args)

        return self.retry._after_failure(first, again)

    async def _acall(self, fn: Callable[..., Any], tries: list[int], *args: Any) -> Any:
        tries[0] = 1
        try:
            return await fn(*args)
        except BaseException as exc:
            if self.retry is None or not self.retry.should_retry(exc):
                raise
            first = exc

        async def again() -> Any:
            tries[0] += 1
            return await fn(*args)

        return await self.retry._aafter_failure(first, again)

    def _open(self, input: Any, config: RunnableConfig) -> Command[Any] | TaskContext:
        ctx = open_task(input, config, self.name)
        if ctx.decision is not None:
            return self._apply(ctx, ctx.decision)
        if not ctx.fresh and (supplied := ctx.record.get("supplied")) and ctx.state is not None:
            # a reviewer's context, whether or not the state holds it
            key = self.scoring.context_key
            merged = merge_context(read_optional(ctx.state, key), supplied, "append")
            ctx = dataclasses.replace(ctx, state=with_context(ctx.state, key, merged))
        if ctx.state is not None and self.refetch is not None:
            self._check_input(ctx.state)
        return ctx

    async def _astep(self, config: RunnableConfig, state: Any) -> Any:
        """Run the step function from the async driver (a sync one in the executor)."""
        if self.is_async:
            return await self.fn(state)
        return await run_in_executor(config, self.fn, state)

    # -- the two drivers -------------------------------------------------------------------
    # A new task (the common case: a step's first run in this run) takes `_run_new`/`_arun_new`:
    # the same steps as `_run`/`_arun` on a fresh task without the continuation plumbing, and a
    # passing first attempt builds its record in one go (`OutputScoring.first_pass`). Anything
    # else it hands to the shared core (`_raised`, `_finish`) with the task's full context.

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node synchronously (and index what it escalated or sent for audit)."""
        if config is None:
            config = ensure_config()
        if self._fast_sync and (found := new_task(input, config, self.name)) is not None:
            return self._run_new(input, config, found[0], found[1])
        return super().invoke(input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Run the node asynchronously (and index what it escalated or sent for audit)."""
        if config is None:
            config = ensure_config()
        if self._fast_new and (found := new_task(input, config, self.name)) is not None:
            with runnable_context(config):
                return await self._arun_new(input, config, found[0], found[1])
        return await super().ainvoke(input, config)

    def _run_new(self, input: Any, config: RunnableConfig, ref: TaskRef, current: Any) -> Any:
        """`invoke` for a new task: its first attempt (`new_task` found `ref` and `current`)."""
        if self.refetch is not None:
            self._check_input(input)
        tries = [0]
        try:
            result = self._call(self.fn, tries, input)
        except Exception as exc:
            score = self._failure(exc, f"step {self.name!r}", tries[0])
            if score is None:
                raise
            ctx = new_context(input, config, ref, current)
            return self._indexed(self._raised(ctx, self.scoring.attempt(ctx), input, None, score))
        scoring = self.scoring
        key = scoring.output_key
        update = (
            result
            if type(result) is dict and key in result and RELIABILITY_KEY not in result
            else self._check_update(result)
        )
        ck = scoring.context_key
        context = update[ck] if ck in update else input.get(ck) if type(input) is dict else read_optional(input, ck)
        sample = scoring.sample(input, update[key], context, self.name)
        score = run_evaluator(scoring.evaluator, sample, raise_errors=scoring.raise_errors)
        if score.value >= scoring.threshold:  # passed: `judge` and `_finish` (`_passed`), in one go
            record = scoring.first_pass(ref, current, score, node=self.name)
            return command(self.pass_to, {**update, RELIABILITY_KEY: {"tasks": {ref.key: record}}})
        ctx = new_context(input, config, ref, current)
        finished = self._finish(ctx, scoring.attempt(ctx), input, update, None, score)
        if isinstance(finished, _Again):  # retried inside this superstep (`checkpoint_attempts=False`)
            finished = self._attempts(finished.ctx, config)
        return self._indexed(finished)

    async def _arun_new(self, input: Any, config: RunnableConfig, ref: TaskRef, current: Any) -> Any:
        """`ainvoke` for a new task: its first attempt (`new_task` found `ref` and `current`)."""
        if self.refetch is not None:
            self._check_input(input)
        tries = [0]
        try:
            result = await self._acall(self._astep, tries, config, input)
        except Exception as exc:
            score = self._failure(exc, f"step {self.name!r}", tries[0])
            if score is None:
                raise
            ctx = new_context(input, config, ref, current)
            raised = self._raised(ctx, self.scoring.attempt(ctx), input, None, score)
            await self._aindex(_raised_escalations(raised))
            return raised
        scoring = self.scoring
        update = self._check_update(result)
        context = update.get(scoring.context_key, read_optional(input, scoring.context_key))
        sample = scoring.sample(input, update[scoring.output_key], context, self.name)
        score = await scoring.ascore(sample)
        if score.value >= scoring.threshold:
            return self._passed(ref, current, update, score)
        ctx = new_context(input, config, ref, current)
        finished = self._finish(ctx, scoring.attempt(ctx), input, update, None, score)
        if isinstance(finished, _Again):  # retried inside this superstep (`checkpoint_attempts=False`)
            finished = await self._aattempts(finished.ctx, config)
        await self._aindex(_raised_escalations(finished))
        return finished

    def _passed(self, ref: TaskRef, current: Any, update: dict[str, Any], score: Score) -> Command[Any]:
        """What `_finish` returns for a new task whose first attempt passed (no audit: `_fast_new`)."""
        record = self.scoring.first_pass(ref, current, score, node=self.name)
        return command(self.pass_to, {**update, RELIABILITY_KEY: {"tasks": {ref.key: record}}})

    def _indexed(self, result: Any) -> Any:
        """`result`, once what it escalated is indexed for the inbox (`EscalatingNode.invoke`)."""
        self._index(_raised_escalations(result))
        return result

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        if self.is_async:
            msg = f"step {self.name!r} is an async function: run the graph with ainvoke/astream"
            raise TypeError(msg)
        ctx = self._open(input, config)
        if isinstance(ctx, Command):
            return ctx
        return self._attempts(ctx, config)

    def _attempts(self, ctx: TaskContext, config: RunnableConfig) -> Any:
        """Run the task's attempts until one is not retried in this superstep."""
        while isinstance(result := self._attempt(ctx, config), _Again):
            ctx = result.ctx
        return result

    async def _aattempts(self, ctx: TaskContext, config: RunnableConfig) -> Any:
        """Async twin of `_attempts`."""
        while isinstance(result := await self._aattempt(ctx, config), _Again):
            ctx = result.ctx
        return result

    def _attempt(self, ctx: TaskContext, config: RunnableConfig) -> Any:
        """One attempt of the task: re-fetch when it retries, run the step, score, route."""
        attempt = self.scoring.attempt(ctx)
        refetched = None
        if self.refetch is not None and self._needs_refetch(ctx):
            assert self.refetch is not None
            tries = [0]
            try:
                refetched = self._call(self.refetch.run, tries, ctx.state, config, ctx.record, self.name, self.name)
            except Exception as exc:
                score = self._failure(exc, f"the re-fetch for step {self.name!r}", tries[0])
                if score is None:
                    raise
                return self._raised(ctx, attempt, ctx.state, None, score)
        working = ctx.state if refetched is None else with_context(ctx.state, self.scoring.context_key, refetched)
        if attempt.number > 1:
            working = self._with_feedback(ctx, attempt, working)
        tries = [0]
        try:
            result = self._call(self.fn, tries, working)
        except Exception as exc:
            score = self._failure(exc, f"step {self.name!r}", tries[0])
            if score is None:
                raise
            return self._raised(ctx, attempt, working, refetched, score)
        update = self._check_update(result)
        context = update.get(self.scoring.context_key, read_optional(working, self.scoring.context_key))
        score = self.scoring.score(self.scoring.sample(working, update[self.scoring.output_key], context, self.name))
        return self._finish(ctx, attempt, working, update, refetched, score)

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        ctx = self._open(input, config)
        if isinstance(ctx, Command):
            return ctx
        return await self._aattempts(ctx, config)

    async def _aattempt(self, ctx: TaskContext, config: RunnableConfig) -> Any:
        """Async twin of `_attempt`."""
        attempt = self.scoring.attempt(ctx)
        refetched = None
        if self.refetch is not None and self._needs_refetch(ctx):
            assert self.refetch is not None
            tries = [0]
            try:
                refetched = await self._acall(
                    self.refetch.arun, tries, ctx.state, config, ctx.record, self.name, self.name
                )
            except Exception as exc:
                score = self._failure(exc, f"the re-fetch for step {self.name!r}", tries[0])
                if score is None:
                    raise
                return self._raised(ctx, attempt, ctx.state, None, score)
        working = ctx.state if refetched is None else with_context(ctx.state, self.scoring.context_key, refetched)
        if attempt.number > 1:
            working = self._with_feedback(ctx, attempt, working)
        tries = [0]
        try:
            result = await self._acall(self._astep, tries, config, working)
        except Exception as exc:
            score = self._failure(exc, f"step {self.name!r}", tries[0])
            if score is None:
                raise
            return self._raised(ctx, attempt, working, refetched, score)
        update = self._check_update(result)
        context = update.get(self.scoring.context_key, read_optional(working, self.scoring.context_key))
        sample = self.scoring.sample(working, update[self.scoring.output_key], context, self.name)
        return self._finish(ctx, attempt, working, update, refetched, await self.scoring.ascore(sample))


def reliable_step(
    fn: Callable[..., Any],
    *,
    evaluator: Any,
    threshold: float,
    pass_to: str,
    escalate_to: str = "human_escalation",
    name: str | None = None,
    output_key: str = "output",
    query_key: str = "question",
    context_key: str = "context",
    refetch: Any = None,
    max_retries: int = 1,
    input_keys: Sequence[str] | None = None,
    raise_errors: bool = False,
    merge: Merge = "append",
    enrich: Callable[[str, Sequence[str], Sequence[str]], str] = enrich_query,
    escalate_on: tuple[type[BaseException], ...] = (),
    retry: ConnectorRetry | None = DEFAULT_RETRY,
    audit_rate: float = 0.0,
    audit_seed: int = 0,
    checkpoint_attempts: bool = True,
) -> ReliableStep:
    """Wrap a step function in the whole reliability pattern, as one LangGraph node.

    The node runs `fn(state)` (sync or async; it returns a dict of updates holding
    `output_key`), scores the output with `evaluator` inside the same node and, on a score at
    or above `threshold`, applies the update and goes to `pass_to`: the passing path costs no
    extra superstep. Below threshold it records the attempt (nothing of the failed update is
    applied) and runs again, first re-fetching context with a query enriched by the failure's
    reason when `refetch` is given; after `max_retries` retries it sends its task to
    `escalate_to` (a `HumanEscalation` node), where it waits on its own interrupt. The node
    works the same when it runs once per `Send` item (each item keeps its own attempts, retries
    and escalation), in parallel branches and inside subgraphs. Outcomes are recorded per task
    under the `reliability` key: `pass`, `retry_pass` or `escalate`, then `approved`, `edited` or
    `terminated` after review. `get_graph()` draws its retry loop and escalation edge.

    Args:
        fn: The step: `state -> dict` (or an async function).
        evaluator: Scores the output (deterministic validator, judge, cascade...).
        threshold: The step's threshold, in [0, 1] (inclusive).
        pass_to: The next node when the output passes (END is fine).
        escalate_to: The `HumanEscalation` node.
        name: The node's (and step's) name; default `fn.__name__`.
        output_key: The key of `fn`'s update that holds the output to score. A message list
            (a chat step returning `{"messages": [...]}`) is scored as its last AI message's
            text; the query is then the last human message, a retry appends a human message
            saying why the last answer failed to what `fn` sees, an escalation carries the
            conversation, and an edit becomes an `AIMessage`.
        query_key: State key of the task's query (for scoring and enrichment).
        context_key: State key of the context.
        refetch: A retriever (Runnable or callable) for the retry's re-fetch; None retries as is.
        max_retries: Retries before escalating (default one, as the pattern prescribes).
        input_keys: State keys shown to a reviewer as the task's inputs (default: the query); a
            key a run's state does not hold (an optional key left out of the input) is not shown.
        raise_errors: Re-raise the evaluator's exceptions instead of scoring them 0.
        merge: How re-fetched chunks join the context: `"append"` (de-duplicated) or `"replace"`.
        enrich: `(query, reasons, missing) -> str` building the re-fetch query.
        escalate_on: Exception classes to escalate on at once besides the ones the error
            classifier calls permanent (`classify_error`: HTTP 4xx other than 408/409/425/429,
            bad URLs, authentication...), which always escalate at once, naming the error.
        retry: How `fn` and the re-fetch are retried on transient errors (timeouts, dropped
            connections, HTTP 408/409/425/429/5xx; Retry-After honoured, full jitter); once the
            retries are spent the step escalates, naming the error. Default: 5 attempts from
            0.1 s up to 10 s. `None` switches retrying off: transient errors then propagate to
            whoever retries (LangGraph's `RetryPolicy`, a Temporal activity). Errors the
            classifier does not know (a `KeyError` in `fn`) always propagate: they are bugs.
        audit_rate: The share of passing outputs sent to the inbox as `audit` items (a seeded
            draw per task): reviewers label them (approve: right; edit or terminate: wrong) and
            `reliable-graph report` estimates silent failures from the labels. Nothing waits
            on an audit; it needs a store (`compile(store=...)`).
        audit_seed: Seeds the audit draws.
        checkpoint_attempts: True (the default): each automatic retry is a superstep of its
            own, so every attempt is checkpointed and a process that dies between attempts
            repeats none that finished. False: the retries (re-fetch, step, score) run inside
            the step's superstep, one superstep and checkpoint per step whatever the attempts
            (a process that dies mid-step runs the step's attempts again, from the first). The
            records, outcomes, events and escalations are the same either way; choose False
            when a step is cheap next to a checkpoint write.

    Returns:
        The node, to pass to `StateGraph.add_node`.

    Raises:
        ValueError: a threshold outside [0, 1], a negative `max_retries`, a missing target.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step, step_outcomes

        class State(ReliabilityState, total=False):
            question: str
            context: list
            answer: str

        def answer(state: State) -> dict:
            facts = " ".join(c["text"] if isinstance(c, dict) else c for c in state["context"])
            return {"answer": "Paris" if "Paris" in facts else "unknown"}

        builder = StateGraph(State)
        builder.add_node(reliable_step(
            answer, evaluator=Predicate(fn=lambda a: a != "unknown", name="known"), threshold=1.0,
            output_key="answer", refetch=lambda q: ["Paris is the capital of France"], pass_to=END,
        ))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "answer")
        graph = builder.compile(checkpointer=InMemorySaver())
        out = graph.invoke({"question": "capital of France?", "context": ["France is in Europe"]},
                           {"configurable": {"thread_id": "1"}})
        assert out["answer"] == "Paris" and step_outcomes(out) == {"answer": "retry_pass"}
        ```
    """
    return ReliableStep(
        fn,
        name=name,
        evaluator=evaluator,
        threshold=threshold,
        pass_to=pass_to,
        escalate_to=escalate_to,
        output_key=output_key,
        query_key=query_key,
        context_key=context_key,
        refetch=refetch,
        max_retries=max_retries,
        input_keys=input_keys,
        raise_errors=raise_errors,
        merge=merge,
        enrich=enrich,
        escalate_on=escalate_on,
        retry=retry,
        audit_rate=audit_rate,
        audit_seed=audit_seed,
        checkpoint_attempts=checkpoint_attempts,
    )
