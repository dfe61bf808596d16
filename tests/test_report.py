from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from reliable_graph import report
from reliable_graph.cli import main
from reliable_graph.cli import report as cli_report
from reliable_graph.demo import ScenarioParams, SimulatedWorld, build_reliable_pipeline, run_demo
from reliable_graph.report import Report, StepStats, format_report, reliability_report, write_chart

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    results = run_demo(runs=40, seed=7, db=db, as_json=True, out=io.StringIO(), err=io.StringIO())
    return db, results


def test_report_json_agrees_with_demo_counts(demo_db: tuple[Path, dict[str, Any]]) -> None:
    db, results = demo_db
    code, out, _ = _cli(["report", "--db", str(db), "--json"])
    assert code == 0
    data = json.loads(out)
    reliable = results["reliable"]
    assert data["threads"] == reliable["runs"] and data["other_threads"] == results["bare"]["runs"]
    assert data["escalated"] == reliable["escalated"]
    assert data["retry_pass"] == reliable["retry_pass"]
    assert data["observed_e2e_success"] == pytest.approx(reliable["e2e_success"] + reliable["silent_failure"])
    assert data["statuses"]["failed"] == 0 and data["statuses"]["incomplete"] == 0


def test_report_counts_every_reliable_thread_once_per_step(demo_db: tuple[Path, dict[str, Any]]) -> None:
    db, _ = demo_db
    conn = sqlite3.connect(str(db), check_same_thread=False)
    from langgraph.checkpoint.sqlite import SqliteSaver

    rep = reliability_report(SqliteSaver(conn), expected_steps=10)
    conn.close()
    assert [s.name for s in rep.steps] == [f"step_{i:02d}" for i in range(1, 11)]
    assert rep.steps[0].finished == rep.threads  # every thread ran step 1
    for earlier, later in zip(rep.steps, rep.steps[1:], strict=False):
        assert later.finished <= earlier.finished  # escalation ends a run
    predicted = rep.predicted_e2e_success
    assert predicted is not None and 0.0 < predicted <= 1.0


def test_report_table_lists_steps_and_notes_bare_threads(demo_db: tuple[Path, dict[str, Any]]) -> None:
    db, _ = demo_db
    code, out, _ = _cli(["report", "--db", str(db)])
    assert code == 0
    assert "step_01" in out and "observed end-to-end success" in out
    assert "without a reliable-graph record" in out and "cannot be seen in checkpoints" in out


