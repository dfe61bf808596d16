"""`reliable-graph demo`: the research pipeline bare and with reliable-graph, or on a real chat model."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from reliable_graph.cli._common import (
    CliError,
    at_least,
    echo,
    existing_parent,
    first_line,
    is_sqlite_file,
    progress,
    stdout_console,
    text,
    unit_interval,
)
from reliable_graph.demo import ScenarioParams, calibrated_thresholds, run_demo, run_model_demo

__all__ = ["demo_command"]

DEMO_HELP = (
    "Run the 10-step research pipeline of the simulated world N times bare (plain LangGraph) and N times "
    "with reliable-graph, on a SQLite checkpoint file; print a table of end-to-end outcomes, then resume "
    "one pending escalation with a reviewer's decision.\n\n"
    "With --model PROVIDER:MODEL the steps are written and judged by a real chat model instead "
    "(needs the models extra and the provider's API key)."
)
"""The help text of `reliable-graph demo`."""

_MODES = {"bare": "bare LangGraph", "reliable": "reliable-graph"}
_ROWS = (
    ("e2e_success", "end-to-end success", "{:.1%}"),
    ("retry_pass", "runs with a retry_pass", "{:.1%}"),
    ("escalated", "escalated", "{:.1%}"),
    ("silent_failure", "silent failures", "{:.1%}"),
    ("failed", "lost to an exception", "{:.1%}"),
    ("model_calls_per_run", "model calls / run", "{:.2f}"),
    ("judge_calls_per_run", "judge calls / run", "{:.2f}"),
    ("retrieval_calls_per_run", "retrieval calls / run", "{:.2f}"),
)
_ENV_VAR = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_(?:API_KEY|KEY|TOKEN)\b")
_INSTALL_MODELS = 'install the models extra: pip install "reliable-graph[models]"'


DEMO_APPLICATION_ID = int.from_bytes(b"rgDm", "big")
"""The SQLite `application_id` the demo writes into its checkpoint file: the mark of a file it may recreate."""

MAX_STEPS = 20
"""The longest pipeline `--steps` allows (the scenario's sizes are 10 and 20; calibration grows with the steps)."""


def _application_id(path: Path) -> int | None:
    """The `application_id` in the header of the SQLite file `path` (None when unreadable)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("PRAGMA application_id").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return int(row[0]) if row else None


def _mark(path: Path) -> None:
    """Mark the demo's checkpoint file as the demo's own, so a later run may recreate it."""
    if not is_sqlite_file(path) and not (path.is_file() and path.stat().st_size == 0):
        return
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        conn.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def _marked(path: Path) -> Iterator[None]:
    """Mark `path` as the demo's own however the run ends (done, failed or interrupted)."""
    try:
        yield
    finally:
        _mark(path)


def _check_db(value: str) -> str:
    """The --db callback: a new file, or a SQLite file an earlier demo run created (the only kind it recreates)."""
    path = Path(value)
    if path.is_dir():
        msg = f"{path} is a directory"
        raise typer.BadParameter(msg)
    existing_parent(path)
    if path.exists():
        if not is_sqlite_file(path):
            msg = f"{path} exists and is not a SQLite database: it is never overwritten, choose another --db path"
            raise typer.BadParameter(msg)
        if _application_id(path) != DEMO_APPLICATION_ID:
            msg = (
                f"{path} is a SQLite database reliable-graph demo did not create: it is never overwritten; "
                "choose another --db path (or delete the file yourself, e.g. one an older demo wrote)"
            )
            raise typer.BadParameter(msg)
    else:
        for companion in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            if companion.exists():
                msg = f"{companion} exists without its database {path}: remove it or choose another --db path"
                raise typer.BadParameter(msg)
    return value


class _RunProgress:
    """Moves one rich bar per mode as `run_demo` reports each finished run."""

    def __init__(self, bar: Progress, runs: int, db: Path) -> None:
        self._bar = bar
        self._db: Path | None = db  # marked as the demo's own after the first run
        self._tasks: dict[str, TaskID] = {
            mode: bar.add_task(label, total=runs, start=False) for mode, label in _MODES.items()
        }

    def __call__(self, mode: str, done: int, total: int) -> None:
        if self._db is not None:
            _mark(self._db)
            self._db = None
        task = self._tasks.get(mode)
        if task is None:
            task = self._tasks[mode] = self._bar.add_task(mode, total=total)
        self._bar.start_task(task)
        self._bar.update(task, completed=done, total=total)


class _Transcript(io.StringIO):
    """What `run_demo` prints, write by write, so the command can print a rich table in place of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def write(self, s: str) -> int:
        self.chunks.append(s)
        return len(s)

    def after_table(self) -> str:
        """Everything printed after the table: the escalation shown and resumed, if any."""
        for i, chunk in enumerate(self.chunks):
            if chunk.lstrip().startswith(_MODES["bare"]):
                return "".join(self.chunks[i + 1 :])
        return ""


def _table(report: dict[str, Any], runs: int, seed: int) -> Table:
    modes = [m for m, v in report.items() if isinstance(v, dict) and "e2e_success" in v]
    table = Table(title=f"{runs} runs per mode, seed {seed}", title_justify="left")
    table.add_column("")
    for mode in modes:
        table.add_column(_MODES.get(mode, mode), justify="right")
    for key, label, fmt in _ROWS:
        table.add_row(label, *(fmt.format(report[mode][key]) for mode in modes))
    return table


def _simulated(*, runs: int, seed: int, db: str, params: ScenarioParams, as_json: bool, replacing: bool) -> None:
    with progress() as bar:
        bar.add_task("calibrating the thresholds on held-out runs 100000-104999", total=None)
        thresholds, how = calibrated_thresholds(params, seed)
    if not as_json:
        echo(f"scenario: {json.dumps(params.describe())}")
        shown = ", ".join(f"{k}={v}" for k, v in asdict(thresholds).items())
        echo(f"thresholds, calibrated before the run on held-out runs {how['calibration_runs']}: {shown}")
        echo(f"  judge: {how['judge_target']} (bound {how['judge_bound']:.4f}); gate: {how['gate_target']}")
        again = ", replacing the one an earlier demo run wrote" if replacing else ""
        echo(f"checkpoints: SQLite file {db} (durability='sync'){again}")
    transcript = _Transcript()
    with progress() as bar, _marked(Path(db)):
        report = run_demo(
            runs=runs,
            seed=seed,
            db=Path(db),
            params=params,
            thresholds=None,  # calibrated (the same thresholds as above: the calibration is cached)
            as_json=False,  # the progress lines come only with the table; the JSON is printed below
            show_escalation=not as_json,
            out=transcript,
            on_progress=_RunProgress(bar, runs, Path(db)),
        )
    if as_json:
        echo(json.dumps(report))
        return
    echo()
    stdout_console().print(_table(report, runs, seed))
    echo(transcript.after_table(), nl=False)


def _missing_key(model: str, exc: BaseException) -> CliError | None:
    """A one-line error naming the environment variable a provider's error message names, if any."""
    match = _ENV_VAR.search(str(exc))
    if match is None:
        return None
    name = match.group(0)
    if name in os.environ:
        return CliError(f"--model {model}: the provider rejected {name}: {type(exc).__name__}: {first_line(exc)}")
    return CliError(f"--model {model}: set the {name} environment variable (the provider needs an API key)")


def _chat_model(model: str) -> Any:
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        msg = f"--model needs langchain, which cannot be imported: {_INSTALL_MODELS}"
        raise CliError(msg) from exc
    try:
        return init_chat_model(model)
    except Exception as exc:
        error = _missing_key(model, exc)
        if error is not None:
            raise error from exc
        if isinstance(exc, ImportError):  # the provider's integration package
            raise CliError(f"--model {model}: {first_line(exc).replace('`', '')}") from exc
        if isinstance(exc, ValueError):
            providers = next((ln for ln in str(exc).splitlines() if ln.startswith("Supported providers:")), "")
            hint = f" ({providers.rstrip('.')})" if providers else ""
            msg = f"--model {model}: {first_line(exc)}{hint}"
            if "infer model provider" in str(exc):
                msg = f"--model {model}: unknown provider: give PROVIDER:MODEL, e.g. openai:gpt-4o-mini{hint}"
            raise CliError(msg) from exc
        raise


def _model(*, model: str, runs: int, db: str, params: ScenarioParams) -> None:
    chat = _chat_model(model)
    out = io.StringIO()
    with progress() as bar, _marked(Path(db)):
        bar.add_task(f"{runs} run(s) on {model}", total=None)
        try:
            run_model_demo(chat, runs=runs, db=Path(db), params=params, out=out)
        except Exception as exc:
            error = _missing_key(model, exc)
            if error is None:
                raise
            raise error from exc
    try:
        outcomes: dict[str, int] = json.loads(out.getvalue())["step_outcomes"]
    except (ValueError, KeyError, TypeError):  # pragma: no cover - run_model_demo prints one JSON object
        echo(out.getvalue(), nl=False)
        return
    total = sum(outcomes.values()) or 1
    table = Table(title=f"step outcomes, {runs} run(s) on {model}", title_justify="left")
    table.add_column("outcome")
    table.add_column("steps", justify="right")
    table.add_column("share", justify="right")
    for outcome, count in outcomes.items():
        table.add_row(outcome, str(count), f"{count / total:.1%}")
    stdout_console().print(table)


def demo_command(
    ctx: typer.Context,
    runs: Annotated[int, typer.Option("--runs", callback=at_least(1), help="Runs per mode.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated world.")] = 7,
    db: Annotated[
        str,
        typer.Option(
            "--db",
            metavar="PATH",
            callback=_check_db,
            help=(
                "SQLite checkpoint file, written anew. An existing file is replaced only when an earlier "
                "reliable-graph demo created it (the demo marks its files); any other file is refused, never touched."
            ),
        ),
    ] = "reliable_graph_demo.sqlite",
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            callback=at_least(1, MAX_STEPS),
            help=f"Steps per run, 1 to {MAX_STEPS} (calibrating the thresholds takes longer the more steps).",
        ),
    ] = 10,
    fault_rate: Annotated[
        float,
        typer.Option(
            "--fault-rate",
            metavar="RATE",
            callback=unit_interval,
            help="Connector fault rate: the share of model and retrieval calls that fail, in [0, 1].",
        ),
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="PROVIDER:MODEL",
            callback=text(),
            help="A real chat model for langchain's init_chat_model, e.g. openai:gpt-4o-mini; not with --seed, --json.",
        ),
    ] = None,
) -> None:
    """Run `reliable-graph demo` (typer passes the parsed options).

    Example:
        ```python
        import contextlib, io, tempfile
        from reliable_graph.cli import main

        out = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(out):
            assert main(["demo", "--runs", "3", "--steps", "2", "--db", f"{d}/demo.sqlite"]) == 0
        assert "end-to-end success" in out.getvalue() and "reliable-graph" in out.getvalue()
        ```
    """
    params = ScenarioParams(steps=steps, fault_rate=fault_rate)
    if model is None:
        _simulated(runs=runs, seed=seed, db=db, params=params, as_json=as_json, replacing=Path(db).exists())
        return
    if getattr(ctx.get_parameter_source("seed"), "name", "DEFAULT") != "DEFAULT":
        msg = "--model cannot be combined with --seed: --seed seeds the simulated world, a real model is not seeded"
        raise CliError(msg, ctx=ctx)
    if as_json:
        msg = "--model cannot be combined with --json: the model demo prints step outcomes, not the simulated figures"
        raise CliError(msg, ctx=ctx)
    _model(model=model, runs=runs, db=db, params=params)
