"""The 10-step research pipeline, bare and with reliable-graph, on the simulated world.

`reliable-graph demo` runs N runs of each on SQLite, prints a table of end-to-end outcomes,
then shows one pending escalation and resumes it with a reviewer's decision.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import RetryPolicy
from typing_extensions import TypedDict

from reliable_graph import (
    AllOf,
    Chaos,
    ConnectorRetry,
    ContextGate,
    EscalationInbox,
    EvalInput,
    HumanEscalation,
    Predicate,
    Refetch,
    Retrieve,
    Score,
    reliability_channel,
    reliable_step,
    run_outcome,
    step_outcomes,
    task_records,
    validate_graph,
)
from reliable_graph.demo.world import ScenarioParams, SimulatedWorld
from reliable_graph.resilience import active_chaos, inject_faults, retry_on

__all__ = [
    "DEFAULT_CONNECTOR_RETRY",
    "DEFAULT_RETRY_POLICY",
    "DemoThresholds",
    "RunSummary",
    "SimulatedConnectors",
    "build_bare_pipeline",
    "build_reliable_pipeline",
    "calibrated_thresholds",
    "research_input",
    "research_pipeline",
    "run_demo",
    "summarize_run",
]


def _merge_answers(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class PipelineState(TypedDict, total=False):
    """The research pipeline's state."""

    run: int
    question: str
    context: list[Any]
    output: Any
    answers: Annotated[dict[str, Any], _merge_answers]
    reliability: Annotated[dict[str, Any], reliability_channel()]


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoThresholds:
    """The thresholds of the reliable pipeline, fixed before any evaluation run.

    Example:
        ```python
        from reliable_graph.demo import DemoThresholds

        t = DemoThresholds()
        assert 0.0 <= t.gate <= 1.0 and t.max_retries == 2
        ```
    """

    gate: float = 0.5
    """The context gate's threshold on the relevance signal."""
    judge: float = 0.7
    """The step's threshold on its confidence (validator, then judge)."""
    max_retries: int = 2
    """Retries with re-fetched context before escalating."""
    max_refetches: int = 2
    """Gate re-fetches before escalating."""


CALIBRATION_RUNS = range(100_000, 105_000)
"""The runs the demo's thresholds are calibrated on: disjoint from any evaluation run (0, 1, ...)."""


def router_view(
    world: SimulatedWorld, run: int, step: int, *, gate: float, max_refetches: int, max_retries: int
) -> tuple[list[float], list[bool], list[tuple[float, bool]]]:
    """One step of one run as the pipeline's gate and router see it, from the world's draws.

    Returns the attempts' router scores and labels (every retry on re-fetched context, as if each
    attempt were rejected: a threshold then picks the first it accepts), and the gate's
    (relevance, good context) per fetch. A step whose gate escalates has no attempts.
    """
    fetches: list[tuple[float, bool]] = []
    fetch = 0
    while True:
        chunk = world.retrieve(run=run, step=step, fetch=fetch)[0]["metadata"]
        fetches.append((float(chunk["relevance"]), bool(chunk["good"])))
        if chunk["relevance"] >= gate:
            break
        if fetch >= max_refetches:
            return [], [], fetches
        fetch += 1
    scores, labels = [], []
    context = world.retrieve(run=run, step=step, fetch=fetch)
    for attempt in range(1, 2 + max_retries):
        if attempt > 1:
            fetch += 1
            context = world.retrieve(run=run, step=step, fetch=fetch)
        sim = world.generate(run=run, step=step, attempt=attempt, context=context)["_sim"]
        scores.append(0.0 if sim["validator_flag"] else float(sim["judge_score"]))
        labels.append(bool(sim["correct"]))
    return scores, labels, fetches


def _code_digest() -> str:
    """What the calibration's result depends on besides its inputs: the code that computes it."""
    import hashlib

    import reliable_graph.calibration as calibration
    import reliable_graph.demo.world as world

    digest = hashlib.sha256()
    for module in (calibration, world, sys.modules[__name__]):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def _cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "reliable-graph" / "calibration.json"


