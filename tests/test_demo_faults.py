"""The demo's connector faults, expressed with the library's chaos module."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from reliable_graph import Chaos, FaultProfile
from reliable_graph.demo import (
    DEFAULT_CONNECTOR_RETRY,
    DemoThresholds,
    ScenarioParams,
    SimulatedConnectors,
    SimulatedWorld,
    build_bare_pipeline,
    build_reliable_pipeline,
    run_demo,
    summarize_run,
)
from reliable_graph.demo.pipeline import build_pipeline, run_mode
from reliable_graph.resilience import VirtualClock, classify_error

FAULTY = ScenarioParams(fault_rate=0.3)


def test_scenario_faults_are_httpx_errors_the_classifier_knows() -> None:
    profile = FAULTY.fault_profile()
    assert profile.client == "httpx" and profile.retry_after == FAULTY.retry_after
    connectors = SimulatedConnectors(SimulatedWorld(FAULTY, seed=0))
    kinds: dict[str, str] = {}
    for i in range(300):
        try:
            connectors.retrieve(run=i, step=1, fetch=0)
        except httpx.HTTPError as exc:
            kinds[exc.chaos_fault] = classify_error(exc).kind  # type: ignore[attr-defined]
    assert kinds["timeout"] == "transient" and kinds["rate_limit"] == "transient"
    assert connectors.calls("retrieval") == 300


def test_bare_pipeline_fault_fails_the_run() -> None:
    world = SimulatedWorld(FAULTY, seed=0)
    connectors = SimulatedConnectors(world)
    graph = build_bare_pipeline(world, connectors=connectors).compile()
    with pytest.raises(httpx.HTTPError):
        graph.invoke({"run": 0})
    assert connectors.calls("model") + connectors.calls("retrieval") >= 1  # the faulted call is counted


def test_run_mode_counts_lost_runs_without_crashing() -> None:
    res = run_mode("bare", runs=5, seed=0, params=FAULTY, saver=InMemorySaver(), thresholds=DemoThresholds())
    assert res["failed"] == 1.0 and res["e2e_success"] == 0.0
    assert set(res["failed_errors"]) <= {"ReadTimeout", "HTTPStatusError"}


def test_retry_policy_pipeline_survives_transient_faults() -> None:
    world = SimulatedWorld(FAULTY, seed=0)
    connectors = SimulatedConnectors(world)
    graph = build_pipeline("retry_policy", world, connectors=connectors).compile()
    finished = 0
    for run in range(4):
        try:
            out = graph.invoke({"run": run})
        except Exception:  # noqa: BLE001 - a permanent fault may still end a run
            continue
        finished += 1
        assert len(out["answers"]) == 10
    assert finished >= 3
    assert connectors.calls("model") > 4 * 10 * 0.9  # re-runs after faults count as calls


def _reliable(params: ScenarioParams, seed: int = 0, chaos: Chaos | None = None) -> tuple[Any, Any, VirtualClock]:
    world = SimulatedWorld(params, seed=seed)
    connectors = SimulatedConnectors(world, chaos)
    clock = VirtualClock()
    retry = dataclasses.replace(DEFAULT_CONNECTOR_RETRY, sleep=clock.sleep)
    graph = build_reliable_pipeline(world, connector_retry=retry, connectors=connectors)
    return graph.compile(checkpointer=InMemorySaver()), connectors, clock


def test_reliable_pipeline_loses_no_run_to_faults() -> None:
    graph, connectors, clock = _reliable(FAULTY)
    statuses = []
    for run in range(20):
        values = graph.invoke({"run": run, "question": "q"}, {"configurable": {"thread_id": str(run)}})
        statuses.append(summarize_run(values, 10).status)
    assert "failed" not in statuses and statuses.count("success") >= 15
    assert clock.waits > 0 and clock.total > 0  # transient faults were retried, waits summed
    assert connectors.calls("model") > 20 * 10  # faulted attempts count as model calls


def test_reliable_pipeline_escalates_permanent_model_fault_at_once() -> None:
    chaos = Chaos(FaultProfile(faults={"permanent": 1.0}), seed=0)
    world = SimulatedWorld(ScenarioParams(steps=2), seed=0)
    connectors = SimulatedConnectors(world, chaos)
    # only the model connector is faulted: the retrieval goes through a clean injector
    connectors.retrieve = Chaos().wrap(world.retrieve, name="retrieval")
    graph = build_reliable_pipeline(world, connectors=connectors).compile(checkpointer=InMemorySaver())
    out = graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "p"}})
    escalation = out["__interrupt__"][0].value
    assert escalation["step"] == "step_01"
    assert "HTTPStatusError (HTTP 400)" in escalation["reason"] and "retrying cannot help" in escalation["reason"]
    assert connectors.calls("model") == 1  # not retried


def test_reliable_pipeline_permanent_retrieval_fault_escalates_at_once() -> None:
    chaos = Chaos(FaultProfile(faults={"permanent": 1.0}), seed=0)
    graph, connectors, clock = _reliable(ScenarioParams(steps=1), chaos=chaos)
    out = graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "r"}})
    escalation = out["__interrupt__"][0].value
    # The first fetch failed for good: the gate escalates at once, naming the error (no re-fetch).
    assert escalation["kind"] == "gate" and escalation["step"] == "step_01"
    assert "the retrieval for step 'step_01' failed" in escalation["reason"]
    assert "HTTPStatusError (HTTP 400)" in escalation["reason"]
    assert connectors.calls("retrieval") == 1 and connectors.calls("model") == 0 and clock.waits == 0


def test_reliable_pipeline_retrieval_retries_spent_escalate_naming_the_timeout() -> None:
    chaos = Chaos(FaultProfile(faults={"timeout": 1.0}), seed=0)
    graph, connectors, clock = _reliable(ScenarioParams(steps=1), chaos=chaos)
    out = graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "t"}})
    reason = out["__interrupt__"][0].value["reason"]
    assert "after 8 attempts" in reason and "ReadTimeout" in reason
    assert connectors.calls("retrieval") == 8 and clock.waits == 7


def test_demo_defaults_unchanged_without_faults(tmp_path: Path) -> None:
    res = run_demo(runs=20, seed=7, db=tmp_path / "d.sqlite", as_json=True, out=io.StringIO(), err=io.StringIO())
    assert res["bare"]["model_calls_per_run"] == 10 and res["bare"]["failed"] == 0.0
    assert res["reliable"]["failed"] == 0.0 and res["reliable"]["e2e_success"] >= 0.85
    assert set(res["reliable"]) >= {"e2e_success", "retry_pass", "escalated", "silent_failure", "model_calls_per_run"}


def test_build_pipeline_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        build_pipeline("fast", SimulatedWorld(ScenarioParams(), seed=0))
