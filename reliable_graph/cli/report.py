"""`reliable-graph report --db PATH|URL` or `--url http://...`: the reliability report of a checkpoint database.

The database is SQLite or Postgres; `--url` reads a LangGraph Server deployment's threads instead.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import typer
from langgraph.checkpoint.sqlite import SqliteSaver
from rich.table import Table

from reliable_graph import EscalationInbox
from reliable_graph.cli._common import CliError, at_least, echo, existing_parent, redact, stdout_console, text
from reliable_graph.cli._server import UrlOption, exclusive, server_inbox, server_threads
from reliable_graph.report import PASS_K_MAX, Report, chart_path, reliability_report, write_chart

__all__ = ["report_command"]

REPORT_HELP = (
    "Read the latest checkpoint of every thread of a SQLite or Postgres checkpoint database (--db), or "
    "every thread of a LangGraph Server deployment (--url), and print per-step outcome counts, per-step "
    "success, observed end-to-end success and the success predicted by multiplying per-step rates. "
    "Silent failures cannot be seen in checkpoints. Nothing is written."
)
"""The help text of `reliable-graph report`."""

_PASS_K_LIMIT = 16
"""The largest --pass-k."""
_OUTCOMES = ("pass", "retry_pass", "escalate", "approved", "edited", "terminated")
_POSTGRES = ("postgresql://", "postgres://")
_INSTALL_POSTGRES = 'install the postgres extra: pip install "reliable-graph[postgres]"'


def _is_postgres(db: str) -> bool:
    return db.startswith(_POSTGRES)


def _check_db(value: str | None) -> str | None:
    """The --db callback: a Postgres URL, or an existing file (or None: --url instead)."""
    if value is None or _is_postgres(value):
        return value
    path = Path(value)
    if not path.exists():
        msg = f"no such file: {path}; run 'reliable-graph demo' first, or pass a checkpoint file or a postgresql:// URL"
        raise typer.BadParameter(msg)
    if not path.is_file():
        msg = f"{path} is not a file"
        raise typer.BadParameter(msg)
    return value


def _check_chart(value: str | None) -> str | None:
    """The --chart callback: a directory, or an image file in an existing, writable directory."""
    if value is None:
        return None
    if not value.strip():
        msg = "must not be blank"
        raise typer.BadParameter(msg)
    target = chart_path(value)
    existing_parent(target)
    if target.is_dir():
        msg = f"{target} is a directory"
        raise typer.BadParameter(msg)
    return value


def _chart_target(chart: str, force: bool) -> Path:
    """The file --chart writes, refused when it exists and --force was not given."""
    target = chart_path(chart)
    if target.exists() and not force:
        msg = f"--chart {chart}: {target} exists: it is never overwritten without --force"
        raise CliError(msg)
    return target


def _audits_sqlite(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """The inbox's audit labels kept in the same file, if the inbox was used there."""
    if (
        conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='reliable_graph_inbox'").fetchone()
        is None
    ):
        return {}
    from langgraph.store.sqlite import SqliteStore

    return EscalationInbox(SqliteStore(conn)).audit_labels()


def _read_sqlite(path: Path, steps: int | None, task_key: str | None = None) -> Report:
    def bad(why: str) -> CliError:
        return CliError(f"--db {path}: {why}")

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise bad(f"cannot open: {exc}") from exc
    try:
        table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='checkpoints'").fetchone()
        if table is None:
            raise bad("not a LangGraph SQLite checkpoint database (no 'checkpoints' table)")
        return reliability_report(
            SqliteSaver(conn), expected_steps=steps, source=str(path), task_key=task_key, audits=_audits_sqlite(conn)
        )
    except sqlite3.DatabaseError as exc:
        raise bad(f"not a SQLite database ({exc})") from exc
    finally:
        conn.close()


