"""A graph whose steps escalate, for the inbox tests (imported by child processes too)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.store.sqlite import SqliteStore

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


class State(ReliabilityState, total=False):
    question: str
    context: list[Any]
    output: str
    done: str


def draft(state: State) -> dict[str, Any]:
    return {"output": f"draft for {state['question']}"}


def builder(side_effects: Path | None = None) -> StateGraph[Any, Any, Any, Any]:
    def after(state: State) -> dict[str, Any]:
        if side_effects is not None:
            with side_effects.open("a") as fh:
                fh.write(f"{state['question']}\n")
        return {"done": state.get("output", "")}

    graph = StateGraph(State)
    graph.add_node(
        reliable_step(
            draft,
            evaluator=Predicate(fn=lambda o: "approved" in o, reason="a human must sign it off"),
            threshold=1.0,
            max_retries=0,
            input_keys=["question"],
            pass_to="after",
        )
    )
    graph.add_node("after", after)
    graph.add_node(HumanEscalation())
    graph.add_edge(START, "draft")
    return graph


@contextmanager
def sqlite_app(path: Path, side_effects: Path | None = None) -> Iterator[tuple[Any, SqliteStore]]:
    """The graph on a SQLite file: checkpoints and store in the same database."""
    # one file, two connections: SqliteSaver commits itself, SqliteStore wants autocommit
    saver_conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    saver_conn.execute("PRAGMA journal_mode=WAL")
    store_conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    store = SqliteStore(store_conn)
    store.setup()
    try:
        yield builder(side_effects).compile(checkpointer=SqliteSaver(saver_conn), store=store), store
    finally:
        store_conn.close()
        saver_conn.close()


@contextmanager
def postgres_app(side_effects: Path | None = None) -> Iterator[tuple[Any, Any]]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(POSTGRES_URL) as saver, PostgresStore.from_conn_string(POSTGRES_URL) as store:
        saver.setup()
        store.setup()
        yield builder(side_effects).compile(checkpointer=saver, store=store), store
