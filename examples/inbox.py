"""A support desk whose drafts need a human sign-off: escalations land in the inbox.

python examples/inbox.py inbox_demo.sqlite      # three threads escalate
reliable-graph inbox list --db inbox_demo.sqlite
reliable-graph inbox resolve ID --db inbox_demo.sqlite --graph examples.inbox:builder --action approve
reliable-graph console --db inbox_demo.sqlite --graph examples.inbox:builder
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.sqlite import SqliteStore

from reliable_graph import HumanEscalation, RegexMatch, ReliabilityState, reliable_step


class State(ReliabilityState, total=False):
    question: str
    answer: str


def draft(state: State) -> dict[str, Any]:
    known = {"refunds": "Refunds take 5 business days [policy 4.2]."}
    return {"answer": known.get(state["question"], f"I think {state['question']} is fine.")}


def builder() -> StateGraph[Any, Any, Any, Any]:
    """The graph, uncompiled: the CLI and the console compile it on their database."""
    graph = StateGraph(State)
    graph.add_node(
        reliable_step(
            draft,
            evaluator=RegexMatch(pattern=r"\[policy [0-9.]+\]"),
            threshold=1.0,
            max_retries=0,
            output_key="answer",
            input_keys=["question"],
            pass_to=END,
        )
    )
    graph.add_node(HumanEscalation())
    graph.add_edge(START, "draft")
    return graph


def main(path: str) -> None:
    saver_conn = sqlite3.connect(path, check_same_thread=False)
    store_conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    store = SqliteStore(store_conn)
    store.setup()
    graph = builder().compile(checkpointer=SqliteSaver(saver_conn), store=store)
    for question in ("refunds", "warranty", "shipping to Mars", "bitcoin"):
        out = graph.invoke({"question": question}, {"configurable": {"thread_id": question}})
        print(f"{question}: {'waiting for a reviewer' if '__interrupt__' in out else out['answer']}")
    store_conn.close()
    saver_conn.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "inbox_demo.sqlite")