def _cached(key: str) -> tuple[DemoThresholds, dict[str, Any]] | None:
    try:
        found = json.loads(_cache_file().read_text()).get(key)
        return (DemoThresholds(**found["thresholds"]), dict(found["how"])) if found else None
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _cache(key: str, thresholds: DemoThresholds, how: dict[str, Any]) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            saved = {}
        saved[key] = {"thresholds": _asdict(thresholds), "how": how}
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(saved))
        scratch.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs the next run the calibration again


@functools.lru_cache(maxsize=16)
def calibrated_thresholds(
    params: ScenarioParams,
    seed: int,
    *,
    runs: range = CALIBRATION_RUNS,
    max_silent_failure: float = 0.01,
    gate_max_bad_context: float = 0.02,
    delta: float = 0.05,
    max_retries: int = 2,
    max_refetches: int = 2,
) -> tuple[DemoThresholds, dict[str, Any]]:
    """The demo's thresholds, from the library's calibration on held-out runs of the world.

    Calibrating takes about 20 s: the result is kept per process and on disk
    (`$XDG_CACHE_HOME/reliable-graph/calibration.json`, keyed by every input and the library's
    version), so a second demo, or the console reviewing the demo's escalations, starts at once.

    The gate: `calibrate` on the relevance of first fetches labelled by context quality, so that
    at most `gate_max_bad_context` of fetches pass while look-alike. The step: `calibrate_pipeline`
    with the joint split on whole runs as the router sees them (retries included), so that the
    run's silent-failure rate is at most `max_silent_failure` with probability `1 - delta`.

    Example:
        ```python
        from reliable_graph.demo import ScenarioParams
        from reliable_graph.demo.pipeline import calibrated_thresholds

        t, how = calibrated_thresholds(ScenarioParams(steps=3), seed=7, runs=range(100_000, 102_000))
        assert 0 < t.gate < 1 and 0 < t.judge < 1 and how["judge_bound"] <= 0.01
        ```
    """
    from reliable_graph.calibration import calibrate, calibrate_pipeline

    key = json.dumps(
        [
            _code_digest(),
            params.describe(),
            seed,
            [runs.start, runs.stop, runs.step],
            max_silent_failure,
            gate_max_bad_context,
            delta,
            max_retries,
            max_refetches,
        ],
        sort_keys=True,
    )
    if (found := _cached(key)) is not None:
        return found
    world = SimulatedWorld(params, seed=seed)
    relevance, good = [], []
    for run in runs:
        for step in range(1, params.steps + 1):
            meta = world.retrieve(run=run, step=step, fetch=0)[0]["metadata"]
            relevance.append(float(meta["relevance"]))
            good.append(bool(meta["good"]))
    gate = calibrate(relevance, good, max_silent_failure=gate_max_bad_context, max_retries=max_refetches, delta=delta)
    data: dict[str, tuple[list[list[float]], list[list[bool]]]] = {}
    for step in range(1, params.steps + 1):
        scores, labels = [], []
        for run in runs:
            s, lab, _ = router_view(
                world, run, step, gate=gate.threshold, max_refetches=max_refetches, max_retries=max_retries
            )
            scores.append(s or [0.0])
            labels.append(lab or [True])  # the gate escalated: nothing the router could accept
        data[step_name(step)] = (scores, labels)
    judge = calibrate_pipeline(
        data, max_silent_failure=max_silent_failure, max_retries=max_retries, delta=delta, split="joint"
    )
    threshold = next(iter(judge.thresholds().values()))
    thresholds = DemoThresholds(
        gate=round(gate.threshold, 4), judge=round(threshold, 4), max_retries=max_retries, max_refetches=max_refetches
    )
    how = {
        "calibration_runs": [runs.start, runs.stop - 1],
        "gate_target": f"look-alike context passing <= {gate_max_bad_context:g} of first fetches",
        "gate_bound": gate.silent_failure_bound,
        "judge_target": f"run silent failure <= {max_silent_failure:g} with probability >= {1 - delta:g}",
        "judge_bound": judge.silent_failure_bound,
        "split": judge.split,
    }
    _cache(key, thresholds, how)
    return thresholds, how


def step_name(i: int) -> str:
    """The name of step `i` (1-based)."""
    return f"step_{i:02d}"


