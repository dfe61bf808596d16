from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from reliable_graph.demo import (
    DEFAULT_CONNECTOR_RETRY,
    DemoThresholds,
    PermanentConnectorError,
    ScenarioParams,
    SimulatedWorld,
    TransientConnectorError,
    build_bare_pipeline,
    build_reliable_pipeline,
    run_demo,
    summarize_run,
)
from reliable_graph.demo.pipeline import build_pipeline, run_mode
from reliable_graph.resilience import VirtualClock

FAULTY = ScenarioParams(fault_rate=0.3)


def test_bare_pipeline_fault_fails_the_run() -> None:
    world = SimulatedWorld(FAULTY, seed=0)
    graph = build_bare_pipeline(world).compile()
    with pytest.raises(TransientConnectorError):
        graph.invoke({"run": 0})
    assert world.calls["model"] + world.calls["retrieval"] >= 1  # the faulted call is counted


def test_run_mode_counts_lost_runs_without_crashing() -> None:
    res = run_mode("bare", runs=5, seed=0, params=FAULTY, saver=InMemorySaver(), thresholds=DemoThresholds())
    assert res["failed"] == 1.0 and res["e2e_success"] == 0.0
    assert set(res["failed_errors"]) <= {"TransientConnectorError", "RateLimitError", "PermanentConnectorError"}


def test_retry_policy_pipeline_survives_transient_faults() -> None:
    world = SimulatedWorld(FAULTY, seed=0)
    graph = build_pipeline("retry_policy", world).compile()
    finished = 0
    for run in range(4):
        try:
            out = graph.invoke({"run": run})
        except Exception:  # noqa: BLE001 - a permanent fault may still end a run
            continue
        finished += 1
        assert len(out["answers"]) == 10
    assert finished >= 3
    assert world.calls["model"] > 4 * 10 * 0.9  # re-runs after faults count as calls


def _reliable(params: ScenarioParams, seed: int = 0) -> tuple[Any, SimulatedWorld, VirtualClock]:
    world = SimulatedWorld(params, seed=seed)
    clock = VirtualClock()
    retry = dataclasses.replace(DEFAULT_CONNECTOR_RETRY, sleep=clock.sleep)
    graph = build_reliable_pipeline(world, connector_retry=retry).compile(checkpointer=InMemorySaver())
    return graph, world, clock


def test_reliable_pipeline_loses_no_run_to_faults() -> None:
    graph, world, clock = _reliable(FAULTY)
    statuses = []
    for run in range(20):
        values = graph.invoke({"run": run, "question": "q"}, {"configurable": {"thread_id": str(run)}})
        statuses.append(summarize_run(values, 10).status)
    assert "failed" not in statuses and statuses.count("success") >= 15
    assert clock.waits > 0 and clock.total > 0  # transient faults were retried, waits summed
    assert world.calls["model"] > 20 * 10  # faulted attempts count as model calls


class _ModelRejects(SimulatedWorld):
    def fault(self, run: int, step: int, kind: str, index: int) -> None:
        if kind == "model":
            msg = "HTTP 400 from the model connector: request rejected"
            raise PermanentConnectorError(msg)


def test_reliable_pipeline_escalates_permanent_model_fault_at_once() -> None:
    world = _ModelRejects(ScenarioParams(steps=2), seed=0)
    graph = build_reliable_pipeline(world).compile(checkpointer=InMemorySaver())
    out = graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "p"}})
    escalation = out["__interrupt__"][0].value
    assert escalation["step"] == "step_01" and "PermanentConnectorError" in escalation["reason"]
    assert world.calls["model"] == 1  # not retried


def test_reliable_pipeline_permanent_retrieval_fault_becomes_empty_context() -> None:
    world = SimulatedWorld(ScenarioParams(steps=1, fault_rate=1e-9, permanent_fault_rate=1.0), seed=0)
    graph = build_reliable_pipeline(world).compile(checkpointer=InMemorySaver())
    out = graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "r"}})
    escalation = out["__interrupt__"][0].value
    # Every fetch failed: the gate saw empty context, re-fetched twice, then escalated.
    assert escalation["context"] == [] and "empty" in escalation["reason"]
    assert world.calls["retrieval"] == 3 and world.calls["model"] == 0


def test_demo_defaults_unchanged_without_faults(tmp_path: Path) -> None:
    res = run_demo(runs=20, seed=7, db=tmp_path / "d.sqlite", as_json=True, out=io.StringIO(), err=io.StringIO())
    assert res["bare"]["model_calls_per_run"] == 10 and res["bare"]["failed"] == 0.0
    assert res["reliable"]["failed"] == 0.0 and res["reliable"]["e2e_success"] >= 0.85
    assert set(res["reliable"]) >= {"e2e_success", "retry_pass", "escalated", "silent_failure", "model_calls_per_run"}


def test_build_pipeline_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        build_pipeline("fast", SimulatedWorld(ScenarioParams(), seed=0))
