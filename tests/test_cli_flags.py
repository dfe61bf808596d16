"""Every flag of every command is checked where it is parsed: one line naming the flag, exit code 2.

Most cases run the command in this process (the same parsing as the installed command, and fast);
the ones that need a real process (Ctrl-C, a busy port, the console) run the installed command.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inbox_app import sqlite_app

from reliable_graph import EscalationInbox
from reliable_graph.cli import main

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPT = Path(sys.executable).parent / "reliable-graph"
TOKEN = "a-token-of-20-chars!"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def one_error(code: int, out: str, err: str, *needles: str) -> str:
    assert code == 2, err
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def command(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=120, check=False, env=ENV, **kwargs
    )


@pytest.fixture(scope="module")
def inbox_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with two escalations waiting (their outputs are text)."""
    db = tmp_path_factory.mktemp("flags") / "app.sqlite"
    with sqlite_app(db) as (graph, _):
        for q in ("refunds", "warranty"):
            graph.invoke({"question": q}, {"configurable": {"thread_id": q}})
    return db


INBOX = ["inbox", "list", "--db", "app.sqlite"]
CLAIM = ["inbox", "claim", "some-id", "--db", "app.sqlite"]
RESOLVE = ["inbox", "resolve", "some-id", "--db", "app.sqlite", "--graph", "inbox_app:builder"]
SWEEP = ["inbox", "sweep", "--db", "app.sqlite", "--graph", "inbox_app:builder"]
CONSOLE = ["console", "--db", "app.sqlite", "--graph", "inbox_app:builder"]
CAL = ["calibrate", "held_out.jsonl", "--evaluator", "lexical_relevance"]
CHAOS = ["chaos", "--graph", "chaos_graphs:user_pipeline", "--input", "{}"]


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["demo", "--steps", "100000"], ["'--steps'", "must be at most 20, got 100000"]),
        (["demo", "--fault-rate", "inf"], ["'--fault-rate'", "a finite number", "inf"]),
        (["demo", "--model", "  "], ["'--model'", "must not be blank"]),
        (["report", "--task-key", "", "--db", "x.sqlite"], ["'--task-key'", "must not be blank"]),
        (["report", "--pass-k", "0", "--db", "x.sqlite"], ["'--pass-k'", "at least 1"]),
        ([*CAL, "--target-silent-failure", "nan"], ["'--target-silent-failure'", "a finite number"]),
        ([*CAL, "--target-silent-failure", "0.1", "--delta", "1"], ["'--delta'", "must be in (0, 0.5], got 1"]),
        ([*CAL, "--target-silent-failure", "0.1", "--delta", "0"], ["'--delta'", "must be in (0, 0.5], got 0"]),
        ([*CAL, "--target-silent-failure", "0.1", "--delta", "-inf"], ["'--delta'", "a finite number"]),
        ([*CAL, "--target-silent-failure", "0.1", "--max-retries", "11"], ["'--max-retries'", "at most 10"]),
        ([*CAL, "--target-silent-failure", "0.1", "--method", "bogus"], ["'--method'", "one of ltt, empirical"]),
        ([*CAL, "--target-silent-failure", "0.1", "--audit-rate", "0"], ["'--audit-rate'", "(0, 1]"]),
        ([*CAL, "--target-silent-failure", "0.1", "--evaluator", " "], ["'--evaluator'", "must not be blank"]),
        (
            [*CAL, "--target-silent-failure", "0"],
            ["--target-silent-failure 0", "no number of examples guarantees exactly 0", "--method empirical"],
        ),
        ([*CHAOS, "--fault-rate", "nan"], ["'--fault-rate'", "a finite number"]),
        ([*CHAOS, "--kill-rate", "inf"], ["'--kill-rate'", "a finite number"]),
        ([*CHAOS, "--review", "bogus"], ["'--review'", "one of none, approve, terminate"]),
        (["chaos", "--graph", " ", "--input", "{}"], ["'--graph'", "must not be blank"]),
        (
            [*INBOX, "--status", "bogus"],
            ["'--status'", "open, pending, claimed, resolving, applied, resolved, expired, dismissed, superseded, all"],
        ),
        ([*INBOX, "--sort", "newest"], ["'--sort'", "one of oldest, confidence"]),
        ([*INBOX, "--older-than", "nan"], ["'--older-than'", "a finite number"]),
        ([*INBOX, "--older-than", "-5"], ["'--older-than'", "must be in [0, 527040] minutes, got -5"]),
        ([*INBOX, "--older-than", "inf"], ["'--older-than'", "a finite number"]),
        ([*INBOX, "--limit", "0"], ["'--limit'", "at least 1"]),
        ([*INBOX, "--limit", "100000"], ["'--limit'", "at most 1000"]),
        ([*INBOX, "--assignee", ""], ["'--assignee'", "must not be blank"]),
        (["inbox", "show", " ", "--db", "app.sqlite"], ["'ID'", "must not be blank"]),
        ([*CLAIM, "--reviewer", " "], ["'--reviewer'", "must not be blank"]),
        ([*CLAIM, "--reviewer", "ana", "--lease", "inf"], ["'--lease'", "a finite number"]),
        ([*CLAIM, "--reviewer", "ana", "--lease", "1e12"], ["'--lease'", "must be in (0, 10080] minutes"]),
        ([*CLAIM, "--reviewer", "ana", "--lease", "0"], ["'--lease'", "(0, 10080]"]),
        (["inbox", "release", "x", "--db", "app.sqlite", "--reviewer", ""], ["'--reviewer'", "must not be blank"]),
        ([*RESOLVE, "--action", "bogus"], ["'--action'", "approve, edit, provide_context, retry, terminate"]),
        ([*RESOLVE, "--reviewer", "\t"], ["'--reviewer'", "must not be blank"]),
        ([*RESOLVE, "--reason", " "], ["'--reason'", "must not be blank"]),
        ([*RESOLVE, "--action", "provide_context", "--context", " "], ["'--context'", "must not be blank"]),
        ([*RESOLVE, "--output", "42"], ["--output", "with --action edit, not approve"]),
        ([*RESOLVE, "--action", "edit"], ["--action edit needs --output"]),
        ([*RESOLVE, "--action", "provide_context"], ["--action provide_context needs --context"]),
        ([*SWEEP, "--deadline", "inf"], ["'--deadline'", "a finite number"]),
        ([*SWEEP, "--deadline", "0"], ["'--deadline'", "(0, 527040] minutes"]),
        ([*SWEEP, "--action", "retry"], ["'--action'", "one of terminate, approve"]),
        ([*SWEEP, "--assign-to", " "], ["'--assign-to'", "must not be blank"]),
        ([*CONSOLE, "--token", ""], ["'--token'", "must not be blank"]),
        ([*CONSOLE, "--token", "a"], ["'--token'", "at least 16 characters long, got 1"]),
        ([*CONSOLE, "--token", "x" * 15], ["'--token'", "at least 16 characters long, got 15"]),
        ([*CONSOLE, "--port", "0"], ["'--port'", "at least 1"]),
        ([*CONSOLE, "--port", "70000"], ["'--port'", "at most 65535"]),
        ([*CONSOLE, "--host", ""], ["'--host'", "must not be blank"]),
    ],
)
def test_bad_flags_are_one_line_naming_the_flag(argv: list[str], needles: list[str]) -> None:
    one_error(*cli(*argv), *needles)


