"""Kill a pipeline with SIGKILL mid-step; resume in a new process; no completed step runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("resume_child.py")


def _wait_for(path: Path, line: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and line in path.read_text().splitlines():
            return
        if proc.poll() is not None:
            pytest.fail(f"child exited early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {line!r}")


@pytest.mark.parametrize("slow", [1, 6, 10])
def test_durable_resume_after_sigkill_reruns_only_the_killed_step(tmp_path: Path, slow: int) -> None:
    db, log = tmp_path / "checkpoints.sqlite", tmp_path / "side_effects.log"
    env = {**os.environ, "PYTHONPATH": str(CHILD.parent)}
    with subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(log), "start", str(slow)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as start:
        _wait_for(log, f"sleeping {slow}", start)
        start.send_signal(signal.SIGKILL)
        start.wait(timeout=30)
    assert start.returncode == -signal.SIGKILL
    before = log.read_text().splitlines()
    assert f"done {slow}" not in before

    resume = subprocess.run(
        [sys.executable, str(CHILD), str(db), str(log), "resume", str(slow)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    result = json.loads(resume.stdout.strip().splitlines()[-1])
    lines = log.read_text().splitlines()
    done = Counter(line for line in lines if line.startswith("done"))
    started = Counter(line for line in lines if line.startswith("start"))
    assert all(done[f"done {i}"] == 1 for i in range(1, 11)), done
    assert started[f"start {slow}"] == 2
    assert all(started[f"start {i}"] == 1 for i in range(1, 11) if i != slow)
    assert result["done"] == list(range(1, 11))
    assert set(result["outcomes"].values()) == {"pass"} and len(result["outcomes"]) == 10
