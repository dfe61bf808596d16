"""The benchmarks run end to end with a tiny N (the full runs are not part of CI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW_KEYS = {
    "mode",
    "p",
    "steps",
    "f",
    "runs",
    "e2e_success",
    "silent_failure",
    "escalated",
    "model_calls_per_run",
    "judge_calls_per_run",
}


def _run(script: str, *args: str, timeout: int = 120) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_compounding_benchmark_smoke_prints_rows() -> None:
    out = _run("compounding.py", "--quick", "--runs", "6", "--calibration-runs", "300", "--workers", "1", "--json")
    rows = json.loads(out)
    assert {(r["mode"], r["f"]) for r in rows} == {
        (m, f) for m in ("bare", "retry_policy", "reliable") for f in (0.0, 0.3)
    }
    for r in rows:
        assert ROW_KEYS <= set(r) and r["runs"] == 6 and r["p"] == 0.9 and r["steps"] == 10
        total = r["e2e_success"] + r["silent_failure"] + r["escalated"] + r["failed"]
        assert abs(total - 1.0) < 1e-9
    by = {(r["mode"], r["f"]): r for r in rows}
    assert by[("bare", 0.0)]["model_calls_per_run"] == 10 and by[("bare", 0.0)]["judge_calls_per_run"] == 0
    assert by[("bare", 0.3)]["failed"] == 1.0  # nothing handles a fault
    assert by[("reliable", 0.3)]["failed"] == 0.0 and by[("reliable", 0.3)]["connector_wait_s_per_run"] > 0
    assert 0.0 < by[("reliable", 0.0)]["thresholds"]["judge"] < 1.0


def test_crash_resume_benchmark_smoke_resumes_without_reexecution() -> None:
    out = _run("crash_resume.py", "--runs", "2", "--seed", "3", "--json")
    data = json.loads(out)
    assert data["runs"] == 2 and data["all_completed"] is True
    assert data["resume_reexecuted_mean"] == 0
    assert data["completed_before_crash_mean"] > 0 and data["restart_reexecuted_mean"] > 0  # a restart redoes work
    assert "reliable_step" in data["pipeline"]


def test_chaos_benchmark_smoke_loses_nothing() -> None:
    out = _run("chaos.py", "--runs", "8", "--kill-rate", "0.5", "--seed", "2", "--json")
    data = json.loads(out)
    assert data["runs"] == 8 and data["lost"] == 0 and data["unhandled"] == 0
    assert data["kills"] >= 1 and data["resumed"] == data["kills"] and data["steps_reexecuted"] == 0
    assert data["scenario"]["fault_rate"] == 0.3 and data["profile"]["faults"]["timeout"] == 0.15
    assert sum(data["outcomes"].values()) >= 8 * 10 - 10 * data["run_outcomes"].get("escalated", 0)


def test_overhead_benchmark_smoke_prints_the_figures_and_the_check_verdict() -> None:
    data = json.loads(_run("overhead.py", "--steps", "2", "--runs", "3", "--json"))
    assert data["steps"] == 2 and data["runs"] == 3
    assert data["memory_ratio"] > 0 and data["sqlite_ratio"] > 0 and data["checkpoint_bytes_ratio"] > 1
    assert data["memory_ratio_paired"] > 0 and data["sqlite_ratio_paired"] > 0
    # --check: the figures either way, then a verdict that agrees with the exit code (no speed is asserted)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--steps", "2", "--runs", "3", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert "InMemorySaver" in done.stdout and "SQLite file" in done.stdout
    verdict = [line for line in done.stdout.splitlines() if line.startswith("overhead check: memory_ratio_paired")]
    assert len(verdict) == 1 and " budget " in verdict[0]
    assert done.returncode == (0 if verdict[0].endswith(": ok") else 1), done.stderr


def test_inbox_benchmark_smoke_prints_every_key() -> None:
    out = _run(
        "inbox.py",
        "--threads",
        "60",
        "--race",
        "2",
        "--kills",
        "1",
        "--fanout-threads",
        "1",
        "--kill-points",
        "1",
        "--reconcile-race",
        "1",
        "--backends",
        "sqlite",
        "--json",
        timeout=600,
    )
    data = json.loads(out)
    for part in ("fanout", "kill_points", "reconcile_race"):
        for key in ("lost", "applied_twice", "stalled"):
            assert data[f"{part}_{key}"] == 0, (part, key, data[f"{part}_sqlite"])
    assert data["kill_points_kills"] >= 6 and data["list_page_ms_sqlite"] > 0 and data["reconcile_s_sqlite"] >= 0
    assert data["race_lost"] == 0 and data["race_applied_twice"] == 0
    assert data["kill_sqlite"]["resolved_but_not_applied"] == 0 and data["kill_lost"] == 0


def test_scale_benchmark_smoke_prints_every_key() -> None:
    out = _run(
        "scale.py", "--threads", "8", "--rounds", "2", "--workers", "2", "--reviewers", "1", "--json", timeout=900
    )
    data = json.loads(out)
    assert data["lost"] == 0 and data["stalled"] == 0 and data["applied_twice"] == 0
    assert data["bare_steps_per_s"] > 0 and data["reliable_steps_per_s"] > 0 and "throughput_ratio_vs_bare" in data
    assert data["throughput_ratio_vs_bare_per_attempt"] > 0 and data["reliable_per_attempt"]["lost"] == 0
    for pipeline in ("bare", "reliable", "reliable_per_attempt"):  # two rounds each, all 8 runs' steps counted
        assert len(data[pipeline]["rounds_seconds"]) == 2, data[pipeline]
    assert data["bare"]["steps"] == 80  # 8 runs x 10 steps
    # the same runs: retries inside the step's superstep or checkpointed, the same steps complete
    assert data["reliable"]["steps"] == data["reliable_per_attempt"]["steps"]
    assert data["reliable"]["supersteps"] <= data["reliable_per_attempt"]["supersteps"]