def test_the_installed_command_refuses_nonsense_the_same_way(inbox_db: Path) -> None:
    for argv, needle in [
        (["inbox", "list", "--db", str(inbox_db), "--status", "bogus"], "'--status': must be one of open"),
        (["console", "--db", str(inbox_db), "--graph", "inbox_app:builder", "--token", "short"], "'--token'"),
        (["demo", "--steps", "100000"], "'--steps': must be at most 20"),
    ]:
        result = command(*argv)
        one_error(result.returncode, result.stdout, result.stderr, needle)


# junk for the numeric flags: refused naming the flag exactly when it is not a finite number in range

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e308", "1e-320", "", " ", "0x10", "ten", "1,5", "--"]),
    st.text(max_size=8),
)


def _finite_in(raw: str, low: float, high: float, *, low_open: bool) -> bool:
    try:
        value = float(raw)
    except ValueError:
        return False
    return math.isfinite(value) and (low < value if low_open else low <= value) and value <= high


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=NUMBERS)
def test_numeric_flags_refuse_junk(junk: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.sqlite")
    cases = [
        (["inbox", "claim", "x", "--db", missing, "--reviewer", "ana", "--lease", junk], "--lease", 0, 10080, True),
        (["inbox", "list", "--db", missing, "--older-than", junk], "--older-than", 0, 527040, False),
        (["calibrate", missing, "--evaluator", "lexical_relevance", "--target-silent-failure", "0.1", "--delta", junk],
         "--delta", 0, 0.5, True),
        (["calibrate", missing, "--evaluator", "lexical_relevance", "--target-silent-failure", junk,
          "--method", "empirical"], "--target-silent-failure", 0, 1, False),
    ]  # fmt: skip
    for argv, flag, low, high, low_open in cases:
        line = one_error(*cli(*argv))
        if _finite_in(junk, low, high, low_open=low_open):
            assert "missing.sqlite" in line and f"'{flag}'" not in line, line  # past the flag: the file is missing
        else:
            assert f"'{flag}'" in line, line


# the edit of a text output stays text


def test_edit_output_takes_the_type_of_the_output_it_replaces(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite"
    with sqlite_app(db) as (graph, store):
        graph.invoke({"question": "refunds"}, {"configurable": {"thread_id": "refunds"}})
        [item] = EscalationInbox(store).list()
    result = command(
        "inbox", "resolve", item.id, "--db", str(db), "--graph", "inbox_app:builder", "--action", "edit",
        "--output", "42", "--reviewer", "ana",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with sqlite_app(db) as (graph, _):
        values = graph.get_state({"configurable": {"thread_id": "refunds"}}).values
    assert values["output"] == "42" and values["done"] == "42"  # text, as the original "draft for refunds"


def test_edit_output_of_a_structured_output_is_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from console_app import console_app, run

    monkeypatch.chdir(TESTS)  # `console_app:builder` importable
    db = tmp_path / "app.sqlite"
    with console_app(db) as (graph, store):
        run(graph, "Brest")
        [item] = EscalationInbox(store).list()
    resolve = ["inbox", "resolve", item.id, "--db", str(db), "--graph", "console_app:builder", "--action", "edit"]
    one_error(*cli(*resolve, "--output", "High tide at 14:32"), "--output", "must be JSON like the original (dict)")
    code, _, err = cli(*resolve, "--output", '{"answer": "High tide at 14:32", "sources": ["shom.fr"]}')
    assert code == 0, err
    with console_app(db) as (graph, _):
        output = graph.get_state({"configurable": {"thread_id": "Brest"}}).values["output"]
    assert output == {"answer": "High tide at 14:32", "sources": ["shom.fr"]}


# chaos: the input is checked once, and a run that injected nothing is no pass


def test_chaos_checks_the_input_once_before_any_run() -> None:
    result = command("chaos", "--graph", "chaos_graphs:user_pipeline", "--input", "[1, 2]", "--runs", "100")
    line = one_error(result.returncode, result.stdout, result.stderr, "--input")
    assert "must be a JSON object of the graph's state keys, got [1, 2]" in line
    code, out, err = cli("chaos", "--graph", "chaos_graphs:user_pipeline", "--input", '{"questoin": "x"}')
    one_error(code, out, err, "--input", "'questoin' not in the graph's input", "question")


def test_chaos_on_a_graph_without_injection_points_fails_saying_so() -> None:
    result = command("chaos", "--graph", "chaos_graphs:buggy_pipeline", "--input", '{"question": "q2"}', "--runs", "2")
    assert result.returncode == 1
    assert "faults injected" in result.stdout and "0 in 0 connector call(s)" in result.stdout
    assert result.stderr.splitlines()[-1].startswith("error: 0 faults were injected in 2 run(s)")
    assert "inject_faults" in result.stderr and "Traceback" not in result.stderr


# Ctrl-C, the console's port and host


def test_ctrl_c_during_the_imports_at_start_up_is_clean(inbox_db: Path) -> None:
    process = subprocess.Popen(
        [str(SCRIPT), "inbox", "list", "--db", str(inbox_db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "PYTHONVERBOSE": "1"},  # each import is a line on stderr: interrupt in the middle of them
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # SIGINT not ignored in the child
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("import 'langgraph"):  # the command's own modules are loading
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and out == ""  # interrupted before the command printed anything
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert [ln for ln in err.splitlines() if not ln.startswith(("#", "import "))] == ["reliable-graph: interrupted"]


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_console_port_in_use_is_one_line_naming_the_port(inbox_db: Path) -> None:
    with busy_port() as port:
        result = command(*CONSOLE[:1], "--db", str(inbox_db), *CONSOLE[3:], "--port", str(port), "--token", TOKEN)
    line = one_error(result.returncode, result.stdout, result.stderr, f"--port {port}: already in use on 127.0.0.1")
    assert "ERROR" not in result.stderr and "uvicorn" not in line


def test_console_on_a_network_address_warns(inbox_db: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(SCRIPT), *CONSOLE[:1], "--db", str(inbox_db), *CONSOLE[3:], "--host", "0.0.0.0", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "RELIABLE_GRAPH_CONSOLE_TOKEN": TOKEN},
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        served = process.stdout.readline()  # the console is up
        warning = process.stderr.readline()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert served.startswith(f"reliable-graph inbox console: http://0.0.0.0:{port}/?token=")
    assert warning.startswith("warning: --host 0.0.0.0: the console is reachable from the network")


def test_inbox_list_status_choices_are_the_inbox_statuses() -> None:
    """`--status` lists every status an item can have (this fails loudly when the inbox gains one)."""
    from typing import get_args

    from reliable_graph.cli.inbox import LIST_STATUSES
    from reliable_graph.escalation.inbox import Status

    assert set(LIST_STATUSES) - {"open", "all"} == set(get_args(Status))
