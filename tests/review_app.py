"""Graphs whose steps escalate, in every shape a user builds, on SQLite or Postgres, with or without a store.

Imported by the review matrix tests and by the child processes the kill tests SIGKILL. Each
graph's steps write `"<task>=ok"` (passing) or `"<task>=draft"` (failing: the task escalates)
into `results` (a list with a reducer), so the final state shows every task's result once, or
twice if a decision was applied twice. Downstream nodes append one line per run to a side-effect
log, so a continuation that ran twice shows there.

    shape            tasks that escalate                 downstream
    straight         draft                               after
    branches         left, right                         join (deferred)
    send             item:a, item:c, item:e (of a..e)    collect (deferred)
    subgraph         outline, title (of outline, title,  after
                     draft, inside a subgraph)
    send_subgraph    work:a, work:c (of a..d, each item  collect (deferred)
                     a subgraph)
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.sqlite import SqliteStore
from langgraph.types import Send

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step

SHAPES = ("straight", "branches", "send", "subgraph", "send_subgraph")
ESCALATING: dict[str, tuple[str, ...]] = {
    "straight": ("draft",),
    "branches": ("left", "right"),
    "send": ("item:a", "item:c", "item:e"),
    "subgraph": ("outline", "title"),
    "send_subgraph": ("work:a", "work:c"),
}
TASKS: dict[str, tuple[str, ...]] = {
    "straight": ("draft",),
    "branches": ("left", "right"),
    "send": ("item:a", "item:b", "item:c", "item:d", "item:e"),
    "subgraph": ("outline", "title", "draft"),
    "send_subgraph": ("work:a", "work:b", "work:c", "work:d"),
}
DOWNSTREAM = {
    "straight": "after",
    "branches": "join",
    "send": "collect",
    "subgraph": "after",
    "send_subgraph": "collect",
}


class State(ReliabilityState, total=False):
    question: str
    item: str
    results: Annotated[list[str], operator.add]


class ItemOut(ReliabilityState, total=False):
    results: Annotated[list[str], operator.add]


PASSES = Predicate(fn=lambda out: all(str(o).endswith(("=ok",)) for o in out), name="ends_ok", reason="not signed off")


def _fn(name: str, escalating: tuple[str, ...], per_item: bool) -> Any:
    def step(state: Any) -> dict[str, Any]:
        task = f"{name}:{state['item']}" if per_item else name
        return {"results": [f"{task}={'draft' if task in escalating else 'ok'}"]}

    step.__name__ = name
    return step


def _step(name: str, shape: str, pass_to: str, *, per_item: bool = False) -> Any:
    return reliable_step(
        _fn(name, ESCALATING[shape], per_item),
        name=name,
        evaluator=PASSES,
        threshold=1.0,
        max_retries=0,
        output_key="results",
        input_keys=["item"] if per_item else None,
        pass_to=pass_to,
    )


def _effect(name: str, effects: Path | None) -> Any:
    def run(state: Any, config: RunnableConfig) -> dict[str, Any]:
        if effects is not None:
            with effects.open("a") as fh:
                fh.write(f"{config['configurable']['thread_id']} {name}\n")
        return {}

    run.__name__ = name
    return run


def builder(
    shape: str, effects: Path | None = None, *, format: str = "reliable", mode: str | None = None
) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled graph of `shape`, its review nodes in `format` and `mode`."""

    def review() -> HumanEscalation:
        return HumanEscalation(format=format, mode=mode)  # type: ignore[arg-type]

    graph = StateGraph(State)
    down = DOWNSTREAM[shape]
    if shape == "straight":
        graph.add_node(_step("draft", shape, down))
        graph.add_edge(START, "draft")
        graph.add_node(down, _effect(down, effects))
    elif shape == "branches":
        for side in ("left", "right"):
            graph.add_node(_step(side, shape, down))
            graph.add_edge(START, side)
        graph.add_node(down, _effect(down, effects), defer=True)
    elif shape == "send":
        graph.add_node("fan", lambda s: {})
        graph.add_node(_step("item", shape, down, per_item=True))
        graph.add_edge(START, "fan")
        graph.add_conditional_edges(
            "fan", lambda s: [Send("item", {"question": s["question"], "item": x}) for x in "abcde"], ["item"]
        )
        graph.add_node(down, _effect(down, effects), defer=True)
    elif shape == "subgraph":
        sub = StateGraph(State)
        for name in ("outline", "title", "draft"):
            sub.add_node(_step(name, shape, END))
            sub.add_edge(START, name)
        sub.add_node(review())
        graph.add_node("sub", sub.compile())
        graph.add_edge(START, "sub")
        graph.add_node(down, _effect(down, effects))
        graph.add_edge("sub", down)
    elif shape == "send_subgraph":
        sub = StateGraph(State, output_schema=ItemOut)
        sub.add_node(_step("work", shape, END, per_item=True))
        sub.add_node(review())
        sub.add_edge(START, "work")
        graph.add_node("fan", lambda s: {})
        graph.add_node("per_item", sub.compile())
        graph.add_edge(START, "fan")
        graph.add_conditional_edges(
            "fan", lambda s: [Send("per_item", {"question": s["question"], "item": x}) for x in "abcd"], ["per_item"]
        )
        graph.add_node(down, _effect(down, effects), defer=True)
        graph.add_edge("per_item", down)
    else:
        msg = f"unknown shape {shape!r}"
        raise ValueError(msg)
    graph.add_edge(down, END)
    graph.add_node(review())
    return graph