def test_report_chart_writes_png(demo_db: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    db, _ = demo_db
    chart = tmp_path / "chart.png"
    code, out, _ = _cli(["report", "--db", str(db), "--json", "--chart", str(chart)])
    assert code == 0 and json.loads(out)["threads"] == 40
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_cli_missing_file_exits_2(tmp_path: Path) -> None:
    code, out, err = _cli(["report", "--db", str(tmp_path / "nope.sqlite")])
    assert code == 2 and out == "" and "no such file" in err
    assert not (tmp_path / "nope.sqlite").exists()


def test_report_cli_not_a_checkpoint_db_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    code, _, err = _cli(["report", "--db", str(db)])
    assert code == 2 and "not a LangGraph SQLite checkpoint database" in err


def test_report_cli_only_bare_threads_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "bare.sqlite"
    from langgraph.checkpoint.sqlite import SqliteSaver

    from reliable_graph.demo import build_bare_pipeline

    conn = sqlite3.connect(str(db), check_same_thread=False)
    graph = build_bare_pipeline(SimulatedWorld(ScenarioParams(steps=2), seed=1)).compile(checkpointer=SqliteSaver(conn))
    graph.invoke({"run": 0}, {"configurable": {"thread_id": "b0"}})
    conn.close()
    code, _, err = _cli(["report", "--db", str(db), "--json"])
    assert code == 2 and "no thread with a reliable-graph record" in err and "1 thread(s) without one" in err


def test_report_counts_review_decisions_and_terminations() -> None:
    saver = InMemorySaver()
    params = ScenarioParams(steps=3, raw_p=0.3)  # mostly wrong outputs: escalations
    graph = build_reliable_pipeline(SimulatedWorld(params, seed=3)).compile(checkpointer=saver)
    escalated = []
    for run in range(12):
        config: Any = {"configurable": {"thread_id": f"t{run}"}}
        out = graph.invoke({"run": run, "question": "q"}, config)
        if out.get("__interrupt__"):
            escalated.append(config)
    assert len(escalated) >= 2
    graph.invoke(Command(resume={"action": "terminate", "reason": "stop"}), escalated[0])
    graph.invoke(Command(resume={"action": "edit", "output": {"_sim": {"correct": True}}}), escalated[1])
    rep = reliability_report(saver)
    assert rep.threads == 12 and rep.statuses.get("terminated") == 1
    decisions: dict[str, int] = {}
    for step in rep.steps:
        for action, n in step.decisions.items():
            decisions[action] = decisions.get(action, 0) + n
    assert decisions == {"terminate": 1, "edit": 1}
    assert sum(s.outcomes.get("edited", 0) for s in rep.steps) == 1
    pending = sum(bool(graph.get_state({"configurable": {"thread_id": f"t{r}"}}).interrupts) for r in range(12))
    assert rep.escalated == pending / 12  # the edited run may have escalated again at a later step


def test_report_empty_checkpointer_has_no_rates() -> None:
    rep = reliability_report(InMemorySaver())
    assert rep.threads == 0 and rep.observed_e2e_success == 0.0 and rep.predicted_e2e_success is None
    with pytest.raises(ValueError, match="no finished step"):
        write_chart(rep, "unused.png")


def test_report_expected_steps_marks_short_threads_incomplete() -> None:
    saver = InMemorySaver()
    graph = build_reliable_pipeline(SimulatedWorld(ScenarioParams(steps=2, raw_p=1.0), seed=1)).compile(
        checkpointer=saver
    )
    graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "a"}})
    assert reliability_report(saver).statuses == {"completed": 1}
    assert reliability_report(saver, expected_steps=3).statuses == {"incomplete": 1}
    with pytest.raises(ValueError, match="expected_steps"):
        reliability_report(saver, expected_steps=0)


def test_format_report_shows_unfinished_and_rates() -> None:
    rep = Report(
        threads=3,
        statuses={"completed": 2, "incomplete": 1},
        steps=[StepStats(name="draft", outcomes={"pass": 2}, unfinished=1, decisions={"approve": 1})],
    )
    text = format_report(rep)
    assert "draft" in text and "review decisions: approve 1" in text and "100.0%" in text