def _read_postgres(url: str, steps: int | None, task_key: str | None = None) -> Report:
    shown = redact(url)
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
    except ImportError as exc:
        msg = f"--db {shown}: reading Postgres needs langgraph-checkpoint-postgres: {_INSTALL_POSTGRES}"
        raise CliError(msg) from exc
    try:
        with PostgresSaver.from_conn_string(url) as saver:
            audits: dict[str, dict[str, int]] = {}
            with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:  # the inbox's audit labels
                row = conn.execute("SELECT to_regclass('reliable_graph_inbox') IS NOT NULL AS present").fetchone()
                if row and row["present"]:
                    from langgraph.store.postgres import PostgresStore

                    audits = EscalationInbox(PostgresStore(conn)).audit_labels()
            return reliability_report(saver, expected_steps=steps, source=shown, task_key=task_key, audits=audits)
    except psycopg.errors.UndefinedTable as exc:
        msg = f"--db {shown}: not a LangGraph checkpoint database (no 'checkpoints' table)"
        raise CliError(msg) from exc
    except psycopg.OperationalError as exc:
        raise CliError(f"--db {shown}: cannot connect: {exc}") from exc
    except psycopg.Error as exc:
        raise CliError(f"--db {shown}: {type(exc).__name__}: {exc}") from exc


def _read_server(url: str, steps: int | None, task_key: str | None = None) -> Report:
    """The report of every thread of the deployment at `url`, with the audit labels of its inbox."""
    with server_inbox(url) as inbox:
        audits = inbox.audit_labels()
    threads = server_threads(url)
    return reliability_report(threads, expected_steps=steps, source=redact(url), task_key=task_key, audits=audits)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _steps_table(report: Report) -> Table:
    seen = {o for s in report.steps for o in s.outcomes}
    outcomes = [*_OUTCOMES, *sorted(seen - set(_OUTCOMES))]
    decisions = any(s.decisions for s in report.steps)
    table = Table(title=f"reliability report: {report.source or 'checkpointer'}", title_justify="left")
    table.add_column("step", no_wrap=True)
    for name in (*outcomes, "finished", "unfinished", "attempts", "success"):
        table.add_column(name, justify="right", no_wrap=True)
    if decisions:
        table.add_column("review decisions")
    for s in report.steps:
        cells = [str(s.outcomes.get(o, 0)) for o in outcomes]
        row = [s.name, *cells, str(s.finished), str(s.unfinished), str(s.attempts), _pct(s.success_rate)]
        if decisions:
            row.append(", ".join(f"{k} {v}" for k, v in sorted(s.decisions.items())))
        table.add_row(*row)
    return table


