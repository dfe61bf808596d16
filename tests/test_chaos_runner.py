"""The chaos runner and `reliable-graph chaos` on a user's own graph."""

from __future__ import annotations

import json
import operator
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from reliable_graph.cli import main
from reliable_graph.resilience import ExecutedTasks, durable_tasks, run_chaos

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _graphs_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # the worker processes import chaos_graphs


def test_users_graph_under_outage_with_kills_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "chaos.sqlite"
    report = run_chaos(
        "chaos_graphs:user_pipeline",
        inputs="chaos_graphs:question",
        runs=12,
        profile="outage",
        rate=0.4,
        seed=5,
        kill_rate=0.5,
        db=db,
    )
    assert report["lost"] == 0 and report["unhandled"] == 0 and report["completed"] == 12
    assert report["kills"] >= 1 and report["resumed"] == report["kills"] and report["steps_reexecuted"] == 0
    calls = report["connector_calls"]["search"]
    assert calls["faults"] and calls["calls"] > 24  # faulted calls were retried and counted
    assert set(report["retries"]) <= {"server_error", "connection_reset"} and report["retries"]
    assert report["logical_attempts"] == 24  # two scored steps a run: retries of a connector are not attempts
    assert report["run_outcomes"] == {"ok": 12} and db.exists()


def test_escalations_are_reviewed_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_GRAPHS_ESCALATE", "1")
    pending = run_chaos("chaos_graphs:user_pipeline", inputs="chaos_graphs:question", runs=3, profile="none")
    assert pending["outcomes"] == {"escalate": 3, "pass": 3} and pending["run_outcomes"] == {"escalated": 3}
    reviewed = run_chaos(
        "chaos_graphs:user_pipeline", inputs="chaos_graphs:question", runs=3, profile="none", review="approve"
    )
    assert reviewed["outcomes"] == {"approved": 3, "pass": 3} and reviewed["run_outcomes"] == {"ok": 3}
    assert reviewed["lost"] == 0


def test_unhandled_exceptions_are_lost_runs_with_a_sample_traceback() -> None:
    report = run_chaos("chaos_graphs:buggy_pipeline", inputs="chaos_graphs:question", runs=4, profile="none")
    assert report["unhandled"] == 2 and report["lost"] == 2 and report["completed"] == 2
    error = report["errors"]["KeyError"]
    assert error["count"] == 2 and "'missing'" in error["sample_traceback"] and "Traceback" in error["sample_traceback"]


class S(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def test_reexecution_detector_counts_durable_work_that_runs_again(tmp_path: Path) -> None:
    broken = {"b": True}

    def node_b(state: S) -> dict[str, Any]:
        if broken["b"]:
            raise TimeoutError("b timed out")
        return {"done": ["b"]}

    builder = StateGraph(S)
    builder.add_node("a", lambda s: {"done": ["a"]})
    builder.add_node("b", node_b)
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")  # a and b run in one superstep: a's writes are saved, b fails
    conn = sqlite3.connect(tmp_path / "t.sqlite", check_same_thread=False)
    graph = builder.compile(checkpointer=SqliteSaver(conn))
    config: Any = {"configurable": {"thread_id": "t"}}
    with pytest.raises(TimeoutError):
        graph.invoke({"done": []}, config)
    durable = durable_tasks(graph, config)
    a_id = next(t.id for t in graph.get_state(config).tasks if t.name == "a")
    assert a_id in durable
    broken["b"] = False
    resumed = ExecutedTasks()
    graph.invoke(None, {**config, "callbacks": [resumed]})
    assert set(resumed.ids.values()) == {"b"} and not set(resumed.ids) & durable  # a's saved work is kept
    # Now lose a's saved writes behind LangGraph's back: the detector must see a run again.
    conn.execute("DELETE FROM writes WHERE task_id = ?", (a_id,))
    conn.commit()
    fork = graph.get_state_history(config)
    oldest_with_a = next(s for s in fork if any(t.id == a_id for t in s.tasks))
    again = ExecutedTasks()
    graph.invoke(None, {**oldest_with_a.config, "callbacks": [again]})
    assert "a" in again.ids.values()
    conn.close()


def _cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["chaos", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(
        "--graph",
        "chaos_graphs:user_pipeline",
        "--inputs",
        "chaos_graphs:question",
        "--runs",
        "3",
        "--profile",
        "flaky",
        "--fault-rate",
        "0.5",
        "--json",
        capsys=capsys,
    )
    report = json.loads(out)
    assert code == 0 and report["runs"] == 3 and report["lost"] == 0 and report["profile"]["faults"]["timeout"] == 0.15


def test_cli_table_and_lost_runs_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(
        "--graph", "chaos_graphs:buggy_pipeline", "--input", '{"question": "q1"}', "--runs", "2", capsys=capsys
    )
    assert code == 1 and "unhandled KeyError in 2 run(s)" in out and "Traceback" in out
    assert "lost (unhandled or never completed)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--graph", "chaos_graphs:user_pipeline"], "give the runs' input"),
        (["--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--inputs", "chaos_graphs:question"], "not both"),
        (["--graph", "nocolon", "--input", "{}"], "module:attr"),
        (["--graph", "chaos_graphs:nothing", "--input", "{}"], "has no attribute"),
        (["--graph", "no_such_module:x", "--input", "{}"], "cannot import"),
        (["--graph", "chaos_graphs:user_pipeline", "--input", "{"], "--input is not valid JSON"),
        (["--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--profile", "stormy"], "unknown fault profile"),
        (
            ["--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--profile", '{"faults": {"timeout": 2}}'],
            "must be in [0, 1]",
        ),
        (["--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--kill-rate", "2"], "--kill-rate"),
        (["--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--runs", "0"], "--runs"),
        (
            ["--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--review", "maybe"],
            "--review': must be one of none, approve, terminate",
        ),
        (
            ["--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--db", "/nonexistent/dir/x.sqlite"],
            "does not exist",
        ),
        (["--graph", "chaos_graphs:question", "--input", "{}"], "calling it raised TypeError"),
        (["--graph", "chaos_graphs:State", "--input", "{}"], "must be a StateGraph"),
        (["--graph", "chaos_graphs:FAST", "--input", "{}"], "must be a StateGraph"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(*args, capsys=capsys)
    assert code == 2, err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_never_overwrites_a_file_that_is_not_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    code, _, err = _cli("--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--db", str(notes), capsys=capsys)
    assert code == 2 and "not a SQLite" in err and notes.read_text() == "my notes"