def _question(i: int) -> str:
    return f"research question, part {i}"


DEFAULT_CONNECTOR_RETRY = ConnectorRetry(max_attempts=8, initial_wait=0.01, backoff=2.0, max_wait=0.1)
"""The reliable pipeline's connector retries (its steps, first fetches and re-fetches): the error
classifier's transient faults, 8 attempts per call, Retry-After honoured, else a full-jitter
back-off from 0.01 s doubling up to 0.1 s; HTTP 400-class (permanent) faults escalate at once."""

DEFAULT_RETRY_POLICY = RetryPolicy(
    initial_interval=0.01,
    backoff_factor=2.0,
    max_interval=0.1,
    max_attempts=8,
    jitter=True,
    retry_on=retry_on,
)
"""The RetryPolicy-only pipeline's node retries: the same budget and back-off as the reliable
pipeline's connector retries (8 attempts, 0.01 s doubling up to 0.1 s), the classifier's
transient faults only (LangGraph's default `retry_on` would skip httpx timeouts)."""


class SimulatedConnectors:
    """The world's retrieval and model calls behind the chaos module's faults.

    Faults come from `params.fault_profile()`, drawn per (run, step) in call order, so a re-run
    (RetryPolicy) or a retry (`ConnectorRetry`) draws a fresh fault. `calls(kind)` counts the
    connector calls, faulted ones included. Pass one to the `build_*_pipeline` functions to
    read its counts afterwards.

    Example:
        ```python
        from reliable_graph.demo import ScenarioParams, SimulatedConnectors, SimulatedWorld

        connectors = SimulatedConnectors(SimulatedWorld(ScenarioParams(), seed=1))
        connectors.retrieve(run=0, step=1, fetch=0)
        assert connectors.calls("retrieval") == 1 and connectors.calls("model") == 0
        ```
    """

    def __init__(self, world: SimulatedWorld, chaos: Chaos | Literal["active"] | None = None) -> None:
        self.world = world

        def by_run_and_step(**kwargs: Any) -> str:
            return f"{kwargs['run']}:{kwargs['step']}"

        if chaos == "active":  # the process's active chaos (`reliable-graph chaos` turns it on)
            self.chaos: Chaos | None = None
            self.retrieve = inject_faults(world.retrieve, name="retrieval", key=by_run_and_step)
            self.generate = inject_faults(world.generate, name="model", key=by_run_and_step)
            return
        self.chaos = chaos if isinstance(chaos, Chaos) else Chaos(world.params.fault_profile(), seed=world.seed)
        self.retrieve = self.chaos.wrap(world.retrieve, name="retrieval", key=by_run_and_step)
        self.generate = self.chaos.wrap(world.generate, name="model", key=by_run_and_step)

    def calls(self, kind: str) -> int:
        """Connector calls of `kind` (`model` or `retrieval`), faulted ones included."""
        counts = (self.chaos or active_chaos()).counts()
        return int(counts.get(kind, {}).get("calls", 0))


def _attempt_of(state: Any, step: str) -> int:
    record: Any = task_records(state).get(step, {})
    return len(record.get("attempts") or []) + 1 if record.get("pending") else 1


def build_bare_pipeline(
    world: SimulatedWorld, *, retry_policy: RetryPolicy | None = None, connectors: SimulatedConnectors | None = None
) -> StateGraph[Any, Any, Any, Any]:
    """The pipeline in plain LangGraph: each step retrieves once and accepts its output.

    Connector faults (`world.params.fault_rate`) propagate: the run fails with the exception.
    With `retry_policy` (e.g. `DEFAULT_RETRY_POLICY`), LangGraph re-runs a faulted step's node.

    Example:
        ```python
        from reliable_graph.demo import build_bare_pipeline
        from reliable_graph.demo import ScenarioParams, SimulatedWorld

        graph = build_bare_pipeline(SimulatedWorld(ScenarioParams(), seed=1)).compile()
        out = graph.invoke({"run": 0})
        assert len(out["answers"]) == 10
        ```
    """
    builder = StateGraph(PipelineState)
    steps = world.params.steps

    calls = connectors or SimulatedConnectors(world)

    def make(i: int) -> Callable[[PipelineState], dict[str, Any]]:
        def step(state: PipelineState) -> dict[str, Any]:
            context = calls.retrieve(run=state["run"], step=i, fetch=0)
            output = calls.generate(run=state["run"], step=i, attempt=1, context=context)
            return {"context": context, "output": output, "answers": {step_name(i): output}}

        return step

    for i in range(1, steps + 1):
        node: Any = make(i)
        builder.add_node(step_name(i), node, retry_policy=retry_policy)
        builder.add_edge(START if i == 1 else step_name(i - 1), step_name(i))
    builder.add_edge(step_name(steps), END)
    return builder


