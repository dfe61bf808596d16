"""The escalation inbox at scale, under races and under SIGKILL, on SQLite and on Postgres.

1. list: `--threads` real escalated threads (a one-step graph whose step always escalates, on
   the backend's checkpointer and store); the time to list one page of 50 pending escalations
   filtered by step, oldest first (median of 20 listings after one warm-up).
2. race: `--race` escalated threads; 8 reviewer processes each try to resolve every one of them,
   in their own random order, all at once. Every resolution runs the downstream node, which
   appends the thread to a side-effect log: an escalation applied twice shows up there.
3. kill: `--kills` times, a reviewer process starts resolving a fresh escalation and is
   SIGKILLed at a random point (0-150 ms in); then `reconcile()` runs, as an operator would.
   An escalation is lost if it ended neither resolved nor back in the queue.

    python benchmarks/inbox.py [--threads 10000] [--race 500] [--kills 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.store.sqlite import SqliteStore

from reliable_graph import (
    AlreadyResolvedError,
    EscalationInbox,
    HumanEscalation,
    Predicate,
    ReliabilityState,
    reliable_step,
)

POSTGRES_URL = os.environ.get("RELIABLE_GRAPH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PROCESSES = 8


class State(ReliabilityState, total=False):
    question: str
    output: str
    done: str


def build(side_effects: Path | None) -> StateGraph[Any, Any, Any, Any]:
    def draft(state: State) -> dict[str, Any]:
        return {"output": f"draft for {state['question']}"}

    def after(state: State) -> dict[str, Any]:
        if side_effects is not None:
            with side_effects.open("a") as fh:
                fh.write(f"{state['question']}\n")
        return {"done": state.get("output", "")}

    graph = StateGraph(State)
    graph.add_node(
        reliable_step(
            draft,
            evaluator=Predicate(fn=lambda o: "signed" in o, reason="a human must sign it off"),
            threshold=1.0,
            max_retries=0,
            input_keys=["question"],
            pass_to="after",
        )
    )
    graph.add_node("after", after)
    graph.add_node(HumanEscalation())
    graph.add_edge(START, "draft")
    return graph


@contextmanager
def app(backend: str, db: Path, side_effects: Path | None = None) -> Iterator[tuple[Any, Any]]:
    if backend == "sqlite":
        saver_conn = sqlite3.connect(str(db), check_same_thread=False, timeout=60)
        saver_conn.execute("PRAGMA journal_mode=WAL")
        store_conn = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None, timeout=60)
        store = SqliteStore(store_conn)
        store.setup()
        try:
            yield build(side_effects).compile(checkpointer=SqliteSaver(saver_conn), store=store), store
        finally:
            store_conn.close()
            saver_conn.close()
        return
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.store.postgres import PostgresStore

    with PostgresSaver.from_conn_string(POSTGRES_URL) as saver, PostgresStore.from_conn_string(POSTGRES_URL) as store:
        saver.setup()
        store.setup()
        yield build(side_effects).compile(checkpointer=saver, store=store), store


def escalate(graph: Any, prefix: str, n: int, label: str) -> list[str]:
    threads = []
    for i in range(n):
        thread = f"{prefix}-{i:05d}"
        graph.invoke({"question": thread}, {"configurable": {"thread_id": thread}}, durability="exit")
        threads.append(thread)
        if (i + 1) % 1000 == 0:
            sys.stderr.write(f"  {label}: {i + 1}/{n} threads escalated\n")
    return threads


def measure_list(backend: str, db: Path, threads: int, prefix: str) -> float:
    with app(backend, db) as (graph, store):
        sys.stderr.write(f"{backend}: escalating {threads} threads for the listing...\n")
        escalate(graph, prefix, threads, backend)
        inbox = EscalationInbox(store, graph=graph)
        inbox.list(step="draft", limit=50)  # warm-up (and the first sync of the index into the ledger)
        times = []
        for _ in range(20):
            start = time.perf_counter()
            page = inbox.list(status="pending", step="draft", order="oldest", limit=50)
            times.append((time.perf_counter() - start) * 1e3)
            assert len(page) == 50
        return statistics.median(times)


def child(args: argparse.Namespace) -> None:
    """A reviewer process: resolve each id (in its own order); print one line per outcome."""
    ids = json.loads(Path(args.ids).read_text())
    random.Random(args.seed).shuffle(ids)
    with app(args.backend, Path(args.db), Path(args.effects)) as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        while time.time() < args.start_at:
            time.sleep(0.001)
        for escalation_id in ids:
            try:
                inbox.resolve(
                    escalation_id, {"action": "edit", "output": f"signed by {args.seed}"}, reviewer=str(args.seed)
                )
                print(f"won {escalation_id}", flush=True)
            except AlreadyResolvedError:
                print(f"lost {escalation_id}", flush=True)


def spawn(backend: str, db: Path, effects: Path, ids: list[str], seed: int, start_at: float, tmp: Path) -> Any:
    ids_file = tmp / f"ids-{seed}-{uuid.uuid4().hex[:6]}.json"
    ids_file.write_text(json.dumps(ids))
    command = [
        sys.executable,
        __file__,
        "--child",
        "--backend",
        backend,
        "--db",
        str(db),
        "--effects",
        str(effects),
        "--ids",
        str(ids_file),
        "--seed",
        str(seed),
        "--start-at",
        str(start_at),
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def measure_race(backend: str, db: Path, n: int, prefix: str, tmp: Path) -> dict[str, int]:
    effects = tmp / f"race-{backend}.log"
    with app(backend, db) as (graph, store):
        sys.stderr.write(f"{backend}: escalating {n} threads for the race...\n")
        threads = set(escalate(graph, prefix, n, backend))
        inbox = EscalationInbox(store, graph=graph)
        ids = [i.id for i in inbox.list(status="pending", limit=100_000) if i.thread_id in threads]
    sys.stderr.write(f"{backend}: {PROCESSES} processes racing to resolve {len(ids)} escalations...\n")
    start_at = time.time() + 3
    children = [spawn(backend, db, effects, ids, seed, start_at, tmp) for seed in range(PROCESSES)]
    wins: Counter[str] = Counter()
    for proc in children:  # (each prints "ready" first)
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"a reviewer process failed:\n{err[-2000:]}")
        wins.update(line.split()[1] for line in out.splitlines() if line.startswith("won "))
    applied = Counter(effects.read_text().splitlines()) if effects.exists() else Counter()
    with app(backend, db) as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        statuses = {i: inbox.show(i).status for i in ids}
    return {
        "escalations": len(ids),
        "resolutions": sum(1 for i in ids if wins[i] == 1 and statuses[i] == "resolved"),
        "won_twice": sum(1 for i in ids if wins[i] > 1),
        "applied_twice": sum(1 for t in threads if applied[t] > 1),
        "lost": sum(1 for i in ids if statuses[i] != "resolved"),
    }


def measure_kills(backend: str, db: Path, kills: int, prefix: str, tmp: Path) -> dict[str, int]:
    effects = tmp / f"kill-{backend}.log"
    rng = random.Random(0)
    with app(backend, db) as (graph, store):
        sys.stderr.write(f"{backend}: escalating {kills} threads to kill resolvers on...\n")
        threads = escalate(graph, prefix, kills, backend)
        inbox = EscalationInbox(store, graph=graph)
        by_thread = {i.thread_id: i.id for i in inbox.list(status="pending", limit=100_000)}
    killed = 0
    for n, thread in enumerate(threads):
        proc = spawn(backend, db, effects, [by_thread[thread]], n, time.time(), tmp)
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": the resolution starts now
        time.sleep(rng.uniform(0.0, 0.06))  # a resolution takes ~10-60 ms: kill somewhere inside it
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.communicate(timeout=60)
        if (n + 1) % 10 == 0:
            sys.stderr.write(f"  {backend}: {n + 1}/{kills} resolvers started and killed\n")
    with app(backend, db) as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        inbox.reconcile()
        statuses = {t: inbox.show(by_thread[t]).status for t in threads}
    applied = Counter(effects.read_text().splitlines()) if effects.exists() else Counter()
    return {
        "kills": killed,
        "resolved": sum(1 for t in threads if statuses[t] == "resolved"),
        "back_in_queue": sum(1 for t in threads if statuses[t] in ("pending", "claimed")),
        "lost": sum(1 for t in threads if statuses[t] not in ("resolved", "pending", "claimed")),
        "applied_twice": sum(1 for t in threads if applied[t] > 1),
        "resolved_but_not_applied": sum(1 for t in threads if statuses[t] == "resolved" and applied[t] == 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--race", type=int, default=500)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--backend", "--db", "--effects", "--ids"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    run = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {"threads": args.threads, "race_escalations": args.race, "kills_requested": args.kills}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for backend in args.backends.split(","):
            db = tmp / f"{backend}.sqlite"
            result[f"list_page_ms_{backend}"] = round(measure_list(backend, db, args.threads, f"list-{run}"), 2)
            race = measure_race(backend, db, args.race, f"race-{run}", tmp)
            kills = measure_kills(backend, db, args.kills, f"kill-{run}", tmp)
            result[f"race_{backend}"] = race
            result[f"kill_{backend}"] = kills
    result["race_resolutions"] = min(result[f"race_{b}"]["resolutions"] for b in args.backends.split(","))
    result["race_applied_twice"] = sum(result[f"race_{b}"]["applied_twice"] for b in args.backends.split(","))
    result["race_lost"] = sum(result[f"race_{b}"]["lost"] for b in args.backends.split(","))
    result["kill_lost"] = sum(result[f"kill_{b}"]["lost"] for b in args.backends.split(","))
    result["kill_applied_twice"] = sum(result[f"kill_{b}"]["applied_twice"] for b in args.backends.split(","))
    result["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
