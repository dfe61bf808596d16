"""The `reliable-graph` command: help, version, one-line errors, Ctrl-C, progress, tables and --json."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.postgres import PostgresSaver
from rich.progress import Progress, TaskID
from typer.testing import CliRunner

from reliable_graph.cli import demo as cli_demo
from reliable_graph.cli import main
from reliable_graph.cli.app import app
from reliable_graph.demo import ScenarioParams, SimulatedWorld, build_reliable_pipeline, run_demo
from reliable_graph.report import reliability_report

PG = "postgresql://postgres@127.0.0.1:5432/test"
EXAMPLES = [
    {"question": "boiling point of water", "contexts": ["Water boils at 100 C."], "output": "100 C", "label": True},
    {"question": "boiling point of water", "contexts": ["Cats sleep a lot."], "output": "50 C", "label": False},
    {
        "question": "capital of France",
        "contexts": ["Paris is the capital of France."],
        "output": "Paris",
        "label": True,
    },
    {"question": "capital of France", "contexts": ["France is large", "Lyon"], "output": "Lyon", "label": False},
]
SCRIPT = Path(sys.executable).parent / "reliable-graph"


def cli(*argv: str) -> tuple[int, str, str]:
    """Run `main(argv)`; return the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, out: str, err: str, *needles: str, exit_code: int = 2) -> str:
    """A failure printed as exactly one `error: ...` line on stderr, nothing on stdout."""
    assert code == exit_code, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def write_examples(path: Path, text: str | None = None) -> str:
    path.write_text(text if text is not None else "".join(json.dumps(x) + "\n" for x in EXAMPLES))
    return str(path)


def one_json_object(out: str) -> dict[str, Any]:
    """stdout holds exactly one JSON object (and its newline), nothing else."""
    assert out.endswith("\n") and out.count("\n") == 1, out[:300]
    data, end = json.JSONDecoder().raw_decode(out)
    assert out[end:] == "\n" and isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "demo.sqlite"
    run_demo(runs=12, seed=7, db=db, params=ScenarioParams(steps=4), as_json=True, out=io.StringIO())
    return db


# help and version


def test_cli_no_arguments_prints_help() -> None:
    code, out, err = cli()
    assert code == 0 and err == ""
    assert "Usage: reliable-graph" in out
    assert all(command in out for command in ("demo", "report", "calibrate", "--version", "--debug"))


def test_cli_version_is_the_package_version() -> None:
    for flag in ("--version", "-V"):
        assert cli(flag) == (0, f"reliable-graph {version('reliable-graph')}\n", "")


