"""The escalation inbox at scale, under races and under SIGKILL, on SQLite and on Postgres.

Each backend runs on databases of its own (temporary SQLite files; fresh Postgres databases):
one for the listing, one for the phases after it.

1. list: `--threads` real escalated threads (a one-step graph whose step always escalates, on
   the backend's checkpointer and store); the time to list one page of 50 pending escalations
   filtered by step, oldest first (median of 20 listings after one warm-up); then the time of
   one `reconcile()` over those threads (`reconcile_s_*`: it reads every thread's state).
2. race: `--race` escalated threads; 8 reviewer processes each try to resolve every one of them,
   in their own random order, all at once. Every resolution runs the downstream node, which
   appends the thread to a side-effect log: an escalation applied twice shows up there.
3. kill: `--kills` times, a reviewer process starts resolving a fresh escalation and is
   SIGKILLed at a random point (0-60 ms in); then `reconcile()` runs, as an operator would.
   An escalation is lost if it ended neither resolved nor back in the queue;
   `resolved_but_not_applied` counts one resolved while its thread's checkpoints hold no run of
   the downstream node; `applied_twice`, a thread whose checkpoints hold two. A kill that lands
   inside the downstream node, after its side effect and before its checkpoint, makes
   `reconcile()` run that node again (LangGraph runs a node whose writes were never checkpointed
   again on resume: at least once, so side effects must be idempotent): `rerun_after_kill` counts
   those, from the side-effect log.
4. fanout_race: `--fanout-threads` threads, each a 9-item `Send` fan-out of which 5 items
   escalate; 5 reviewer processes at once, reviewer k resolving the k-th escalation of every
   thread (so every thread has 5 reviewers at the same time), each in its own random order.
   No reconcile afterwards: `stalled` counts threads that did not reach their end.
5. kill_points: for each named crash point of the resolution protocol, `--kill-points` times,
   a reviewer process resolving a fan-out thread's 5 escalations is SIGKILLed at that point
   (at a random one of its passes); for `taken_over`, a first reviewer is killed after winning
   and an operator's reconcile is killed after taking it over. Then `reconcile()` runs (with a
   clock past the dead owners' leases) and the remaining escalations are resolved.
6. reconcile_race: `--reconcile-race` fan-out threads resolved by 5 reviewer processes while 2
   operator processes run `reconcile()` in a loop: a live resolution must never be taken over.

`lost`: an escalation not resolved, or its decision missing from the thread; `applied_twice`: a
decision in the thread twice, or the downstream node run twice; `stalled`: a thread not at its
end once every escalation was answered.

    python benchmarks/inbox.py [--threads 10000] [--race 500] [--kills 50] [--fanout-threads 50]
                               [--kill-points 20] [--reconcile-race 20] [--backends sqlite,postgres] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import operator
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import (  # noqa: E402
    ESCALATING,
    ITEMS,
    compiled,
    edit_of,
    fan_out_builder,
    fresh_postgres,
    print_result,
    results_of,
)
from langgraph.graph import START, StateGraph  # noqa: E402

from reliable_graph import (  # noqa: E402
    AlreadyResolvedError,
    EscalationInbox,
    HumanEscalation,
    Predicate,
    ReliabilityState,
    pending_escalations,
    reliable_step,
)
from reliable_graph.escalation import CrashPoint, on_crash_point  # noqa: E402

PROCESSES = 8
FAN_REVIEWERS = len(ESCALATING)
LEASE = timedelta(seconds=2)
"""The resolution lease of the reviewer processes that are killed (reconcile then looks an hour ahead)."""


class State(ReliabilityState, total=False):
    question: str
    output: str
    done: str
    effects: Annotated[list[str], operator.add]
    """One entry per run of the downstream node the thread's checkpoints hold."""


def build(side_effects: Path | None) -> StateGraph[Any, Any, Any, Any]:
    def draft(state: State) -> dict[str, Any]:
        return {"output": f"draft for {state['question']}"}

    def after(state: State) -> dict[str, Any]:
        if side_effects is not None:
            with side_effects.open("a") as fh:
                fh.write(f"{state['question']}\n")
        return {"done": state.get("output", ""), "effects": [state["question"]]}

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


def one_step(backend: str, where: str, side_effects: Path | None = None) -> Any:
    return compiled(build(side_effects), backend, where)


