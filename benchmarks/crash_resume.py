"""Crash-resume benchmark: SIGKILL the reliable research pipeline mid-step, then resume versus restart.

The pipeline is the demo's reliable one (per step: Retrieve, ContextGate re-fetching in its node,
reliable_step with validator and judge, retries on re-fetched context, escalations), on a
SQLite checkpoint file with durability="sync". Its connectors run under the library's chaos
module: every call is delayed (so a kill lands mid-step) or faulted (HTTP 429 / timeouts,
retried). Each run: a child process runs one thread; the parent kills it with SIGKILL at a
random point, after a random task start plus a random part of a step's time. A new process
then (a) resumes the same thread and (b) restarts the task on a fresh thread. Counted: tasks
that had completed before the crash (durable in the checkpoint) and executed again — from real
executions (LangChain callbacks), not from LangGraph's task events, which also announce the
tasks whose saved writes it re-applies without running them.
"""

from __future__ import annotations

import argparse
import json
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
from typing import Any

PROFILE = {"faults": {"rate_limit": 0.1, "timeout": 0.1, "latency": 0.8}, "latency": [0.01, 0.04]}
"""Every connector call is delayed 10-40 ms or faulted (transient: retried)."""


def _graph(db: str) -> tuple[Any, Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    from reliable_graph.demo import research_pipeline

    conn = sqlite3.connect(db, check_same_thread=False)
    return research_pipeline().compile(checkpointer=SqliteSaver(conn)), conn


def _finished(graph: Any, config: Any) -> bool:
    snapshot = graph.get_state(config)
    return not snapshot.next or bool(snapshot.interrupts)


def _durable_names(graph: Any, config: Any) -> dict[str, str]:
    from reliable_graph.resilience import durable_tasks

    durable = durable_tasks(graph, config)
    names: dict[str, str] = {}
    for snapshot in graph.get_state_history(config):
        names.update({t.id: t.name for t in snapshot.tasks if t.id in durable and not t.name.startswith("__")})
    return names


def child(args: argparse.Namespace) -> int:
    from reliable_graph.demo import research_input
    from reliable_graph.resilience import ExecutedTasks, activate

    graph, conn = _graph(args.db)
    config: Any = {"configurable": {"thread_id": "task"}}
    with activate(json.dumps(PROFILE), seed=args.run):
        if args.child == "crash":
            for _ns, chunk in graph.stream(
                research_input(args.run), config, stream_mode="tasks", subgraphs=True, durability="sync"
            ):
                if "triggers" in chunk:
                    print(f"start {chunk['name']}", flush=True)
            print("finished", flush=True)
            return 0
        snapshot = graph.get_state(config)
        in_step = [t.name for t in snapshot.tasks if t.result is None]
        completed = _durable_names(graph, config)
        resumed = ExecutedTasks()
        graph.invoke(
            None if snapshot.values else research_input(args.run), {**config, "callbacks": [resumed]}, durability="sync"
        )
        restart_config: Any = {"configurable": {"thread_id": "task-restart"}}
        restarted = ExecutedTasks()
        graph.invoke(research_input(args.run), {**restart_config, "callbacks": [restarted]}, durability="sync")
        result = {
            "completed_before_crash": len(completed),
            "killed_mid_step": bool(in_step),
            "resume_reexecuted": sorted(completed[t] for t in resumed.ids if t in completed),
            "restart_reexecuted": len(set(completed.values()) & set(restarted.ids.values())),
            "resume_completed": _finished(graph, config),
            "restart_completed": _finished(graph, restart_config),
            "escalated": bool(graph.get_state(config).interrupts),
        }
    conn.close()
    print(json.dumps(result))
    return 0


def one_run(workdir: Path, run: int, kill_after: int, rng: random.Random, timeout: float) -> dict[str, Any]:
    db = workdir / "checkpoints.sqlite"
    base = [sys.executable, __file__, "--db", str(db), "--run", str(run)]
    proc = subprocess.Popen([*base, "--child", "crash"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    starts = 0
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith("start"):
            starts += 1
        if starts >= kill_after or line.startswith("finished") or time.monotonic() > deadline:
            break
    time.sleep(rng.uniform(0.0, 0.04))  # a random part of a step's connector time
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    recovered = subprocess.run(
        [*base, "--child", "recover"], capture_output=True, text=True, timeout=timeout, check=True
    )
    result: dict[str, Any] = json.loads(recovered.stdout.strip().splitlines()[-1])
    return {"run": run, "kill_after_starts": kill_after, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="crashes (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", choices=["crash", "recover"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rng = random.Random(args.seed)
    started = time.perf_counter()
    results = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(one_run(Path(tmp), run=i, kill_after=rng.randint(1, 30), rng=rng, timeout=300))
        if not args.json:
            print(f"  {i + 1}/{args.runs} crashes", file=sys.stderr, flush=True)
    n = len(results)
    summary = {
        "resume_reexecuted_mean": sum(len(r["resume_reexecuted"]) for r in results) / n,
        "restart_reexecuted_mean": sum(r["restart_reexecuted"] for r in results) / n,
        "completed_before_crash_mean": sum(r["completed_before_crash"] for r in results) / n,
        "runs": n,
        "all_completed": all(r["resume_completed"] and r["restart_completed"] for r in results),
        "killed_mid_step": sum(r["killed_mid_step"] for r in results),
        "escalated_runs": sum(r["escalated"] for r in results),
        "pipeline": (
            "reliable research pipeline (Retrieve, ContextGate re-fetching in its node, reliable_step, HumanEscalation)"
        ),
        "profile": PROFILE,
    }
    elapsed = time.perf_counter() - started
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"reliable research pipeline, SqliteSaver with durability='sync', SIGKILL at a random point, seed {args.seed}"
    )
    print(f"{'kill after':>11}{'durable':>9}{'mid-step':>10}{'resume re-ran':>15}{'restart re-ran':>16}")
    for r in results:
        print(
            f"{r['kill_after_starts']:>11}{r['completed_before_crash']:>9}{r['killed_mid_step']!s:>10}"
            f"{len(r['resume_reexecuted']):>15}{r['restart_reexecuted']:>16}"
        )
    print(
        f"\ncompleted tasks re-executed per crash: resume {summary['resume_reexecuted_mean']:.2f}, "
        f"restart {summary['restart_reexecuted_mean']:.2f}; all runs completed: {summary['all_completed']}"
    )
    print(f"{n} crashes in {elapsed:.0f} s on {machine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
