"""Production at scale on Postgres: the 10-step research pipeline from 4 worker processes, reviewers alongside.

One run, a fresh Postgres database per pipeline, the scenario's default world (seed 7), three
pipelines run in interleaved rounds (`--rounds`, the order rotating each round, so that a
machine that slows down or speeds up during the run weighs on all three alike):

1. bare: runs of the pipeline in plain LangGraph on `AsyncPostgresSaver`, from 4 worker
   processes (async, at most `--concurrency` runs at once in each). The bare twin has the
   reliable pipeline's shape (per step a retrieve node, a node that reads the context, the
   step's node), makes the same connector calls and writes the same pipeline state (context,
   output, answers, the next step's question), with no gate, scoring, retry or review.
2. reliable: the same runs of the reliable pipeline (`build_reliable_pipeline`: context gate
   re-fetching inside its node, reliable_step with the validator and the judge, retries on
   re-fetched context, escalation) with `checkpoint_attempts=False` (a step's retries run
   inside its superstep: the setting for steps that cost less than a checkpoint write, as the
   simulated model calls here do), on `AsyncPostgresSaver` + `AsyncPostgresStore`, from 4
   worker processes the same way, while 2 reviewer processes work the inbox (`list` the
   oldest pending escalations, `resolve` each with approve) for as long as the workers run,
   then drain it.
3. reliable_per_attempt: the same with the library's default `checkpoint_attempts=True` (every
   attempt of a step checkpointed, a retry a superstep of its own), reviewers alike.

Throughput is pipeline steps completed per second of the workers' wall time, summed over the
rounds, each round from its first run's start to its last run's end, process start-up excluded
(a step completes when its answer is accepted; a run that escalates stops there until a reviewer
answers, and the steps its reviewer's resume completes are not counted).
`throughput_ratio_vs_bare` is reliable over bare, `throughput_ratio_vs_bare_per_attempt`
reliable_per_attempt over bare. The reliable pipeline does more work per step than the bare one
by design (a context the gate refuses is fetched again, an output the judge refuses is produced
again): `superstep_ratio_vs_bare` compares LangGraph supersteps executed per second, the cost of
the library per unit of work. After the reviewers drain the inbox: `lost` counts escalations not
resolved or runs not finished, `stalled` runs not at their end, `applied_twice` connector calls
made twice for the same (run, step, attempt), which a decision applied twice (or a continuation
run twice) would cause; the top-level counts add up both reliable pipelines. `list_ms_*`: the
inbox's `list()` of 50 pending escalations, timed in the reviewer processes while the workers
run (both reliable pipelines).

    python benchmarks/scale.py [--threads 2000] [--rounds 2] [--workers 4] [--reviewers 2] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import fresh_postgres, print_result  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from reliable_graph import EscalationInbox, run_outcome  # noqa: E402
from reliable_graph.demo import (  # noqa: E402
    DemoThresholds,
    ScenarioParams,
    SimulatedConnectors,
    SimulatedWorld,
    build_reliable_pipeline,
    calibrated_thresholds,
    research_input,
)

SEED = 7


class LoggedConnectors(SimulatedConnectors):
    """The world's connectors, each model call logged as `run step attempt` (a call made twice shows)."""

    def __init__(self, world: SimulatedWorld, log: Path) -> None:
        super().__init__(world)
        generate = self.generate

        def logged(*, run: int, step: int, attempt: int, context: Any) -> Any:
            with log.open("a") as fh:
                fh.write(f"{run} {step} {attempt}\n")
            return generate(run=run, step=step, attempt=attempt, context=context)

        self.generate = logged


def bare_twin(world: SimulatedWorld, connectors: SimulatedConnectors) -> StateGraph[Any, Any, Any, Any]:
    """The reliable pipeline's shape in plain LangGraph: retrieve, read the context, generate; accept every output."""
    from reliable_graph.demo.pipeline import PipelineState

    builder = StateGraph(PipelineState)
    steps = world.params.steps
    for i in range(1, steps + 1):

        def retrieve(state: Any, i: int = i) -> dict[str, Any]:
            return {"context": connectors.retrieve(run=state["run"], step=i, fetch=0)}

        def read(state: Any) -> dict[str, Any]:
            return {}

        def generate(state: Any, i: int = i) -> dict[str, Any]:
            output = connectors.generate(run=state["run"], step=i, attempt=1, context=state["context"])
            update = {"output": output, "answers": {f"step_{i:02d}": output}}
            if i < steps:  # what the next step's retrieval asks, as the reliable pipeline's steps write it
                update["question"] = f"research question, part {i + 1}"
            return update

        builder.add_node(f"retrieve_{i:02d}", retrieve)
        builder.add_node(f"gate_{i:02d}", read)
        builder.add_node(f"step_{i:02d}", generate)
        builder.add_edge(START if i == 1 else f"step_{i - 1:02d}", f"retrieve_{i:02d}")
        builder.add_edge(f"retrieve_{i:02d}", f"gate_{i:02d}")
        builder.add_edge(f"gate_{i:02d}", f"step_{i:02d}")
    builder.add_edge(f"step_{steps:02d}", END)
    return builder


