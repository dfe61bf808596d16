"""`reliable-graph calibrate FILE.jsonl --evaluator ...`: choose a threshold on labelled examples.

Each line of the file is one JSON object with `question`, `contexts` (a list of chunks),
`output` and `label` (true when the output is correct), plus optional `reference` and `step`;
the whole object is also the evaluator's `state`. A malformed line is an error naming its line
number; no line is skipped. A UTF-8 byte order mark and trailing blank lines are accepted.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from reliable_graph import (
    EscalationInbox,
    EvalInput,
    InvalidScoreError,
    LexicalRelevance,
    Score,
    as_chunks,
    run_evaluator,
)
from reliable_graph.calibration import Calibration, calibrate, calibrate_pipeline, calibrate_weighted
from reliable_graph.cli._common import (
    CliError,
    at_least,
    choice,
    echo,
    number,
    progress,
    stdout_console,
    text,
    unit_interval,
)

__all__ = ["BUILTIN_EVALUATORS", "calibrate_command"]

BUILTIN_EVALUATORS: dict[str, Callable[[], Any]] = {
    "lexical_relevance": LexicalRelevance,
}
"""Evaluators `--evaluator` knows by name (they run offline, without a model)."""

CALIBRATE_HELP = (
    "Choose the lowest threshold of an evaluator that meets a target on labelled held-out examples, "
    "and print the silent-failure, precision, pass, retry and escalation rates at it.\n\n"
    "FILE holds one JSON object per line with question, contexts (a list of chunks), output and label "
    "(true when the output is correct), plus optional reference and step. A malformed line is an error "
    "naming its line number; no line is skipped."
)
"""The help text of `reliable-graph calibrate`."""

_REQUIRED = ("question", "contexts", "output", "label")
MAX_RETRIES = 10
"""The most retries --max-retries takes."""
MAX_DELTA = 0.5
"""The largest --delta: a guarantee that holds with probability below 1/2 is no guarantee."""


def _resolve(spec: str) -> Any:
    """The evaluator named by a built-in name or `module:attribute`."""
    if spec in BUILTIN_EVALUATORS:
        return BUILTIN_EVALUATORS[spec]()
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        msg = (
            f"--evaluator {spec!r} is neither a built-in evaluator "
            f"({', '.join(sorted(BUILTIN_EVALUATORS))}) nor a module:attribute import path"
        )
        raise CliError(msg)
    if os.getcwd() not in sys.path:  # let `module:attr` name a module of the current project
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"--evaluator {spec!r}: cannot import module {module_name!r}: {exc}"
        raise CliError(msg) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            msg = f"--evaluator {spec!r}: {module_name!r} has no attribute {attribute!r}"
            raise CliError(msg) from exc
    if not callable(getattr(obj, "evaluate", None)) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:
            msg = f"--evaluator {spec!r}: calling the factory failed: {type(exc).__name__}: {exc}"
            raise CliError(msg) from exc
    if not callable(getattr(obj, "evaluate", None)):
        msg = f"--evaluator {spec!r} must be an evaluator with an evaluate(sample) method, got {type(obj).__name__}"
        raise CliError(msg)
    return obj


def _example(path: str, number: int, line: str) -> tuple[EvalInput, bool]:
    """One labelled example, or a `FILE:LINE: ...` error."""
    where = f"{path}:{number}"
    if not line.strip():
        msg = f"{where}: empty line (every line must be one JSON object)"
        raise CliError(msg)
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"{where}: not valid JSON: {exc.msg} at column {exc.colno}"
        raise CliError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{where}: expected a JSON object, got {type(data).__name__}"
        raise CliError(msg)
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        msg = f"{where}: missing {', '.join(map(repr, missing))} (each line needs {', '.join(_REQUIRED)})"
        raise CliError(msg)
    if not isinstance(data["question"], str) or not data["question"].strip():
        msg = f"{where}: 'question' must be a non-empty string, got {data['question']!r}"
        raise CliError(msg)
    if not isinstance(data["contexts"], list):
        msg = f"{where}: 'contexts' must be a list of chunks, got {type(data['contexts']).__name__}"
        raise CliError(msg)
    try:
        as_chunks(data["contexts"])
    except TypeError as exc:
        msg = f"{where}: 'contexts': {exc}"
        raise CliError(msg) from exc
    label = data["label"]
    if not (isinstance(label, bool) or (isinstance(label, int) and label in (0, 1))):
        msg = f"{where}: 'label' must be true or false (or 1 or 0), got {label!r}"
        raise CliError(msg)
    step = data.get("step")
    sample = EvalInput(
        query=data["question"],
        contexts=data["contexts"],
        output=data["output"],
        reference=data.get("reference"),
        step=step if isinstance(step, str) else None,
        state=data,
    )
    return sample, bool(label)


def _lines(path: str) -> list[str]:
    """The file's lines: a UTF-8 byte order mark and trailing blank lines are dropped."""
    file = Path(path)
    if not file.exists():
        msg = f"{path}: no such file"
        raise CliError(msg)
    if file.is_dir():
        msg = f"{path}: is a directory, not a JSON Lines file"
        raise CliError(msg)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise CliError(msg) from exc
    except OSError as exc:
        msg = f"{path}: cannot read the file: {exc.strerror or exc}"
        raise CliError(msg) from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _score(evaluator: Any, sample: EvalInput, where: str) -> float:
    try:
        score = run_evaluator(evaluator, sample)
    except InvalidScoreError as exc:
        msg = f"{where}: {exc}"
        raise CliError(msg) from exc
    if not isinstance(score, Score) or math.isnan(score.value):  # pragma: no cover - run_evaluator checks
        msg = f"{where}: the evaluator did not return a valid score"
        raise CliError(msg)
    return score.value


