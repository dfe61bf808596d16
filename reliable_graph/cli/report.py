"""`reliable-graph report --db PATH`: the reliability report of a SQLite checkpoint database."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from reliable_graph.report import format_report, reliability_report, write_chart

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `report` subcommand to `subparsers` (from `ArgumentParser.add_subparsers`).

    Example:
        ```python
        import argparse
        from reliable_graph.cli.report import add_parser

        parser = argparse.ArgumentParser(prog="reliable-graph")
        add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["report", "--db", "x.sqlite", "--json"])
        assert args.db == "x.sqlite" and args.json and args.func.__name__ == "run"
        ```
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="per-step and end-to-end success read from a SQLite checkpoint database",
        description=(
            "Read the latest checkpoint of every thread of a SQLite checkpoint database and print "
            "per-step outcome counts, per-step success, observed end-to-end success and the success "
            "predicted by multiplying per-step rates. Silent failures cannot be seen in checkpoints."
        ),
    )
    parser.add_argument("--db", required=True, help="the SQLite checkpoint file (read; no checkpoint is written)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--chart", metavar="FILE.png", help="also write the compounding chart (needs matplotlib)")
    parser.add_argument(
        "--steps", type=int, default=None, help="expected steps per run: threads with fewer are incomplete"
    )
    parser.set_defaults(func=run)
    return parser


def _error(message: str) -> int:
    print(f"reliable-graph report: {message}", file=sys.stderr)
    return 2


def _has_checkpoints_table(path: Path) -> bool:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='checkpoints'").fetchone()
    finally:
        conn.close()
    return row is not None


def run(args: argparse.Namespace) -> int:
    """Run `reliable-graph report` with parsed `args`; 0 on success, 2 on a usage problem.

    Example:
        ```python
        import argparse, contextlib, io
        from reliable_graph.cli.report import run

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = run(argparse.Namespace(db="/nonexistent/demo.sqlite", json=False, chart=None, steps=None))
        assert code == 2 and "no such file" in err.getvalue()
        ```
    """
    path = Path(args.db)
    if not path.is_file():
        return _error(f"no such file: {path} (run `reliable-graph demo` first, or pass --db PATH)")
    try:
        if not _has_checkpoints_table(path):
            return _error(f"{path} is not a LangGraph SQLite checkpoint database (no 'checkpoints' table)")
        conn = sqlite3.connect(str(path), check_same_thread=False)
        try:
            report = reliability_report(SqliteSaver(conn), expected_steps=args.steps, source=str(path))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return _error(f"cannot read {path} as SQLite: {exc}")
    if report.threads == 0:
        others = f" ({report.other_threads} thread(s) without one)" if report.other_threads else ""
        return _error(f"{path} has no thread with a reliable-graph record{others}: nothing to report")
    if args.chart:
        try:
            written = write_chart(report, args.chart)
        except (ImportError, ValueError) as exc:
            return _error(str(exc))
        if not args.json:
            print(f"chart written to {written}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(format_report(report))
    return 0
