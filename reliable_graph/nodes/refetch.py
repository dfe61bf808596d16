"""Refetch: re-retrieve context with a query enriched by why the last attempt failed."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command

from reliable_graph._node import ReliableNode
from reliable_graph._state_access import read, read_optional
from reliable_graph.evaluators.base import as_chunk, as_chunks
from reliable_graph.nodes._task import open_task, with_key
from reliable_graph.resilience.classify import classify_error
from reliable_graph.resilience.connectors import DEFAULT_RETRY, ConnectorRetry
from reliable_graph.state import RELIABILITY_KEY, emit

__all__ = ["Refetch", "Retrieve", "enrich_query"]

Merge = Literal["append", "replace"]


def enrich_query(query: str, reasons: Sequence[str], missing: Sequence[str]) -> str:
    """The default enrichment: the query, what it must cover and why the last context failed.

    Example:
        ```python
        from reliable_graph import enrich_query

        q = enrich_query("Q3 revenue?", ["no chunk mentions Q3"], ["q3 revenue"])
        assert q.startswith("Q3 revenue?") and "must cover: q3 revenue" in q
        ```
    """
    parts = [query]
    if missing:
        parts.append(f"must cover: {', '.join(missing)}")
    if reasons:
        parts.append(f"previous context failed because: {'; '.join(reasons)}")
    return " | ".join(parts)


def failure_of(record: Any) -> tuple[list[str], list[str]]:
    """The reasons and missing topics of a task's failing gate checks and latest failed attempt."""
    failed = [c for c in (record.get("gate") or {}).get("failed", [])]
    attempts = record.get("attempts") or []
    if attempts and attempts[-1]["verdict"] != "pass":
        failed.append(attempts[-1])
    reasons = [f["reason"] for f in failed if f.get("reason")]
    missing: list[str] = []
    for f in failed:
        missing += [m for m in f.get("missing", []) if m not in missing]
    return reasons, missing


