"""Graph shapes for the shape tests: every builder returns a compiled graph wired to a `Tracker`.

A `Tracker` scripts what each task of a step returns (`"<task>=ok"` passes, `"<task>=bad"`
fails) and counts every call of every step function and downstream node, so a test can say
exactly what ran and how many times. A task is named after its node, plus `:<item>` for a
`Send` item or for a step inside a per-item subgraph.
"""

from __future__ import annotations

import dataclasses
import operator
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, Send
from pydantic import BaseModel

from reliable_graph import (
    Completeness,
    ConfidenceRouter,
    ContextGate,
    HumanEscalation,
    PendingEscalation,
    Predicate,
    Refetch,
    ReliabilityState,
    aanswer_escalations,
    answer_escalations,
    as_chunks,
    merge_reliability,
    pending_escalations,
    reliable_step,
    run_outcome,
    task_records,
)
from reliable_graph.escalation import apending_escalations

OK, BAD = "ok", "bad"
TIMEOUT, FORBIDDEN = "timeout", "forbidden"
"""Plan entries that make a step's call fail like a connector: an httpx timeout, an HTTP 403."""


def _timeout(task: str) -> Exception:
    return httpx.ReadTimeout(f"{task}: read timed out", request=httpx.Request("GET", "https://api.test/x"))


def _forbidden(task: str) -> Exception:
    request = httpx.Request("GET", "https://api.test/x")
    return httpx.HTTPStatusError(f"{task}: 403", request=request, response=httpx.Response(403, request=request))


CONNECTOR_ERRORS: dict[str, Callable[[str], Exception]] = {TIMEOUT: _timeout, FORBIDDEN: _forbidden}
ITEMS = ("a", "b", "c", "d", "e")


def passes(output: Any) -> bool:
    """A value passes when it is `"<task>=ok"` (or a non-empty list of such values)."""
    if isinstance(output, list):
        return bool(output) and all(passes(o) for o in output)
    return isinstance(output, str) and output.endswith("=ok")


PASSES = Predicate(fn=passes, name="ends_ok", reason="the output does not end with '=ok'")


def get(state: Any, key: str, default: Any = None) -> Any:
    """`state[key]` of a dict, pydantic or dataclass state."""
    if isinstance(state, Mapping):
        return state.get(key, default)
    return getattr(state, key, default)


def texts(context: Any) -> list[str]:
    return [c.text for c in as_chunks(context or [])]


def config(thread: str = "t") -> Any:
    return {"configurable": {"thread_id": thread}}


class Tracker:
    """Scripts the outputs of each task and counts what ran."""

    def __init__(self, plan: Mapping[str, list[str]] | None = None) -> None:
        self.plan = dict(plan or {})
        self.calls: Counter[str] = Counter()
        """Calls per task (step functions) and per node (plain nodes)."""
        self.contexts: dict[str, list[list[str]]] = defaultdict(list)
        """The context texts each call of a task saw."""
        self.seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
        """What each plain node saw, one entry per run."""

    def next(self, task: str, context: Any) -> str:
        n = self.calls[task]
        self.calls[task] += 1
        self.contexts[task].append(texts(context))
        outputs = self.plan.get(task, [OK])
        output = outputs[min(n, len(outputs) - 1)]
        if output in CONNECTOR_ERRORS:
            raise CONNECTOR_ERRORS[output](task)
        return f"{task}={output}"

    def step(
        self,
        node: str,
        key: str,
        *,
        per_item: bool = False,
        as_list: bool = False,
        message: bool = False,
        is_async: bool = False,
    ) -> Callable[..., Any]:
        """A step function `state -> {key: value}` named `node`."""

        def run(state: Any) -> dict[str, Any]:
            task = f"{node}:{get(state, 'item')}" if per_item else node
            value = self.next(task, get(state, "context"))
            update: dict[str, Any] = {key: [value] if as_list else value}
            if message:
                update["messages"] = [AIMessage(content=value, id=f"msg-{task}")]
            return update

        if is_async:

            async def arun(state: Any) -> dict[str, Any]:
                return run(state)

            arun.__name__ = node
            return arun
        run.__name__ = node
        return run

    def node(self, name: str, *keys: str, update: Callable[[Any], dict[str, Any]] | None = None) -> Any:
        """A plain node that counts its runs and records the `keys` it saw."""

        def run(state: Any) -> dict[str, Any]:
            self.calls[name] += 1
            self.seen[name].append({k: get(state, k) for k in keys})
            return update(state) if update else {}

        run.__name__ = name
        return run


