"""Per-step overhead of reliable_step on its passing path versus bare LangGraph.

A 10-step pipeline of trivial steps, once as plain nodes and once with every step wrapped by
`reliable_step` (a deterministic evaluator), on the same checkpointer: SQLite on a file with
durability="sync", and InMemorySaver. Runs alternate between the two so that both see the
same machine load; the figures are medians of per-step wall time.

    python benchmarks/overhead.py [--runs 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from reliable_graph import HumanEscalation, ReliabilityState, RequiredFields, reliable_step

STEPS = 10


class State(ReliabilityState, total=False):
    question: str
    output: Any


def _step(i: int) -> Any:
    def step(state: State) -> dict[str, Any]:
        return {"output": {"value": i}}

    step.__name__ = f"step_{i:02d}"
    return step


def bare() -> StateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    for i in range(1, STEPS + 1):
        builder.add_node(f"step_{i:02d}", _step(i))
        builder.add_edge(START if i == 1 else f"step_{i - 1:02d}", f"step_{i:02d}")
    builder.add_edge(f"step_{STEPS:02d}", END)
    return builder


def reliable() -> StateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    evaluator = RequiredFields(fields=["value"])
    for i in range(1, STEPS + 1):
        after = f"step_{i + 1:02d}" if i < STEPS else END
        builder.add_node(reliable_step(_step(i), evaluator=evaluator, threshold=1.0, pass_to=after))
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "step_01")
    return builder


def measure(saver: Any, runs: int, durability: str) -> dict[str, float]:
    graphs = {"bare": bare().compile(checkpointer=saver), "reliable": reliable().compile(checkpointer=saver)}
    times: dict[str, list[float]] = {"bare": [], "reliable": []}
    for run in range(runs + 5):
        for mode, graph in graphs.items():
            config: Any = {"configurable": {"thread_id": f"{mode}-{run}"}}
            start = time.perf_counter()
            out = graph.invoke({"question": "q"}, config, durability=durability)
            elapsed = time.perf_counter() - start
            assert out["output"] == {"value": STEPS}
            if run >= 5:  # warm-up runs are not counted
                times[mode].append(elapsed / STEPS)
    med = {mode: statistics.median(t) for mode, t in times.items()}
    return {
        "bare_ms": med["bare"] * 1e3,
        "reliable_ms": med["reliable"] * 1e3,
        "ratio": med["reliable"] / med["bare"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(str(Path(tmp) / "overhead.sqlite"), check_same_thread=False)
        sqlite = measure(SqliteSaver(conn), args.runs, "sync")
        conn.close()
    memory = measure(InMemorySaver(), args.runs, "sync")
    result = {
        "sqlite_ratio": round(sqlite["ratio"], 3),
        "memory_ratio": round(memory["ratio"], 3),
        "sqlite_bare_ms_per_step": round(sqlite["bare_ms"], 3),
        "sqlite_reliable_ms_per_step": round(sqlite["reliable_ms"], 3),
        "memory_bare_ms_per_step": round(memory["bare_ms"], 3),
        "memory_reliable_ms_per_step": round(memory["reliable_ms"], 3),
        "runs": args.runs,
        "steps": STEPS,
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}",
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"per-step wall time, median of {args.runs} runs x {STEPS} steps ({result['machine']})")
    print(f"{'checkpointer':34}{'bare ms':>10}{'reliable ms':>13}{'ratio':>8}")
    for label, row in (("SQLite file, durability=sync", sqlite), ("InMemorySaver", memory)):
        print(f"{label:34}{row['bare_ms']:>10.3f}{row['reliable_ms']:>13.3f}{row['ratio']:>8.3f}")


if __name__ == "__main__":
    main()