def fan(backend: str, where: str, effects: Path | None = None) -> Any:
    return compiled(fan_out_builder(effects), backend, where)


def escalate(graph: Any, prefix: str, n: int, label: str) -> list[str]:
    threads = []
    for i in range(n):
        thread = f"{prefix}-{i:05d}"
        graph.invoke({"question": thread}, {"configurable": {"thread_id": thread}}, durability="exit")
        threads.append(thread)
        if (i + 1) % 1000 == 0:
            sys.stderr.write(f"  {label}: {i + 1}/{n} threads escalated\n")
    return threads


# -- 1-3: one escalation per thread (kept as before) ------------------------------------------------


def measure_list(backend: str, where: str, threads: int, prefix: str) -> tuple[float, float]:
    """The median time to list a page of 50 among `threads` escalated threads (ms); one `reconcile()` (s)."""
    with one_step(backend, where) as (graph, store):
        sys.stderr.write(f"{backend}: escalating {threads} threads for the listing...\n")
        escalate(graph, prefix, threads, backend)
        inbox = EscalationInbox(store, graph=graph)
        inbox.list(step="draft", limit=50)  # warm-up
        times = []
        for _ in range(20):
            start = time.perf_counter()
            page = inbox.list(status="pending", step="draft", order="oldest", limit=50)
            times.append((time.perf_counter() - start) * 1e3)
            assert len(page) == 50
        sys.stderr.write(f"{backend}: one reconcile() over the {threads} threads...\n")
        start = time.perf_counter()
        inbox.reconcile()  # reads every thread's newest state: what an operator's reconcile costs at this size
        return statistics.median(times), time.perf_counter() - start


def spawn(role: str, backend: str, where: str, effects: Path, tmp: Path, **options: Any) -> Any:
    args = [
        sys.executable,
        __file__,
        "--child",
        role,
        "--backend",
        backend,
        "--where",
        where,
        "--effects",
        str(effects),
    ]
    if "ids" in options:
        ids_file = tmp / f"ids-{uuid.uuid4().hex[:8]}.json"
        ids_file.write_text(json.dumps(options.pop("ids")))
        args += ["--ids", str(ids_file)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def child(args: argparse.Namespace) -> None:
    """A reviewer (or operator) process; prints one line per outcome."""
    role = args.child
    if role == "reconciler":
        with fan(args.backend, args.where, Path(args.effects)) as (graph, store):
            inbox = EscalationInbox(store, graph=graph)
            stop = Path(args.stop)
            while not stop.exists():
                inbox.reconcile()
                print("reconciled", flush=True)
        return
    ids = json.loads(Path(args.ids).read_text())
    random.Random(args.seed).shuffle(ids)
    opener = one_step if role == "reviewer" else fan
    with opener(args.backend, args.where, Path(args.effects)) as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        print("ready", flush=True)
        while time.time() < args.start_at:
            time.sleep(0.001)
        for escalation_id in ids:
            answer = (
                {"action": "edit", "output": f"signed by {args.seed}"}
                if role == "reviewer"
                else edit_of(inbox.show(escalation_id).escalation)
            )
            try:
                inbox.resolve(escalation_id, answer, reviewer=f"reviewer-{args.seed}")
                print(f"won {escalation_id}", flush=True)
            except AlreadyResolvedError:
                print(f"lost {escalation_id}", flush=True)


def measure_race(backend: str, where: str, n: int, prefix: str, tmp: Path) -> dict[str, int]:
    effects = tmp / f"race-{backend}.log"
    with one_step(backend, where) as (graph, store):
        sys.stderr.write(f"{backend}: escalating {n} threads for the race...\n")
        threads = set(escalate(graph, prefix, n, backend))
        ids = [i.id for i in EscalationInbox(store, graph=graph).list(limit=100_000) if i.thread_id in threads]
    sys.stderr.write(f"{backend}: {PROCESSES} processes racing to resolve {len(ids)} escalations...\n")
    start_at = time.time() + 3
    children = [
        spawn("reviewer", backend, where, effects, tmp, ids=ids, seed=seed, start_at=start_at)
        for seed in range(PROCESSES)
    ]
    wins: Counter[str] = Counter()
    for proc in children:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"a reviewer process failed:\n{err[-2000:]}")
        wins.update(line.split()[1] for line in out.splitlines() if line.startswith("won "))
    applied = Counter(effects.read_text().splitlines()) if effects.exists() else Counter()
    with one_step(backend, where) as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        statuses = {i: inbox.show(i).status for i in ids}
    return {
        "escalations": len(ids),
        "resolutions": sum(1 for i in ids if wins[i] == 1 and statuses[i] == "resolved"),
        "won_twice": sum(1 for i in ids if wins[i] > 1),
        "applied_twice": sum(1 for t in threads if applied[t] > 1),
        "lost": sum(1 for i in ids if statuses[i] != "resolved"),
    }


