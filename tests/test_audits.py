"""Audits: a seeded share of passing outputs goes to the inbox; labels estimate silent failures."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.store.sqlite import SqliteStore

from reliable_graph import (
    AlreadyResolvedError,
    EscalationInbox,
    HumanEscalation,
    InvalidAnswerError,
    Predicate,
    ReliabilityState,
    reliable_step,
    task_records,
)
from reliable_graph.cli import main
from reliable_graph.report import reliability_report


class State(ReliabilityState, total=False):
    question: str
    output: str


def _on_file(db: Path) -> tuple[sqlite3.Connection, sqlite3.Connection, SqliteStore]:
    """One file, two connections: SqliteSaver commits itself, SqliteStore wants autocommit."""
    saver_conn = sqlite3.connect(db, check_same_thread=False, timeout=30)
    saver_conn.execute("PRAGMA journal_mode=WAL")
    store_conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None, timeout=30)
    store = SqliteStore(store_conn)
    store.setup()
    return saver_conn, store_conn, store


def _graph(store: Any, saver: Any, rate: float, *, is_async: bool = False) -> Any:
    def draft(state: State) -> dict[str, Any]:
        return {"output": f"answer to {state['question']}"}

    async def adraft(state: State) -> dict[str, Any]:
        return draft(state)

    builder = StateGraph(State)
    builder.add_node(
        reliable_step(
            adraft if is_async else draft,
            name="draft",
            threshold=0.5,
            evaluator=Predicate(fn=bool, name="any"),
            pass_to=END,
            audit_rate=rate,
            audit_seed=1,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "draft")
    return builder.compile(checkpointer=saver, store=store)


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_seeded_share_of_passing_outputs_is_audited_without_pausing(is_async: bool) -> None:
    store = InMemoryStore()
    graph = _graph(store, InMemorySaver(), 0.3, is_async=is_async)
    audited = 0
    for n in range(200):
        config: Any = {"configurable": {"thread_id": f"t{n}"}}
        out = (
            await graph.ainvoke({"question": f"q{n}"}, config)
            if is_async
            else graph.invoke({"question": f"q{n}"}, config)
        )
        assert "__interrupt__" not in out and out["output"] == f"answer to q{n}"  # nothing waits on an audit
        audited += "audit" in task_records(out)["draft"]
    inbox = EscalationInbox(store, graph=graph)
    items = inbox.list(kind="audit", limit=500)
    assert len(items) == audited and 40 <= audited <= 80  # 30% of 200, seeded
    assert inbox.list(kind="escalation") == [] and all(i.kind == "audit" for i in items)
    again = _graph(InMemoryStore(), InMemorySaver(), 0.3, is_async=is_async)
    for n in range(200):  # the same seed audits the same tasks
        config = {"configurable": {"thread_id": f"t{n}"}}
        out = (
            await again.ainvoke({"question": f"q{n}"}, config)
            if is_async
            else again.invoke({"question": f"q{n}"}, config)
        )
        assert ("audit" in task_records(out)["draft"]) == any(i.thread_id == f"t{n}" for i in items)


class _Forbidden:
    """A stand-in for what a passing step without audits must not use."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __getattr__(self, name: str) -> Any:
        msg = f"{self.what}.{name} used by a passing step with audit_rate=0"
        raise AssertionError(msg)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        msg = f"{self.what} called by a passing step with audit_rate=0"
        raise AssertionError(msg)


