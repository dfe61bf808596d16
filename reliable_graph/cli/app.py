"""The `reliable-graph` command: `demo`, `report`, `calibrate`, `chaos`, `inbox`, `console`, with one-line errors."""

from __future__ import annotations

import shlex
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from reliable_graph.cli._common import PARSE_ERRORS, PROG, CliError, one_line
from reliable_graph.cli.calibrate import CALIBRATE_HELP, calibrate_command
from reliable_graph.cli.chaos import CHAOS_HELP, chaos_command
from reliable_graph.cli.demo import DEMO_HELP, demo_command
from reliable_graph.cli.inbox import console_command, inbox_app
from reliable_graph.cli.report import REPORT_HELP, report_command

__all__ = ["app", "main"]

INTERRUPTED = 130
"""The exit code after Ctrl-C (128 + SIGINT), as shells use."""


@dataclass
class _Session:
    """What one run of the command knows beyond its arguments (set by the global options)."""

    debug: bool = False


def _error(message: str, ctx: Any = None) -> None:
    """Print `error: MESSAGE` on one line; with the failing command's `ctx`, point to its --help."""
    command = getattr(ctx, "command_path", None)
    hint = f" (see '{command} --help')" if command else ""
    typer.echo(typer.style("error", fg="red", bold=True) + f": {one_line(message)}{hint}", err=True)


class _Group(TyperGroup):
    """The command group; its `main` turns every failure into one line on stderr and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        """Run the command; return its exit code (or exit with it when `standalone_mode`)."""
        code = self._run(list(sys.argv[1:] if args is None else args), prog_name or PROG, complete_var, extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args: list[str], prog_name: str, complete_var: str | None, extra: dict[str, Any]) -> int:
        session = _Session()
        try:
            result = super().main(
                args, prog_name, complete_var, standalone_mode=False, obj=session, **extra
            )  # returns the exit code of `typer.Exit`, 130 after Ctrl-C
        except CliError as exc:
            _error(exc.message, exc.ctx)
            return exc.exit_code
        except PARSE_ERRORS as exc:  # a bad command line, found by typer
            _error(exc.format_message(), getattr(exc, "ctx", None))  # type: ignore[attr-defined]
            code: int = exc.exit_code  # type: ignore[attr-defined]
            return code
        except (KeyboardInterrupt, typer.Abort):
            result = INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - the last resort: one line, the traceback on request
            if session.debug:
                traceback.print_exc()
            else:
                rerun = shlex.join([prog_name, "--debug", *args])
                _error(f"{type(exc).__name__}: {exc or '(no message)'}; rerun as '{rerun}' to see the traceback")
            return 1
        exit_code = result if isinstance(result, int) else 0
        if exit_code == INTERRUPTED:
            typer.echo(f"{prog_name}: interrupted", err=True)
        return exit_code


app = typer.Typer(
    cls=_Group,
    name=PROG,
    help=(
        "Context gates, confidence routing, retries and human escalation for LangGraph pipelines: "
        "run the demo, report reliability from checkpoints, calibrate a threshold."
    ),
    epilog="Exit codes: 0 success, 1 unexpected error, 2 bad input, 130 interrupted.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
"""The typer application; `main` runs it."""


def _show_version(value: bool) -> None:
    if value:
        try:
            number = version("reliable-graph")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            number = "unknown"
        typer.echo(f"{PROG} {number}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="RELIABLE_GRAPH_DEBUG",
            help="Show the full traceback of an unexpected error (put it before the command).",
        ),
    ] = False,
) -> None:
    if isinstance(ctx.obj, _Session):
        ctx.obj.debug = debug
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help(), nl=False)
        raise typer.Exit()


app.command("demo", help=DEMO_HELP, short_help="Run the research pipeline bare and with reliable-graph.")(demo_command)
app.command("report", help=REPORT_HELP, short_help="Per-step and end-to-end success read from a checkpoint database.")(
    report_command
)
app.command(
    "calibrate", help=CALIBRATE_HELP, short_help="Choose an evaluator's threshold on labelled held-out examples."
)(calibrate_command)
app.command("chaos", help=CHAOS_HELP, short_help="Run your graph under connector faults and random SIGKILLs.")(
    chaos_command
)
app.add_typer(inbox_app, name="inbox", short_help="The escalation inbox: list, show, claim, resolve, audit, sweep.")
app.command("console", short_help="Serve the web review console for the escalation inbox.")(console_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `reliable-graph` command with `argv` (default: the process's arguments); return the exit code.

    Errors are one line on stderr: 2 for bad input, 1 for an unexpected error (rerun with
    `--debug` for the traceback), 130 after Ctrl-C.

    Example:
        ```python
        import contextlib, io, json, tempfile
        from reliable_graph.cli import main

        buf = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(buf):
            assert main(["demo", "--runs", "2", "--json", "--db", f"{d}/demo.sqlite"]) == 0
        assert set(json.loads(buf.getvalue())) >= {"bare", "reliable"}
        assert main(["demo", "--runs", "0"]) == 2
        ```
    """
    command = typer.main.get_command(app)
    code: int = command.main(args=argv, prog_name=PROG, standalone_mode=False)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
