"""Plumbing shared by the benchmarks: backends, and the review graphs the inbox and scale benchmarks drive."""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.sqlite import SqliteStore
from langgraph.types import Send

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step

POSTGRES_URL = os.environ.get("RELIABLE_GRAPH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

ITEMS = "abcdefghi"
"""A fan-out of 9 items..."""
ESCALATING = "abcde"
"""...of which 5 escalate."""


class FanState(ReliabilityState, total=False):
    question: str
    item: str
    results: Annotated[list[str], operator.add]


def fan_out_builder(effects: Path | None) -> StateGraph[Any, Any, Any, Any]:
    """START -> fan -> Send(item) x 9 (5 escalate) -> collect (deferred, logs one side effect) -> END."""

    def item(state: FanState) -> dict[str, Any]:
        return {"results": [f"{state['item']}={'draft' if state['item'] in ESCALATING else 'ok'}"]}

    def collect(state: FanState, config: RunnableConfig) -> dict[str, Any]:
        if effects is not None:
            with effects.open("a") as fh:
                fh.write(f"{config['configurable']['thread_id']}\n")
        return {}

    graph = StateGraph(FanState)
    graph.add_node("fan", lambda s: {})
    graph.add_node(
        reliable_step(
            item,
            evaluator=Predicate(fn=lambda out: all(o.endswith("=ok") for o in out), reason="needs a sign-off"),
            threshold=1.0,
            max_retries=0,
            output_key="results",
            input_keys=["item"],
            pass_to="collect",
        )
    )
    graph.add_node("collect", collect, defer=True)
    graph.add_node(HumanEscalation())
    graph.add_edge(START, "fan")
    graph.add_conditional_edges(
        "fan", lambda s: [Send("item", {"question": s["question"], "item": x}) for x in ITEMS], ["item"]
    )
    graph.add_edge("collect", END)
    return graph


def edit_of(escalation: dict[str, Any]) -> dict[str, Any]:
    """The decision every benchmark reviewer takes: sign the item off."""
    name = str(escalation["output"][0]).split("=", 1)[0]
    return {"action": "edit", "output": [f"{name}=signed"]}


@contextmanager
def compiled(builder: StateGraph[Any, Any, Any, Any], backend: str, where: str) -> Iterator[tuple[Any, Any]]:
    """`builder` compiled on SQLite (`where` a file; checkpoints and store in it) or Postgres (`where` a URL)."""
    if backend == "sqlite":
        saver_conn = sqlite3.connect(where, check_same_thread=False, timeout=120)
        saver_conn.execute("PRAGMA journal_mode=WAL")
        store_conn = sqlite3.connect(where, check_same_thread=False, isolation_level=None, timeout=120)
        store = SqliteStore(store_conn)
        store.setup()
        try:
            yield builder.compile(checkpointer=SqliteSaver(saver_conn), store=store), store
        finally:
            store_conn.close()
            saver_conn.close()
        return
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(where) as saver, PostgresStore.from_conn_string(where) as store:
        saver.setup()
        store.setup()
        yield builder.compile(checkpointer=saver, store=store), store


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A database of its own on the local PostgreSQL for one run (dropped after)."""
    import psycopg

    name = f"rg_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def results_of(graph: Any, thread: str) -> tuple[list[str], bool]:
    """A thread's `results` and whether it reached its end."""
    state = graph.get_state({"configurable": {"thread_id": thread}})
    return list(state.values.get("results") or []), not state.next


def print_result(result: dict[str, Any], *, as_json: bool) -> None:
    """One JSON object, or one aligned line per figure."""
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:28} {value}")
