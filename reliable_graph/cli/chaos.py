"""`reliable-graph chaos`: run your graph N times under a fault profile, with random SIGKILLs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from reliable_graph.cli._common import (
    CliError,
    at_least,
    choice,
    echo,
    existing_parent,
    is_sqlite_file,
    progress,
    stdout_console,
    text,
    unit_interval,
)
from reliable_graph.resilience import FaultProfile, run_chaos
from reliable_graph.resilience.runner import REVIEWS

__all__ = ["CHAOS_HELP", "chaos_command"]

CHAOS_HELP = """Run a graph N times under a fault profile and report what was lost.

Wrap the connectors your graph calls with reliable_graph.inject_faults (a pass-through until a
profile is active), then point this command at the graph: module:attr naming a StateGraph, a
compiled graph or a function returning one. Each run is a thread on a real SQLite file. With
--kill-rate, the worker process is SIGKILLed at random points and each killed thread resumes in
a new process; completed steps that run again are counted. Profiles: none, scenario, flaky,
rate_limited, outage, drift (scaled by --fault-rate), a JSON object or a .json file.
Exits 1 when a run was lost (an unhandled exception, or never completed), or when the profile
has faults but none was injected (the graph calls no connector wrapped with inject_faults).
The input (--input, or --inputs for run 0) is checked against the graph before any run.
"""


def _db(value: str | None) -> str | None:
    """The --db callback: a new file, or a LangGraph checkpoint database (chaos adds its threads to it)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        msg = f"{path} is a directory"
        raise typer.BadParameter(msg)
    existing_parent(path)
    if path.exists() and path.stat().st_size > 0:
        if not is_sqlite_file(path):
            msg = f"{path} exists and is not a SQLite database: it is never overwritten, choose another --db path"
            raise typer.BadParameter(msg)
        if not _has_checkpoints(path):
            msg = (
                f"{path} is a SQLite database without LangGraph checkpoints: chaos writes its threads only into "
                "a checkpoint database or a new file; choose another --db path"
            )
            raise typer.BadParameter(msg)
    return value


def _has_checkpoints(path: Path) -> bool:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='checkpoints'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None


def _table(report: dict[str, Any]) -> None:
    console = stdout_console()
    profile = report["profile"]
    rate = sum(profile["faults"].values())
    injected, made = _injected(report)
    head = Table(
        title=f"{report['runs']} runs, {profile['client']} faults on {rate:.1%} of calls", title_justify="left"
    )
    head.add_column("")
    head.add_column("", justify="right")
    head.add_row("faults injected", f"{injected} in {made} connector call(s)")
    for label, key in (
        ("completed", "completed"),
        ("lost (unhandled or never completed)", "lost"),
        ("unhandled exceptions", "unhandled"),
        ("SIGKILLs that interrupted a run", "kills"),
        ("killed runs resumed and completed", "resumed"),
        ("completed steps re-executed after a kill", "steps_reexecuted"),
        ("scored attempts (logical model calls)", "logical_attempts"),
    ):
        head.add_row(label, str(report[key]))
    console.print(head)
    outcomes = Table(title="outcomes", title_justify="left")
    outcomes.add_column("of")
    outcomes.add_column("outcome")
    outcomes.add_column("count", justify="right")
    for outcome, n in report["outcomes"].items():
        outcomes.add_row("steps", outcome, str(n))
    for outcome, n in report["run_outcomes"].items():
        outcomes.add_row("runs", outcome, str(n))
    console.print(outcomes)
    calls = Table(title="connector calls and retries", title_justify="left")
    calls.add_column("connector / fault")
    calls.add_column("calls or faults", justify="right")
    calls.add_column("retries", justify="right")
    calls.add_column("waited (s)", justify="right")
    for name, c in report["connector_calls"].items():
        calls.add_row(name, str(c["calls"]), "", "")
        for fault, n in sorted(c["faults"].items()):
            calls.add_row(f"  {fault}", str(n), "", "")
    for fault, r in sorted(report["retries"].items()):
        calls.add_row(f"retried: {fault}", "", str(r["retries"]), f"{r['wait_s']:.2f}")
    console.print(calls)
    for error, info in report["errors"].items():
        echo(f"\nunhandled {error} in {info['count']} run(s); a sample traceback:\n{info['sample_traceback']}")
    for failure in report["worker_errors"]:
        echo(f"\na worker process failed:\n{failure}")