# -- state schemas -----------------------------------------------------------------------------


class ShapeState(ReliabilityState, total=False):
    question: str
    context: list[Any]
    item: str
    first: Any
    second: Any
    left: Any
    right: Any
    short: Any
    long: Any
    intro: Any
    outline: Any
    draft: Any
    title: Any
    ctx_a: list[Any]
    ctx_b: list[Any]
    results: Annotated[list[Any], operator.add]


class PydanticState(BaseModel):
    question: str = ""
    context: list[Any] = []
    item: str | None = None
    first: Any = None
    second: Any = None
    results: Annotated[list[Any], operator.add] = []
    reliability: Annotated[dict[str, Any], merge_reliability] = {}


@dataclasses.dataclass
class DataclassState:
    question: str = ""
    context: list[Any] = dataclasses.field(default_factory=list)
    item: str | None = None
    first: Any = None
    second: Any = None
    results: Annotated[list[Any], operator.add] = dataclasses.field(default_factory=list)
    reliability: Annotated[dict[str, Any], merge_reliability] = dataclasses.field(default_factory=dict)


class ChatState(MessagesState, ReliabilityState, total=False):
    question: str
    context: list[Any]
    item: str
    first: Any
    second: Any
    results: Annotated[list[Any], operator.add]


SCHEMAS = {"typeddict": ShapeState, "pydantic": PydanticState, "dataclass": DataclassState, "messages": ChatState}


class ItemState(ReliabilityState, total=False):
    """The state of a per-item subgraph."""

    question: str
    item: str
    context: list[Any]
    draft: Any
    results: Annotated[list[Any], operator.add]


class ItemOut(ReliabilityState, total=False):
    """What a per-item subgraph hands back to its parent."""

    results: Annotated[list[Any], operator.add]


def item_input(item: str) -> dict[str, Any]:
    """A `Send` item's argument."""
    return {"question": f"q-{item}", "item": item, "context": [f"ctx-{item}"]}


# -- reliable_step shapes ----------------------------------------------------------------------


STEP_OPTIONS: dict[str, Any] = {}
"""Options every shape's `reliable_step` gets (the `attempts` fixtures of the shape tests set `checkpoint_attempts`)."""


def _step(tracker: Tracker, node: str, key: str, pass_to: str, is_async: bool, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"evaluator": PASSES, "threshold": 1.0, "pass_to": pass_to, "output_key": key}
    options.update(STEP_OPTIONS)
    fn_options = {k: kwargs.pop(k) for k in ("per_item", "as_list", "message") if k in kwargs}
    options.update(kwargs)
    return reliable_step(tracker.step(node, key, is_async=is_async, **fn_options), name=node, **options)