@dataclass
class SimulatedRelevance:
    """The gate's relevance signal, as the world draws it for each fetch."""

    name: str = "relevance"

    def evaluate(self, sample: EvalInput) -> Score:
        """The best relevance signal among the context's chunks."""
        chunks = sample.chunks
        if not chunks:
            return Score.failing(self.name, "the context is empty: the retriever returned nothing")
        value = max(float(c.metadata.get("relevance", 0.0)) for c in chunks)
        return Score(value=value, reason=f"context relevance {value:.2f}", evaluator=self.name)

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Async twin."""
        return self.evaluate(sample)


def _validator_passes(output: Any) -> bool:
    return not output["_sim"]["validator_flag"]


@dataclass
class SimulatedJudge:
    """The judge model's confidence in an output (one judge call each time it runs)."""

    world: SimulatedWorld
    name: str = "judge"

    def evaluate(self, sample: EvalInput) -> Score:
        """The judge's confidence."""
        self.world.calls["judge"] += 1
        value = float(sample.output["_sim"]["judge_score"])
        return Score(value=value, reason=f"judge confidence {value:.2f}", evaluator=self.name)

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Async twin."""
        return self.evaluate(sample)


def build_reliable_pipeline(
    world: SimulatedWorld,
    thresholds: DemoThresholds | None = None,
    *,
    connector_retry: ConnectorRetry | None = DEFAULT_CONNECTOR_RETRY,
    connectors: SimulatedConnectors | None = None,
    gate_refetch: str = "inline",
    checkpoint_attempts: bool = True,
) -> StateGraph[Any, Any, Any, Any]:
    """The same pipeline with a context gate and a reliable step at every step.

    Per step: `Retrieve` -> `ContextGate` (re-fetch below threshold) -> `reliable_step` (the
    deterministic validator, then the judge; retries on re-fetched context; escalation).
    `gate_refetch="inline"` (the default) has each gate re-fetch inside its own node
    (`ContextGate(refetch=...)`); `"node"` gives each gate a `Refetch` node it loops through
    (`refetch_to=`), two more supersteps and checkpoints per re-fetch. `checkpoint_attempts`
    is `reliable_step`'s: True checkpoints every attempt of a step, False runs a step's retries
    inside its superstep. The runs' connector calls, records and outcomes are the same either way.
    Every connector call (first fetch, re-fetch, model) retries transient faults
    (`connector_retry`); one that fails for good (a permanent HTTP 400-class fault, or the
    retries spent) escalates its step at once, naming the error.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from reliable_graph.demo import build_reliable_pipeline
        from reliable_graph.demo import ScenarioParams, SimulatedWorld

        graph = build_reliable_pipeline(SimulatedWorld(ScenarioParams(), seed=1)).compile(
            checkpointer=InMemorySaver())
        out = graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "0"}})
        assert "reliability" in out
        ```
    """
    if gate_refetch not in ("inline", "node"):
        msg = f"build_reliable_pipeline(gate_refetch=...) is 'inline' or 'node', got {gate_refetch!r}"
        raise ValueError(msg)
    inline = gate_refetch == "inline"
    t = thresholds or DemoThresholds()
    builder = StateGraph(PipelineState)
    steps = world.params.steps
    evaluator = AllOf(
        evaluators=[
            Predicate(fn=_validator_passes, name="validator", reason="the rule-based validator rejected the output"),
            SimulatedJudge(world),
        ],
        name="validator+judge",
    )

    def fetch_index(state: Any, step: str) -> int:
        record: Any = task_records(state).get(step, {})
        return 1 + int(record.get("refetches", 0)) + int((record.get("gate") or {}).get("refetches", 0))

    calls = connectors or SimulatedConnectors(world)

    def make(i: int) -> tuple[Any, Any, Any]:
        name = step_name(i)

        def retrieve(query: str, state: Any) -> Any:
            return calls.retrieve(run=state["run"], step=i, fetch=0)

        def refetch(query: str, state: Any) -> Any:
            return calls.retrieve(run=state["run"], step=i, fetch=fetch_index(state, name))

        def generate(state: PipelineState) -> dict[str, Any]:
            attempt = _attempt_of(state, name)
            output = calls.generate(run=state["run"], step=i, attempt=attempt, context=state["context"])
            update = {"output": output, "answers": {name: output}}
            if i < steps:
                update["question"] = _question(i + 1)  # what the next step's retrieval asks
            return update

        generate.__name__ = name
        return retrieve, refetch, generate

    for i in range(1, steps + 1):
        name = step_name(i)
        retrieve, refetch, generate = make(i)
        after = f"retrieve_{i + 1:02d}" if i < steps else END
        builder.add_node(
            Retrieve(retrieve, name=f"retrieve_{i:02d}", step=name, goto=f"gate_{i:02d}", retry=connector_retry)
        )
        builder.add_node(
            ContextGate(
                SimulatedRelevance(),
                name=f"gate_{i:02d}",
                step=name,
                threshold=t.gate,
                max_refetches=t.max_refetches,
                pass_to=name,
                refetch_to=None if inline else f"refetch_{i:02d}",
                escalate_to="human_escalation",
                refetch=refetch if inline else None,
                merge="replace",
                retry=connector_retry,
            )
        )
        if not inline:
            builder.add_node(
                Refetch(
                    refetch,
                    name=f"refetch_{i:02d}",
                    step=name,
                    merge="replace",
                    goto=f"gate_{i:02d}",
                    retry=connector_retry,
                )
            )
        builder.add_node(
            reliable_step(
                generate,
                name=name,
                evaluator=evaluator,
                threshold=t.judge,
                max_retries=t.max_retries,
                refetch=refetch,
                merge="replace",
                pass_to=after,
                escalate_to="human_escalation",
                retry=connector_retry,
                checkpoint_attempts=checkpoint_attempts,
            )
        )
        if i == 1:
            builder.add_edge(START, "retrieve_01")
    builder.add_node(HumanEscalation())
    return builder


def research_pipeline() -> StateGraph[Any, Any, Any, Any]:
    """The reliable research pipeline with its connectors on the active chaos, for `reliable-graph chaos`.

    The world is the scenario's defaults (seed 7); the model and retrieval connectors are
    wrapped with `inject_faults`, so the fault profile is the chaos runner's (none outside it).
    Runs take their inputs from `research_input`.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from reliable_graph.demo import research_input, research_pipeline

        graph = research_pipeline().compile(checkpointer=InMemorySaver())
        out = graph.invoke(research_input(0), {"configurable": {"thread_id": "0"}})
        assert "reliability" in out
        ```
    """
    world = SimulatedWorld(ScenarioParams(), seed=7)
    return build_reliable_pipeline(world, connectors=SimulatedConnectors(world, "active"))


def research_input(run: int) -> dict[str, Any]:
    """The input of run `run` of the research pipeline.

    Example:
        ```python
        from reliable_graph.demo import research_input

        assert research_input(3) == {"run": 3, "question": "research question, part 1"}
        ```
    """
    return {"run": run, "question": _question(1)}


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How one run ended: `success`, `silent_failure`, `escalated`, `failed` or `terminated`."""

    status: str
    steps_done: int