@pytest.mark.parametrize("command", [[], ["demo"], ["report"], ["calibrate"]])
def test_cli_help_texts_are_plain(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage: reliable-graph" in result.stdout
    text = result.stdout
    assert "`" not in text
    for repr_like in ("DemoThresholds(", "ScenarioParams(", "object at 0x", "<function", "<class"):
        assert repr_like not in text


def test_cli_help_lists_every_flag_with_its_default() -> None:
    text = CliRunner().invoke(app, ["demo", "--help"]).stdout
    for flag in ("--runs", "--seed", "--db", "--steps", "--fault-rate", "--json", "--model"):
        assert flag in text
    for default in ("200", "7", "reliable_graph_demo.sqlite", "10", "0.0"):
        assert default in text
    text = CliRunner().invoke(app, ["calibrate", "--help"]).stdout
    for flag in ("--evaluator", "--target-silent-failure", "--target-precision", "--max-retries", "--json"):
        assert flag in text
    text = CliRunner().invoke(app, ["report", "--help"]).stdout
    for flag in ("--db", "--json", "--chart", "--steps"):
        assert flag in text


def test_cli_console_script_and_module() -> None:
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    bare = run(str(SCRIPT))
    assert bare.returncode == 0 and "Usage: reliable-graph" in bare.stdout and bare.stderr == ""
    assert run(str(SCRIPT), "--version").stdout == f"reliable-graph {version('reliable-graph')}\n"
    bad = run(str(SCRIPT), "demo", "--steps", "0")
    assert_one_line_error(bad.returncode, bad.stdout, bad.stderr, "'--steps'")
    module = run(sys.executable, "-m", "reliable_graph.cli", "demo", "--fault-rate", "2")
    assert_one_line_error(module.returncode, module.stdout, module.stderr, "'--fault-rate'", "[0, 1]")


# one-line errors


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["demo", "--steps", "0"], ["'--steps'", "at least 1, got 0"]),
        (["demo", "--runs", "0"], ["'--runs'", "at least 1, got 0"]),
        (["demo", "--fault-rate", "2"], ["'--fault-rate'", "must be in [0, 1], got 2"]),
        (["demo", "--fault-rate", "-0.1"], ["'--fault-rate'", "must be in [0, 1], got -0.1"]),
        (["demo", "--fault-rate", "nan"], ["'--fault-rate'", "must be in [0, 1]"]),
        (["demo", "--fault-rate", "often"], ["'--fault-rate'"]),
        (["demo", "--db", "/nonexistent/dir/x.sqlite"], ["'--db'", "/nonexistent/dir"]),
        (["demo", "--db", "{tmp}"], ["'--db'", "is a directory"]),
        (["demo", "--jsn"], ["--jsn"]),
        (["dmo"], ["dmo"]),
        (["report"], ["--db"]),
        (["report", "--db", "{tmp}/missing.sqlite"], ["'--db'", "missing.sqlite", "no such file"]),
        (["report", "--db", "{examples}", "--chart", "/nonexistent/dir/c.png"], ["'--chart'", "/nonexistent/dir"]),
        (["report", "--db", "{examples}", "--steps", "0"], ["'--steps'"]),
        (["report", "--db", "{examples}"], ["--db", "examples.jsonl", "not a SQLite database"]),
        (
            ["calibrate", "{examples}", "--evaluator", "lexical_relevance", "--target-silent-failure", "2"],
            ["'--target-silent-failure'", "must be in [0, 1], got 2"],
        ),
        (
            ["calibrate", "{examples}", "--evaluator", "lexical_relevance", "--target-silent-failure", "-0.5"],
            ["'--target-silent-failure'"],
        ),
        (
            ["calibrate", "{examples}", "--evaluator", "lexical_relevance", "--target-silent-failure", "abc"],
            ["'--target-silent-failure'"],
        ),
        (
            ["calibrate", "{examples}", "--evaluator", "lexical_relevance", "--target-precision", "1.5"],
            ["'--target-precision'"],
        ),
        (["demo", "--model", "openai:gpt-4o-mini", "--seed", "3"], ["--model", "--seed", "cannot be combined"]),
        (["demo", "--model", "openai:gpt-4o-mini", "--json"], ["--model", "--json", "cannot be combined"]),
    ],
)
def test_cli_bad_input_is_one_line_naming_the_flag(tmp_path: Path, argv: list[str], needles: list[str]) -> None:
    examples = write_examples(tmp_path / "examples.jsonl")
    args = [a.replace("{tmp}", str(tmp_path)).replace("{examples}", examples) for a in argv]
    line = assert_one_line_error(*cli(*args), *needles)
    if "--target-silent-failure" in args or "--target-precision" in args:
        assert "examples.jsonl" not in line  # the flag is to blame, not the data file


def test_cli_demo_never_overwrites_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for path in (notes, empty):
        assert_one_line_error(*cli("demo", "--runs", "1", "--db", str(path)), "'--db'", path.name, "not a SQLite")
    assert notes.read_text() == "my notes\n" and empty.read_bytes() == b""
    wal = tmp_path / "gone.sqlite-wal"
    wal.write_text("not mine to delete")
    assert_one_line_error(*cli("demo", "--runs", "1", "--db", str(tmp_path / "gone.sqlite")), "gone.sqlite-wal")
    assert wal.exists()