def straight(tracker: Tracker, *, schema: Any = ShapeState, is_async: bool = False, checkpointer: Any = None) -> Any:
    """START -> first -> second -> finish -> END (first and second are reliable steps)."""
    message = schema is ChatState
    builder = StateGraph(schema)
    builder.add_node(_step(tracker, "first", "first", "second", is_async, message=message))
    builder.add_node(_step(tracker, "second", "second", "finish", is_async, message=message))
    builder.add_node("finish", tracker.node("finish", "first", "second"))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "first")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def parallel(tracker: Tracker, *, is_async: bool = False, checkpointer: Any = None) -> Any:
    """START -> left | right -> join (deferred) -> END: two branches that escalate in the same superstep."""
    builder = StateGraph(ShapeState)
    builder.add_node(_step(tracker, "left", "left", "join", is_async))
    builder.add_node(_step(tracker, "right", "right", "join", is_async))
    builder.add_node("join", tracker.node("join", "left", "right"), defer=True)
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def staggered(tracker: Tracker, *, is_async: bool = False, checkpointer: Any = None) -> Any:
    """START -> short -> join; START -> pre -> long -> join (deferred): escalations one superstep apart."""
    builder = StateGraph(ShapeState)
    builder.add_node(_step(tracker, "short", "short", "join", is_async))
    builder.add_node("pre", tracker.node("pre"))
    builder.add_node(_step(tracker, "long", "long", "join", is_async))
    builder.add_node("join", tracker.node("join", "short", "long"), defer=True)
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "short")
    builder.add_edge(START, "pre")
    builder.add_edge("pre", "long")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def fan_out(
    tracker: Tracker,
    *,
    schema: Any = ShapeState,
    items: tuple[str, ...] = ITEMS,
    is_async: bool = False,
    checkpointer: Any = None,
) -> Any:
    """START -> fan -> Send(item) x N -> collect (deferred) -> END; items append to `results`."""
    builder = StateGraph(schema)
    builder.add_node("fan", tracker.node("fan"))
    message = schema is ChatState
    builder.add_node(
        _step(
            tracker,
            "item",
            "results",
            "collect",
            is_async,
            per_item=True,
            as_list=True,
            message=message,
            input_keys=["item"],
        )
    )
    builder.add_node("collect", tracker.node("collect", "results"), defer=True)
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "fan")
    builder.add_conditional_edges("fan", lambda s: [Send("item", item_input(x)) for x in items], ["item"])
    builder.add_edge("collect", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def subgraph_of_steps(tracker: Tracker, *, is_async: bool = False) -> Any:
    """The subgraph: START -> outline | draft | title -> END, three reliable steps side by side."""
    sub = StateGraph(ShapeState)
    for node in ("outline", "draft", "title"):
        sub.add_node(_step(tracker, node, node, END, is_async))
        sub.add_edge(START, node)
    sub.add_node(HumanEscalation())
    return sub.compile()


def nested(tracker: Tracker, *, is_async: bool = False, checkpointer: Any = None) -> Any:
    """START -> intro -> sub (a compiled subgraph, same state) -> after -> END."""
    builder = StateGraph(ShapeState)
    builder.add_node(_step(tracker, "intro", "intro", "sub", is_async))
    builder.add_node("sub", subgraph_of_steps(tracker, is_async=is_async))
    builder.add_node("after", tracker.node("after", "intro", "outline", "draft", "title"))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "intro")
    builder.add_edge("sub", "after")
    builder.add_edge("after", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def item_subgraph(tracker: Tracker, *, kind: str = "step", is_async: bool = False) -> Any:
    """The per-item subgraph: work (a reliable step, or a plain node + ConfidenceRouter) -> finalize."""
    sub = StateGraph(ItemState, output_schema=ItemOut)
    if kind == "step":
        sub.add_node(_step(tracker, "work", "draft", "finalize", is_async, per_item=True, input_keys=["item"]))
    else:
        sub.add_node("work", tracker.step("work", "draft", per_item=True, is_async=is_async))
        sub.add_node(
            ConfidenceRouter(
                PASSES,
                name="check",
                step="work",
                threshold=1.0,
                output_key="draft",
                input_keys=["item"],
                pass_to="finalize",
                retry_to="work",
                escalate_to="human_escalation",
            )
        )
        sub.add_edge("work", "check")
    sub.add_node(
        "finalize",
        tracker.node("finalize", "item", "draft", update=lambda s: {"results": [s["draft"]]}),
    )
    sub.add_node(HumanEscalation())
    sub.add_edge(START, "work")
    sub.add_edge("finalize", END)
    return sub.compile()


def fan_out_subgraph(
    tracker: Tracker,
    *,
    kind: str = "step",
    items: tuple[str, ...] = ITEMS,
    is_async: bool = False,
    checkpointer: Any = None,
) -> Any:
    """START -> fan -> Send(per_item) x N (a compiled subgraph) -> collect (deferred) -> END."""
    builder = StateGraph(ShapeState)
    builder.add_node("fan", tracker.node("fan"))
    builder.add_node("per_item", item_subgraph(tracker, kind=kind, is_async=is_async))
    builder.add_node("collect", tracker.node("collect", "results"), defer=True)
    builder.add_edge(START, "fan")
    builder.add_conditional_edges("fan", lambda s: [Send("per_item", item_input(x)) for x in items], ["per_item"])
    builder.add_edge("per_item", "collect")
    builder.add_edge("collect", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


# -- ConfidenceRouter shapes -------------------------------------------------------------------


def _router(step: str, pass_to: str) -> ConfidenceRouter:
    return ConfidenceRouter(
        PASSES,
        name=f"check_{step}",
        step=step,
        threshold=1.0,
        output_key=step,
        pass_to=pass_to,
        retry_to=step,
        escalate_to="human_escalation",
    )


def router_straight(tracker: Tracker, *, is_async: bool = False, checkpointer: Any = None) -> Any:
    """START -> draft -> check_draft (router) -> finish -> END."""
    builder = StateGraph(ShapeState)
    builder.add_node("draft", tracker.step("draft", "draft", is_async=is_async))
    builder.add_node(_router("draft", "finish"))
    builder.add_node("finish", tracker.node("finish", "draft"))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "check_draft")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def router_parallel(tracker: Tracker, *, is_async: bool = False, checkpointer: Any = None) -> Any:
    """START -> left -> check_left | right -> check_right -> join -> END."""
    builder = StateGraph(ShapeState)
    for step in ("left", "right"):
        builder.add_node(step, tracker.step(step, step, is_async=is_async))
        builder.add_node(_router(step, "join"))
        builder.add_edge(START, step)
        builder.add_edge(step, f"check_{step}")
    builder.add_node("join", tracker.node("join", "left", "right"))
    builder.add_node(HumanEscalation())
    builder.add_edge("join", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def router_nested(tracker: Tracker, *, is_async: bool = False, checkpointer: Any = None) -> Any:
    """START -> sub (draft -> check_draft | title -> check_title, same state) -> after -> END."""
    sub = StateGraph(ShapeState)
    for step in ("draft", "title"):
        sub.add_node(step, tracker.step(step, step, is_async=is_async))
        sub.add_node(_router(step, END))
        sub.add_edge(START, step)
        sub.add_edge(step, f"check_{step}")
    sub.add_node(HumanEscalation())
    builder = StateGraph(ShapeState)
    builder.add_node("sub", sub.compile())
    builder.add_node("after", tracker.node("after", "draft", "title"))
    builder.add_edge(START, "sub")
    builder.add_edge("sub", "after")
    builder.add_edge("after", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


# -- ContextGate shapes ------------------------------------------------------------------------

TOPIC = "tide tables"
GOOD_CONTEXT = "Tide tables for Brest: high water 06:12."


def _gate(tracker: Tracker, step: str, context_key: str, inline: bool = False) -> list[Any]:
    """A gate for `step` on `context_key`, its Refetch node (None: `inline`, the gate re-fetches itself), the step."""

    def retriever(query: str) -> list[str]:
        tracker.calls[f"refetch_{step}"] += 1
        return [f"nothing useful for {step}"]

    def answer(state: Any) -> dict[str, Any]:
        tracker.calls[step] += 1
        tracker.contexts[step].append(texts(get(state, context_key)))
        return {step: f"{step}=ok"}

    answer.__name__ = step
    gate = ContextGate(
        Completeness(topics=[TOPIC]),
        name=f"gate_{step}",
        step=step,
        threshold=1.0,
        context_key=context_key,
        max_refetches=1,
        pass_to=step,
        refetch_to=None if inline else f"refetch_{step}",
        escalate_to="human_escalation",
        refetch=retriever if inline else None,
    )
    if inline:
        return [gate, None, answer]
    refetch = Refetch(retriever, name=f"refetch_{step}", step=step, context_key=context_key, goto=f"gate_{step}")
    return [gate, refetch, answer]


def gate_straight(tracker: Tracker, *, checkpointer: Any = None, inline: bool = False) -> Any:
    """START -> gate_first (refetch_first) -> first -> finish -> END."""
    builder = StateGraph(ShapeState)
    gate, refetch, answer = _gate(tracker, "first", "context", inline)
    builder.add_node(gate)
    if refetch is not None:
        builder.add_node(refetch)
    builder.add_node("first", answer)
    builder.add_node("finish", tracker.node("finish", "first", "context"))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "gate_first")
    builder.add_edge("first", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def _gate_pair(builder: Any, tracker: Tracker, join: str, inline: bool) -> None:
    for step, key in (("left", "ctx_a"), ("right", "ctx_b")):
        gate, refetch, answer = _gate(tracker, step, key, inline)
        builder.add_node(gate)
        if refetch is not None:
            builder.add_node(refetch)
        builder.add_node(step, answer)
        builder.add_edge(START, f"gate_{step}")
        builder.add_edge(step, join)
    builder.add_node(HumanEscalation())


def gate_parallel(tracker: Tracker, *, checkpointer: Any = None, inline: bool = False) -> Any:
    """START -> gate_left -> left | gate_right -> right -> join -> END (two context keys)."""
    builder = StateGraph(ShapeState)
    _gate_pair(builder, tracker, "join", inline)
    builder.add_node("join", tracker.node("join", "left", "right", "ctx_a", "ctx_b"))
    builder.add_edge("join", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def gate_nested(tracker: Tracker, *, checkpointer: Any = None, inline: bool = False) -> Any:
    """START -> sub (the two gated branches of `gate_parallel`, same state) -> after -> END."""
    sub = StateGraph(ShapeState)
    _gate_pair(sub, tracker, END, inline)
    builder = StateGraph(ShapeState)
    builder.add_node("sub", sub.compile())
    builder.add_node("after", tracker.node("after", "left", "right", "ctx_a", "ctx_b"))
    builder.add_edge(START, "sub")
    builder.add_edge("sub", "after")
    builder.add_edge("after", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


def gate_fan_out_subgraph(tracker: Tracker, *, checkpointer: Any = None, inline: bool = False) -> Any:
    """START -> fan -> Send(per_item) x 5 -> collect (deferred): each item's subgraph is gate_work -> work.

    Items a, c, e bring context on the topic; b and d bring "cats", so their gates escalate.
    """
    sub = StateGraph(ItemState, output_schema=ItemOut)
    gate, refetch, _ = _gate(tracker, "work", "context", inline)

    def work(state: Any) -> dict[str, Any]:
        tracker.calls[f"work:{state['item']}"] += 1
        tracker.contexts[f"work:{state['item']}"].append(texts(state["context"]))
        return {"results": [f"{state['item']}:{len(state['context'])}"]}

    sub.add_node(gate)
    if refetch is not None:
        sub.add_node(refetch)
    sub.add_node("work", work)
    sub.add_node(HumanEscalation())
    sub.add_edge(START, "gate_work")
    sub.add_edge("work", END)

    def items(state: Any) -> list[Send]:
        return [
            Send("per_item", {"question": TOPIC, "item": x, "context": [GOOD_CONTEXT if x in "ace" else "cats"]})
            for x in ITEMS
        ]

    builder = StateGraph(ShapeState)
    builder.add_node("fan", tracker.node("fan"))
    builder.add_node("per_item", sub.compile())
    builder.add_node("collect", tracker.node("collect", "results"), defer=True)
    builder.add_edge(START, "fan")
    builder.add_conditional_edges("fan", items, ["per_item"])
    builder.add_edge("per_item", "collect")
    builder.add_edge("collect", END)
    return builder.compile(checkpointer=checkpointer or InMemorySaver())


# -- checkpointers ------------------------------------------------------------------------------

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
"""The CI's PostgreSQL (trust auth on 127.0.0.1:5432, database `test`)."""


@asynccontextmanager
async def checkpointer(kind: str, path: Path, *, is_async: bool) -> AsyncIterator[Any]:
    """An in-memory, SQLite-file or PostgreSQL checkpointer, sync or async, set up and closed after."""
    if kind == "memory":
        yield InMemorySaver()
    elif kind == "sqlite":
        if is_async:
            async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
                yield saver
        else:
            with SqliteSaver.from_conn_string(str(path)) as saver:
                yield saver
    elif kind == "postgres":
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        if is_async:
            async with AsyncPostgresSaver.from_conn_string(POSTGRES_DSN) as saver:
                await saver.setup()
                yield saver
        else:
            with PostgresSaver.from_conn_string(POSTGRES_DSN) as saver:
                saver.setup()
                yield saver
    else:
        msg = f"unknown checkpointer kind {kind!r}"
        raise ValueError(msg)


# -- driving a thread --------------------------------------------------------------------------


class Thread:
    """One thread of a graph, driven with `invoke` or `ainvoke` (and their library twins)."""

    def __init__(self, graph: Any, *, is_async: bool, thread: str | None = None) -> None:
        self.graph = graph
        self.is_async = is_async
        self.config = config(thread or uuid.uuid4().hex)

    async def invoke(self, arg: Any) -> Any:
        if self.is_async:
            return await self.graph.ainvoke(arg, self.config)
        return self.graph.invoke(arg, self.config)

    async def resume(self, answers: Mapping[str, Any]) -> Any:
        """Resume with raw `Command(resume={interrupt_id: answer, ...})`."""
        return await self.invoke(Command(resume=dict(answers)))

    async def answer(self, answers: Any) -> Any:
        """Resume through `answer_escalations` (validated first)."""
        if self.is_async:
            return await aanswer_escalations(self.graph, self.config, answers)
        return answer_escalations(self.graph, self.config, answers)

    async def state(self) -> Any:
        if self.is_async:
            return await self.graph.aget_state(self.config)
        return self.graph.get_state(self.config)

    async def pending(self) -> list[PendingEscalation]:
        if self.is_async:
            return await apending_escalations(self.graph, self.config)
        return pending_escalations(self.graph, self.config)


def surfaced(out: Any) -> list[Any]:
    """The interrupts of an invoke result, checked distinct (ids, escalation ids and tasks)."""
    interrupts = list(out.get("__interrupt__", ()))
    for field in ("id", "escalation id", "task"):
        values = [i.id if field == "id" else i.value["id" if field == "escalation id" else "task"] for i in interrupts]
        assert len(set(values)) == len(values), f"duplicated {field}: {values}"
    return interrupts


def by_item(interrupts: list[Any]) -> dict[str, Any]:
    """Interrupts by the `item` input of their task."""
    found = {i.value["inputs"]["item"]: i for i in interrupts}
    assert len(found) == len(interrupts)
    return found


def by_step(interrupts: list[Any]) -> dict[str, Any]:
    """Interrupts by the step that escalated."""
    found = {i.value["step"]: i for i in interrupts}
    assert len(found) == len(interrupts)
    return found


async def assert_waiting(thread: Thread, out: Any, interrupts: list[Any]) -> None:
    """Every interrupt is pending in the thread, and the run reads as escalated everywhere."""
    assert run_outcome(out) == "escalated"
    snapshot = await thread.state()
    assert run_outcome(snapshot) == "escalated"
    pending = await thread.pending()
    assert sorted(p.interrupt_id for p in pending) == sorted(i.id for i in interrupts)
    assert sorted(p.escalation["id"] for p in pending) == sorted(i.value["id"] for i in interrupts)


def outcomes_by_step(values: Any) -> Counter[tuple[str, str]]:
    """(step, outcome) of every task record, counted."""
    return Counter((rec["step"], rec.get("outcome", "-")) for rec in task_records(values).values())


DECISIONS = {
    "approve": {"action": "approve"},
    "edit": {"action": "edit", "output": "edited"},
    "provide_context": {"action": "provide_context", "context": ["hint from a reviewer"]},
    "retry": {"action": "retry"},
    "terminate": {"action": "terminate"},
}
OUTCOME_OF = {
    "approve": "approved",
    "edit": "edited",
    "provide_context": "retry_pass",
    "retry": "retry_pass",
    "terminate": "terminated",
}
ITEM_DECISIONS = {"a": "approve", "b": "edit", "c": "provide_context", "d": "retry", "e": "terminate"}


def decision(action: str, *, output: Any = "edited", context: list[Any] | None = None) -> dict[str, Any]:
    """The answer taking `action` (an edit's output is `output`, given context is `context`)."""
    if action == "edit":
        return {**DECISIONS[action], "output": output}
    if action == "provide_context" and context is not None:
        return {**DECISIONS[action], "context": context}
    return dict(DECISIONS[action])


# -- scenarios shared by the checkpointer tests ----------------------------------------------------


async def scenario_send_fan_out(thread: Thread, tracker: Tracker, *, all_at_once: bool = False) -> None:
    """Send fan-out of five items, b and d escalate; b is edited and d approved (one at a time or together)."""
    out = await thread.invoke({"question": "q", "context": ["c0"]})
    interrupts = surfaced(out)
    found = by_item(interrupts)
    assert sorted(found) == ["b", "d"]
    for item, interrupt in found.items():
        esc = interrupt.value
        assert esc["step"] == "item" and esc["path"] == "item" and esc["task"].startswith("item#")
        assert esc["inputs"] == {"item": item} and esc["output"] == [f"item:{item}=bad"]
        assert esc["update"]["results"] == [f"item:{item}=bad"] and len(esc["attempts"]) == 2
    await assert_waiting(thread, out, interrupts)
    ran = {"fan": 1, "item:a": 1, "item:b": 2, "item:c": 1, "item:d": 2, "item:e": 1}
    assert {k: tracker.calls[k] for k in ran} == ran

    edit_b = decision("edit", output=["b=edited"])
    if all_at_once:  # through the library, by escalation id
        out = await thread.answer({found["b"].value["id"]: edit_b, found["d"].value["id"]: decision("approve")})
    else:
        out = await thread.resume({found["b"].id: edit_b})
        assert [i.id for i in surfaced(out)] == [found["d"].id]
        await assert_waiting(thread, out, [found["d"]])
        out = await thread.invoke(None)  # resuming without an answer neither re-runs nor loses anything
        assert [i.id for i in surfaced(out)] == [found["d"].id]
        assert {k: tracker.calls[k] for k in ran} == ran
        out = await thread.resume({found["d"].id: decision("approve")})

    assert "__interrupt__" not in out and run_outcome(out) == "ok" and run_outcome(await thread.state()) == "ok"
    expected = ["b=edited", "item:a=ok", "item:c=ok", "item:d=bad", "item:e=ok"]
    assert sorted(out["results"]) == expected
    assert {k: tracker.calls[k] for k in ran} == ran
    assert sorted(tracker.seen["collect"][-1]["results"]) == expected
    records = task_records(out)
    assert len(records) == 5 and all(key.startswith("item#") for key in records)
    assert outcomes_by_step(out) == Counter({("item", "pass"): 3, ("item", "edited"): 1, ("item", "approved"): 1})
    assert records[found["b"].value["task"]]["outcome"] == "edited"
    assert records[found["d"].value["task"]]["outcome"] == "approved"
    assert not any("pending" in rec for rec in records.values())


async def scenario_nested_one_at_a_time(thread: Thread, tracker: Tracker) -> None:
    """A subgraph as a node: draft and title escalate inside it; title edited, then draft given context."""
    out = await thread.invoke({"question": "q", "context": ["c0"]})
    interrupts = surfaced(out)
    found = by_step(interrupts)
    assert sorted(found) == ["draft", "title"]
    for step, interrupt in found.items():
        esc = interrupt.value
        assert esc["path"] == f"sub/{step}" and esc["task"].startswith(f"sub/{step}#")
        assert esc["inputs"] == {"question": "q"} and esc["output"] == f"{step}=bad"
    await assert_waiting(thread, out, interrupts)
    snapshot = await thread.state()
    assert snapshot.next == ("sub",) and len(snapshot.interrupts) == 2
    intro_before = task_records(snapshot)["intro"]
    assert intro_before["outcome"] == "pass"
    ran = {"intro": 1, "outline": 1, "draft": 2, "title": 2}
    assert {k: tracker.calls[k] for k in ran} == ran and tracker.calls["after"] == 0

    out = await thread.resume({found["title"].id: decision("edit", output="title=edited")})
    assert [i.id for i in surfaced(out)] == [found["draft"].id]
    await assert_waiting(thread, out, [found["draft"]])
    assert {k: tracker.calls[k] for k in ran} == ran and tracker.calls["after"] == 0

    out = await thread.resume({found["draft"].id: decision("provide_context")})
    assert "__interrupt__" not in out and run_outcome(out) == "ok" and run_outcome(await thread.state()) == "ok"
    assert {k: tracker.calls[k] for k in ran} == {**ran, "draft": 3}
    assert tracker.contexts["draft"][-1] == ["c0", "hint from a reviewer"]
    assert tracker.calls["after"] == 1
    assert tracker.seen["after"] == [
        {"intro": "intro=ok", "outline": "outline=ok", "draft": "draft=ok", "title": "title=edited"}
    ]
    records = task_records(out)
    assert records["intro"] == intro_before
    inner = {k: v for k, v in records.items() if k != "intro"}
    assert sorted(v["step"] for v in inner.values()) == ["draft", "outline", "title"]
    assert len({k.split("#")[1] for k in inner}) == 1  # one subgraph task: one namespace hash
    assert all(v["path"] == f"sub/{v['step']}" for v in inner.values())
    assert outcomes_by_step(out) == Counter(
        {("intro", "pass"): 1, ("outline", "pass"): 1, ("draft", "retry_pass"): 1, ("title", "edited"): 1}
    )


async def scenario_send_subgraph_each_decision(thread: Thread, tracker: Tracker, *, order: list[str]) -> None:
    """Send into a per-item subgraph: all five items escalate, each gets another decision, one at a time."""
    out = await thread.invoke({"question": "q"})
    interrupts = surfaced(out)
    found = by_item(interrupts)
    assert sorted(found) == list(ITEMS)
    assert all(i.value["step"] == "work" and i.value["path"] == "per_item/work" for i in interrupts)
    await assert_waiting(thread, out, interrupts)
    assert tracker.calls["finalize"] == 0 and tracker.calls["collect"] == 0

    for n, item in enumerate(order):
        action = ITEM_DECISIONS[item]
        out = await thread.answer({found[item].id: decision(action, output=f"{item}=edited")})
        left = order[n + 1 :]
        assert sorted(i.id for i in surfaced(out)) == sorted(found[x].id for x in left)
        assert sorted(p.interrupt_id for p in await thread.pending()) == sorted(found[x].id for x in left)

    assert sorted(out["results"]) == ["b=edited", "work:a=bad", "work:c=ok", "work:d=ok"]
    assert {x: tracker.calls[f"work:{x}"] for x in ITEMS} == {"a": 2, "b": 2, "c": 3, "d": 3, "e": 2}
    assert tracker.contexts["work:c"][-1] == ["ctx-c", "hint from a reviewer"]
    assert all("hint from a reviewer" not in ctx for x in "abde" for ctx in tracker.contexts[f"work:{x}"])
    assert tracker.calls["finalize"] == 4 and tracker.calls["collect"] == 1
    assert sorted(tracker.seen["collect"][0]["results"]) == sorted(out["results"])
    records = task_records(out)
    assert len(records) == 5
    assert {records[found[x].value["task"]]["outcome"] for x in ITEMS} == set(OUTCOME_OF.values())
    assert {x: records[found[x].value["task"]]["outcome"] for x in ITEMS} == {
        x: OUTCOME_OF[a] for x, a in ITEM_DECISIONS.items()
    }
    assert run_outcome(out) == "terminated" and run_outcome(await thread.state()) == "terminated"
