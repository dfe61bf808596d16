from __future__ import annotations

import io
import json
import random
from pathlib import Path

from reliable_graph.cli import main
from reliable_graph.demo import ScenarioParams, SimulatedWorld, draw_output_signals, run_demo


def test_simulation_defaults_are_the_scenario() -> None:
    p = ScenarioParams()
    assert (p.steps, p.p_good_context, p.p_good_refetch, p.p_correct_good, p.p_correct_bad) == (
        10,
        0.85,
        0.95,
        0.95,
        0.62,
    )
    assert (p.relevance_good, p.relevance_bad, p.judge_correct, p.judge_wrong) == (
        (8, 2),
        (2, 5),
        (9, 1.5),
        (2, 4),
    )
    assert (p.validator_flags_wrong, p.validator_flags_correct, p.fault_rate, p.permanent_fault_rate) == (
        0.6,
        0.01,
        0.0,
        0.002,
    )


def test_simulation_output_rates_match_the_scenario() -> None:
    rng = random.Random(0)
    draws = [draw_output_signals(rng, ScenarioParams(), good_context=False) for _ in range(20000)]
    correct = sum(d.correct for d in draws) / len(draws)
    flagged_wrong = sum(d.validator_flag for d in draws if not d.correct) / sum(not d.correct for d in draws)
    assert abs(correct - 0.62) < 0.015 and abs(flagged_wrong - 0.60) < 0.02


def test_simulation_is_reproducible_across_worlds() -> None:
    a, b = SimulatedWorld(ScenarioParams(), seed=3), SimulatedWorld(ScenarioParams(), seed=3)
    assert a.retrieve(run=5, step=2, fetch=1) == b.retrieve(run=5, step=2, fetch=1)


def test_demo_runs_both_modes_and_resumes_an_escalation(tmp_path: Path) -> None:
    out = io.StringIO()
    res = run_demo(runs=40, seed=11, db=tmp_path / "demo.sqlite", out=out, err=io.StringIO())
    text = out.getvalue()
    assert "end-to-end success" in text and "scenario:" in text
    assert res["bare"]["model_calls_per_run"] == 10.0 and res["bare"]["escalated"] == 0.0
    assert res["reliable"]["e2e_success"] > res["bare"]["e2e_success"]
    for mode in ("bare", "reliable"):
        total = res[mode]["e2e_success"] + res[mode]["silent_failure"] + res[mode]["escalated"]
        assert abs(total - 1.0) < 1e-9
    escalated = round(res["reliable"]["escalated"] * 40)
    assert escalated > 0  # seed 11: the story has escalations to tell
    assert f"{escalated} of 40 reliable runs" in text and "wait in the review inbox" in text
    assert "The oldest, as a reviewer sees it" in text and "After review the run ended as" in text
    # the demo's escalations are in its inbox: the one answered resolved, the rest waiting
    from reliable_graph import EscalationInbox
    from reliable_graph.demo.pipeline import sqlite_store

    with sqlite_store(tmp_path / "demo.sqlite") as store:
        inbox = EscalationInbox(store)
        assert len(inbox.list(limit=1000)) == escalated - 1
        [answered] = inbox.list(status="resolved")
        assert answered.resolved_by == "demo" and answered.decision["action"] == "provide_context"
    assert (
        "Next:" in text
        and "reliable-graph inbox list --db" in text
        and "--graph reliable_graph.demo:demo_graph" not in text
    )


def test_demo_cli_json(tmp_path: Path, capsys: object) -> None:
    assert main(["demo", "--runs", "5", "--seed", "1", "--json", "--db", str(tmp_path / "d.sqlite")]) == 0
    data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    for mode in ("bare", "reliable"):
        assert {"e2e_success", "retry_pass", "escalated", "silent_failure", "model_calls_per_run"} <= set(data[mode])


def test_demo_cli_rejects_zero_runs(capsys: object) -> None:
    assert main(["demo", "--runs", "0"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.startswith("error: ") and "'--runs'" in err and err.count("\n") == 1
