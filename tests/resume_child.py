"""A 10-step reliable pipeline on a SQLite file, run as a child process by test_durable_resume.

usage: resume_child.py DB LOG start|resume SLOW_STEP
Every step logs `start i` and `done i` (fsynced) as its side effect; in `start` mode step
SLOW_STEP sleeps mid-way so that the parent can SIGKILL the process there.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step, step_outcomes


class State(ReliabilityState, total=False):
    question: str
    output: Any
    done: list[int]


def log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def build(log_path: str, slow: int | None) -> StateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)

    def make(i: int) -> Any:
        def step(state: State) -> dict[str, Any]:
            log(log_path, f"start {i}")
            if i == slow:
                log(log_path, f"sleeping {i}")
                time.sleep(60)
            log(log_path, f"done {i}")
            return {"output": i, "done": [*state.get("done", []), i]}

        step.__name__ = f"step_{i:02d}"
        return step

    for i in range(1, 11):
        after = f"step_{i + 1:02d}" if i < 10 else END
        builder.add_node(
            reliable_step(make(i), evaluator=Predicate(fn=lambda o: o is not None), threshold=1.0, pass_to=after)
        )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "step_01")
    return builder


def main() -> None:
    db, log_path, mode, slow = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    conn = sqlite3.connect(db, check_same_thread=False)
    graph = build(log_path, slow if mode == "start" else None).compile(checkpointer=SqliteSaver(conn))
    config: Any = {"configurable": {"thread_id": "crash"}}
    values = graph.invoke({"question": "q"} if mode == "start" else None, config, durability="sync")
    print(json.dumps({"done": values.get("done"), "outcomes": step_outcomes(values)}))


if __name__ == "__main__":
    main()
