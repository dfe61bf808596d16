"""A `Send` fan-out with one reliable step per item, two human reviews, and one deferred fan-in.

Six invoices are read in parallel, one `reliable_step` per `Send` item. Each extraction is
checked by deterministic rules: the total must have been read, and a total above 1000 EUR needs a
human sign-off. Two invoices escalate, each on its own interrupt; the four others pass. A
reviewer lists the pending escalations (`pending_escalations`) and answers both in one call
(`answer_escalations` with a dict interrupt id -> answer): an `edit` with the total read by hand,
an `approve` of the large invoice. The fan-in node (`defer=True`) then runs exactly once, with
all six results. Checkpoints go to a real SQLite file in a temporary directory (`SqliteSaver`).

Run it (offline, no model needed):

    python examples/fan_out.py
"""

from __future__ import annotations

import operator
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated, Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from reliable_graph import (
    AllOf,
    HumanEscalation,
    Predicate,
    ReliabilityState,
    answer_escalations,
    pending_escalations,
    reliable_step,
    run_outcome,
    step_outcomes,
    validate_graph,
)

INVOICES = {
    "INV-1": "Office chairs x4. Total: 596.00 EUR",
    "INV-2": "Printer toner. Total: 84.90 EUR",
    "INV-3": "Coffee beans, 6 kg. Tota1: ninety-two euros",  # a scan the parser cannot read
    "INV-4": "Desk lamps x2. Total: 71.50 EUR",
    "INV-5": "Laptop, 16 GB. Total: 1849.00 EUR",  # above the sign-off limit
    "INV-6": "Whiteboard markers. Total: 12.30 EUR",
}
LIMIT = 1000.0
AGGREGATOR_RUNS: list[int] = []  # one entry per run of the fan-in: how many results it saw


class State(ReliabilityState, total=False):
    invoices: dict[str, str]
    results: Annotated[list[dict[str, Any]], operator.add]  # each item's extraction is appended
    report: str


def extract(item: dict[str, Any]) -> dict[str, Any]:
    """Read one invoice's total (an LLM or OCR call in a real app); runs once per `Send` item."""
    match = re.search(r"Total: ([0-9.]+) EUR", item["text"])
    return {"results": [{"invoice": item["invoice"], "total": float(match.group(1)) if match else None}]}


def aggregate(state: State) -> dict[str, Any]:
    """The fan-in: deferred, so it waits for every item, the reviewed ones included."""
    AGGREGATOR_RUNS.append(len(state["results"]))
    total = sum(r["total"] for r in state["results"])
    return {"report": f"{len(state['results'])} invoices, {total:.2f} EUR in all"}


def build() -> StateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node(
        reliable_step(
            extract,
            evaluator=AllOf(
                evaluators=[
                    Predicate(fn=lambda r: r[0]["total"] is not None, name="parsed", reason="no total found"),
                    Predicate(
                        fn=lambda r: r[0]["total"] <= LIMIT,
                        name="under_limit",
                        reason=f"total above {LIMIT:.0f} EUR: needs a sign-off",
                    ),
                ]
            ),
            threshold=1.0,
            max_retries=0,  # a deterministic parser gives the same answer twice: go straight to a human
            output_key="results",
            input_keys=["invoice", "text"],  # what the reviewer sees as the task's inputs
            pass_to="aggregate",
        )
    )
    builder.add_node("aggregate", aggregate, defer=True)
    builder.add_node(HumanEscalation())
    builder.add_conditional_edges(
        START, lambda s: [Send("extract", {"invoice": k, "text": v}) for k, v in s["invoices"].items()]
    )
    builder.add_edge("aggregate", END)
    return builder


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "checkpoints.sqlite"
        conn = sqlite3.connect(db, check_same_thread=False)
        try:
            graph = validate_graph(build().compile(checkpointer=SqliteSaver(conn)))
            config: Any = {"configurable": {"thread_id": "invoices-2024-06"}}
            out = graph.invoke({"invoices": INVOICES}, config, durability="sync")
            runs = len(AGGREGATOR_RUNS)
            print(f"{len(INVOICES)} invoices sent; run: {run_outcome(out)}; aggregator runs so far: {runs}")

            pending = pending_escalations(graph, config)
            print(f"pending escalations: {len(pending)}")
            by_invoice = {}
            for p in pending:
                invoice = p.escalation["inputs"]["invoice"]
                by_invoice[invoice] = p.interrupt_id
                print(f"  {invoice}: {p.escalation['reason']} (output {p.escalation['output']})")

            answers = {
                by_invoice["INV-3"]: {"action": "edit", "output": [{"invoice": "INV-3", "total": 92.0}]},
                by_invoice["INV-5"]: {"action": "approve", "reviewer": "ana", "reason": "laptop budget approved"},
            }
            out = answer_escalations(graph, config, answers, durability="sync")
            print("answered INV-3 with edit and INV-5 with approve, in one call")

            outcomes = sorted(step_outcomes(out).values())
            print(f"run: {run_outcome(graph.get_state(config))}; step outcomes: {outcomes}")
            print(f"aggregator runs: {len(AGGREGATOR_RUNS)}, results seen by each: {AGGREGATOR_RUNS}")
            print(f"report: {out['report']}")
            print(f"checkpoints in {db.name}: {len(list(graph.get_state_history(config)))}")
        finally:
            conn.close()


if __name__ == "__main__":
    main()
