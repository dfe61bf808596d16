"""Run your graph N times under a fault profile, with random SIGKILLs, and count what was lost.

`run_chaos(...)` (and `reliable-graph chaos`) runs the graph in a worker process on a real
SQLite checkpoint file, with the connectors you wrapped with `inject_faults` faulted by the
profile. With `kill_rate`, the parent SIGKILLs the worker at random points (after a random task
event, plus a random few milliseconds, so kills land mid-step and mid-write) and resumes the
killed thread in a new process. Each run's outcome is read back from the checkpoint with the
library's public readers; a task that had completed (its writes durable in the checkpoint)
before a kill and started again after it counts as re-executed.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig

from reliable_graph.resilience.chaos import Chaos, FaultProfile, activate
from reliable_graph.resilience.connectors import observe_retries

__all__ = ["ExecutedTasks", "durable_tasks", "load_attr", "run_chaos"]

MARK = "\x1erg-chaos "
"""Prefix of the worker's event lines on stdout (anything else the graph prints is ignored)."""

REVIEWS = ("none", "approve", "terminate")


def load_attr(spec: str, what: str = "--graph") -> Any:
    """The object `module:attr` names (the module imported from the current directory too).

    Example:
        ```python
        from reliable_graph.resilience.runner import load_attr

        assert load_attr("json:dumps")([1]) == "[1]"
        ```
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        msg = f"{what} must look like module:attr (e.g. my_app.graph:builder), got {spec!r}"
        raise ValueError(msg)
    module_name, attr = spec.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"{what} {spec!r}: cannot import {module_name!r} ({exc})"
        raise ValueError(msg) from None
    found = module
    for part in attr.split("."):
        if not hasattr(found, part):
            msg = f"{what} {spec!r}: {module_name!r} has no attribute {attr!r}"
            raise ValueError(msg)
        found = getattr(found, part)
    return found


def _resolve_graph(spec: str) -> Any:
    """The `StateGraph` or compiled graph `spec` names (a factory is called)."""
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    target = load_attr(spec)
    if callable(target) and not isinstance(target, (StateGraph, Pregel)):
        try:
            target = target()
        except Exception as exc:  # noqa: BLE001 - the user's factory: report it on one line
            msg = f"--graph {spec!r}: calling it raised {type(exc).__name__}: {exc}"
            raise ValueError(msg) from None
    if not isinstance(target, (StateGraph, Pregel)):
        msg = f"--graph {spec!r} must be a StateGraph, a compiled graph, or a function returning one"
        raise ValueError(msg)
    return target


def _check_input(target: Any, value: Any, what: str) -> None:
    """Refuse, once and before any run, an input the graph cannot start from: not an object, or unknown keys."""
    from langgraph.graph import StateGraph

    if not isinstance(value, Mapping):
        shown = json.dumps(value, default=repr)
        shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
        msg = f"{what}: a run's input must be a JSON object of the graph's state keys, got {shown}"
        raise ValueError(msg)
    try:
        compiled = target.compile() if isinstance(target, StateGraph) else target
        keys = set(compiled.get_input_jsonschema().get("properties") or {})
    except Exception:  # noqa: BLE001 - a graph whose schema cannot be drawn: its runs will say more
        return
    unknown = sorted(str(k) for k in set(value) - keys)
    if keys and unknown:
        msg = f"{what}: {', '.join(map(repr, unknown))} not in the graph's input (its keys: {', '.join(sorted(keys))})"
        raise ValueError(msg)


def _graph(spec: str, saver: Any) -> Any:
    from langgraph.graph import StateGraph

    target = _resolve_graph(spec)
    if isinstance(target, StateGraph):
        return target.compile(checkpointer=saver)
    return target.copy(update={"checkpointer": saver})


def _inputs(job: dict[str, Any]) -> Callable[[int], Any]:
    if job.get("inputs"):
        factory = load_attr(job["inputs"], "--inputs")
        if not callable(factory):
            msg = f"--inputs {job['inputs']!r} must name a function run_index -> input"
            raise ValueError(msg)
        return factory  # type: ignore[no-any-return]
    value = job.get("input")
    return lambda run: value


# -- the worker (a child process) ---------------------------------------------------------


class _Emitter:
    def __init__(self) -> None:
        self.out = sys.stdout

    def __call__(self, event: dict[str, Any]) -> None:
        self.out.write(MARK + json.dumps(event, default=str) + "\n")
        self.out.flush()


class ExecutedTasks(BaseCallbackHandler):
    """A callback handler that records the graph tasks that really execute: `ids` maps id -> node.

    Pass it in the config's `callbacks`. LangGraph streams a task start also for a task whose
    saved writes it re-applies from the checkpoint without running it; only an execution
    calls back, so `ids` counts executions. With `durable_tasks`, it tells whether a resume
    re-ran work that had completed.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from reliable_graph.demo import research_input, research_pipeline
        from reliable_graph.resilience import ExecutedTasks, durable_tasks

        graph = research_pipeline().compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "t"}}
        seen = ExecutedTasks()
        graph.invoke(research_input(0), {**config, "callbacks": [seen]})
        durable = durable_tasks(graph, config)  # the nodes' tasks, and the input's (no node runs it)
        assert set(seen.ids) <= durable and len(durable) == len(seen.ids) + 1
        again = ExecutedTasks()
        graph.invoke(None, {**config, "callbacks": [again]})  # resuming a finished thread
        assert again.ids == {}  # re-runs nothing
        ```
    """

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, metadata: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        """Record the task of a node's run, from LangGraph's run metadata."""
        ns = (metadata or {}).get("langgraph_checkpoint_ns")
        if isinstance(ns, str) and ns:
            node, _, task_id = ns.split("|")[-1].partition(":")
            self.ids.setdefault(task_id, node)


def durable_tasks(graph: Any, config: RunnableConfig) -> set[str]:
    """Ids of the tasks whose work is durable in the thread's checkpoints.

    The tasks of every checkpoint but the latest (the next one exists, so they completed), and
    the latest checkpoint's tasks whose writes were saved (a kill mid-superstep keeps those).

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import START, StateGraph
        from typing_extensions import TypedDict
        from reliable_graph.resilience import durable_tasks

        class S(TypedDict):
            n: int

        builder = StateGraph(S)
        builder.add_node("inc", lambda s: {"n": s["n"] + 1})
        builder.add_edge(START, "inc")
        graph = builder.compile(checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "t"}}
        assert durable_tasks(graph, config) == set()
        graph.invoke({"n": 0}, config)
        assert len(durable_tasks(graph, config)) == 2  # the input task and "inc"
        ```
    """
    done: set[str] = set()
    for i, snapshot in enumerate(graph.get_state_history(config)):
        for task in snapshot.tasks:
            if i > 0 or (task.result is not None and not task.interrupts and task.error is None):
                done.add(task.id)
    return done


def _summary(graph: Any, config: RunnableConfig) -> dict[str, Any]:
    from reliable_graph.state import run_outcome, task_records

    snapshot = graph.get_state(config)
    values = snapshot.values
    records = task_records(values)
    outcomes: dict[str, int] = {}
    attempts = 0
    for record in records.values():
        outcome = record.get("outcome")
        if outcome is not None:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        attempts += len(record.get("attempts") or [])
    pending_review = bool(snapshot.interrupts)
    finished = not snapshot.next or pending_review
    return {
        "run_outcome": run_outcome(snapshot) if finished else "unfinished",
        "outcomes": outcomes,
        "logical_attempts": attempts,
        "finished": finished,
    }


def _review(graph: Any, config: RunnableConfig, action: str) -> None:
    """Answer every pending escalation with `action` (terminate where `action` is not allowed)."""
    from reliable_graph.escalation import answer_escalations, pending_escalations

    for _ in range(20):
        pending = pending_escalations(graph, config)
        if not pending:
            return
        answers = {}
        for p in pending:
            allowed = p.escalation.get("allowed_decisions") or [action]
            chosen = action if action in allowed else "terminate"
            answers[p.interrupt_id] = {"action": chosen, "reviewer": "chaos", "reason": f"chaos run: {chosen}"}
        answer_escalations(graph, config, answers)


def _short_traceback(exc: BaseException, limit: int = 4000) -> str:
    """The traceback, its head line and its last `limit` characters (LangGraph's frames are many)."""
    text = "".join(traceback.format_exception(exc))
    if len(text) <= limit:
        return text
    return "Traceback (most recent call last):\n  ...\n" + text[-limit:]


def _counts_delta(chaos: Chaos, last: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    now = chaos.counts()
    delta: dict[str, dict[str, Any]] = {}
    for name, c in now.items():
        before = last.get(name, {"calls": 0, "faults": {}})
        calls = c["calls"] - before["calls"]
        faults = {k: v - before["faults"].get(k, 0) for k, v in c["faults"].items() if v - before["faults"].get(k, 0)}
        if calls or faults:
            delta[name] = {"calls": calls, "faults": faults}
    last.clear()
    last.update(now)
    return delta


def worker(job: dict[str, Any]) -> int:
    """Run a job's runs (resuming the listed ones first), emitting event lines on stdout."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    emit = _Emitter()
    profile = FaultProfile.parse(json.dumps(job["profile"]))
    chaos = Chaos(profile, seed=int(job["seed"]) * 1_000_003 + int(job["generation"]))
    conn = sqlite3.connect(job["db"], check_same_thread=False)
    saver = SqliteSaver(conn)
    graph = _graph(job["graph"], saver)
    inputs = _inputs(job)
    last: dict[str, dict[str, Any]] = {}

    def on_retry(exc: BaseException, wait: float) -> None:
        emit({"e": "retry", "fault": getattr(exc, "chaos_fault", type(exc).__name__), "wait": wait})

    with activate(chaos), observe_retries(on_retry):
        todo = [(run, True) for run in job["resume"]] + [(run, False) for run in job["runs"]]
        for run, resuming in todo:
            config: RunnableConfig = {
                "configurable": {"thread_id": f"{job['prefix']}-{run:06d}"},
                "recursion_limit": int(job.get("recursion_limit", 200)),
            }
            emit({"e": "start", "run": run, "resume": resuming})
            durable = durable_tasks(graph, config) if resuming else set()
            executed = ExecutedTasks()
            config["callbacks"] = [executed]
            try:
                has_checkpoint = saver.get_tuple(config) is not None
                payload = None if resuming and has_checkpoint else inputs(run)
                for _ns, chunk in graph.stream(payload, config, stream_mode="tasks", subgraphs=True, durability="sync"):
                    if "triggers" in chunk:  # a task starts (or its saved writes are re-applied)
                        emit({"e": "task", "run": run, "name": chunk["name"], "calls": _counts_delta(chaos, last)})
                if job.get("review", "none") != "none":
                    _review(graph, config, job["review"])
                summary = _summary(graph, config)
                error = None
            except Exception as exc:  # noqa: BLE001 - an unhandled exception is what the runner reports
                summary = {"run_outcome": "unhandled", "outcomes": {}, "logical_attempts": 0, "finished": False}
                error = {
                    "type": type(exc).__name__,
                    "message": str(exc)[:500],
                    "traceback": _short_traceback(exc),
                }
            emit(
                {
                    "e": "done",
                    "run": run,
                    **summary,
                    "error": error,
                    "reexecuted": sorted(name for tid, name in executed.ids.items() if tid in durable),
                    "calls": _counts_delta(chaos, last),
                }
            )
    conn.close()
    return 0


# -- the parent ------------------------------------------------------------------------------


@contextmanager
def _db_path(db: Path | None) -> Iterator[Path]:
    if db is not None:
        yield db
        return
    with tempfile.TemporaryDirectory(prefix="reliable-graph-chaos-") as tmp:
        yield Path(tmp) / "chaos.sqlite"


def _check_db(db: Path) -> None:
    if db.exists():
        if not db.is_file():
            msg = f"--db {db}: not a file"
            raise ValueError(msg)
        with db.open("rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\x00":
            msg = f"--db {db}: exists and is not a SQLite file; refusing to overwrite it"
            raise ValueError(msg)
    elif not db.parent.is_dir():
        msg = f"--db {db}: the directory {db.parent} does not exist"
        raise ValueError(msg)


def run_chaos(
    graph: str,
    *,
    runs: int,
    profile: FaultProfile | str = "scenario",
    rate: float = 0.3,
    seed: int = 0,
    kill_rate: float = 0.0,
    db: Path | None = None,
    input: Any = None,
    inputs: str | None = None,
    review: str = "none",
    run_timeout: float = 300.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run `graph` (`module:attr`) `runs` times under `profile`; SIGKILL at `kill_rate`; report.

    Args:
        graph: `module:attr` naming a `StateGraph`, a compiled graph, or a function returning one.
        runs: How many runs (threads).
        profile: A `FaultProfile`, a preset name (`scenario`, `flaky`, ...), JSON or a .json path.
        rate: The preset's fault rate.
        seed: Seeds the faults and the kill points.
        kill_rate: The share of runs whose worker is SIGKILLed at a random point, in [0, 1].
        db: The SQLite checkpoint file (default: a temporary one).
        input: The input of every run (JSON-like), or
        inputs: `module:attr` of a function `run_index -> input`.
        review: `none` leaves escalations pending; `approve` / `terminate` answers each one.
        run_timeout: Seconds a run may go without an event before it counts as never completed.
        progress: Called as `progress(done, runs)` after each finished run.

    Returns:
        A JSON-ready report: `runs`, `completed`, `lost`, `unhandled`, `kills` (SIGKILLs that
        interrupted a run; `kills_between_runs` landed after a run's last event), `resumed`,
        `steps_reexecuted`, `outcomes` (per task), `run_outcomes`, `retries` (count and time
        waited per fault type), `connector_calls` (calls and faults per connector),
        `logical_attempts` (the steps' scored attempts: model calls as the pattern counts them),
        `errors` (unhandled exceptions by type, with a sample traceback), the profile and seed.

    Example:
        ```python
        from reliable_graph.resilience.runner import run_chaos

        report = run_chaos("reliable_graph.demo:research_pipeline", inputs="reliable_graph.demo:research_input",
                           runs=2, profile="scenario", rate=0.3, seed=1)
        assert report["runs"] == 2 and report["lost"] == 0 and report["completed"] == 2
        ```
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        msg = f"runs must be an integer >= 1, got {runs!r}"
        raise ValueError(msg)
    if isinstance(kill_rate, bool) or not isinstance(kill_rate, (int, float)) or not 0 <= kill_rate <= 1:
        msg = f"kill_rate must be a number in [0, 1], got {kill_rate!r}"
        raise ValueError(msg)
    if review not in REVIEWS:
        msg = f"review must be one of {', '.join(REVIEWS)}, got {review!r}"
        raise ValueError(msg)
    if input is not None and inputs is not None:
        msg = "give the runs' input or inputs (a function of the run index), not both"
        raise ValueError(msg)
    fault_profile = profile if isinstance(profile, FaultProfile) else FaultProfile.parse(profile, rate=rate)
    target = _resolve_graph(graph)  # fail here, with a clear message, rather than in the worker
    if inputs is not None:
        factory = load_attr(inputs, "--inputs")
        if not callable(factory):
            msg = f"--inputs {inputs!r} must name a function run_index -> input"
            raise ValueError(msg)
        try:
            first = factory(0)
        except Exception as exc:  # noqa: BLE001 - the user's function: report it on one line
            msg = f"--inputs {inputs!r}: calling it with run 0 raised {type(exc).__name__}: {exc}"
            raise ValueError(msg) from None
        _check_input(target, first, f"--inputs {inputs} (run 0)")
    else:
        _check_input(target, input, "--input")
    json.dumps(input)
    with _db_path(db) as path:
        _check_db(path)
        return _Parent(
            graph=graph,
            runs=runs,
            profile=fault_profile,
            seed=seed,
            kill_rate=float(kill_rate),
            db=path,
            input=input,
            inputs=inputs,
            review=review,
            run_timeout=run_timeout,
            progress=progress,
        ).run()


class _Parent:
    def __init__(
        self,
        *,
        graph: str,
        runs: int,
        profile: FaultProfile,
        seed: int,
        kill_rate: float,
        db: Path,
        input: Any,
        inputs: str | None,
        review: str,
        run_timeout: float,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.graph = graph
        self.runs = runs
        self.profile = profile
        self.seed = seed
        self.kill_rate = kill_rate
        self.db = db
        self.input = input
        self.inputs = inputs
        self.review = review
        self.run_timeout = run_timeout
        self.progress = progress
        self.rng = random.Random(f"kills:{self.seed}")
        self.prefix = f"chaos-{self.seed}-{int(time.time() * 1000) % 10**9}"
        self.done: dict[int, dict[str, Any]] = {}
        self.retries: dict[str, dict[str, float]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.kills = 0
        self.kills_between_runs = 0
        self.killed_runs: set[int] = set()
        self.never: list[int] = []
        self.worker_errors: list[str] = []
        self.events_per_run: list[int] = []
        self.generation = 0

    def _add_calls(self, delta: dict[str, dict[str, Any]]) -> None:
        for name, c in delta.items():
            total = self.calls.setdefault(name, {"calls": 0, "faults": {}})
            total["calls"] += c["calls"]
            for k, v in c["faults"].items():
                total["faults"][k] = total["faults"].get(k, 0) + v

    def _spawn(self, todo: list[int], resume: list[int]) -> subprocess.Popen[str]:
        job = {
            "graph": self.graph,
            "db": str(self.db),
            "profile": self.profile.describe(),
            "seed": self.seed,
            "generation": self.generation,
            "runs": todo,
            "resume": resume,
            "input": self.input,
            "inputs": self.inputs,
            "review": self.review,
            "prefix": self.prefix,
        }
        self.generation += 1
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file: a chatty worker never blocks on a pipe
        return subprocess.Popen(
            [sys.executable, "-m", "reliable_graph.resilience.runner", json.dumps(job)],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            start_new_session=True,
        )

    def _plan_kill(self) -> int | None:
        if self.kill_rate <= 0 or self.rng.random() >= self.kill_rate:
            return None
        typical = sorted(self.events_per_run)[len(self.events_per_run) // 2] if self.events_per_run else 10
        return self.rng.randint(1, max(1, typical))

    def run(self) -> dict[str, Any]:
        started_at = time.perf_counter()
        remaining = list(range(self.runs))
        resume: list[int] = []
        carry: int | None = None
        while remaining or resume:
            proc = self._spawn(remaining, resume)
            in_flight: int | None = None
            events = 0
            kill_at: int | None = None
            killed = False
            finished_here: set[int] = set()
            assert proc.stdout is not None
            deadline_timer = _Watchdog(proc, self.run_timeout)
            for line in proc.stdout:
                deadline_timer.poke()
                if not line.startswith(MARK):
                    continue
                event = json.loads(line[len(MARK) :])
                kind = event["e"]
                if kind == "retry":
                    r = self.retries.setdefault(event["fault"], {"retries": 0, "wait_s": 0.0})
                    r["retries"] += 1
                    r["wait_s"] += float(event["wait"])
                elif kind == "start":
                    in_flight, events = event["run"], 0
                    if not event["resume"]:
                        kill_at = carry if carry is not None else self._plan_kill()
                        carry = None
                elif kind == "task":
                    events += 1
                    self._add_calls(event["calls"])
                    if kill_at is not None and events >= kill_at and not killed:
                        time.sleep(self.rng.uniform(0, 0.01))  # land mid-step or mid-write
                        try:
                            os.killpg(proc.pid, signal.SIGKILL)
                            killed = True
                        except ProcessLookupError:
                            pass
                elif kind == "done":
                    run = event["run"]
                    self._add_calls(event["calls"])
                    previous = self.done.get(run)
                    if previous is not None:  # a resumed run: keep the re-executed tasks of both parts
                        event["reexecuted"] = previous["reexecuted"] + event["reexecuted"]
                    self.done[run] = event
                    finished_here.add(run)
                    if run not in self.killed_runs:
                        self.events_per_run.append(events)
                    if kill_at is not None and not killed:
                        carry = kill_at  # the run ended before its kill point: kill a later run
                    kill_at, in_flight = None, None
                    if self.progress is not None:
                        self.progress(len(self.done), self.runs)
            proc.wait()
            deadline_timer.stop()
            proc.stdout.close()
            self.stderr.seek(0)
            stderr = self.stderr.read()
            self.stderr.close()
            resume = []
            if killed and in_flight is not None:  # resume the killed thread in a new process
                self.kills += 1
                self.killed_runs.add(in_flight)
                resume = [in_flight]
            elif killed:  # the kill landed after the run's last event: nothing was interrupted
                self.kills_between_runs += 1
                carry = 1  # so kill the next run early instead
            elif deadline_timer.fired and in_flight is not None:
                self.never.append(in_flight)
            elif proc.returncode != 0:
                self.worker_errors.append(stderr[-4000:])
                if in_flight is not None:
                    self.never.append(in_flight)
                elif not finished_here:
                    break  # the worker cannot even start: stop rather than loop
            remaining = [r for r in remaining if r not in self.done and r not in self.never and r != in_flight]
        return self._report(time.perf_counter() - started_at)

    def _report(self, elapsed: float) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        run_outcomes: dict[str, int] = {}
        errors: dict[str, dict[str, Any]] = {}
        attempts = 0
        reexecuted: dict[str, int] = {}
        for event in self.done.values():
            run_outcomes[event["run_outcome"]] = run_outcomes.get(event["run_outcome"], 0) + 1
            for k, v in event["outcomes"].items():
                outcomes[k] = outcomes.get(k, 0) + v
            attempts += event["logical_attempts"]
            for name in event["reexecuted"]:
                reexecuted[name] = reexecuted.get(name, 0) + 1
            if event["error"] is not None:
                err = errors.setdefault(event["error"]["type"], {"count": 0, "sample_traceback": ""})
                err["count"] += 1
                err["sample_traceback"] = err["sample_traceback"] or event["error"]["traceback"]
        unhandled = sum(1 for e in self.done.values() if e["error"] is not None)
        completed = sum(1 for e in self.done.values() if e["error"] is None and e["finished"])
        resumed = sum(1 for r in self.killed_runs if r in self.done and self.done[r]["error"] is None)
        return {
            "runs": self.runs,
            "completed": completed,
            "lost": self.runs - completed,
            "unhandled": unhandled,
            "never_completed": len(self.never) + max(0, self.runs - len(self.done) - len(self.never)),
            "kills": self.kills,
            "kills_between_runs": self.kills_between_runs,
            "resumed": resumed,
            "steps_reexecuted": sum(reexecuted.values()),
            "reexecuted_by_node": reexecuted,
            "outcomes": dict(sorted(outcomes.items())),
            "run_outcomes": dict(sorted(run_outcomes.items())),
            "retries": {
                k: {"retries": int(v["retries"]), "wait_s": round(v["wait_s"], 3)} for k, v in self.retries.items()
            },
            "connector_calls": self.calls,
            "logical_attempts": attempts,
            "errors": errors,
            "worker_errors": self.worker_errors[:3],
            "profile": self.profile.describe(),
            "seed": self.seed,
            "kill_rate": self.kill_rate,
            "review": self.review,
            "db": str(self.db),
            "elapsed_s": round(elapsed, 1),
        }


class _Watchdog:
    """Kills a worker that has gone `timeout` seconds without an event (a wedged run)."""

    def __init__(self, proc: subprocess.Popen[str], timeout: float) -> None:
        import threading

        self.proc = proc
        self.timeout = timeout
        self.last = time.monotonic()
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self.last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            if time.monotonic() - self.last > self.timeout and self.proc.poll() is None:
                self.fired = True
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                return


if __name__ == "__main__":
    raise SystemExit(worker(json.loads(sys.argv[1])))