def test_cli_demo_recreates_an_existing_sqlite_file(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.sqlite")
    for _ in range(2):
        code, out, err = cli("demo", "--runs", "2", "--steps", "2", "--json", "--db", db)
        assert code == 0 and err == "" and one_json_object(out)["bare"]["runs"] == 2
    assert Path(db).read_bytes()[:16] == b"SQLite format 3\x00"


def test_cli_model_without_langchain_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain", None)
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)
    args = ("demo", "--model", "openai:gpt-4o-mini", "--runs", "1", "--db", str(tmp_path / "m.sqlite"))
    assert_one_line_error(*cli(*args), "--model", 'pip install "reliable-graph[models]"')


def test_cli_model_missing_api_key_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ("demo", "--model", "openai:gpt-4o-mini", "--runs", "1", "--db", str(tmp_path / "m.sqlite"))
    assert_one_line_error(*cli(*args), "--model openai:gpt-4o-mini", "OPENAI_API_KEY")


def test_cli_model_missing_api_key_at_the_first_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain.chat_models

    def fails(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("Could not authenticate.\nSet the ANTHROPIC_API_KEY environment variable.")

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setattr(langchain.chat_models, "init_chat_model", lambda spec: object())
    monkeypatch.setattr(cli_demo, "run_model_demo", fails)
    args = ("demo", "--model", "anthropic:claude", "--runs", "1", "--db", str(tmp_path / "m.sqlite"))
    assert_one_line_error(*cli(*args), "--model anthropic:claude", "ANTHROPIC_API_KEY")


def test_cli_model_unknown_provider(tmp_path: Path) -> None:
    args = ("demo", "--model", "x:y", "--runs", "1", "--db", str(tmp_path / "m.sqlite"))
    assert_one_line_error(*cli(*args), "--model x:y", "unknown provider", "openai")


def test_cli_model_demo_prints_a_table_of_step_outcomes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain.chat_models

    class Fake(FakeMessagesListChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self.bind(**kwargs)

    call = {"name": "JudgeVerdict", "args": {"score": 0.9, "reason": "ok"}, "id": "1"}
    fake = Fake(responses=[AIMessage(content="an answer"), AIMessage(content="", tool_calls=[call])])
    monkeypatch.setattr(langchain.chat_models, "init_chat_model", lambda spec: fake)
    code, out, err = cli("demo", "--model", "fake:model", "--runs", "2", "--steps", "2", "--db", str(tmp_path / "m.db"))
    assert code == 0 and err == ""
    row = next(line for line in out.splitlines() if " pass " in line)
    assert "4" in row and "100.0%" in row and "fake:model" in out


def test_cli_unexpected_error_is_one_line_with_a_debug_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("the disk caught fire\nsecond line")

    monkeypatch.setattr(cli_demo, "run_demo", boom)
    db = str(tmp_path / "d.sqlite")
    line = assert_one_line_error(*cli("demo", "--json", "--db", db), exit_code=1)
    assert line.startswith("error: RuntimeError: the disk caught fire second line")
    assert "reliable-graph --debug demo --json --db" in line
    code, out, err = cli("--debug", "demo", "--json", "--db", db)
    assert code == 1 and out == ""
    assert "Traceback (most recent call last)" in err and "RuntimeError: the disk caught fire" in err


def test_cli_ctrl_c_exits_130_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(**kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_demo, "run_demo", interrupted)
    code, out, err = cli("demo", "--json", "--db", str(tmp_path / "d.sqlite"))
    assert code == 130 and out == "" and err == "reliable-graph: interrupted\n"
    result = CliRunner().invoke(app, ["demo", "--db", str(tmp_path / "d.sqlite")])
    assert result.exit_code == 130 and result.stderr == "reliable-graph: interrupted\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_real_ctrl_c_exits_130_with_one_line(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(SCRIPT), "demo", "--runs", "100000", "--db", str(tmp_path / "d.sqlite")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # SIGINT not ignored in the child
    )
    try:
        assert process.stdout is not None and process.stdout.readline().startswith("scenario:")  # in a command
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and err == "reliable-graph: interrupted\n"


# progress, tables and --json


class _Updates:
    """Every `completed=` value rich's progress bars are set to, per task description."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: dict[str, list[int]] = {}
        update, advance = Progress.update, Progress.advance

        def spy_update(bar: Progress, task_id: TaskID, **kwargs: Any) -> None:
            update(bar, task_id, **kwargs)
            if kwargs.get("completed") is not None:
                self.seen.setdefault(str(bar.tasks[task_id].description), []).append(int(kwargs["completed"]))

        def spy_advance(bar: Progress, task_id: TaskID, advance_by: float = 1) -> None:
            advance(bar, task_id, advance_by)
            task = next(t for t in bar.tasks if t.id == task_id)
            self.seen.setdefault(str(task.description), []).append(int(task.completed))

        monkeypatch.setattr(Progress, "update", spy_update)
        monkeypatch.setattr(Progress, "advance", spy_advance)


@pytest.mark.parametrize("as_json", [True, False])
def test_cli_demo_progress_is_on_stderr_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws progress bars only on a terminal
    updates = _Updates(monkeypatch)
    argv = ["demo", "--runs", "4", "--steps", "3", "--db", str(tmp_path / "d.sqlite")]
    code, out, err = cli(*argv, *(["--json"] if as_json else []))
    assert code == 0
    assert updates.seen == {"bare LangGraph": [1, 2, 3, 4], "reliable-graph": [1, 2, 3, 4]}
    assert "bare LangGraph" in err and "reliable-graph" in err and "4/4" in err
    if as_json:
        assert set(one_json_object(out)) == {"bare", "reliable", "scenario", "thresholds", "calibration", "seed"}
    else:
        assert "end-to-end success" in out and "4/4" not in out


def test_cli_demo_json_is_one_object_without_a_terminal(tmp_path: Path) -> None:
    code, out, err = cli("demo", "--runs", "3", "--steps", "2", "--json", "--db", str(tmp_path / "d.sqlite"))
    assert code == 0 and err == ""
    one_json_object(out)


def test_cli_demo_table_shows_every_json_figure(tmp_path: Path) -> None:
    argv = ["--runs", "20", "--seed", "7", "--db", str(tmp_path / "d.sqlite")]
    code, out, _ = cli("demo", *argv, "--json")
    data = one_json_object(out)
    code, table, err = cli("demo", *argv)
    assert code == 0 and err == ""
    assert "┃" in table or "│" in table  # drawn by rich
    assert f"scenario: {json.dumps(data['scenario'])}" in table
    th = data["thresholds"]
    shown = f"gate={th['gate']}, judge={th['judge']}, max_retries=2, max_refetches=2"
    assert shown in table and "DemoThresholds(" not in table
    assert "calibrated before the run on held-out runs [100000, 104999]" in table
    assert data["calibration"]["judge_bound"] <= 0.01
    assert f"{data['bare']['runs']} runs per mode, seed {data['seed']}" in table
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if line.count("│") >= 3}
    labels = {
        "e2e_success": "end-to-end success",
        "retry_pass": "runs with a retry_pass",
        "escalated": "escalated",
        "silent_failure": "silent failures",
        "failed": "lost to an exception",
        "model_calls_per_run": "model calls / run",
        "judge_calls_per_run": "judge calls / run",
        "retrieval_calls_per_run": "retrieval calls / run",
    }
    for key, label in labels.items():
        cells = [c.strip() for c in rows[label].split("│")[2:4]]
        fmt = "{:.2f}" if key.endswith("_per_run") else "{:.1%}"
        assert cells == [fmt.format(data["bare"][key]), fmt.format(data["reliable"][key])], label
    assert set(labels) | {"runs"} == set(data["bare"]) == set(data["reliable"])
    assert (
        data["reliable"]["escalated"] > 0
        and "wait in the review inbox" in table
        and "The oldest, as a reviewer sees it" in table
    )
    assert "After review the run ended as" in table


def test_cli_report_table_shows_every_json_figure(demo_db: Path) -> None:
    code, out, _ = cli("report", "--db", str(demo_db), "--json")
    data = one_json_object(out)
    code, table, err = cli("report", "--db", str(demo_db))
    assert code == 0 and err == ""
    lines = table.splitlines()
    for name, step in data["steps"].items():
        row = [c.strip() for c in next(ln for ln in lines if f" {name} " in ln).split("│")[1:-1]]
        outcomes = [str(step["outcomes"].get(o, 0)) for o in ("pass", "retry_pass", "escalate")]
        assert row[1:4] == outcomes
        assert row[-4:] == [str(step["finished"]), str(step["unfinished"]), str(step["attempts"])] + [
            f"{step['success_rate']:.1%}"
        ]
    for label, key in [
        ("observed end-to-end success", "observed_e2e_success"),
        ("predicted by multiplying per-step rates", "predicted_e2e_success"),
        ("per-step rate", "per_step_rate"),
        ("escalated (pending review)", "escalated"),
        ("threads with a retry_pass", "retry_pass"),
    ]:
        assert next(ln for ln in lines if ln.startswith(label)).split()[-1] == f"{data[key]:.1%}"
    for status, count in data["statuses"].items():
        assert next(ln for ln in lines if ln.startswith(f"  {status} ")).split()[-1] == str(count)
    assert next(ln for ln in lines if ln.startswith("threads with a reliable")).split()[-1] == str(data["threads"])
    assert next(ln for ln in lines if ln.startswith("threads without one")).split()[-1] == str(data["other_threads"])
    assert data["source"] in table


def test_cli_report_chart_errors_name_the_flag(demo_db: Path, tmp_path: Path) -> None:
    chart = tmp_path / "chart.unknown"
    assert_one_line_error(*cli("report", "--db", str(demo_db), "--chart", str(chart)), "--chart", "chart.unknown")
    code, out, err = cli("report", "--db", str(demo_db), "--chart", str(tmp_path / "c.png"))
    assert code == 0 and err == f"chart written to {tmp_path / 'c.png'}\n"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema of the local Postgres (never skipped: an unreachable server fails the test)."""
    schema = f"rg_cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_cli_report_reads_postgres(pg_url: str) -> None:
    with PostgresSaver.from_conn_string(pg_url) as saver:
        saver.setup()
        graph = build_reliable_pipeline(SimulatedWorld(ScenarioParams(steps=3), seed=2)).compile(checkpointer=saver)
        for run in range(6):
            graph.invoke({"run": run, "question": "q"}, {"configurable": {"thread_id": f"pg-{run}"}})
        expected = reliability_report(saver, expected_steps=3, source=pg_url).to_dict()
    code, out, err = cli("report", "--db", pg_url, "--steps", "3", "--json")
    assert code == 0 and err == ""
    assert one_json_object(out) == expected and expected["threads"] == 6
    code, table, _ = cli("report", "--db", pg_url)
    assert code == 0 and "step_01" in table and f"reliability report: {pg_url}" in table


def test_cli_report_postgres_errors_are_one_line(pg_url: str) -> None:
    assert_one_line_error(*cli("report", "--db", pg_url), "--db", "no 'checkpoints' table")
    line = assert_one_line_error(
        *cli("report", "--db", "postgresql://postgres:s3cret@127.0.0.1:1/test"), "--db", "cannot connect"
    )
    assert "s3cret" not in line and "postgres:***@127.0.0.1:1" in line


def test_cli_calibrate_accepts_a_bom_and_trailing_blank_lines(tmp_path: Path) -> None:
    plain = write_examples(tmp_path / "plain.jsonl")
    text = "\ufeff" + "".join(json.dumps(x) + "\r\n" for x in EXAMPLES) + "\n  \n\n"
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(text.encode("utf-8"))
    args = ("--evaluator", "lexical_relevance", "--target-silent-failure", "0.01", "--method", "empirical", "--json")
    code, out, err = cli("calibrate", str(bom), *args)
    assert code == 0 and err == ""
    got = one_json_object(out)
    assert got == {**one_json_object(cli("calibrate", plain, *args)[1]), "file": str(bom)} and got["n"] == 4
    (tmp_path / "middle.jsonl").write_text(json.dumps(EXAMPLES[0]) + "\n\n" + json.dumps(EXAMPLES[1]) + "\n")
    assert_one_line_error(*cli("calibrate", str(tmp_path / "middle.jsonl"), *args), "middle.jsonl:2", "empty line")


def test_cli_calibrate_json_prints_every_figure_of_the_table(tmp_path: Path) -> None:
    path = write_examples(tmp_path / "held_out.jsonl")
    args = ("calibrate", path, "--evaluator", "lexical_relevance", "--target-precision", "0.9", "--max-retries", "2")
    code, table, err = cli(*args)
    assert code == 0 and err == ""
    data = one_json_object(cli(*args, "--json")[1])
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in table.splitlines() if ln.count("│") == 3}
    assert rows == {
        "evaluator": data["evaluator"],
        "examples": f"{data['n']} ({data['file']})",
        "target": data["target"],
        "threshold": f"{data['threshold']:.4f}",
        "silent failure": f"{data['silent_failure']:.2%} of all examples accepted while wrong",
        "precision": f"{data['precision']:.2%} of accepted outputs correct",
        "pass rate": f"{data['pass_rate']:.2%} at the first attempt",
        "retry rate": f"{data['retry_rate']:.2%}",
        "escalation rate": f"{data['escalation_rate']:.2%} (max_retries={data['max_retries']}, retries as fresh draws)",
        "method": "empirical: the lowest threshold whose held-out rate meets the target",
        "guaranteed": "nothing (the empirical rule: a fresh sample misses the target about half the time)",
    }
    assert data["method"] == "empirical" and data["silent_failure_bound"] is None and data["delta"] is None
    assert len(data) == 14  # every key is in one row above (method, bound and delta in two)