def measure_kills(backend: str, where: str, kills: int, prefix: str, tmp: Path) -> dict[str, int]:
    effects = tmp / f"kill-{backend}.log"
    rng = random.Random(0)
    with one_step(backend, where) as (graph, store):
        sys.stderr.write(f"{backend}: escalating {kills} threads to kill resolvers on...\n")
        threads = escalate(graph, prefix, kills, backend)
        by_thread = {i.thread_id: i.id for i in EscalationInbox(store, graph=graph).list(limit=100_000)}
    killed = 0
    for n, thread in enumerate(threads):
        proc = spawn("reviewer", backend, where, effects, tmp, ids=[by_thread[thread]], seed=n, start_at=0)
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": the resolution starts now
        time.sleep(rng.uniform(0.0, 0.06))  # a resolution takes ~10-60 ms: kill somewhere inside it
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.communicate(timeout=60)
    # reconcile runs the downstream node of what it finishes: it logs to the same side effects
    with one_step(backend, where, effects) as (graph, store):
        inbox = EscalationInbox(store, graph=graph, clock=lambda: datetime.now(timezone.utc) + timedelta(hours=1))
        inbox.reconcile()
        statuses = {t: inbox.show(by_thread[t]).status for t in threads}
        committed = {
            t: len(graph.get_state({"configurable": {"thread_id": t}}).values.get("effects") or []) for t in threads
        }
    applied = Counter(effects.read_text().splitlines()) if effects.exists() else Counter()
    return {
        "kills": killed,
        "resolved": sum(1 for t in threads if statuses[t] == "resolved"),
        "back_in_queue": sum(1 for t in threads if statuses[t] in ("pending", "claimed")),
        "lost": sum(1 for t in threads if statuses[t] not in ("resolved", "pending", "claimed")),
        "applied_twice": sum(1 for t in threads if committed[t] > 1),
        "resolved_but_not_applied": sum(1 for t in threads if statuses[t] == "resolved" and committed[t] == 0),
        "rerun_after_kill": sum(1 for t in threads if applied[t] > committed[t] == 1),
    }


# -- 4-6: fan-outs, every crash point, reconcile racing ---------------------------------------------


def fan_threads(backend: str, where: str, n: int, prefix: str) -> dict[str, list[str]]:
    """`n` escalated fan-out threads: thread -> its 5 escalation ids, by item."""
    out = {}
    with fan(backend, where) as (graph, _store):
        for i in range(n):
            thread = f"{prefix}-{i:04d}"
            config = {"configurable": {"thread_id": thread}}
            graph.invoke({"question": thread}, config, durability="exit")
            found = {
                str(p.escalation["output"][0]).split("=")[0]: p.escalation["id"]
                for p in pending_escalations(graph, config)
            }
            out[thread] = [found[x] for x in ESCALATING]
    return out


def verdicts(backend: str, where: str, effects: Path, threads: dict[str, list[str]]) -> dict[str, int]:
    """lost / applied_twice / stalled over fan-out threads, read from checkpoints, the inbox and the side effects."""
    applied = Counter(effects.read_text().splitlines()) if effects.exists() else Counter()
    lost = twice = stalled = 0
    with fan(backend, where) as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        for thread, ids in threads.items():
            results, finished = results_of(graph, thread)
            counts = Counter(results)
            stalled += not finished
            twice += any(c > 1 for c in counts.values()) or applied[thread] > 1
            for item, escalation_id in zip(ESCALATING, ids, strict=True):
                lost += inbox.show(escalation_id).status != "resolved" or (finished and counts[f"{item}=signed"] != 1)
            lost += finished and any(counts[f"{x}=ok"] != 1 for x in ITEMS if x not in ESCALATING)
    return {"lost": lost, "applied_twice": twice, "stalled": stalled}