@contextmanager
def compiled(graph: Any, backend: str, where: str, *, store: bool = True) -> Iterator[tuple[Any, Any]]:
    """`graph` compiled on SQLite (`where` a file) or Postgres (`where` a URL), with the store or without."""
    if backend == "sqlite":
        saver_conn = sqlite3.connect(where, check_same_thread=False, timeout=60)
        saver_conn.execute("PRAGMA journal_mode=WAL")
        store_conn = sqlite3.connect(where, check_same_thread=False, isolation_level=None, timeout=60)
        sqlite_store = SqliteStore(store_conn)
        sqlite_store.setup()
        try:
            chosen = sqlite_store if store else None
            yield graph.compile(checkpointer=SqliteSaver(saver_conn), store=chosen), chosen
        finally:
            store_conn.close()
            saver_conn.close()
        return
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(where) as saver, PostgresStore.from_conn_string(where) as pg_store:
        saver.setup()
        pg_store.setup()
        chosen = pg_store if store else None
        yield graph.compile(checkpointer=saver, store=chosen), chosen


@contextmanager
def app(
    shape: str,
    backend: str,
    where: str,
    *,
    store: bool = True,
    effects: Path | None = None,
    format: str = "reliable",
    mode: str | None = None,
) -> Iterator[tuple[Any, Any]]:
    """The compiled graph of `shape` on SQLite (`where` a file) or Postgres (`where` a URL), and its store."""
    with compiled(builder(shape, effects, format=format, mode=mode), backend, where, store=store) as made:
        yield made


@asynccontextmanager
async def aapp(
    shape: str, backend: str, where: str, *, store: bool = True, effects: Path | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """`app` for async runs: `AsyncSqliteSaver` + `AsyncSqliteStore`, or `AsyncPostgresSaver` + `AsyncPostgresStore`."""
    graph = builder(shape, effects)
    if backend == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
        from langgraph.store.sqlite.aio import AsyncSqliteStore

        async with AsyncSqliteSaver.from_conn_string(where) as saver, AsyncSqliteStore.from_conn_string(where) as st:
            await st.setup()
            chosen = st if store else None
            yield graph.compile(checkpointer=saver, store=chosen), chosen
        return
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore

    async with AsyncPostgresSaver.from_conn_string(where) as saver, AsyncPostgresStore.from_conn_string(where) as st:
        await saver.setup()
        await st.setup()
        chosen = st if store else None
        yield graph.compile(checkpointer=saver, store=chosen), chosen
