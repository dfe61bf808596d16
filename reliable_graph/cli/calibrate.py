"""`reliable-graph calibrate FILE.jsonl --evaluator ...`: choose a threshold on labelled examples.

Each line of the file is one JSON object with `question`, `contexts` (a list of chunks),
`output` and `label` (true when the output is correct), plus optional `reference` and `step`;
the whole object is also the evaluator's `state`. A malformed line is an error naming its line
number; no line is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reliable_graph import EvalInput, InvalidScoreError, LexicalRelevance, Score, as_chunks, run_evaluator
from reliable_graph.calibration import Calibration, calibrate

__all__ = ["BUILTIN_EVALUATORS", "add_parser", "run"]

BUILTIN_EVALUATORS: dict[str, Callable[[], Any]] = {
    "lexical_relevance": LexicalRelevance,
}
"""Evaluators `--evaluator` knows by name (they run offline, without a model)."""

_REQUIRED = ("question", "contexts", "output", "label")
_PROG = "reliable-graph calibrate"


class _UsageError(Exception):
    """A problem to print on stderr (`FILE:LINE: ...` or `reliable-graph calibrate: ...`), exit code 2."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `calibrate` subcommand to the `reliable-graph` command's subparsers.

    Example:
        ```python
        import argparse
        from reliable_graph.cli.calibrate import add_parser

        parser = argparse.ArgumentParser(prog="reliable-graph")
        add_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["calibrate", "held_out.jsonl", "--evaluator", "lexical_relevance",
                                  "--target-silent-failure", "0.01"])
        assert args.target_silent_failure == 0.01 and args.max_retries == 1
        ```
    """
    parser = subparsers.add_parser(
        "calibrate",
        help="choose an evaluator's threshold on labelled held-out examples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", help="JSON Lines of {question, contexts, output, label}")
    parser.add_argument(
        "--evaluator",
        required=True,
        help=(
            f"a built-in evaluator ({', '.join(sorted(BUILTIN_EVALUATORS))}) or module:attribute naming "
            "an evaluator instance or a zero-argument factory"
        ),
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-silent-failure",
        type=float,
        metavar="RATE",
        help="the highest acceptable share of examples accepted while wrong, e.g. 0.01",
    )
    target.add_argument(
        "--target-precision",
        type=float,
        metavar="RATE",
        help="the lowest acceptable share of accepted examples that are correct, e.g. 0.99",
    )
    parser.add_argument("--max-retries", type=int, default=1, help="retries per step before escalating (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=run)


def _resolve(spec: str) -> Any:
    """The evaluator named by a built-in name or `module:attribute`."""
    if spec in BUILTIN_EVALUATORS:
        return BUILTIN_EVALUATORS[spec]()
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        msg = (
            f"{_PROG}: --evaluator {spec!r} is neither a built-in evaluator "
            f"({', '.join(sorted(BUILTIN_EVALUATORS))}) nor a module:attribute import path"
        )
        raise _UsageError(msg)
    if os.getcwd() not in sys.path:  # let `module:attr` name a module of the current project
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"{_PROG}: --evaluator {spec!r}: cannot import module {module_name!r}: {exc}"
        raise _UsageError(msg) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            msg = f"{_PROG}: --evaluator {spec!r}: {module_name!r} has no attribute {attribute!r}"
            raise _UsageError(msg) from exc
    if not callable(getattr(obj, "evaluate", None)) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:
            msg = f"{_PROG}: --evaluator {spec!r}: calling the factory failed: {type(exc).__name__}: {exc}"
            raise _UsageError(msg) from exc
    if not callable(getattr(obj, "evaluate", None)):
        msg = (
            f"{_PROG}: --evaluator {spec!r} must be an evaluator with an evaluate(sample) method, "
            f"got {type(obj).__name__}"
        )
        raise _UsageError(msg)
    return obj


def _example(path: str, number: int, line: str) -> tuple[EvalInput, bool]:
    """One labelled example, or a `FILE:LINE: ...` error."""
    where = f"{path}:{number}"
    if not line.strip():
        msg = f"{where}: empty line (every line must be one JSON object)"
        raise _UsageError(msg)
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"{where}: not valid JSON: {exc.msg} at column {exc.colno}"
        raise _UsageError(msg) from exc
    if not isinstance(data, dict):
        msg = f"{where}: expected a JSON object, got {type(data).__name__}"
        raise _UsageError(msg)
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        msg = f"{where}: missing {', '.join(map(repr, missing))} (each line needs {', '.join(_REQUIRED)})"
        raise _UsageError(msg)
    if not isinstance(data["question"], str) or not data["question"].strip():
        msg = f"{where}: 'question' must be a non-empty string, got {data['question']!r}"
        raise _UsageError(msg)
    if not isinstance(data["contexts"], list):
        msg = f"{where}: 'contexts' must be a list of chunks, got {type(data['contexts']).__name__}"
        raise _UsageError(msg)
    try:
        as_chunks(data["contexts"])
    except TypeError as exc:
        msg = f"{where}: 'contexts': {exc}"
        raise _UsageError(msg) from exc
    label = data["label"]
    if not (isinstance(label, bool) or (isinstance(label, int) and label in (0, 1))):
        msg = f"{where}: 'label' must be true or false (or 1 or 0), got {label!r}"
        raise _UsageError(msg)
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


def _score(evaluator: Any, sample: EvalInput, where: str) -> float:
    try:
        score = run_evaluator(evaluator, sample)
    except InvalidScoreError as exc:
        msg = f"{where}: {exc}"
        raise _UsageError(msg) from exc
    if not isinstance(score, Score) or math.isnan(score.value):  # pragma: no cover - run_evaluator checks
        msg = f"{where}: the evaluator did not return a valid score"
        raise _UsageError(msg)
    return score.value


def _table(cal: Calibration, evaluator: str, path: str) -> str:
    rows = [
        ("evaluator", evaluator),
        ("examples", f"{cal.n} ({path})"),
        ("target", cal.target),
        ("threshold", f"{cal.threshold:.4f}"),
        ("silent failure", f"{cal.silent_failure:.2%} of all examples accepted while wrong"),
        ("precision", f"{cal.precision:.2%} of accepted outputs correct"),
        ("pass rate", f"{cal.pass_rate:.2%} at the first attempt"),
        ("retry rate", f"{cal.retry_rate:.2%}"),
        (
            "escalation rate",
            f"{cal.escalation_rate:.2%} (max_retries={cal.max_retries}, independent attempts)",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    r"""Run `reliable-graph calibrate`: print the threshold that meets the target; 2 on bad input.

    Errors go to stderr as `FILE:LINE: what is wrong` (or `FILE: ...` for the whole set, e.g. a
    single-class set), and the exit code is 2.

    Example:
        ```python
        import argparse, contextlib, io, json, tempfile
        from reliable_graph.cli.calibrate import add_parser, run

        lines = [
            {"question": "boiling point of water", "contexts": ["Water boils at 100 C."], "output": "100 C",
             "label": True},
            {"question": "boiling point of water", "contexts": ["Cats sleep a lot."], "output": "50 C",
             "label": False},
        ]
        parser = argparse.ArgumentParser(prog="reliable-graph")
        add_parser(parser.add_subparsers(dest="command"))
        out = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(out):
            path = f"{d}/held_out.jsonl"
            with open(path, "w") as f:
                f.write("\n".join(json.dumps(x) for x in lines) + "\n")
            args = parser.parse_args(["calibrate", path, "--evaluator", "lexical_relevance",
                                      "--target-silent-failure", "0", "--json"])
            assert run(args) == 0
        assert json.loads(out.getvalue()) == {"threshold": 1.0, "silent_failure": 0.0,
                                              "escalation_rate": 0.25, "n": 2}
        ```
    """
    path = str(args.file)
    try:
        if args.max_retries < 0:
            msg = f"{_PROG}: --max-retries must be >= 0, got {args.max_retries}"
            raise _UsageError(msg)
        evaluator = _resolve(args.evaluator)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"{path}: cannot read the file: {exc}"
            raise _UsageError(msg) from exc
        scores: list[float] = []
        labels: list[bool] = []
        for number, line in enumerate(text.splitlines(), start=1):
            sample, label = _example(path, number, line)
            scores.append(_score(evaluator, sample, f"{path}:{number}"))
            labels.append(label)
        try:
            cal = calibrate(
                scores,
                labels,
                max_silent_failure=args.target_silent_failure,
                min_precision=args.target_precision,
                max_retries=args.max_retries,
            )
        except ValueError as exc:
            msg = f"{path}: {exc}"
            raise _UsageError(msg) from exc
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        result = {
            "threshold": cal.threshold,
            "silent_failure": cal.silent_failure,
            "escalation_rate": cal.escalation_rate,
            "n": cal.n,
        }
        print(json.dumps(result))
    else:
        print(_table(cal, getattr(evaluator, "name", args.evaluator), path))
    return 0