def _figures(cal: Calibration, evaluator: str, path: str) -> dict[str, Any]:
    """Every figure of the table, as `--json` prints them."""
    return {"evaluator": evaluator, "file": path, **cal.to_dict()}


_METHODS = {
    "ltt": "Learn then Test, fixed-sequence, exact binomial (Clopper-Pearson)",
    "empirical": "empirical: the lowest threshold whose held-out rate meets the target",
}


def _table(figures: dict[str, Any]) -> Table:
    f = figures
    rows = [
        ("evaluator", f["evaluator"]),
        ("examples", f"{f['n']} ({f['file']})"),
        ("target", f["target"]),
        ("method", _METHODS[f["method"]]),
        ("threshold", f"{f['threshold']:.4f}"),
        ("silent failure", f"{f['silent_failure']:.2%} of all examples accepted while wrong"),
        *(
            [("guaranteed", f"at most {f['silent_failure_bound']:.2%} with probability {1 - f['delta']:.0%}")]
            if f["silent_failure_bound"] is not None
            else [("guaranteed", "nothing (the empirical rule: a fresh sample misses the target about half the time)")]
        ),
        ("precision", f"{f['precision']:.2%} of accepted outputs correct"),
        ("pass rate", f"{f['pass_rate']:.2%} at the first attempt"),
        ("retry rate", f"{f['retry_rate']:.2%}"),
        ("escalation rate", f"{f['escalation_rate']:.2%} (max_retries={f['max_retries']}, retries as fresh draws)"),
    ]
    table = Table(show_header=False, title="calibration", title_justify="left")
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def calibrate_command(
    ctx: typer.Context,
    file: Annotated[
        str | None,
        typer.Argument(metavar="FILE", callback=text(), help="JSON Lines of question, contexts, output, label."),
    ] = None,
    evaluator: Annotated[
        str | None,
        typer.Option(
            "--evaluator",
            metavar="SPEC",
            callback=text(),
            help=(
                f"A built-in evaluator ({', '.join(sorted(BUILTIN_EVALUATORS))}) or module:attribute naming "
                "an evaluator instance or a zero-argument factory."
            ),
        ),
    ] = None,
    target_silent_failure: Annotated[
        float | None,
        typer.Option(
            "--target-silent-failure",
            metavar="RATE",
            callback=unit_interval,
            help="The highest acceptable share of examples accepted while wrong, e.g. 0.01.",
        ),
    ] = None,
    target_precision: Annotated[
        float | None,
        typer.Option(
            "--target-precision",
            metavar="RATE",
            callback=unit_interval,
            help="The lowest acceptable share of accepted examples that are correct, e.g. 0.99.",
        ),
    ] = None,
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries",
            callback=at_least(0, MAX_RETRIES),
            help=f"Retries per step before escalating, 0 to {MAX_RETRIES}.",
        ),
    ] = 1,
    delta: Annotated[
        float,
        typer.Option(
            "--delta",
            metavar="PROB",
            callback=number(0.0, MAX_DELTA, low_open=True),
            help=f"The guarantee holds with probability 1 - delta over the examples, delta in (0, {MAX_DELTA:g}].",
        ),
    ] = 0.05,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            callback=choice("ltt", "empirical"),
            help=(
                "ltt (a guarantee; the default for --target-silent-failure) or empirical (no guarantee; "
                "the default for --target-precision)."
            ),
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    from_reviews: Annotated[
        bool,
        typer.Option(
            "--from-reviews",
            help="Recalibrate each step from the inbox's labels (audits and escalation decisions) in --db.",
        ),
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH|URL",
            callback=text(),
            help="With --from-reviews: the SQLite file or postgresql:// URL (only read).",
        ),
    ] = None,
    pipeline: Annotated[
        bool,
        typer.Option(
            "--pipeline",
            help=(
                "--target-silent-failure is the whole run's: calibrate every step (the examples' step field) "
                "for its share of the budget (union bound: target / steps each, delta / steps)."
            ),
        ),
    ] = False,
    audit_rate: Annotated[
        float | None,
        typer.Option(
            "--audit-rate",
            metavar="RATE",
            callback=number(0.0, 1.0, low_open=True),
            help="With --from-reviews: the steps' audit_rate, when the audits do not say it.",
        ),
    ] = None,
) -> None:
    """Run `reliable-graph calibrate` (typer passes the parsed options).

    Errors are one line on stderr, `error: FILE:LINE: what is wrong` (or `error: FILE: ...` for
    the whole set, e.g. a single-class set), and the exit code is 2.

    Example:
        ```python
        import contextlib, io, json, tempfile
        from reliable_graph.cli import main

        lines = [
            {"question": "boiling point of water", "contexts": ["Water boils at 100 C."], "output": "100 C",
             "label": True},
            {"question": "boiling point of water", "contexts": ["Cats sleep a lot."], "output": "50 C",
             "label": False},
        ]
        out = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(out):
            path = f"{d}/held_out.jsonl"
            with open(path, "w") as f:
                for x in lines:
                    print(json.dumps(x), file=f)
            assert main(["calibrate", path, "--evaluator", "lexical_relevance",
                         "--target-silent-failure", "0", "--method", "empirical", "--json"]) == 0
        data = json.loads(out.getvalue())
        assert data["threshold"] == 1.0 and data["silent_failure"] == 0.0 and data["n"] == 2
        assert data["escalation_rate"] == 0.25 and data["evaluator"] == "lexical_relevance"
        ```
    """
    if target_silent_failure == 0 and method != "empirical":
        msg = (
            "--target-silent-failure 0: no number of examples guarantees exactly 0 silent failures (a finite "
            "sample's bound is above 0); give a target above 0, or --method empirical (no guarantee)"
        )
        raise CliError(msg, ctx=ctx)
    if from_reviews:
        _from_reviews(ctx, file, evaluator, db, target_silent_failure, delta, audit_rate, as_json, pipeline)
        return
    if pipeline and target_silent_failure is None:
        raise CliError("--pipeline needs --target-silent-failure RATE (the end-to-end target)", ctx=ctx)
    if file is None or evaluator is None:
        raise CliError("give the labelled FILE and --evaluator (or --from-reviews --db ...)", ctx=ctx)
    if target_silent_failure is None and target_precision is None:
        msg = "give a target: --target-silent-failure RATE or --target-precision RATE"
        raise CliError(msg, ctx=ctx)
    if target_silent_failure is not None and target_precision is not None:
        msg = "--target-silent-failure and --target-precision cannot be combined: give one target"
        raise CliError(msg, ctx=ctx)
    if method == "ltt" and target_precision is not None:
        raise CliError("--method ltt gives a guarantee for --target-silent-failure only", ctx=ctx)
    scorer = _resolve(evaluator)
    examples = [_example(file, number, line) for number, line in enumerate(_lines(file), start=1)]
    name = str(getattr(scorer, "name", evaluator))
    scores: list[float] = []
    with progress() as bar:
        task = bar.add_task(f"scoring with {name}", total=len(examples))
        for number, (sample, _) in enumerate(examples, start=1):
            scores.append(_score(scorer, sample, f"{file}:{number}"))
            bar.advance(task)
    if pipeline:
        _pipeline(examples, scores, file, target_silent_failure, max_retries, delta, as_json)
        return
    try:
        cal = calibrate(
            scores,
            [label for _, label in examples],
            max_silent_failure=target_silent_failure,
            min_precision=target_precision,
            max_retries=max_retries,
            delta=delta,
            method=method,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        msg = f"{file}: {exc}"
        raise CliError(msg) from exc
    figures = _figures(cal, name, file)
    if as_json:
        echo(json.dumps(figures))
    else:
        stdout_console().print(_table(figures))


_AUDIT_RATE = re.compile(r"audit_rate=([0-9.eE+-]+)")


def _review_examples(inbox: Any, audit_rate: float | None) -> dict[str, tuple[list[float], list[bool], list[float]]]:
    """Per step, the reviewed outputs: (score, label, weight); audits weigh 1 / their rate."""
    found: dict[str, tuple[list[float], list[bool], list[float]]] = {}
    offset = 0
    while True:
        page = inbox.list(status="resolved", limit=500, offset=offset)
        if not page:
            return found
        offset += len(page)
        for item in page:
            action = (item.decision or {}).get("action")
            if action not in ("approve", "edit", "terminate"):
                continue  # retry and provide_context say nothing about the output
            weight = 1.0
            if item.kind == "audit":
                match = _AUDIT_RATE.search(item.reason or "")
                rate = float(match.group(1)) if match else audit_rate
                if rate is None or not 0 < rate <= 1:
                    msg = f"audit {item.id} does not say its audit_rate: give --audit-rate"
                    raise CliError(msg)
                weight = 1 / rate
            scores, labels, weights = found.setdefault(item.step, ([], [], []))
            scores.append(item.confidence)
            labels.append(action == "approve")
            weights.append(weight)


def _open_inbox(db: str) -> tuple[Any, Callable[[], None]]:
    if db.startswith(("postgresql://", "postgres://")):
        try:
            from langgraph.store.postgres import PostgresStore
        except ImportError as exc:
            raise CliError(f"--db: reading Postgres needs the postgres extra ({exc})") from exc
        manager = PostgresStore.from_conn_string(db)
        store = manager.__enter__()

        def done() -> None:
            manager.__exit__(None, None, None)

        return EscalationInbox(store), done
    path = Path(db)
    if not path.is_file():
        raise CliError(f"--db {db}: no such file")
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    try:
        table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='reliable_graph_inbox'")
        present = table.fetchone() is not None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise CliError(f"--db {db}: not a SQLite database ({exc})") from exc
    if not present:
        conn.close()
        raise CliError(f"--db {db}: no escalation inbox here (no reviewed escalations or audits to learn from)")
    from langgraph.store.sqlite import SqliteStore

    return EscalationInbox(SqliteStore(conn)), conn.close


def _from_reviews(
    ctx: typer.Context,
    file: str | None,
    evaluator: str | None,
    db: str | None,
    target: float | None,
    delta: float,
    audit_rate: float | None,
    as_json: bool,
    pipeline: bool = False,
) -> None:
    if file is not None or evaluator is not None:
        raise CliError("--from-reviews reads the inbox in --db: give no FILE and no --evaluator", ctx=ctx)
    if db is None:
        raise CliError("--from-reviews needs --db PATH|URL (where the inbox keeps the reviews)", ctx=ctx)
    if target is None:
        raise CliError("--from-reviews needs --target-silent-failure RATE", ctx=ctx)
    inbox, close = _open_inbox(db)
    try:
        examples = _review_examples(inbox, audit_rate)
    finally:
        close()
    if not examples:
        raise CliError(f"--db {db}: no review labels yet (approve, edit or terminate decisions, or labelled audits)")
    results: dict[str, Any] = {}
    per_step = target / len(examples) if pipeline else target
    step_delta = delta / len(examples) if pipeline else delta
    for step, (scores, labels, weights) in sorted(examples.items()):
        audits = sum(1 for w in weights if w != 1.0)
        entry: dict[str, Any] = {"labels": len(scores), "audits": audits, "escalations": len(scores) - audits}
        try:
            cal = calibrate_weighted(scores, labels, weights, max_silent_failure=per_step, delta=step_delta)
            entry.update(cal.to_dict())
        except ValueError as exc:
            entry["error"] = str(exc)
        results[step] = entry
    if as_json:
        split = f"union: {per_step:g} per step at delta {step_delta:g}" if pipeline else None
        echo(json.dumps({"db": db, "target": target, "delta": delta, "pipeline_split": split, "steps": results}))
        return
    table = Table(title=f"thresholds from reviews in {db} (silent failure <= {target:g})", title_justify="left")
    for name in ("step", "labels", "audits", "escalations", "threshold", "silent failure", "bound", "pass rate"):
        table.add_column(name, justify="left" if name == "step" else "right", no_wrap=True)
    for step, e in results.items():
        if "error" in e:
            table.add_row(step, str(e["labels"]), str(e["audits"]), str(e["escalations"]), e["error"], "", "", "")
            continue
        table.add_row(
            step,
            str(e["labels"]),
            str(e["audits"]),
            str(e["escalations"]),
            f"{e['threshold']:.4f}",
            f"{e['silent_failure']:.2%}",
            f"{e['silent_failure_bound']:.2%}",
            f"{e['pass_rate']:.1%}",
        )
    stdout_console().print(table)
    echo("audits weigh 1 / audit_rate (they sample the passing outputs), escalations 1 (every one is reviewed).")


def _pipeline(
    examples: list[tuple[EvalInput, bool]],
    scores: list[float],
    file: str,
    target: float | None,
    max_retries: int,
    delta: float,
    as_json: bool,
) -> None:
    """Per-step thresholds for one end-to-end target, the examples grouped by their `step`."""
    assert target is not None
    data: dict[str, tuple[list[float], list[bool]]] = {}
    for line, ((sample, label), score) in enumerate(zip(examples, scores, strict=True), start=1):
        if not sample.step:
            raise CliError(f"{file}:{line}: --pipeline needs a 'step' on every line")
        step_scores, step_labels = data.setdefault(sample.step, ([], []))
        step_scores.append(score)
        step_labels.append(label)
    try:
        cal = calibrate_pipeline(data, max_silent_failure=target, max_retries=max_retries, delta=delta)
    except ValueError as exc:
        raise CliError(f"{file}: {exc}") from exc
    if as_json:
        echo(json.dumps({"file": file, **cal.to_dict()}))
        return
    table = Table(title=f"pipeline: run silent failure <= {target:g} ({cal.split})", title_justify="left")
    for name in ("step", "examples", "threshold", "silent failure", "bound", "pass rate", "escalation rate"):
        table.add_column(name, justify="left" if name == "step" else "right", no_wrap=True)
    for step, c in cal.steps.items():
        table.add_row(
            step,
            str(c.n),
            f"{c.threshold:.4f}",
            f"{c.silent_failure:.2%}",
            f"{(c.silent_failure_bound or 0):.2%}",
            f"{c.pass_rate:.1%}",
            f"{c.escalation_rate:.1%}",
        )
    stdout_console().print(table)
    echo(f"the run's bound: {cal.silent_failure_bound:.2%} (the sum of the steps' bounds)")
