"""Compounding benchmark: the real graphs, run many times against the fixed simulated world.

Modes:
  bare          plain LangGraph: each step retrieves once and accepts its output; a connector
                fault fails the run (counted as lost, never crashing the benchmark).
  retry_policy  the same graph with LangGraph's RetryPolicy on every node (transient faults only;
                8 attempts, 0.01 s doubling to 0.1 s, no jitter). Its waits are real sleeps.
  reliable      reliable-graph: context gate with re-fetch, deterministic validator + judge,
                retries on re-fetched context, human escalation; connector retries (tenacity,
                8 attempts, Retry-After honoured) summed on a virtual clock (reported as
                connector_wait_s_per_run); permanent faults escalate. Its gate and judge
                thresholds come from the library's calibration on held-out runs (run ids
                100000+, disjoint from the evaluation runs 0..runs-1): the judge certified for
                a run silent-failure rate <= 1% with probability 0.95, on whole runs as the
                router sees them, retries included (calibrate_pipeline, joint split).

Rows: per-step raw reliability 85/90/95/99% at 10 and 20 steps with f=0, and p=0.90, 10 steps,
f=0.3. p=0.90 is SCENARIO.md's context-dependent world (0.85 x 0.95 + 0.15 x 0.62); the others
make an output correct with probability p whatever its context.

Checkpointer: the reliable mode runs on InMemorySaver with durability="exit" (one checkpoint per
run, deleted after the run) because SQLite with durability="sync" makes 2000-run rows slow;
the plain modes need no checkpointer. Runs are spread over --workers processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from reliable_graph.demo import (
    DEFAULT_CONNECTOR_RETRY,
    DEFAULT_RETRY_POLICY,
    DemoThresholds,
    ScenarioParams,
    SimulatedConnectors,
    SimulatedWorld,
    calibrated_thresholds,
    summarize_run,
)
from reliable_graph.demo.pipeline import build_pipeline
from reliable_graph.resilience import VirtualClock

MODES = ("bare", "retry_policy", "reliable")
CONFIGS = [(p, steps, 0.0) for p in (0.85, 0.90, 0.95, 0.99) for steps in (10, 20)] + [(0.90, 10, 0.3)]
CALIBRATION_RUN_OFFSET = 100_000
GATE_TARGET = 0.02
"""Gate calibration: at most 2% of first fetches accepted while the context is bad."""
RUN_SILENT_TARGET = 0.01
"""Judge calibration: at most 1% of runs with a silent failure, i.e. 0.01 / steps per step."""
MAX_RETRIES = 3
MAX_REFETCHES = 2
THREADS_FOR_SLEEPING_ROWS = 16


def scenario(p: float, steps: int, f: float) -> ScenarioParams:
    raw_p = None if abs(p - 0.90) < 1e-9 else p
    return ScenarioParams(steps=steps, fault_rate=f, raw_p=raw_p)


def calibrate_thresholds(params: ScenarioParams, seed: int, runs: int) -> dict[str, Any]:
    """Gate and judge thresholds from held-out runs (ids CALIBRATION_RUN_OFFSET + k), by the library.

    `calibrated_thresholds`: the gate with `calibrate` on first fetches; the judge with
    `calibrate_pipeline(split="joint")` on whole runs as the router sees them, retries included,
    certified for a run silent-failure rate of at most 1% with probability 0.95.
    """
    held_out = range(CALIBRATION_RUN_OFFSET, CALIBRATION_RUN_OFFSET + runs)
    t, how = calibrated_thresholds(
        params,
        seed,
        runs=held_out,
        max_silent_failure=RUN_SILENT_TARGET,
        gate_max_bad_context=GATE_TARGET,
        max_retries=MAX_RETRIES,
        max_refetches=MAX_REFETCHES,
    )
    return {
        "gate": t.gate,
        "judge": t.judge,
        "max_retries": MAX_RETRIES,
        "max_refetches": MAX_REFETCHES,
        "calibration_runs": [held_out.start, held_out.stop - 1],
        "gate_target": how["gate_target"],
        "judge_target": how["judge_target"],
        "judge_bound": how["judge_bound"],
    }


def _run_block(
    mode: str, params: ScenarioParams, seed: int, start: int, end: int, th: dict[str, Any]
) -> dict[str, Any]:
    world = SimulatedWorld(params, seed=seed)
    connectors = SimulatedConnectors(world)
    clock = VirtualClock()
    thresholds = DemoThresholds(
        gate=th["gate"], judge=th["judge"], max_retries=th["max_retries"], max_refetches=th["max_refetches"]
    )
    retry = dataclasses.replace(DEFAULT_CONNECTOR_RETRY, sleep=clock.sleep)
    saver = InMemorySaver() if mode == "reliable" else None
    graph = build_pipeline(
        mode, world, thresholds, connector_retry=retry, retry_policy=DEFAULT_RETRY_POLICY, connectors=connectors
    ).compile(checkpointer=saver)
    counts = {"success": 0, "silent_failure": 0, "escalated": 0, "failed": 0, "terminated": 0}
    errors: dict[str, int] = {}
    for run in range(start, end):
        thread = f"{mode}-{seed}-{run:05d}"
        try:
            values = graph.invoke(
                {"run": run, "question": "research question, part 1"},
                {"configurable": {"thread_id": thread}},
                **({"durability": "exit"} if saver is not None else {}),
            )
            counts[summarize_run(values, params.steps).status] += 1
        except Exception as exc:  # a lost run is a measured outcome
            counts["failed"] += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        if saver is not None:
            saver.delete_thread(thread)
    calls = {**world.calls, "model": connectors.calls("model"), "retrieval": connectors.calls("retrieval")}
    return {**counts, **calls, "wait_s": clock.total, "errors": errors}


def run_chunk(task: tuple[str, float, int, float, int, int, int, dict[str, Any]]) -> dict[str, Any]:
    mode, p, steps, f, seed, start, end, th = task
    params = scenario(p, steps, f)
    if mode == "retry_policy" and f > 0:
        # LangGraph's RetryPolicy sleeps for real: overlap the sleeps on threads.
        bounds = [start + (end - start) * i // THREADS_FOR_SLEEPING_ROWS for i in range(THREADS_FOR_SLEEPING_ROWS + 1)]
        with ThreadPoolExecutor(THREADS_FOR_SLEEPING_ROWS) as pool:
            parts = list(pool.map(lambda i: _run_block(mode, params, seed, bounds[i], bounds[i + 1], th), range(16)))
        return _sum(parts)
    return _run_block(mode, params, seed, start, end, th)


def _sum(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"errors": {}}
    for part in parts:
        for key, value in part.items():
            if key == "errors":
                for name, n in value.items():
                    total["errors"][name] = total["errors"].get(name, 0) + n
            else:
                total[key] = total.get(key, 0) + value
    return total


def row(
    mode: str, p: float, steps: int, f: float, runs: int, counts: dict[str, Any], th: dict[str, Any] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mode": mode,
        "p": p,
        "steps": steps,
        "f": f,
        "runs": runs,
        "e2e_success": counts["success"] / runs,
        "silent_failure": counts["silent_failure"] / runs,
        "escalated": counts["escalated"] / runs,
        "failed": counts["failed"] / runs,
        "model_calls_per_run": counts["model"] / runs,
        "judge_calls_per_run": counts["judge"] / runs,
        "retrieval_calls_per_run": counts["retrieval"] / runs,
        "connector_wait_s_per_run": counts["wait_s"] / runs if mode == "reliable" else None,
        "lost_to": counts["errors"],
    }
    if th is not None:
        out["thresholds"] = th
    out["scenario"] = scenario(p, steps, f).describe()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000, help="evaluation runs per row (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated world (default 0)")
    parser.add_argument("--calibration-runs", type=int, default=5000, help="held-out runs for calibration")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON list")
    parser.add_argument("--quick", action="store_true", help="only the 10-step rows at p=0.90 (f=0 and f=0.3)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.runs > CALIBRATION_RUN_OFFSET or args.calibration_runs < 1:
        parser.error(f"--runs must be in 1..{CALIBRATION_RUN_OFFSET} and --calibration-runs at least 1")
    configs = [c for c in CONFIGS if c[0] == 0.90 and c[1] == 10] if args.quick else CONFIGS
    started = time.perf_counter()
    thresholds = {c: calibrate_thresholds(scenario(*c), args.seed, args.calibration_runs) for c in configs}
    chunk = max(1, min(250, -(-args.runs // max(1, args.workers))))
    tasks = []
    for mode in MODES:
        for p, steps, f in configs:
            for start in range(0, args.runs, chunk):
                end = min(args.runs, start + chunk)
                tasks.append((mode, p, steps, f, args.seed, start, end, thresholds[(p, steps, f)]))
    # Slow (sleeping) tasks first so they overlap with the rest.
    tasks.sort(key=lambda t: (t[0] != "retry_policy" or t[3] == 0, t[0] != "reliable"))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(run_chunk, tasks))
    grouped: dict[tuple[str, float, int, float], list[dict[str, Any]]] = {}
    for task, result in zip(tasks, results, strict=True):
        grouped.setdefault(task[:4], []).append(result)
    rows = [
        row(
            mode,
            p,
            steps,
            f,
            args.runs,
            _sum(grouped[(mode, p, steps, f)]),
            thresholds[(p, steps, f)] if mode == "reliable" else None,
        )
        for p, steps, f in configs
        for mode in MODES
    ]
    elapsed = time.perf_counter() - started
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    if args.json:
        print(json.dumps(rows))
        print(f"compounding: {args.runs} runs per row in {elapsed:.0f} s on {machine}", file=sys.stderr)
        return 0
    print(f"scenario defaults: {json.dumps(ScenarioParams().describe())}")
    print(
        f"seed {args.seed}; evaluation runs 0..{args.runs - 1}; calibration runs {CALIBRATION_RUN_OFFSET}.."
        f"{CALIBRATION_RUN_OFFSET + args.calibration_runs - 1} (disjoint)"
    )
    print("reliable mode: InMemorySaver, durability='exit'; connector waits summed on a virtual clock")
    print(
        f"retry settings: max_retries={MAX_RETRIES}, max_refetches={MAX_REFETCHES}; connector {DEFAULT_CONNECTOR_RETRY}"
    )
    print(f"RetryPolicy-only: {DEFAULT_RETRY_POLICY}")
    print("calibrated thresholds (gate / judge):")
    for (p, steps, f), th in thresholds.items():
        print(
            f"  p={p:.2f} steps={steps} f={f}: gate {th['gate']:.3f} ({th['gate_target']}), "
            f"judge {th['judge']:.3f} ({th['judge_target']}; bound {th['judge_bound']:.4f})"
        )
    header = (
        f"{'mode':<13}{'p':>5}{'steps':>6}{'f':>5}{'e2e success':>13}{'silent':>8}{'escalated':>10}"
        f"{'lost':>7}{'model/run':>10}{'judge/run':>10}{'wait s/run':>11}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        wait = "-" if r["connector_wait_s_per_run"] is None else f"{r['connector_wait_s_per_run']:.3f}"
        print(
            f"{r['mode']:<13}{r['p']:>5.2f}{r['steps']:>6}{r['f']:>5.1f}{r['e2e_success']:>13.1%}"
            f"{r['silent_failure']:>8.1%}{r['escalated']:>10.1%}{r['failed']:>7.1%}"
            f"{r['model_calls_per_run']:>10.2f}{r['judge_calls_per_run']:>10.2f}{wait:>11}"
        )
    print(f"\n{args.runs} runs per row in {elapsed:.0f} s on {machine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