def test_cli_calibrate_shows_progress_while_scoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    updates = _Updates(monkeypatch)
    path = write_examples(tmp_path / "held_out.jsonl")
    code, out, err = cli("calibrate", path, "--evaluator", "lexical_relevance", "--target-precision", "0.9", "--json")
    assert code == 0 and one_json_object(out)["n"] == 4
    assert updates.seen == {"scoring with lexical_relevance": [1, 2, 3, 4]}
    assert "scoring with lexical_relevance" in err and "4/4" in err


def test_cli_calibrate_json_stays_one_object_when_the_evaluator_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "noisy_evals.py").write_text(
        "from reliable_graph import Predicate\n"
        "def check(output):\n"
        "    print('scoring', output)\n"
        "    return 1.0 if output in ('100 C', 'Paris') else 0.0\n"
        "NOISY = Predicate(fn=check, name='noisy')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_examples(tmp_path / "held_out.jsonl")
    code, out, err = cli("calibrate", path, "--evaluator", "noisy_evals:NOISY", "--target-precision", "1", "--json")
    sys.modules.pop("noisy_evals", None)
    assert code == 0 and one_json_object(out)["evaluator"] == "noisy"
    assert err.count("scoring") == 4


BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("module", ["app", "demo", "report", "calibrate"])
def test_cli_docstring_examples_run(module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(f"reliable_graph.cli.{module}")
    for name in mod.__all__:
        obj = getattr(mod, name)
        if not inspect.isfunction(obj):
            continue
        blocks = BLOCK.findall(inspect.getdoc(obj) or "")
        assert blocks, f"{module}.{name} has no example"
        for block in blocks:
            namespace = types.ModuleType(f"doc_cli_{module}_{name}")
            exec(compile(textwrap.dedent(block), f"<{name}>", "exec"), namespace.__dict__)