@pytest.mark.parametrize("is_async", [False, True])
async def test_without_audits_a_passing_step_keeps_no_audit_list_and_touches_no_store(
    is_async: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reliable_graph.nodes import _scoring, _task

    store = InMemoryStore()
    graph = _graph(store, InMemorySaver(), 0.0, is_async=is_async)
    with monkeypatch.context() as patched:
        patched.setattr(_task, "_audits", _Forbidden("the audit list"))
        patched.setattr(_task, "current_store", _Forbidden("current_store"))
        patched.setattr(_scoring.OutputScoring, "audited", _Forbidden("the audit draw"))
        config: Any = {"configurable": {"thread_id": "t"}}
        out = await graph.ainvoke({"question": "q"}, config) if is_async else graph.invoke({"question": "q"}, config)
        assert out["output"] == "answer to q" and "audit" not in task_records(out)["draft"]
        # the stand-ins are used by a step that audits: they would catch a passing step using them
        audited = _graph(store, InMemorySaver(), 1.0, is_async=is_async)
        with pytest.raises(AssertionError, match="audit"):
            await audited.ainvoke({"question": "q"}, config) if is_async else audited.invoke({"question": "q"}, config)
    assert EscalationInbox(store, graph=graph).list(kind="audit") == []


def test_labels_are_recorded_exactly_once_and_estimate_silent_failures(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    conn, store_conn, store = _on_file(db)
    graph = _graph(store, SqliteSaver(conn), 0.5)
    for n in range(60):
        graph.invoke({"question": f"q{n}"}, {"configurable": {"thread_id": f"t{n}"}})
    inbox = EscalationInbox(store, graph=graph)
    items = inbox.list(kind="audit", limit=100)
    assert len(items) > 15
    item = inbox.show(items[0].id)
    assert item.escalation["kind"] == "audit" and "Is it right?" in item.escalation["description"]
    assert item.escalation["allowed_decisions"] == ["approve", "edit", "terminate"]
    with pytest.raises(InvalidAnswerError):
        inbox.resolve(items[0].id, {"action": "provide_context", "context": ["x"]}, reviewer="ana")
    wrong = {i.id for i in items[:3]}
    for i in items:
        answer = {"action": "edit", "output": "the right one"} if i.id in wrong else {"action": "approve"}
        assert inbox.resolve(i.id, answer, reviewer="ana") is None  # no thread resumes
    with pytest.raises(AlreadyResolvedError):
        inbox.resolve(items[0].id, {"action": "approve"}, reviewer="bo")
    labels = inbox.audit_labels()
    assert labels == {"draft": {"labelled": len(items), "wrong": 3, "pending": 0}}
    report = reliability_report(SqliteSaver(conn), audits=labels)
    est = report.silent_failures()
    assert (
        est["draft"].rate == pytest.approx(3 / len(items)) and est["draft"].low < est["draft"].rate < est["draft"].high
    )
    assert est[""].rate == pytest.approx(est["draft"].rate)
    conn.close()
    store_conn.close()
    code = main(["report", "--db", str(db), "--json"])
    assert code == 0


def test_report_cli_shows_the_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    conn, store_conn, store = _on_file(db)
    graph = _graph(store, SqliteSaver(conn), 1.0)
    for n in range(10):
        graph.invoke({"question": f"q{n % 5}"}, {"configurable": {"thread_id": f"t{n}"}})
    inbox = EscalationInbox(store, graph=graph)
    for i, item in enumerate(inbox.list(kind="audit")):
        inbox.resolve(item.id, {"action": "terminate" if i == 0 else "approve"}, reviewer="ana")
    conn.close()
    store_conn.close()
    assert main(["report", "--db", str(db), "--task-key", "question"]) == 0
    out = capsys.readouterr().out
    assert "silent failures estimated from audits" in out and "10.00%" in out
    assert "pass^k" in out and "k=2 100.0%" in out
    assert main(["report", "--db", str(db), "--json", "--task-key", "question"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["silent_failure_estimates"]["draft"]["wrong"] == 1 and data["pass_k"]["2"] == 1.0
    assert data["success_without_human"] == 1.0 and data["success_after_review"] == 0.0


def test_the_audit_interval_covers_the_true_rate() -> None:
    """The estimator's 95% interval covers a known silent-failure rate in about 95% of repetitions."""
    from reliable_graph.report import Report, StepStats

    rng = random.Random(4)
    covered = 0
    reps = 200
    for _ in range(reps):
        runs, audited, wrong, passed = 5000, 0, 0, 0
        for _ in range(runs):
            if rng.random() < 0.9:  # passes
                passed += 1
                if rng.random() < 0.02:
                    audited += 1
                    wrong += rng.random() < 0.05  # 5% of passing outputs are wrong
        report = Report(
            threads=runs,
            statuses={"completed": passed},
            audits={"s": {"labelled": audited, "wrong": wrong}},
            steps=[StepStats(name="s", outcomes={"pass": passed, "escalate": runs - passed})],
        )
        est = report.silent_failures()["s"]
        covered += est.low <= 0.9 * 0.05 <= est.high
    assert covered >= 0.9 * reps


def test_audit_rate_is_checked() -> None:
    with pytest.raises(ValueError, match="audit_rate"):
        reliable_step(
            lambda s: {"output": 1}, name="x", evaluator=Predicate(fn=bool), threshold=1.0, pass_to=END, audit_rate=1.5
        )
    with pytest.raises(TypeError, match="audit_seed"):
        reliable_step(
            lambda s: {"output": 1},
            name="x",
            evaluator=Predicate(fn=bool),
            threshold=1.0,
            pass_to=END,
            audit_rate=0.1,
            audit_seed="x",
        )  # type: ignore[arg-type]


def test_the_confidence_router_audits_too() -> None:
    from reliable_graph import ConfidenceRouter

    builder = StateGraph(State)
    builder.add_node("draft", lambda s: {"output": "an answer"})
    builder.add_node(
        ConfidenceRouter(
            Predicate(fn=bool, name="any"),
            name="check",
            step="draft",
            threshold=0.5,
            pass_to=END,
            retry_to="draft",
            escalate_to="human_escalation",
            audit_rate=1.0,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "check")
    store = InMemoryStore()
    graph = builder.compile(checkpointer=InMemorySaver(), store=store)
    out = graph.invoke({"question": "q"}, {"configurable": {"thread_id": "r"}})
    [item] = EscalationInbox(store, graph=graph).list(kind="audit")
    assert task_records(out)["draft"]["audit"] == item.id and item.step == "draft"


def test_calibrate_from_reviews(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite"
    conn, store_conn, store = _on_file(db)
    rng = random.Random(3)

    def draft(state: State) -> dict[str, Any]:
        return {"output": f"{rng.random():.3f}"}  # the output is its own score

    builder = StateGraph(State)
    builder.add_node(
        reliable_step(
            draft,
            name="draft",
            threshold=0.5,
            max_retries=0,
            pass_to=END,
            audit_rate=0.25,
            audit_seed=2,
            evaluator=Predicate(fn=lambda o: float(o), name="score"),
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "draft")
    graph = builder.compile(checkpointer=SqliteSaver(conn), store=store)
    for n in range(400):
        graph.invoke({"question": f"q{n}"}, {"configurable": {"thread_id": f"t{n}"}})
    inbox = EscalationInbox(store, graph=graph)
    audits, escalations = inbox.list(kind="audit", limit=1000), inbox.list(kind="escalation", limit=1000)
    assert audits and escalations
    for item in audits:  # outputs that passed are right, but for a few just above the threshold
        inbox.resolve(item.id, {"action": "terminate" if item.confidence < 0.55 else "approve"}, reviewer="ana")
    for item in escalations:  # escalated outputs scoring above 0.3 were right after all
        wrong = item.confidence < 0.3
        inbox.resolve(item.id, {"action": "terminate" if wrong else "approve"}, reviewer="bo")
    conn.close()
    store_conn.close()
    assert main(["calibrate", "--from-reviews", "--db", str(db), "--target-silent-failure", "0.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    step = data["steps"]["draft"]
    assert step["audits"] == len(audits) and step["escalations"] == len(escalations)
    assert step["method"] == "weighted" and step["silent_failure_bound"] <= 0.05
    assert 0.3 <= step["threshold"] < 0.55  # the reviews say the threshold can come down into escalated ground
    assert main(["calibrate", "--from-reviews", "--db", str(db), "--target-silent-failure", "0.05"]) == 0
    assert "thresholds from reviews" in capsys.readouterr().out
    for args, error in (
        (["--from-reviews", "--target-silent-failure", "0.05"], "needs --db"),
        (["--from-reviews", "--db", str(db)], "needs --target-silent-failure"),
        (["--from-reviews", "--db", str(tmp_path / "none.sqlite"), "--target-silent-failure", "0.1"], "no such file"),
        ([str(db), "--from-reviews", "--db", str(db), "--target-silent-failure", "0.1"], "give no FILE"),
        (["--target-silent-failure", "0.1"], "give the labelled FILE"),
    ):
        assert main(["calibrate", *args]) == 2
        assert error in capsys.readouterr().err
