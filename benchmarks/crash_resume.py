"""Crash-resume benchmark: SIGKILL a 10-step pipeline mid-step, then resume versus restart.

Each run: a child process runs a 10-step LangGraph pipeline on a SQLite checkpoint file with
durability="sync"; every step writes "start" to a side-effect log, works for --step-seconds,
then writes "done". The parent waits until a randomly chosen step has started and kills the
child with SIGKILL while that step is mid-way. A new process then (a) resumes the same thread
with `graph.invoke(None, config)` and (b) restarts the task from scratch on a fresh thread.
Counted: steps that had completed before the crash and ran again (their "start" appears again).
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

STEPS = 10


def build_graph(log: Path, step_seconds: float, phase: str) -> Any:
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class State(TypedDict, total=False):
        done: Annotated[list[int], operator.add]

    def write(line: str) -> None:
        with log.open("a") as fh:
            fh.write(f"{phase} {line}\n")
            fh.flush()
            os.fsync(fh.fileno())

    def make(i: int) -> Any:
        def step(state: State) -> dict[str, Any]:
            write(f"start {i}")
            time.sleep(step_seconds)  # the step's work: the crash lands here
            write(f"done {i}")
            return {"done": [i]}

        return step

    builder = StateGraph(State)
    for i in range(1, STEPS + 1):
        builder.add_node(f"step_{i:02d}", make(i))
        builder.add_edge(START if i == 1 else f"step_{i - 1:02d}", f"step_{i:02d}")
    builder.add_edge(f"step_{STEPS:02d}", END)
    return builder


def child(args: argparse.Namespace) -> int:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(args.db, check_same_thread=False)
    saver = SqliteSaver(conn)
    result: dict[str, Any] = {}
    if args.child == "crash":
        graph = build_graph(Path(args.log), args.step_seconds, "crash").compile(checkpointer=saver)
        graph.invoke({"done": []}, {"configurable": {"thread_id": "task"}}, durability="sync")
    else:
        resume = build_graph(Path(args.log), args.step_seconds, "resume").compile(checkpointer=saver)
        out = resume.invoke(None, {"configurable": {"thread_id": "task"}}, durability="sync")
        result["resume_done"] = out.get("done", [])
        restart = build_graph(Path(args.log), args.step_seconds, "restart").compile(checkpointer=saver)
        out = restart.invoke({"done": []}, {"configurable": {"thread_id": "task-restart"}}, durability="sync")
        result["restart_done"] = out.get("done", [])
    conn.close()
    print(json.dumps(result))
    return 0


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def one_run(workdir: Path, kill_step: int, step_seconds: float, timeout: float) -> dict[str, Any]:
    db, log = workdir / "checkpoints.sqlite", workdir / "steps.log"
    base = [sys.executable, __file__, "--db", str(db), "--log", str(log), "--step-seconds", str(step_seconds)]
    proc = subprocess.Popen([*base, "--child", "crash"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    target = f"crash start {kill_step}"
    while target not in _lines(log):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            msg = f"the crash child ended or stalled before step {kill_step} started"
            raise RuntimeError(msg)
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _lines(log)
    completed = {int(line.split()[2]) for line in before if line.startswith("crash done")}
    recovered = subprocess.run(
        [*base, "--child", "recover"], capture_output=True, text=True, timeout=timeout, check=True
    )
    result = json.loads(recovered.stdout.strip().splitlines()[-1])
    after = _lines(log)[len(before) :]

    def reexecuted(phase: str) -> int:
        started = {int(line.split()[2]) for line in after if line.startswith(f"{phase} start")}
        return len(completed & started)

    everything = list(range(1, STEPS + 1))
    return {
        "kill_step": kill_step,
        "completed_before_crash": len(completed),
        "killed_mid_step": kill_step not in completed,
        "resume_reexecuted": reexecuted("resume"),
        "restart_reexecuted": reexecuted("restart"),
        "resume_completed": sorted(result["resume_done"]) == everything,
        "restart_completed": sorted(result["restart_done"]) == everything,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="crashes (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill steps (default 0)")
    parser.add_argument("--step-seconds", type=float, default=0.05, help="work time of each step")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", choices=["crash", "recover"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rng = random.Random(args.seed)
    started = time.perf_counter()
    results = []
    for _ in range(args.runs):
        kill_step = rng.randint(1, STEPS)
        with tempfile.TemporaryDirectory() as tmp:
            results.append(one_run(Path(tmp), kill_step, args.step_seconds, timeout=120))
    summary = {
        "resume_reexecuted_mean": sum(r["resume_reexecuted"] for r in results) / len(results),
        "restart_reexecuted_mean": sum(r["restart_reexecuted"] for r in results) / len(results),
        "runs": len(results),
        "all_completed": all(r["resume_completed"] and r["restart_completed"] for r in results),
        "all_killed_mid_step": all(r["killed_mid_step"] for r in results),
    }
    elapsed = time.perf_counter() - started
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{STEPS}-step pipeline, SqliteSaver with durability='sync', SIGKILL mid-step, seed {args.seed}")
    print(f"{'kill at':>8}{'completed':>11}{'resume re-ran':>15}{'restart re-ran':>16}")
    for r in results:
        print(
            f"{r['kill_step']:>8}{r['completed_before_crash']:>11}{r['resume_reexecuted']:>15}"
            f"{r['restart_reexecuted']:>16}"
        )
    print(
        f"\ncompleted steps re-executed per crash: resume {summary['resume_reexecuted_mean']:.2f}, "
        f"restart {summary['restart_reexecuted_mean']:.2f}; all runs completed: {summary['all_completed']}"
    )
    print(f"{summary['runs']} crashes in {elapsed:.0f} s on {machine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