def fan_reviewers(
    backend: str, where: str, effects: Path, threads: dict[str, list[str]], tmp: Path, start_at: float
) -> None:
    """5 reviewer processes at once, reviewer k resolving the k-th escalation of every thread; wait for them."""
    reviewers = [
        spawn(
            "fan_reviewer",
            backend,
            where,
            effects,
            tmp,
            ids=[ids[k] for ids in threads.values()],
            seed=k,
            start_at=start_at,
        )
        for k in range(FAN_REVIEWERS)
    ]
    for proc in reviewers:
        _out, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"a reviewer process failed:\n{err[-2000:]}")


def measure_fanout_race(backend: str, where: str, n: int, prefix: str, tmp: Path) -> dict[str, Any]:
    effects = tmp / f"fanout-{backend}.log"
    sys.stderr.write(f"{backend}: {n} fan-out threads, {FAN_REVIEWERS} reviewers on each at once...\n")
    threads = fan_threads(backend, where, n, prefix)
    start_at = time.time() + 3
    started = time.perf_counter()
    fan_reviewers(backend, where, effects, threads, tmp, start_at)
    seconds = time.perf_counter() - started - max(0.0, start_at - time.time())
    return {
        "threads": n,
        "escalations": n * FAN_REVIEWERS,
        "seconds": round(seconds, 1),
        **verdicts(backend, where, effects, threads),
    }


def _killed_reviewer(backend: str, where: str, effects: str, ids: list[str], point: str, at: int) -> None:
    """A reviewer resolving `ids` in order, SIGKILLed at the `at`-th pass of `point` (a spawned process)."""
    passes = Counter[str]()

    def hook(reached: str) -> None:
        passes[reached] += 1
        if reached == point and passes[reached] == at:
            os.kill(os.getpid(), signal.SIGKILL)

    on_crash_point(hook)
    with fan(backend, where, Path(effects)) as (graph, store):
        inbox = EscalationInbox(store, graph=graph, resolution_lease=LEASE)
        for escalation_id in ids:
            inbox.resolve(escalation_id, edit_of(inbox.show(escalation_id).escalation), reviewer="victim")
    os._exit(0)


def _killed_reconcile(backend: str, where: str, effects: str) -> None:
    """An operator's reconcile, an hour ahead, SIGKILLed once it took a resolution over (a spawned process)."""
    on_crash_point(lambda reached: os.kill(os.getpid(), signal.SIGKILL) if reached == CrashPoint.TAKEN_OVER else None)
    with fan(backend, where, Path(effects)) as (graph, store):
        later = lambda: datetime.now(timezone.utc) + timedelta(hours=1)  # noqa: E731
        EscalationInbox(store, graph=graph, clock=later, resolution_lease=LEASE).reconcile()
    os._exit(0)


def run_spawned(target: Any, *args: Any) -> int:
    """Run `target(*args)` in a fresh interpreter; its exit code (-9 when it was SIGKILLed).

    Spawned, not forked: a fork would copy this process's connection pools, with their locks as
    their threads held them and their sockets to the database server, into the child.
    """
    proc = multiprocessing.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join(timeout=300)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise RuntimeError(f"{target.__name__} did not end within 300 s")
    return proc.exitcode


def measure_kill_points(backend: str, where: str, per_point: int, prefix: str, tmp: Path) -> dict[str, Any]:
    rng = random.Random(1)
    effects = tmp / f"points-{backend}.log"
    result: dict[str, Any] = {}
    totals = Counter[str]()
    for point in CrashPoint.ALL:
        sys.stderr.write(f"{backend}: {per_point} kills at {point}...\n")
        threads = fan_threads(backend, where, per_point, f"{prefix}-{point}")
        kills = 0
        for ids in threads.values():
            if point == CrashPoint.TAKEN_OVER:
                code = run_spawned(
                    _killed_reviewer, backend, where, str(effects), ids, CrashPoint.WON, rng.randint(1, len(ids))
                )
                kills += code == -9 and run_spawned(_killed_reconcile, backend, where, str(effects)) == -9
            else:
                # `continuing` is passed by the last resolution only, once per escalated task it continues
                at = rng.randint(1, len(ids))
                kills += run_spawned(_killed_reviewer, backend, where, str(effects), ids, point, at) == -9
        with fan(backend, where, effects) as (graph, store):
            later = lambda: datetime.now(timezone.utc) + timedelta(hours=2)  # noqa: E731
            inbox = EscalationInbox(store, graph=graph, clock=later)
            inbox.reconcile()
            for thread in threads:  # the other reviewers answer what the dead one never reached
                for pending in pending_escalations(graph, {"configurable": {"thread_id": thread}}):
                    inbox.resolve(pending.escalation["id"], edit_of(pending.escalation), reviewer="after")
        found = verdicts(backend, where, effects, threads)
        result[point] = {"kills": kills, **found}
        totals.update({"kills": kills, **found})
    return {**result, **totals}


