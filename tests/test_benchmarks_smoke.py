"""Both benchmarks run end to end with a tiny N (the full runs are not part of CI)."""

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


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
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
    out = _run("crash_resume.py", "--runs", "1", "--seed", "3", "--step-seconds", "0.02", "--json")
    data = json.loads(out)
    assert data["runs"] == 1 and data["all_completed"] is True
    assert data["resume_reexecuted_mean"] == 0
    assert data["restart_reexecuted_mean"] == 3  # seed 3 kills step 4: steps 1-3 run again from scratch
    assert data["all_killed_mid_step"] is True
