"""Production at scale on Postgres: the 10-step research pipeline from 4 worker processes, reviewers alongside.

One run, a fresh Postgres database per phase, the scenario's default world (seed 7):

1. bare: `--threads` runs of the pipeline in plain LangGraph on `AsyncPostgresSaver`, from 4
   worker processes (async, at most `--concurrency` runs at once in each). The bare twin has
   the reliable pipeline's shape (per step a retrieve node, a node that reads the context, the
   step's node), makes the same connector calls and writes the same pipeline state (context,
   output, answers, the next step's question), with no gate, scoring, retry or review.
2. reliable: the same runs of the reliable pipeline (`build_reliable_pipeline`: context gate,
   reliable_step with the validator and the judge, retries on re-fetched context, escalation)
   on `AsyncPostgresSaver` + `AsyncPostgresStore`, from 4 worker processes the same way, while 2
   reviewer processes work the inbox (`list` the oldest pending escalations, `resolve` each with
   approve) for as long as the workers run, then drain it.

Throughput is pipeline steps completed per second of the workers' wall time, from the first run's
start to the last run's end, process start-up excluded (a step completes
when its answer is accepted; a run that escalates stops there until a reviewer answers, and the
steps its reviewer's resume completes are not counted). `throughput_ratio_vs_bare` is reliable
over bare. The reliable pipeline does more work per step than the bare one by design (a context
the gate refuses is fetched again, an output the judge refuses is produced again):
`superstep_ratio_vs_bare` compares LangGraph supersteps executed per second, the cost of the
library per unit of work. After the reviewers drain the inbox: `lost` counts escalations not resolved or runs
not finished, `stalled` runs not at their end, `applied_twice` connector calls made twice for
the same (run, step, attempt), which a decision applied twice (or a continuation run twice)
would cause. `list_ms_*`: the inbox's `list()` of 50 pending escalations, timed in the reviewer
processes while the workers run.

    python benchmarks/scale.py [--threads 2000] [--workers 4] [--reviewers 2] [--concurrency 8] [--json]
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


def graph_of(mode: str, log: Path, thresholds: DemoThresholds | None) -> StateGraph[Any, Any, Any, Any]:
    world = SimulatedWorld(ScenarioParams(), seed=SEED)
    connectors = LoggedConnectors(world, log)
    if mode == "bare":
        return bare_twin(world, connectors)
    return build_reliable_pipeline(world, thresholds, connectors=connectors)


async def _work(
    mode: str, url: str, runs: list[int], concurrency: int, log: Path, out: Path, thresholds: DemoThresholds
) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres.aio import AsyncPostgresStore

    async with AsyncPostgresSaver.from_conn_string(url) as saver, AsyncPostgresStore.from_conn_string(url) as store:
        graph = graph_of(mode, log, thresholds).compile(checkpointer=saver, store=store if mode == "reliable" else None)
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


def reviewer(url: str, log: str, stop: str, out: str, thresholds: DemoThresholds) -> None:
    """Resolve the oldest pending escalations while the workers run, then drain; time every listing."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    from reliable_graph import AlreadyResolvedError

    timings: list[float] = []
    resolved = 0
    with PostgresSaver.from_conn_string(url) as saver, PostgresStore.from_conn_string(url) as store:
        graph = graph_of("reliable", Path(log), thresholds).compile(checkpointer=saver, store=store)
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
    mode: str, url: str, args: argparse.Namespace, tmp: Path, log: Path, thresholds: DemoThresholds
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    runs = list(range(args.threads))
    shares = [runs[k :: args.workers] for k in range(args.workers)]
    stop = tmp / f"stop-{mode}"
    reviewers = []
    if mode == "reliable":
        for k in range(args.reviewers):
            proc = ctx.Process(
                target=reviewer, args=(url, str(log), str(stop), str(tmp / f"reviewer-{k}.json"), thresholds)
            )
            proc.start()
            reviewers.append(proc)
    sys.stderr.write(f"{mode}: {args.threads} runs from {args.workers} workers...\n")
    workers = [
        ctx.Process(
            target=worker,
            args=(mode, url, share, args.concurrency, str(log), str(tmp / f"{mode}-{k}.json"), thresholds),
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
    done = [json.loads((tmp / f"{mode}-{k}.json").read_text()) for k in range(args.workers)]
    steps = sum(d["steps"] for d in done)
    wall = max(d["end"] for d in done) - min(d["start"] for d in done)  # from the first run to the last
    supersteps = sum(d["supersteps"] for d in done)
    result: dict[str, Any] = {
        "steps": steps,
        "supersteps": supersteps,
        "seconds": round(wall, 1),
        "steps_per_s": round(steps / wall, 1),
        "supersteps_per_s": round(supersteps / wall, 1),
    }
    if reviewers:
        reports = [json.loads((tmp / f"reviewer-{k}.json").read_text()) for k in range(args.reviewers)]
        timings = sorted(t for r in reports for t in r["list_ms"])
        result["resolved_by_reviewers"] = sum(r["resolved"] for r in reports)
        result["list_ms_median"] = round(statistics.median(timings), 2) if timings else None
        result["list_ms_p95"] = round(timings[int(0.95 * (len(timings) - 1))], 2) if timings else None
        result["listings"] = len(timings)
    return result


def verdicts(url: str, log: Path, threads: int, thresholds: DemoThresholds) -> dict[str, int]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(url) as saver, PostgresStore.from_conn_string(url) as store:
        graph = graph_of("reliable", log, thresholds).compile(checkpointer=saver, store=store)
        inbox = EscalationInbox(store, graph=graph)
        items = inbox.list(status=None, kind="escalation", limit=1_000_000)
        unresolved = sum(i.status != "resolved" for i in items)
        stalled = 0
        for run in range(threads):
            state = graph.get_state({"configurable": {"thread_id": f"reliable-{run:05d}"}})
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
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--reviewers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.stderr.write("calibrating the thresholds on held-out runs...\n")
    thresholds, _how = calibrated_thresholds(ScenarioParams(), SEED)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with fresh_postgres() as url:  # each phase on a database of its own, equally empty at its start
            setup(url)
            bare = phase("bare", url, args, tmp, tmp / "bare-calls.log", thresholds)
        with fresh_postgres() as url:
            setup(url)
            reliable = phase("reliable", url, args, tmp, tmp / "reliable-calls.log", thresholds)
            found = verdicts(url, tmp / "reliable-calls.log", args.threads, thresholds)
    result = {
        "threads": args.threads,
        "workers": args.workers,
        "reviewers": args.reviewers,
        "concurrency": args.concurrency,
        "thresholds": {"gate": thresholds.gate, "judge": thresholds.judge},
        "bare_steps_per_s": bare["steps_per_s"],
        "reliable_steps_per_s": reliable["steps_per_s"],
        "throughput_ratio_vs_bare": round(reliable["steps_per_s"] / bare["steps_per_s"], 3),
        "superstep_ratio_vs_bare": round(reliable["supersteps_per_s"] / bare["supersteps_per_s"], 3),
        **found,
        "list_ms_median": reliable.get("list_ms_median"),
        "list_ms_p95": reliable.get("list_ms_p95"),
        "bare": bare,
        "reliable": reliable,
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }
    print_result(result, as_json=args.json)


if __name__ == "__main__":
    main()