@pytest.mark.parametrize(
    ("module", "name"), [(report, n) for n in report.__all__] + [(cli_report, n) for n in cli_report.__all__]
)
def test_report_docstring_examples_run(module: Any, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    obj = getattr(module, name)
    if isinstance(obj, tuple):
        return  # a constant
    blocks = BLOCK.findall(inspect.getdoc(obj) or "")
    assert blocks, f"{name} has no example"
    for block in blocks:
        exec(compile(textwrap.dedent(block), f"<{name}>", "exec"), {"__name__": f"doc_{name}"})


# pass^k, as tau-bench defines it, on one fixed set of tasks

# Each task's runs (True: completed without a human), and pass^k worked out by hand:
# kept: A, B, C (run at least twice); k_max = min(8, fewest runs among them) = 4; D (one run) left out.
#   A (n=4, c=3): k=1 3/4, k=2 C(3,2)/C(4,2) = 3/6, k=3 C(3,3)/C(4,3) = 1/4, k=4 0
#   B (n=4, c=2): k=1 2/4, k=2 C(2,2)/C(4,2) = 1/6, k=3 0,                    k=4 0
#   C (n=5, c=5): 1 for every k
TASK_RUNS = {
    "A": [True, True, True, False],
    "B": [True, False, True, False],
    "C": [True] * 5,
    "D": [True],
}
BY_HAND = {1: (3 / 4 + 2 / 4 + 1) / 3, 2: (3 / 6 + 1 / 6 + 1) / 3, 3: (1 / 4 + 0 + 1) / 3, 4: (0 + 0 + 1) / 3}


def test_pass_k_matches_a_table_worked_out_by_hand() -> None:
    r = Report(threads=14, statuses={}, steps=[], task_runs=TASK_RUNS)
    p = r.pass_k()
    assert p is not None and (p.k_max, p.tasks, p.runs, p.left_out) == (4, 3, 13, 1)
    assert p.values.keys() == BY_HAND.keys()
    for k, expected in BY_HAND.items():
        assert p.values[k] == pytest.approx(expected)
    assert list(p.values.values()) == sorted(p.values.values(), reverse=True)  # never rises with k
    only_c = r.pass_k(5)
    assert only_c is not None and only_c.values == dict.fromkeys(range(1, 6), 1.0) and only_c.left_out == 3
    with pytest.raises(ValueError, match="no task ran 6 times"):
        r.pass_k(6)
    assert Report(threads=2, statuses={}, steps=[], task_runs={"x": [True], "y": [False]}).pass_k() is None
    many = Report(threads=400, statuses={}, steps=[], task_runs={"t": [True, False] * 200}).pass_k()
    assert many is not None and many.k_max == report.PASS_K_MAX and list(many.values) == list(range(1, 9))


def _task_graph(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    from reliable_graph import HumanEscalation, Predicate, ReliabilityState, reliable_step

    class State(ReliabilityState, total=False):
        task: str
        ok: bool
        output: str

    builder = StateGraph(State)
    builder.add_node(
        reliable_step(
            lambda state: {"output": "good" if state["ok"] else "bad"},
            name="answer",
            evaluator=Predicate(fn=lambda output: output == "good", name="good"),
            threshold=1.0,
            max_retries=0,
            pass_to=END,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "answer")
    return builder.compile(checkpointer=saver)


def test_report_cli_pass_k_on_real_threads(tmp_path: Path) -> None:
    """Threads whose success is fixed by their input: the report gives the hand-computed table."""
    import subprocess
    import sys

    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "tasks.sqlite"
    conn = sqlite3.connect(db, check_same_thread=False)
    graph = _task_graph(SqliteSaver(conn))
    for task, runs in TASK_RUNS.items():
        for i, ok in enumerate(runs):
            graph.invoke({"task": task, "ok": ok}, {"configurable": {"thread_id": f"{task}-{i}"}})
    conn.close()
    script = Path(sys.executable).parent / "reliable-graph"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), "report", "--db", str(db), *argv], capture_output=True, text=True)

    table = run("--task-key", "task")
    assert table.returncode == 0, table.stderr
    [line] = [ln for ln in table.stdout.splitlines() if ln.startswith("pass^k")]
    assert "on 3 task(s) run at least 4 times (13 runs; 1 task(s) run fewer times left out)" in line
    assert line.endswith(", ".join(f"k={k} {v:.1%}" for k, v in BY_HAND.items()))
    data = json.loads(run("--task-key", "task", "--json").stdout)
    assert data["pass_k"] == pytest.approx({str(k): v for k, v in BY_HAND.items()})
    assert data["pass_k_tasks"] == {"k_max": 4, "tasks": 3, "runs": 13, "left_out": 1, "without_key": 0}
    assert json.loads(run("--task-key", "task", "--pass-k", "5", "--json").stdout)["pass_k"] == {
        str(k): 1.0 for k in range(1, 6)
    }
    for argv, needle in (
        (["--task-key", "bogus"], "--task-key bogus: no thread's state has the key 'bogus' (the keys it has: "),
        (["--task-key", "task", "--pass-k", "6"], "--pass-k 6: no task ran 6 times (the most runs of one task: 5)"),
        (["--task-key", "task", "--pass-k", "17"], "'--pass-k': must be at most 16, got 17"),
        (["--task-key", " "], "'--task-key': must not be blank"),
        (["--pass-k", "2"], "--pass-k needs --task-key"),
    ):
        refused = run(*argv)
        assert refused.returncode == 2 and refused.stdout == "", refused.stderr
        assert refused.stderr.count("\n") == 1 and needle in refused.stderr, refused.stderr