def summarize_run(values: dict[str, Any], steps: int) -> RunSummary:
    """Classify a run from its final state (hidden truth from the simulated outputs).

    Example:
        ```python
        from reliable_graph.demo import summarize_run

        ok = {"answers": {f"s{i}": {"_sim": {"correct": True}} for i in range(10)}}
        assert summarize_run(ok, 10).status == "success"
        ```
    """
    status = run_outcome(values)
    answers = values.get("answers") or {}
    if status != "ok":
        return RunSummary("escalated" if status == "escalated" else "terminated", len(answers))
    if len(answers) < steps:
        return RunSummary("failed", len(answers))
    correct = all(a["_sim"]["correct"] for a in answers.values())
    return RunSummary("success" if correct else "silent_failure", len(answers))


@contextmanager
def sqlite_saver(path: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    """A `SqliteSaver` on a file, closed afterwards."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


@contextmanager
def sqlite_store(path: Path) -> Iterator[BaseStore]:
    """A `SqliteStore` in the same file as the checkpoints (the inbox's index), set up, closed afterwards."""
    from langgraph.store.sqlite import SqliteStore

    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    try:
        store = SqliteStore(conn)
        store.setup()
        yield store
    finally:
        conn.close()


DEMO_GRAPH = "reliable_graph.demo:demo_graph"
"""The `--graph` the inbox commands and the console take to review the default demo's escalations."""


def demo_graph() -> StateGraph[Any, Any, Any, Any]:
    """The default demo's reliable pipeline, with the thresholds its calibration gives, for `--graph`.

    `reliable-graph inbox ... --graph reliable_graph.demo:demo_graph` and `reliable-graph console
    ... --graph reliable_graph.demo:demo_graph` review the escalations of `reliable-graph demo`
    (its default scenario and seed) with the graph that raised them.

    Example:
        ```python
        from reliable_graph.demo import demo_graph

        assert "step_10" in demo_graph().nodes
        ```
    """
    params = ScenarioParams()
    thresholds, _ = calibrated_thresholds(params, 7)
    return build_reliable_pipeline(SimulatedWorld(params, seed=7), thresholds)


def _progress(out: TextIO, label: str, done: int, total: int) -> None:
    if out.isatty():
        out.write(f"\r  {label}: {done}/{total} runs" + ("\n" if done == total else ""))
    elif done == total or done % max(1, total // 4) == 0:
        out.write(f"  {label}: {done}/{total} runs\n")
    out.flush()


MODES = ("bare", "retry_policy", "reliable")
"""The pipelines: plain LangGraph, plain LangGraph with `RetryPolicy`, and reliable-graph."""


def build_pipeline(
    mode: str,
    world: SimulatedWorld,
    thresholds: DemoThresholds | None = None,
    *,
    connector_retry: ConnectorRetry = DEFAULT_CONNECTOR_RETRY,
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    connectors: SimulatedConnectors | None = None,
) -> StateGraph[Any, Any, Any, Any]:
    """The pipeline of one mode: `bare`, `retry_policy` (bare with `RetryPolicy`) or `reliable`."""
    if mode == "bare":
        return build_bare_pipeline(world, connectors=connectors)
    if mode == "retry_policy":
        return build_bare_pipeline(world, retry_policy=retry_policy, connectors=connectors)
    if mode == "reliable":
        return build_reliable_pipeline(world, thresholds, connector_retry=connector_retry, connectors=connectors)
    msg = f"unknown mode {mode!r}: expected one of {', '.join(MODES)}"
    raise ValueError(msg)


def run_mode(
    mode: str,
    *,
    runs: int,
    seed: int,
    params: ScenarioParams,
    saver: BaseCheckpointSaver[Any],
    thresholds: DemoThresholds,
    progress: TextIO | Callable[[str, int, int], None] | None = None,
    store: BaseStore | None = None,
) -> dict[str, Any]:
    """Run `runs` runs of one mode and return its outcome fractions and costs.

    A run that raises (a connector fault nobody handles) is counted as `failed` (lost); the
    other runs go on.
    """
    world = SimulatedWorld(params, seed=seed)
    connectors = SimulatedConnectors(world)
    graph = validate_graph(
        build_pipeline(mode, world, thresholds, connectors=connectors).compile(checkpointer=saver, store=store)
    )
    counts = {
        "success": 0,
        "silent_failure": 0,
        "escalated": 0,
        "failed": 0,
        "terminated": 0,
        "retry_pass": 0,
    }
    escalated_threads: list[str] = []
    errors: dict[str, int] = {}
    for run in range(runs):
        config: Any = {"configurable": {"thread_id": f"{mode}-{seed}-{run:05d}"}}
        try:
            values = graph.invoke({"run": run, "question": _question(1)}, config, durability="sync")
        except Exception as exc:  # noqa: BLE001 - a lost run is a measured outcome here
            counts["failed"] += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            values = None
        if values is not None:
            summary = summarize_run(values, params.steps)
            counts[summary.status] += 1
            counts["retry_pass"] += "retry_pass" in step_outcomes(values).values()
            if summary.status == "escalated":
                escalated_threads.append(config["configurable"]["thread_id"])
        if callable(progress):
            progress(mode, run + 1, runs)
        elif progress is not None:
            _progress(progress, mode, run + 1, runs)
    return {
        "runs": runs,
        "e2e_success": counts["success"] / runs,
        "retry_pass": counts["retry_pass"] / runs,
        "escalated": counts["escalated"] / runs,
        "silent_failure": counts["silent_failure"] / runs,
        "failed": counts["failed"] / runs,
        "failed_errors": errors,
        "model_calls_per_run": connectors.calls("model") / runs,
        "judge_calls_per_run": world.calls["judge"] / runs,
        "retrieval_calls_per_run": connectors.calls("retrieval") / runs,
        "escalated_threads": escalated_threads,
    }


COLUMNS = [
    ("e2e_success", "end-to-end success"),
    ("retry_pass", "runs with a retry_pass"),
    ("escalated", "escalated"),
    ("silent_failure", "silent failures"),
    ("failed", "lost to an exception"),
    ("model_calls_per_run", "model calls / run"),
    ("judge_calls_per_run", "judge calls / run"),
]


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """The demo's table: one row per metric, one column per mode."""
    lines = [f"{'':28}{'bare LangGraph':>18}{'reliable-graph':>18}"]
    for key, label in COLUMNS:
        cells = []
        for mode in ("bare", "reliable"):
            value = results[mode][key]
            cells.append(
                f"{value:>17.1%} " if key not in ("model_calls_per_run", "judge_calls_per_run") else f"{value:>17.2f} "
            )
        lines.append(f"{label:28}{''.join(cells)}")
    return "\n".join(lines)


def run_demo(
    *,
    runs: int = 200,
    seed: int = 7,
    db: Path = Path("reliable_graph_demo.sqlite"),
    params: ScenarioParams | None = None,
    thresholds: DemoThresholds | None = None,
    as_json: bool = False,
    show_escalation: bool = True,
    out: TextIO | None = None,
    err: TextIO | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the demo; print the table (or one JSON object); return the results.

    Progress goes to `err` as text lines, or to `on_progress(mode, done, total)` after each run
    when given (what a progress bar wants).

    Example:
        ```python
        import io, tempfile
        from pathlib import Path
        from reliable_graph.demo import run_demo

        with tempfile.TemporaryDirectory() as d:
            res = run_demo(runs=3, db=Path(d) / "demo.sqlite", out=io.StringIO(), err=io.StringIO())
        assert set(res) >= {"bare", "reliable"} and res["bare"]["model_calls_per_run"] == 10
        ```
    """
    if runs < 1:
        msg = f"runs must be at least 1, got {runs}"
        raise ValueError(msg)
    params = params or ScenarioParams()
    calibration: dict[str, Any] = {"fixed": True}
    if thresholds is None:
        thresholds, calibration = calibrated_thresholds(params, seed)
    out = out or sys.stdout
    err = err or sys.stderr
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with sqlite_saver(db) as saver, sqlite_store(db) as store:
        if not as_json:
            out.write(f"scenario: {json.dumps(params.describe())}\n")
            out.write(f"thresholds (calibrated before the run): {_asdict(thresholds)} {json.dumps(calibration)}\n")
            out.write(f"checkpoints and the review inbox: SQLite file {db} (durability='sync')\n")
        results = {
            mode: run_mode(
                mode,
                runs=runs,
                seed=seed,
                params=params,
                saver=saver,
                thresholds=thresholds,
                progress=on_progress if on_progress is not None else (None if as_json else err),
                store=store if mode == "reliable" else None,
            )
            for mode in ("bare", "reliable")
        }
        public = {
            mode: {k: v for k, v in res.items() if k not in ("escalated_threads", "failed_errors")}
            for mode, res in results.items()
        }
        report = {
            **public,
            "scenario": params.describe(),
            "thresholds": _asdict(thresholds),
            "calibration": calibration,
            "seed": seed,
        }
        if as_json:
            out.write(json.dumps(report) + "\n")
            return report
        out.write("\n" + format_table(public) + "\n")
        graph = build_reliable_pipeline(SimulatedWorld(params, seed=seed), thresholds).compile(
            checkpointer=saver, store=store
        )
        inbox = EscalationInbox(store, graph=graph)
        _story(inbox, runs, out)
        if show_escalation and inbox.list(limit=1):
            _resume_one(inbox, params, out)
        default = params == ScenarioParams() and seed == 7
        _next_steps(db, default, out)
    return report


def _story(inbox: EscalationInbox, runs: int, out: TextIO) -> None:
    """Which reliable runs wait for a reviewer, and why, as the inbox lists them."""
    waiting = inbox.list(limit=10_000)
    if not waiting:
        out.write("\nNo reliable run waits for a reviewer.\n")
        return
    out.write(
        f"\n{len(waiting)} of {runs} reliable runs ({len(waiting) / runs:.1%}) stopped where a step could not be "
        "trusted and wait in the review inbox:\n"
    )
    for item in waiting[:5]:
        reason = item.reason if len(item.reason) <= 90 else item.reason[:89] + "…"
        out.write(
            f"  {item.step}  confidence {item.confidence:.2f} < {item.threshold:.2f}  {reason}  ({item.thread_id})\n"
        )
    if len(waiting) > 5:
        out.write(f"  ... and {len(waiting) - 5} more\n")


def _next_steps(db: Path, default: bool, out: TextIO) -> None:
    shown = str(db) if " " not in str(db) else f"'{db}'"
    graph = f" --graph {DEMO_GRAPH}" if default else " --graph <your module:graph>"
    out.write("\nNext:\n")
    for command, what in (
        (f"reliable-graph report --db {shown}", "the figures above, read back from the checkpoints"),
        (f"reliable-graph inbox list --db {shown}", "the escalations waiting for a reviewer"),
        (f"reliable-graph console --db {shown}{graph}", "review them in a browser"),
    ):
        out.write(f"  {command}\n      {what}\n")
    if not default:
        out.write("  (the demo's own graph for --graph reproduces the default scenario and seed only)\n")


def _asdict(t: DemoThresholds) -> dict[str, Any]:
    return {"gate": t.gate, "judge": t.judge, "max_retries": t.max_retries, "max_refetches": t.max_refetches}


def _resume_one(inbox: EscalationInbox, params: ScenarioParams, out: TextIO) -> None:
    """Show the oldest escalation and answer it through the inbox, as a reviewer would."""
    [item] = inbox.list(limit=1)
    escalation = inbox.show(item.id).escalation
    shown = {
        k: escalation[k] for k in ("thread_id", "step", "confidence", "threshold", "reason", "last_good_checkpoint_id")
    }
    shown["attempts"] = [
        {k: a[k] for k in ("attempt", "kind", "score", "verdict", "reason") if k in a} for a in escalation["attempts"]
    ]
    out.write(
        f"\nThe oldest, as a reviewer sees it (reliable-graph inbox show {item.id}):\n{json.dumps(shown, indent=2)}\n"
    )
    decision = {
        "action": "provide_context",
        "context": [{"text": "reviewer-supplied source", "metadata": {"good": True, "relevance": 1.0}}],
        "reason": "added the primary source",
    }
    out.write(f"\nA reviewer answers it through the inbox: {json.dumps(decision)}\n")
    values = inbox.resolve(item.id, decision, reviewer="demo")
    summary = summarize_run(values, params.steps)
    out.write(f"After review the run ended as: {summary.status} ({summary.steps_done}/{params.steps} steps)\n")
