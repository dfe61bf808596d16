"""Graphs for the console tests: a step with a structured output, context and two attempts.

`MALICIOUS` is what a compromised or confused agent might write; the console must show it as text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.store.sqlite import SqliteStore

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, Score, reliable_step

SCRIPT = "<script>window.pwned=1</script>"
IMG = '<img src=x onerror="window.pwned=2">'
MALICIOUS = f"{SCRIPT} {IMG}"


class State(ReliabilityState, total=False):
    question: str
    context: list[Any]
    output: Any
    done: Any


def answer(state: State) -> dict[str, Any]:
    question = state["question"]
    if SCRIPT in question:
        return {"output": {"answer": SCRIPT, "note": IMG, "sources": []}}
    return {
        "output": {
            "answer": f"High tide at {question} is at 14:32 local time, 5.9 m above chart datum.",
            "sources": [],
        }
    }


def cites_sources(output: Any) -> Score:
    if output.get("sources"):
        return Score(value=1.0, reason="the answer cites its sources", evaluator="cites_sources")
    note = f" ({output['note']})" if output.get("note") else ""
    return Score(
        value=0.35,
        reason=f"the answer cites no source{note}: the only tide table in the context is from 2023",
        evaluator="cites_sources",
    )


def builder() -> StateGraph[Any, Any, Any, Any]:
    graph = StateGraph(State)
    graph.add_node(
        reliable_step(
            answer,
            evaluator=Predicate(fn=cites_sources, name="cites_sources"),
            threshold=0.8,
            max_retries=1,
            input_keys=["question"],
            pass_to="after",
        )
    )
    graph.add_node("after", lambda state: {"done": state.get("output")})
    graph.add_node(HumanEscalation())
    graph.add_edge(START, "answer")
    return graph


def context_for(question: str) -> list[dict[str, Any]]:
    if SCRIPT in question:
        return [{"text": MALICIOUS, "metadata": {"source": IMG}}]
    return [
        {
            "text": f"Tide table for {question}: high water 14:32, 5.9 m; low water 08:17, 1.4 m.",
            "metadata": {"source": "shom.fr/tides", "timestamp": "2023-06-01T00:00:00Z"},
        },
        {"text": "Chart datum is the lowest astronomical tide.", "metadata": {"source": "glossary"}},
    ]


def run(graph: Any, question: str, thread_id: str | None = None) -> None:
    """Run one question to its escalation; the question "xss" is the malicious one."""
    text = MALICIOUS if question == "xss" else question
    config = {"configurable": {"thread_id": thread_id or question}}
    graph.invoke({"question": text, "context": context_for(text)}, config)


@contextmanager
def console_app(path: Path) -> Iterator[tuple[Any, SqliteStore]]:
    """The graph on a SQLite file, checkpoints and store in one database (as in inbox_app)."""
    saver_conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    saver_conn.execute("PRAGMA journal_mode=WAL")
    store_conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    store = SqliteStore(store_conn)
    store.setup()
    try:
        yield builder().compile(checkpointer=SqliteSaver(saver_conn), store=store), store
    finally:
        store_conn.close()
        saver_conn.close()
