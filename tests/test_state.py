from __future__ import annotations

from reliable_graph import merge_reliability, run_outcome, step_outcomes


def test_merge_reliability_appends_attempts_and_keeps_other_steps() -> None:
    a = {"steps": {"s": {"attempts": [{"attempt": 1}], "outcome": None}}, "events": [1]}
    b = {
        "steps": {"s": {"attempts": [{"attempt": 2}], "outcome": "retry_pass"}, "t": {"outcome": "pass"}},
        "events": [2],
    }
    merged = merge_reliability(a, b)
    assert [x["attempt"] for x in merged["steps"]["s"]["attempts"]] == [1, 2]
    assert step_outcomes(merged) == {"s": "retry_pass", "t": "pass"} and merged["events"] == [1, 2]


def test_merge_reliability_reset_starts_a_new_visit() -> None:
    a = {"steps": {"s": {"attempts": [{"attempt": 1}]}}}
    merged = merge_reliability(a, {"steps": {"s": {"attempts": [{"attempt": 1, "new": True}], "reset": True}}})
    assert merged["steps"]["s"]["attempts"] == [{"attempt": 1, "new": True}] and "reset" not in merged["steps"]["s"]


def test_merge_reliability_handles_none() -> None:
    assert merge_reliability(None, None) == {"steps": {}, "events": []}


def test_run_outcome_sees_pending_escalation() -> None:
    assert run_outcome({"reliability": {"escalation": {"step": "s"}}}) == "escalated"
    assert run_outcome({}) == "ok"