class _Retrieval:
    """Calls a retriever (a Runnable such as `BaseRetriever`, or a callable) sync or async."""

    def __init__(self, retriever: Any) -> None:
        if not (isinstance(retriever, Runnable) or callable(retriever)):
            msg = (
                "retriever must be a LangChain Runnable (e.g. a BaseRetriever) or a callable "
                f"query -> chunks, got {type(retriever).__name__}"
            )
            raise TypeError(msg)
        self.retriever = retriever
        self.wants_state = not isinstance(retriever, Runnable) and _accepts_state(retriever)

    def _args(self, query: str, state: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (query,), ({"state": state} if self.wants_state else {})

    def fetch(self, query: str, state: Any, config: RunnableConfig) -> Any:
        if isinstance(self.retriever, Runnable):
            return self.retriever.invoke(query, config)
        args, kwargs = self._args(query, state)
        result = self.retriever(*args, **kwargs)
        if inspect.isawaitable(result):
            msg = "an async retriever function needs ainvoke; call the graph with ainvoke/astream"
            raise TypeError(msg)
        return result

    async def afetch(self, query: str, state: Any, config: RunnableConfig) -> Any:
        if isinstance(self.retriever, Runnable):
            return await self.retriever.ainvoke(query, config)
        args, kwargs = self._args(query, state)
        result = self.retriever(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result


def _accepts_state(fn: Callable[..., Any]) -> bool:
    try:
        return "state" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def merge_context(old: Any, new: Any, merge: Merge) -> list[Any]:
    """New chunks appended to (or replacing) the old ones, de-duplicated by text, order kept."""
    chunks = [*(() if merge == "replace" else as_chunks(old)), *as_chunks(new)]
    seen: set[str] = set()
    merged = []
    for chunk in chunks:
        if chunk.text not in seen:
            seen.add(chunk.text)
            merged.append(chunk.to_dict())
    return merged


class RefetchCore:
    """The re-fetch shared by `Refetch` and `reliable_step`: enrich, retrieve, merge."""

    def __init__(
        self,
        retriever: Any,
        *,
        query_key: str,
        context_key: str,
        merge: Merge,
        enrich: Callable[[str, Sequence[str], Sequence[str]], str],
    ) -> None:
        if merge not in ("append", "replace"):
            msg = f"merge must be 'append' or 'replace', got {merge!r}"
            raise ValueError(msg)
        if not callable(enrich):
            msg = f"enrich must be callable (query, reasons, missing) -> str, got {type(enrich).__name__}"
            raise TypeError(msg)
        self.retrieval = _Retrieval(retriever)
        self.query_key = query_key
        self.context_key = context_key
        self.merge: Merge = merge
        self.enrich = enrich

    def query(self, state: Any, record: Any, node: str) -> str:
        query = read(state, self.query_key, node=node)
        reasons, missing = failure_of(record)
        text = self.enrich(str(query), reasons, missing)
        if not isinstance(text, str):
            msg = f"enrich must return the query as a string, got {type(text).__name__}"
            raise TypeError(msg)
        return text

    def merged(self, state: Any, fetched: Any, step: str, query: str) -> list[Any]:
        new = [as_chunk(c) for c in (fetched or [])]
        context = merge_context(read_optional(state, self.context_key), new, self.merge)
        emit({"type": "refetch", "step": step, "query": query, "fetched": len(new), "context": len(context)})
        return context

    def run(self, state: Any, config: RunnableConfig, record: Any, step: str, node: str) -> list[Any]:
        query = self.query(state, record, node)
        return self.merged(state, self.retrieval.fetch(query, state, config), step, query)

    async def arun(self, state: Any, config: RunnableConfig, record: Any, step: str, node: str) -> list[Any]:
        query = self.query(state, record, node)
        return self.merged(state, await self.retrieval.afetch(query, state, config), step, query)


def error_reason(
    exc: Exception,
    retry: ConnectorRetry | None,
    tries: int,
    what: str,
    escalate_on: tuple[type[BaseException], ...] = (),
) -> str | None:
    """Why a call failed for good, to escalate on; None when the error must propagate.

    Escalated: an error in `escalate_on`, a permanent one (retrying cannot help), a transient
    one once the retries are spent. Propagated: LangGraph's control flow, an error the
    classifier does not know (a bug to see), a transient one when retrying is off (the caller
    retries: LangGraph's `RetryPolicy`, a Temporal activity).
    """
    if isinstance(exc, GraphBubbleUp):
        return None
    verdict = classify_error(exc)
    listed = bool(escalate_on) and isinstance(exc, escalate_on)
    if not listed and (verdict.kind == "unknown" or (verdict.kind == "transient" and retry is None)):
        return None
    spent = f" after {tries} attempts" if verdict.kind == "transient" and tries > 1 else ""
    label = "retrying cannot help" if verdict.kind == "permanent" else f"{verdict.kind} error"
    return f"{what} failed{spent} ({label}): {verdict.describe()}"


class Refetch(ReliableNode):
    """A node that re-retrieves context for a step with an enriched query, then routes back.

    The enrichment adds the failing reasons and missing topics recorded for `step` (by a
    `ContextGate` or a `ConfidenceRouter`); the new chunks are merged with the old ones and
    de-duplicated by text (`merge="append"`), or replace them (`merge="replace"`). The retriever
    is retried on transient errors (`retry`); a retrieval that fails for good (a permanent error,
    or the retries spent) writes no context but records the error for `step`, and the
    `ContextGate` it returns to escalates at once with the error as the reason (re-fetching
    again cannot help). Errors the classifier does not know propagate.

    Args:
        retriever: A LangChain Runnable (a `BaseRetriever`, ...) called with the enriched query,
            or a callable `query -> chunks` (it may also take `state=` as a keyword).
        name: The node's name.
        step: The step whose failure records feed the enrichment (default: `name`).
        query_key: State key of the query.
        context_key: State key of the context (written as a list of chunk dicts).
        goto: Where to go next (the gate or the step); None routes by your edges.
        merge: `"append"` or `"replace"`.
        enrich: `(query, reasons, missing) -> str`; default `enrich_query`.
        retry: Retries on transient errors (`ConnectorRetry`); None: no retrying, transient
            errors propagate.

    Example:
        ```python
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import Refetch, ReliabilityState

        class State(ReliabilityState, total=False):
            question: str
            context: list

        def search(query: str) -> list[str]:
            return ["fresh chunk about " + query.split(" | ")[0]]

        builder = StateGraph(State)
        builder.add_node(Refetch(search, name="refetch", step="answer", goto=END))
        builder.add_edge(START, "refetch")
        out = builder.compile().invoke({"question": "tides", "context": ["old chunk"]})
        assert [c["text"] for c in out["context"]] == ["old chunk", "fresh chunk about tides"]
        ```
    """

    first_fetch = False
    """A first fetch (`Retrieve`): the plain query, replaces the context, not counted."""

    def __init__(
        self,
        retriever: Any,
        *,
        name: str = "refetch",
        step: str | None = None,
        query_key: str = "question",
        context_key: str = "context",
        goto: str | None = None,
        merge: Merge = "append",
        enrich: Callable[[str, Sequence[str], Sequence[str]], str] = enrich_query,
        retry: ConnectorRetry | None = DEFAULT_RETRY,
    ) -> None:
        super().__init__(name)
        self.step: str = step or name
        self.core = RefetchCore(retriever, query_key=query_key, context_key=context_key, merge=merge, enrich=enrich)
        if retry is not None and not isinstance(retry, ConnectorRetry):
            msg = f"{type(self).__name__}(retry=...) must be a ConnectorRetry or None (no retrying), got {retry!r}"
            raise TypeError(msg)
        self.retry = retry
        self.goto = goto
        self.routes = {"goto": goto}
        self._declare(goto)

    def _route(self, update: dict[str, Any]) -> Any:
        return update if self.goto is None else Command(goto=self.goto, update=update)

    def _update(self, input: Any, config: RunnableConfig, context: list[Any]) -> Any:
        if self.first_fetch:
            return self._route({self.core.context_key: context})
        ctx = open_task(input, config, self.step)
        record = {k: v for k, v in ctx.record.items() if k != "fetch_error"}
        record["refetches"] = int(ctx.record.get("refetches", 0)) + 1
        return self._route({self.core.context_key: context, RELIABILITY_KEY: with_key(ctx.ref, record)})

    def _failed(self, input: Any, config: RunnableConfig, reason: str) -> Any:
        ctx = open_task(input, config, self.step)
        record: dict[str, Any] = {**ctx.record, "fetch_error": reason}
        if not self.first_fetch:
            record["refetches"] = int(ctx.record.get("refetches", 0)) + 1
        emit({"type": "fetch_error", "step": self.step, "node": self.name, "reason": reason})
        update: dict[str, Any] = {RELIABILITY_KEY: with_key(ctx.ref, record)}
        if self.first_fetch:
            update[self.core.context_key] = []
        return self._route(update)

    def _query(self, input: Any, config: RunnableConfig) -> str:
        read(input, self.core.query_key, node=self.name)
        if self.first_fetch:
            return str(read(input, self.core.query_key, node=self.name))
        return self.core.query(input, open_task(input, config, self.step).record, self.name)

    def _what(self) -> str:
        return f"{'the retrieval' if self.first_fetch else 'the re-fetch'} for step {self.step!r}"

    def _run(self, input: Any, config: RunnableConfig) -> Any:
        query = self._query(input, config)
        tries = [0]

        def once() -> Any:
            tries[0] += 1
            return self.core.retrieval.fetch(query, input, config)

        try:
            fetched = once() if self.retry is None else self.retry.call(once)
        except Exception as exc:
            reason = error_reason(exc, self.retry, tries[0], self._what())
            if reason is None:
                raise
            return self._failed(input, config, reason)
        return self._update(input, config, self.core.merged(input, fetched, self.step, query))

    async def _arun(self, input: Any, config: RunnableConfig) -> Any:
        query = self._query(input, config)
        tries = [0]

        async def once() -> Any:
            tries[0] += 1
            return await self.core.retrieval.afetch(query, input, config)

        try:
            fetched = await once() if self.retry is None else await self.retry.acall(once)
        except Exception as exc:
            reason = error_reason(exc, self.retry, tries[0], self._what())
            if reason is None:
                raise
            return self._failed(input, config, reason)
        return self._update(input, config, self.core.merged(input, fetched, self.step, query))


class Retrieve(Refetch):
    """A step's first fetch, as a node: the plain query, retried on transient errors.

    Like `Refetch` but the query is not enriched, the chunks replace the context, and the fetch
    is not counted as a re-fetch. A retrieval that fails for good (a permanent error such as an
    HTTP 403, or the retries spent) leaves the context empty and records the error for `step`:
    the `ContextGate` that follows escalates at once, naming the error, instead of scoring an
    empty context as if the retriever had found nothing.

    Args:
        retriever: A LangChain Runnable (a `BaseRetriever`, ...) or a callable `query -> chunks`
            (it may also take `state=`).
        name: The node's name.
        step: The step the context is for (the gate's `step`; default: `name`).
        query_key: State key of the query.
        context_key: State key of the context (replaced by the fetched chunks).
        goto: Where to go next (the gate); None routes by your edges.
        retry: Retries on transient errors; None: no retrying, transient errors propagate.

    Example:
        ```python
        import httpx
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from reliable_graph import ContextGate, HumanEscalation, LexicalRelevance, ReliabilityState, Retrieve

        class State(ReliabilityState, total=False):
            question: str
            context: list

        def search(query: str) -> list[str]:
            request = httpx.Request("GET", "https://search.internal/api")
            response = httpx.Response(403, request=request)
            raise httpx.HTTPStatusError("403 Forbidden", request=request, response=response)

        builder = StateGraph(State)
        builder.add_node(Retrieve(search, name="retrieve", step="answer", goto="gate"))
        builder.add_node(ContextGate(LexicalRelevance(), name="gate", step="answer", pass_to=END,
                                     refetch_to="retrieve", escalate_to="human_escalation"))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "retrieve")
        graph = builder.compile(checkpointer=InMemorySaver())
        out = graph.invoke({"question": "tides"}, {"configurable": {"thread_id": "1"}})
        reason = out["__interrupt__"][0].value["reason"]
        assert "HTTPStatusError (HTTP 403)" in reason and "retrying cannot help" in reason
        ```
    """

    first_fetch = True

    def __init__(
        self,
        retriever: Any,
        *,
        name: str = "retrieve",
        step: str | None = None,
        query_key: str = "question",
        context_key: str = "context",
        goto: str | None = None,
        retry: ConnectorRetry | None = DEFAULT_RETRY,
    ) -> None:
        super().__init__(
            retriever,
            name=name,
            step=step,
            query_key=query_key,
            context_key=context_key,
            goto=goto,
            merge="replace",
            retry=retry,
        )
