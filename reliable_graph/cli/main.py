"""The `reliable-graph` command: `demo` (and the other subcommands)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reliable_graph.cli import calibrate, report
from reliable_graph.demo import ScenarioParams, run_demo, run_model_demo

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    params = ScenarioParams(steps=args.steps, fault_rate=args.fault_rate)
    if args.model:
        return run_model_demo(args.model, runs=args.runs, db=Path(args.db), params=params)
    run_demo(runs=args.runs, seed=args.seed, db=Path(args.db), params=params, as_json=args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `reliable-graph` command."""
    parser = argparse.ArgumentParser(prog="reliable-graph", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the 10-step research pipeline bare and with reliable-graph")
    demo.add_argument("--runs", type=int, default=200, help="runs per mode (default 200)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the simulated world (default 7)")
    demo.add_argument("--db", default="reliable_graph_demo.sqlite", help="SQLite checkpoint file (recreated)")
    demo.add_argument("--steps", type=int, default=10, help="steps per run (default 10)")
    demo.add_argument("--fault-rate", type=float, default=0.0, help="connector fault rate f (default 0)")
    demo.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    demo.add_argument("--model", help="provider:model for a real chat model through init_chat_model")
    demo.set_defaults(func=_demo)
    calibrate.add_parser(sub)
    sub.choices["calibrate"].set_defaults(func=calibrate.run)
    report.add_parser(sub)
    sub.choices["report"].set_defaults(func=report.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `reliable-graph` command.

    Example:
        ```python
        import contextlib, io, json, tempfile
        from reliable_graph.cli import main

        buf = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(buf):
            assert main(["demo", "--runs", "2", "--json", "--db", f"{d}/demo.sqlite"]) == 0
        assert set(json.loads(buf.getvalue())) >= {"bare", "reliable"}
        ```
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "runs", 1) < 1:
        print("reliable-graph: --runs must be at least 1", file=sys.stderr)
        return 2
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