def measure_reconcile_race(backend: str, where: str, n: int, prefix: str, tmp: Path) -> dict[str, Any]:
    effects = tmp / f"reconcile-race-{backend}.log"
    stop = tmp / f"stop-{backend}"
    sys.stderr.write(f"{backend}: {n} fan-out threads resolved while 2 operators reconcile in a loop...\n")
    threads = fan_threads(backend, where, n, prefix)
    operators = [spawn("reconciler", backend, where, effects, tmp, stop=stop) for _ in range(2)]
    fan_reviewers(backend, where, effects, threads, tmp, time.time() + 3)
    stop.write_text("stop")
    reconciles = 0
    for proc in operators:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"an operator process failed:\n{err[-2000:]}")
        reconciles += out.count("reconciled")
    with fan(backend, where) as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        takeovers = sum(e.event == "takeover" for ids in threads.values() for i in ids for e in inbox.audit(i))
    return {
        "threads": n,
        "reconciles": reconciles,
        "takeovers": takeovers,
        **verdicts(backend, where, effects, threads),
    }


@contextmanager
def database(backend: str, tmp: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield str(tmp / f"{name}.sqlite")
        return
    with fresh_postgres() as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--race", type=int, default=500)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--fanout-threads", type=int, default=50)
    parser.add_argument("--kill-points", type=int, default=20)
    parser.add_argument("--reconcile-race", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    for hidden in ("--backend", "--where", "--effects", "--ids", "--stop"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    backends = args.backends.split(",")
    run = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {"threads": args.threads, "race_escalations": args.race, "kills_requested": args.kills}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for backend in backends:
            with database(backend, tmp, "list") as where:
                page_ms, reconcile_s = measure_list(backend, where, args.threads, f"list-{run}")
                result[f"list_page_ms_{backend}"] = round(page_ms, 2)
                result[f"reconcile_s_{backend}"] = round(reconcile_s, 1)
            # the protocol's phases on a database of their own: each of their reconciles would
            # otherwise walk the listing's threads too (a minute each on Postgres at 10,000)
            with database(backend, tmp, "protocol") as where:
                result[f"race_{backend}"] = measure_race(backend, where, args.race, f"race-{run}", tmp)
                result[f"kill_{backend}"] = measure_kills(backend, where, args.kills, f"kill-{run}", tmp)
                result[f"fanout_{backend}"] = measure_fanout_race(
                    backend, where, args.fanout_threads, f"fan-{run}", tmp
                )
                result[f"kill_points_{backend}"] = measure_kill_points(
                    backend, where, args.kill_points, f"pts-{run}", tmp
                )
                result[f"reconcile_race_{backend}"] = measure_reconcile_race(
                    backend, where, args.reconcile_race, f"rr-{run}", tmp
                )
    result["race_resolutions"] = min(result[f"race_{b}"]["resolutions"] for b in backends)
    for part, key in (("race", "applied_twice"), ("race", "lost"), ("kill", "lost"), ("kill", "applied_twice")):
        result[f"{part}_{key}"] = sum(result[f"{part}_{b}"][key] for b in backends)
    for part in ("fanout", "kill_points", "reconcile_race"):
        for key in ("lost", "applied_twice", "stalled"):
            result[f"{part}_{key}"] = sum(result[f"{part}_{b}"][key] for b in backends)
    result["kill_points_kills"] = sum(result[f"kill_points_{b}"]["kills"] for b in backends)
    result["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    print_result(result, as_json=args.json)


if __name__ == "__main__":
    main()