def _summary_table(report: Report, data: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_row("threads with a reliable-graph record", str(report.threads))
    for status, count in data["statuses"].items():
        table.add_row(f"  {status}", str(count))
    table.add_row("threads without one (plain LangGraph, ignored)", str(report.other_threads))
    table.add_row("observed end-to-end success (completed without escalation)", _pct(report.observed_e2e_success))
    table.add_row("  of which without any human decision", _pct(report.success_without_human))
    table.add_row("  after a reviewer decided a step", _pct(report.success_after_review))
    table.add_row("predicted by multiplying per-step rates", _pct(report.predicted_e2e_success))
    table.add_row("per-step rate (geometric mean)", _pct(report.per_step_rate))
    table.add_row("escalated (pending review)", _pct(report.escalated))
    table.add_row("threads with a retry_pass", _pct(report.retry_pass))
    return table


def _print(report: Report, task_key: str | None, pass_k_max: int | None) -> None:
    data = report.to_dict(pass_k_max=pass_k_max)
    console = stdout_console()
    console.print(_steps_table(report))
    echo()
    console.print(_summary_table(report, data))
    echo()
    estimates = report.silent_failures()
    if estimates:
        table = Table(title="silent failures estimated from audits (passed while wrong)", title_justify="left")
        for name in ("step", "estimate", "95% interval", "audits labelled", "labelled wrong"):
            table.add_column(name, justify="left" if name == "step" else "right", no_wrap=True)
        for name, est in estimates.items():
            label = name or "per run (wrong outputs passed)"
            table.add_row(
                label, f"{est.rate:.2%}", f"[{est.low:.2%}, {est.high:.2%}]", str(est.labelled), str(est.wrong)
            )
        console.print(table)
    else:
        echo("silent failures (wrong outputs that passed every check) cannot be seen in checkpoints;")
        echo(
            "they are inside the observed success: give the steps audit_rate=... and label the audits to estimate them."
        )
    if task_key is not None:
        pass_k = report.pass_k(pass_k_max)
        if pass_k is None:
            echo(
                f"pass^k: no task ran twice (--task-key {task_key} gave {len(report.task_runs)} task(s), one run each)"
            )
        else:
            echo(pass_k.describe())
        if report.without_task_key:
            echo(f"note: {report.without_task_key} thread(s) without {task_key!r} in their state are not in pass^k.")
    if report.other_threads:
        echo(f"note: {report.other_threads} thread(s) without a reliable-graph record (plain LangGraph) were ignored.")


def report_command(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH|URL",
            callback=_check_db,
            help="The SQLite checkpoint file, or a postgresql:// URL (needs the postgres extra); only read.",
        ),
    ] = None,
    url: UrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    chart: Annotated[
        str | None,
        typer.Option(
            "--chart",
            metavar="FILE.png",
            callback=_check_chart,
            help=(
                "Also write the compounding chart (needs the chart extra): a file (.png, .svg, .pdf), or a "
                "directory to write reliability.png in. An existing file is never overwritten without --force."
            ),
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Let --chart overwrite an existing file.")] = False,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps", callback=at_least(1), help="Expected steps per run: threads with fewer are incomplete."
        ),
    ] = None,
    task_key: Annotated[
        str | None,
        typer.Option(
            "--task-key",
            metavar="KEY",
            callback=text(),
            help=(
                "A state key naming each thread's task: repeated runs of a task give pass^k, on the tasks run "
                f"at least --pass-k times (default: the tasks run at least twice, k up to their fewest runs, "
                f"at most {PASS_K_MAX})."
            ),
        ),
    ] = None,
    pass_k_max: Annotated[
        int | None,
        typer.Option(
            "--pass-k",
            metavar="K",
            callback=at_least(1, _PASS_K_LIMIT),
            help=f"With --task-key: pass^k for k = 1 to K (1 to {_PASS_K_LIMIT}), on the tasks run at least K times.",
        ),
    ] = None,
) -> None:
    """Run `reliable-graph report` (typer passes the parsed options).

    Example:
        ```python
        import contextlib, io, json, tempfile
        from pathlib import Path
        from reliable_graph.cli import main
        from reliable_graph.demo import run_demo

        out = io.StringIO()
        with tempfile.TemporaryDirectory() as d:
            run_demo(runs=3, db=Path(d) / "demo.sqlite", as_json=True, out=io.StringIO())
            with contextlib.redirect_stdout(out):
                assert main(["report", "--db", f"{d}/demo.sqlite", "--json"]) == 0
        data = json.loads(out.getvalue())
        assert data["threads"] == 3 and data["other_threads"] == 3
        ```
    """
    exclusive(db, url)
    if pass_k_max is not None and task_key is None:
        raise CliError("--pass-k needs --task-key KEY (which state key names a thread's task)")
    target = _chart_target(chart, force) if chart is not None else None
    try:
        if url is not None:
            report = _read_server(url, steps, task_key)
        elif _is_postgres(str(db)):
            report = _read_postgres(str(db), steps, task_key)
        else:
            report = _read_sqlite(Path(str(db)), steps, task_key)
    except ValueError as exc:  # the only one reliability_report raises here: a task key no thread has
        if task_key is None:
            raise
        raise CliError(f"--task-key {task_key}: {exc}") from None
    if report.threads == 0:
        others = f" ({report.other_threads} thread(s) without one)" if report.other_threads else ""
        flag = "--url" if url is not None else "--db"
        msg = f"{flag} {report.source}: no thread with a reliable-graph record{others}: nothing to report"
        raise CliError(msg)
    try:
        report.pass_k(pass_k_max)
    except ValueError as exc:
        raise CliError(f"--pass-k {pass_k_max}: {exc}") from None
    if target is not None:
        try:
            written = write_chart(report, target)
        except (ImportError, ValueError, OSError) as exc:
            raise CliError(f"--chart {chart}: {exc}") from exc
        if not as_json:
            typer.echo(f"chart written to {written}", err=True)
    if as_json:
        echo(json.dumps(report.to_dict(pass_k_max=pass_k_max)))
    else:
        _print(report, task_key, pass_k_max)