def chaos_command(
    graph: Annotated[
        str,
        typer.Option(
            "--graph",
            metavar="MODULE:ATTR",
            callback=text(),
            help="The graph: a StateGraph, compiled graph or factory.",
        ),
    ],
    runs: Annotated[int, typer.Option("--runs", callback=at_least(1), help="Runs (threads).")] = 100,
    profile: Annotated[
        str, typer.Option("--profile", callback=text(), help="A preset name, a JSON object or a .json file.")
    ] = "scenario",
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", metavar="RATE", callback=unit_interval, help="A preset's fault rate.")
    ] = 0.3,
    kill_rate: Annotated[
        float,
        typer.Option(
            "--kill-rate", metavar="RATE", callback=unit_interval, help="Share of runs SIGKILLed at a random point."
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the faults and the kill points.")] = 0,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH",
            callback=_db,
            help=(
                "SQLite checkpoint file (default: a temporary one), kept: a new file or a LangGraph checkpoint "
                "database, to which the runs' threads are added (nothing else is touched)."
            ),
        ),
    ] = None,
    input: Annotated[
        str | None, typer.Option("--input", metavar="JSON", help="The input of every run, as JSON.")
    ] = None,
    inputs: Annotated[
        str | None,
        typer.Option(
            "--inputs",
            metavar="MODULE:ATTR",
            callback=text(),
            help="A function run_index -> input (instead of --input).",
        ),
    ] = None,
    review: Annotated[
        str,
        typer.Option(
            "--review",
            callback=choice(*REVIEWS),
            help="none leaves escalations pending; approve or terminate answers them.",
        ),
    ] = "none",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the tables.")] = False,
) -> None:
    """Run `reliable-graph chaos` (typer passes the parsed options).

    Example:
        ```python
        import contextlib, io, json
        from reliable_graph.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["chaos", "--graph", "reliable_graph.demo:research_pipeline",
                         "--inputs", "reliable_graph.demo:research_input", "--runs", "2", "--json"])
        report = json.loads(out.getvalue())
        assert code == 0 and report["runs"] == 2 and report["lost"] == 0
        ```
    """
    if input is not None and inputs is not None:
        raise CliError("give --input or --inputs, not both")
    if input is None and inputs is None:
        raise CliError("give the runs' input: --input JSON, or --inputs module:attr (a function run_index -> input)")
    value: Any = None
    if input is not None:
        try:
            value = json.loads(input)
        except json.JSONDecodeError as exc:
            raise CliError(f"--input is not valid JSON: {exc.msg} (column {exc.colno})") from None
    try:
        fault_profile = FaultProfile.parse(profile, rate=fault_rate)
    except (ValueError, TypeError, OSError) as exc:
        raise CliError(f"--profile: {exc}") from None
    with progress() as bar:
        task = bar.add_task(f"{runs} run(s) under chaos", total=runs)
        bar.update(task, description="checking the graph and the input")
        try:
            report = run_chaos(
                graph,
                runs=runs,
                profile=fault_profile,
                seed=seed,
                kill_rate=kill_rate,
                db=None if db is None else Path(db),
                input=value,
                inputs=inputs,
                review=review,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if as_json:
        echo(json.dumps(report))
    else:
        _table(report)
    if report["lost"]:
        raise typer.Exit(1)
    nothing = _nothing_injected(report)
    if nothing:
        typer.echo(typer.style("error", fg="red", bold=True) + f": {nothing}", err=True)
        raise typer.Exit(1)


def _injected(report: dict[str, Any]) -> tuple[int, int]:
    """Faults injected and calls made, over every fault-injected connector."""
    calls = report["connector_calls"].values()
    return sum(sum(c["faults"].values()) for c in calls), sum(c["calls"] for c in calls)


def _nothing_injected(report: dict[str, Any]) -> str | None:
    """Why the run tested nothing, when the profile has faults but none was injected."""
    if sum(report["profile"]["faults"].values()) <= 0:
        return None  # no faults asked for (e.g. --profile none with --kill-rate)
    faults, calls = _injected(report)
    if faults:
        return None
    if not calls:
        return (
            f"0 faults were injected in {report['runs']} run(s): the graph called no connector wrapped with "
            "reliable_graph.inject_faults, so nothing was tested (see 'reliable-graph chaos --help')"
        )
    return f"0 faults were injected in {calls} connector call(s): nothing was tested; raise --runs or --fault-rate"