MODES = ("bare", "reliable", "reliable_per_attempt")


def graph_of(mode: str, log: Path, thresholds: DemoThresholds | None) -> StateGraph[Any, Any, Any, Any]:
    """The pipeline of `mode` (one of `MODES`), its model calls logged to `log`."""
    world = SimulatedWorld(ScenarioParams(), seed=SEED)
    connectors = LoggedConnectors(world, log)
    if mode == "bare":
        return bare_twin(world, connectors)
    per_attempt = mode == "reliable_per_attempt"
    return build_reliable_pipeline(world, thresholds, connectors=connectors, checkpoint_attempts=per_attempt)


async def _work(
    mode: str, url: str, runs: list[int], concurrency: int, log: Path, out: Path, thresholds: DemoThresholds
) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore

    async with AsyncPostgresSaver.from_conn_string(url) as saver, AsyncPostgresStore.from_conn_string(url) as store:
        graph = graph_of(mode, log, thresholds).compile(checkpointer=saver, store=None if mode == "bare" else store)
        gate = asyncio.Semaphore(concurrency)
        steps = supersteps = 0

        async def one(run: int) -> None:
            nonlocal steps, supersteps
            config = {"configurable": {"thread_id": f"{mode}-{run:05d}"}}
            async with gate:
                values = await graph.ainvoke(research_input(run), config, durability="sync")
                steps += len(values.get("answers") or {})
                done = await graph.aget_state(config)  # (read before adding: `x += await ...` loses updates)
                supersteps += int(done.metadata.get("step", 0)) + 1

        start = time.time()
        await asyncio.gather(*(one(run) for run in runs))
        out.write_text(json.dumps({"steps": steps, "supersteps": supersteps, "start": start, "end": time.time()}))


def worker(
    mode: str, url: str, runs: list[int], concurrency: int, log: str, out: str, thresholds: DemoThresholds
) -> None:
    asyncio.run(_work(mode, url, runs, concurrency, Path(log), Path(out), thresholds))


