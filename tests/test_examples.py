"""Every program in examples/ runs as `python examples/<name>.py` from the repository root and says what it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TESTED = {"fan_out.py", "inbox.py", "rag_gate.py", "research_pipeline.py"}


def run_example(name: str, *args: str) -> str:
    """Run one example as a user would; return its stdout after checking it exited 0."""
    env = {**os.environ, "LANGSMITH_TRACING": "false"}
    proc = subprocess.run(
        [sys.executable, str(Path("examples") / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert not proc.stderr.strip(), proc.stderr  # no traceback, no warning
    return proc.stdout


def test_every_example_is_tested() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED


@pytest.mark.parametrize("name", sorted(TESTED))
def test_example_has_a_docstring_saying_how_to_run_it(name: str) -> None:
    text = (EXAMPLES / name).read_text()
    assert text.startswith('"""') and f"python examples/{name}" in text.split('"""')[1]


def test_rag_gate() -> None:
    out = run_example("rag_gate.py")
    ferry, museum = out.split("[museum]")
    # look-alike chunks pass lexical relevance but miss the topic: the gate re-fetches, enriched, and passes
    assert "gate: refetch (lexical_relevance 1.00, completeness 0.00)" in ferry
    assert "fetch 'When does the Ouessant ferry leave on Sundays? | must cover: sunday timetable': 2 chunks" in ferry
    assert "gate: pass (lexical_relevance 1.00, completeness 1.00)" in ferry
    assert "escalate" not in ferry
    assert "answer: 'Sunday timetable for Ouessant: boats depart Le Conquet at 09:45.' (source: sunday)" in ferry
    assert "step outcomes: {'answer': 'pass'}; run: ok" in ferry
    # nothing covers the museum: re-fetch, escalate, the reviewer's context passes the gate, the run finishes
    lines = [line.strip() for line in museum.splitlines()]
    verdicts = [line for line in lines if line.startswith("gate: ")]
    assert [v.split(" (")[0] for v in verdicts] == ["gate: refetch", "gate: escalate", "gate: pass"]
    assert any(
        line.startswith("run: escalated, reason:") and "required topics: museum january" in line for line in lines
    )
    after = lines[lines.index("reviewer: provide_context") :]
    assert "gate: pass (lexical_relevance 1.00, completeness 1.00)" in after
    assert any("(source: reviewer: phoned the museum)" in line for line in after)
    assert after[-1] == "step outcomes: {'answer': 'pass'}; run: ok"


def test_fan_out() -> None:
    out = run_example("fan_out.py")
    lines = out.splitlines()
    assert lines[0] == "6 invoices sent; run: escalated; aggregator runs so far: 0"
    assert "pending escalations: 2" in lines
    assert any(line.strip().startswith("INV-3: no total found") for line in lines)
    assert any(line.strip().startswith("INV-5: total above 1000 EUR: needs a sign-off") for line in lines)
    assert "run: ok; step outcomes: ['approved', 'edited', 'pass', 'pass', 'pass', 'pass']" in lines
    assert "aggregator runs: 1, results seen by each: [6]" in lines  # once, after both reviews, with all 6
    assert "report: 6 invoices, 2705.70 EUR in all" in lines  # 596 + 84.9 + 92 (edited) + 71.5 + 1849 + 12.3


def test_research_pipeline() -> None:
    out = run_example("research_pipeline.py", "--runs", "20")
    assert re.search(r"^thresholds: gate 0\.\d+, judge 0\.\d+", out, re.MULTILINE)
    counts = {}
    for name in ("bare", "reliable"):
        match = re.search(rf"^ *{name}: 20 runs: (.*)$", out, re.MULTILINE)
        assert match, out
        counts[name] = {k: int(v) for k, v in (part.rsplit(" ", 1) for part in match.group(1).split(", "))}
    statuses = ("success", "silent_failure", "escalated", "failed", "terminated")
    for name, c in counts.items():
        assert sum(c[s] for s in statuses) == 20, (name, c)
    assert counts["reliable"]["success"] > counts["bare"]["success"]
    assert counts["reliable"]["silent_failure"] < counts["bare"]["silent_failure"]


def test_inbox(tmp_path: Path) -> None:
    out = run_example("inbox.py", str(tmp_path / "desk.sqlite"))
    assert out.splitlines() == [
        "refunds: Refunds take 5 business days [policy 4.2].",
        "warranty: waiting for a reviewer",
        "shipping to Mars: waiting for a reviewer",
        "bitcoin: waiting for a reviewer",
    ]
