from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from inbox_app import sqlite_app

from reliable_graph.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def make_db(path: Path, questions: list[str]) -> None:
    with sqlite_app(path) as (graph, _):
        for q in questions:
            graph.invoke({"question": q}, {"configurable": {"thread_id": q}})


def test_cli_inbox_a_reviewers_day(tmp_path: Path) -> None:
    db = str(tmp_path / "app.sqlite")
    make_db(tmp_path / "app.sqlite", ["refunds", "warranty"])
    code, out, _ = run("inbox", "list", "--db", db, "--json")
    assert code == 0
    queue = json.loads(out)
    assert [row["thread"] for row in queue] == ["refunds", "warranty"]
    first = queue[0]["id"]
    code, out, _ = run("inbox", "list", "--db", db)
    assert code == 0 and "refunds" in out and "a human must sign it off" in out
    code, out, _ = run("inbox", "show", first, "--db", db, "--json")
    assert json.loads(out)["escalation"]["inputs"] == {"question": "refunds"}
    assert run("inbox", "claim", first, "--db", db, "--reviewer", "ana")[0] == 0
    code, _, err = run("inbox", "claim", first, "--db", db, "--reviewer", "bo")
    assert code == 2 and "ana" in err and "Traceback" not in err
    code, out, err = run(
        "inbox",
        "resolve",
        first,
        "--db",
        db,
        "--graph",
        "inbox_app:builder",
        "--action",
        "edit",
        "--output",
        "signed",
        "--reviewer",
        "ana",
    )
    assert code == 0, err
    code, _, err = run("inbox", "resolve", first, "--db", db, "--graph", "inbox_app:builder", "--reviewer", "bo")
    assert code == 2 and "already resolved by ana" in err
    code, out, _ = run("inbox", "audit", first, "--db", db, "--json")
    assert [e["event"] for e in json.loads(out)] == ["index", "claim", "resolve"]
    with sqlite_app(tmp_path / "app.sqlite") as (graph, _):
        assert graph.get_state({"configurable": {"thread_id": "refunds"}}).values["output"] == "signed"


def test_cli_inbox_errors_are_one_line(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    for argv, needle in (
        (["inbox", "list", "--db", str(tmp_path / "missing.sqlite")], "no such database file"),
        (["inbox", "list", "--db", str(notes)], "not a SQLite database"),
        (["inbox", "list", "--db", str(notes), "--graph", "nocolon"], "module:attr"),
        (["inbox", "list", "--db", str(notes), "--sort", "newest"], "--sort"),
    ):
        code, _, err = run(*argv)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    db = tmp_path / "app.sqlite"
    make_db(db, ["q"])
    code, out, _ = run("inbox", "list", "--db", str(db), "--json")
    escalation = json.loads(out)[0]["id"]
    code, _, err = run("inbox", "resolve", escalation, "--db", str(db))
    assert code == 2 and "--graph" in err
    graph = ["--graph", "inbox_app:builder"]
    code, _, err = run("inbox", "resolve", escalation, "--db", str(db), *graph, "--action", "edit")
    assert code == 2 and "output" in err


def test_cli_inbox_tables_show_agent_text_as_is(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite"
    make_db(db, ["[bold]markup[/bold] and [policy 7.1]"])
    code, out, _ = run("inbox", "list", "--db", str(db))
    assert code == 0 and "[bold]markup[/bold] and [policy 7.1]" in out.replace("\n", "")


def test_cli_inbox_on_the_example_app(tmp_path: Path) -> None:
    import runpy

    root = Path(__file__).resolve().parents[1]
    db = str(tmp_path / "desk.sqlite")
    runpy.run_path(str(root / "examples" / "inbox.py"), run_name="example").get("main")(db)
    code, out, _ = run("inbox", "list", "--db", db, "--json")
    queue = json.loads(out)
    assert code == 0 and sorted(row["thread"] for row in queue) == ["bitcoin", "shipping to Mars", "warranty"]
    import os

    cwd = os.getcwd()
    os.chdir(root)  # --graph examples.inbox:builder, as the README runs it from the repository
    try:
        code, _, err = run(
            "inbox",
            "resolve",
            queue[0]["id"],
            "--db",
            db,
            "--graph",
            "examples.inbox:builder",
            "--action",
            "edit",
            "--output",
            '"Covered for 2 years [policy 7.1]."',
            "--reviewer",
            "ana",
        )
    finally:
        os.chdir(cwd)
    assert code == 0, err
    assert [r["thread"] for r in json.loads(run("inbox", "list", "--db", db, "--json")[1])] == [
        row["thread"] for row in queue[1:]
    ]


def test_cli_a_newcomers_journey_demo_then_inbox_then_report(tmp_path: Path) -> None:
    """`demo` names its escalations and the next commands; those commands find them, as printed."""
    db = str(tmp_path / "demo.sqlite")
    code, out, _ = run("demo", "--runs", "60", "--db", db)
    assert code == 0 and "wait in the review inbox" in out
    assert f"reliable-graph inbox list --db {db}" in out
    assert f"reliable-graph console --db {db} --graph reliable_graph.demo:demo_graph" in out
    code, out, _ = run("inbox", "list", "--db", db, "--json")
    waiting = json.loads(out)
    assert code == 0 and waiting and all(row["step"].startswith("step_") for row in waiting)
    first = waiting[0]["id"]
    code, out, err = run(
        "inbox",
        "resolve",
        first,
        "--db",
        db,
        "--graph",
        "reliable_graph.demo:demo_graph",
        "--action",
        "approve",
        "--reviewer",
        "ana",
    )
    assert code == 0, err
    code, out, _ = run("inbox", "list", "--db", db, "--json")
    assert [row["id"] for row in json.loads(out)] == [row["id"] for row in waiting[1:]]
    code, out, _ = run("report", "--db", db, "--json")
    assert code == 0 and json.loads(out)["statuses"]["escalated"] == len(waiting) - 1