def reviewer(mode: str, url: str, log: str, stop: str, out: str, thresholds: DemoThresholds) -> None:
    """Resolve the oldest pending escalations while the workers run, then drain; time every listing."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    from reliable_graph import AlreadyResolvedError

    timings: list[float] = []
    resolved = 0
    with PostgresSaver.from_conn_string(url) as saver, PostgresStore.from_conn_string(url) as store:
        graph = graph_of(mode, Path(log), thresholds).compile(checkpointer=saver, store=store)
        inbox = EscalationInbox(store, graph=graph)
        draining = False
        while True:
            start = time.perf_counter()
            page = inbox.list(status="pending", limit=50)
            if not draining:
                timings.append((time.perf_counter() - start) * 1e3)
            for item in page:
                try:
                    inbox.resolve(item.id, {"action": "approve"}, reviewer=f"reviewer-{os.getpid()}")
                    resolved += 1
                except AlreadyResolvedError:
                    continue
            if not page:
                if draining:
                    break
                if Path(stop).exists():
                    draining = True
                time.sleep(0.25)
    Path(out).write_text(json.dumps({"resolved": resolved, "list_ms": timings}))


def phase(
    mode: str, url: str, runs: list[int], args: argparse.Namespace, tmp: Path, log: Path, thresholds: DemoThresholds
) -> dict[str, Any]:
    """`runs` of `mode` from `args.workers` worker processes (and reviewers for a reliable mode)."""
    ctx = multiprocessing.get_context("spawn")
    shares = [runs[k :: args.workers] for k in range(args.workers)]
    tag = f"{mode}-{runs[0]}"
    stop = tmp / f"stop-{tag}"
    reviewers = []
    if mode != "bare":
        for k in range(args.reviewers):
            proc = ctx.Process(
                target=reviewer,
                args=(mode, url, str(log), str(stop), str(tmp / f"reviewer-{tag}-{k}.json"), thresholds),
            )
            proc.start()
            reviewers.append(proc)
    sys.stderr.write(f"{mode}: {len(runs)} runs from {args.workers} workers...\n")
    workers = [
        ctx.Process(
            target=worker,
            args=(mode, url, share, args.concurrency, str(log), str(tmp / f"{tag}-{k}.json"), thresholds),
        )
        for k, share in enumerate(shares)
    ]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a {mode} worker failed (exit code {proc.exitcode})")
    stop.write_text("stop")
    for proc in reviewers:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a reviewer failed (exit code {proc.exitcode})")
    done = [json.loads((tmp / f"{tag}-{k}.json").read_text()) for k in range(args.workers)]
    result: dict[str, Any] = {
        "steps": sum(d["steps"] for d in done),
        "supersteps": sum(d["supersteps"] for d in done),
        "seconds": max(d["end"] for d in done) - min(d["start"] for d in done),  # from the first run to the last
        "resolved_by_reviewers": 0,
        "list_ms": [],
    }
    for k in range(len(reviewers)):
        report = json.loads((tmp / f"reviewer-{tag}-{k}.json").read_text())
        result["resolved_by_reviewers"] += report["resolved"]
        result["list_ms"] += report["list_ms"]
    return result


def total(rounds: list[dict[str, Any]], reviewed: bool) -> dict[str, Any]:
    """One pipeline's rounds added up: steps and supersteps per second of the workers' summed wall time."""
    steps = sum(r["steps"] for r in rounds)
    supersteps = sum(r["supersteps"] for r in rounds)
    wall = sum(r["seconds"] for r in rounds)
    result: dict[str, Any] = {
        "steps": steps,
        "supersteps": supersteps,
        "seconds": round(wall, 1),
        "rounds_seconds": [round(r["seconds"], 1) for r in rounds],
        "steps_per_s": round(steps / wall, 1),
        "supersteps_per_s": round(supersteps / wall, 1),
    }
    if reviewed:
        timings = sorted(t for r in rounds for t in r["list_ms"])
        result["resolved_by_reviewers"] = sum(r["resolved_by_reviewers"] for r in rounds)
        result["list_ms_median"] = round(statistics.median(timings), 2) if timings else None
        result["list_ms_p95"] = round(timings[int(0.95 * (len(timings) - 1))], 2) if timings else None
        result["listings"] = len(timings)
    return result


def verdicts(mode: str, url: str, log: Path, threads: int, thresholds: DemoThresholds) -> dict[str, int]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(url) as saver, PostgresStore.from_conn_string(url) as store:
        graph = graph_of(mode, log, thresholds).compile(checkpointer=saver, store=store)
        inbox = EscalationInbox(store, graph=graph)
        items = inbox.list(status=None, kind="escalation", limit=1_000_000)
        unresolved = sum(i.status != "resolved" for i in items)
        stalled = 0
        for run in range(threads):
            state = graph.get_state({"configurable": {"thread_id": f"{mode}-{run:05d}"}})
            stalled += bool(state.next) or run_outcome(state) == "escalated"
    calls = Counter(line for line in log.read_text().splitlines())
    return {
        "escalations": len(items),
        "lost": unresolved,
        "stalled": stalled,
        "applied_twice": sum(1 for n in calls.values() if n > 1),
    }


def setup(url: str) -> None:
    """The checkpointer's and the store's tables, once, before the workers start."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(url) as saver, PostgresStore.from_conn_string(url) as store:
        saver.setup()
        store.setup()
        EscalationInbox(store)  # and the inbox's ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--reviewers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.rounds < 1 or args.threads < args.rounds * args.workers:
        parser.error("--rounds must be >= 1 and --threads at least --rounds x --workers")
    sys.stderr.write("calibrating the thresholds on held-out runs...\n")
    thresholds, _how = calibrated_thresholds(ScenarioParams(), SEED)
    runs = list(range(args.threads))
    batches = [runs[k * len(runs) // args.rounds : (k + 1) * len(runs) // args.rounds] for k in range(args.rounds)]
    with tempfile.TemporaryDirectory() as tmp_dir, ExitStack() as stack:
        tmp = Path(tmp_dir)
        urls = {mode: stack.enter_context(fresh_postgres()) for mode in MODES}  # a database per pipeline
        for url in urls.values():
            setup(url)
        done: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for k, batch in enumerate(batches):
            for mode in MODES[k % len(MODES) :] + MODES[: k % len(MODES)]:  # the order rotates each round
                done[mode].append(phase(mode, urls[mode], batch, args, tmp, tmp / f"{mode}-calls.log", thresholds))
        found = {
            mode: verdicts(mode, urls[mode], tmp / f"{mode}-calls.log", args.threads, thresholds) for mode in MODES[1:]
        }
    bare, reliable, per_attempt = (total(done[mode], mode != "bare") for mode in MODES)
    reliable.update(found["reliable"])
    per_attempt.update(found["reliable_per_attempt"])
    result = {
        "threads": args.threads,
        "rounds": args.rounds,
        "workers": args.workers,
        "reviewers": args.reviewers,
        "concurrency": args.concurrency,
        "thresholds": {"gate": thresholds.gate, "judge": thresholds.judge},
        "bare_steps_per_s": bare["steps_per_s"],
        "reliable_steps_per_s": reliable["steps_per_s"],
        "throughput_ratio_vs_bare": round(reliable["steps_per_s"] / bare["steps_per_s"], 3),
        "superstep_ratio_vs_bare": round(reliable["supersteps_per_s"] / bare["supersteps_per_s"], 3),
        "throughput_ratio_vs_bare_per_attempt": round(per_attempt["steps_per_s"] / bare["steps_per_s"], 3),
        "superstep_ratio_vs_bare_per_attempt": round(per_attempt["supersteps_per_s"] / bare["supersteps_per_s"], 3),
        **{key: found["reliable"][key] + found["reliable_per_attempt"][key] for key in found["reliable"]},
        "list_ms_median": reliable.get("list_ms_median"),
        "list_ms_p95": reliable.get("list_ms_p95"),
        "bare": bare,
        "reliable": reliable,
        "reliable_per_attempt": per_attempt,
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }
    print_result(result, as_json=args.json)


if __name__ == "__main__":
    main()
