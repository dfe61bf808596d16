"""What the reliable-graph commands share: one-line errors, value checks, consoles and progress bars."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

PROG = "reliable-graph"
"""The command's name, in usage lines and messages."""

SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""

_WIDE = 240
"""Width of tables written to a file or a pipe: wide enough that rich never wraps a figure."""


class CliError(Exception):
    """A problem with the command's input: one line `error: MESSAGE` on stderr, exit code 2.

    With `ctx` (a misuse of the command line rather than bad input), the line also points to
    the command's `--help`.
    """

    exit_code = 2

    def __init__(self, message: str, *, ctx: typer.Context | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ctx = ctx


def _parse_errors() -> tuple[type[Exception], ...]:
    """What typer raises on a bad command line: click's `ClickException` (or the copy typer vendors)."""
    errors: list[type[Exception]] = [c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"]
    typer_exception = getattr(typer, "TyperException", None)  # only in recent typer releases
    if isinstance(typer_exception, type) and issubclass(typer_exception, Exception):
        errors.append(typer_exception)
    return tuple(errors) or (typer.BadParameter,)


PARSE_ERRORS = _parse_errors()
"""The exceptions typer raises on a bad command line (`typer.BadParameter` and its siblings)."""


def one_line(text: object) -> str:
    """`text` on one line: runs of whitespace, newlines included, become one space."""
    return " ".join(str(text).split())


def first_line(text: object) -> str:
    """The first non-empty line of `text`, stripped."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def at_least(minimum: int, maximum: int | None = None) -> Callable[[int | None], int | None]:
    """An option callback accepting integers in [`minimum`, `maximum`] (and None, an absent optional value)."""

    def check(value: int | None) -> int | None:
        if value is not None and value < minimum:
            msg = f"must be at least {minimum}, got {value}"
            raise typer.BadParameter(msg)
        if value is not None and maximum is not None and value > maximum:
            msg = f"must be at most {maximum}, got {value}"
            raise typer.BadParameter(msg)
        return value

    return check


def number(
    low: float, high: float, *, low_open: bool = False, unit: str = ""
) -> Callable[[float | None], float | None]:
    """An option callback accepting a finite number in [`low`, `high`] (`(low, high]` with `low_open`), or None.

    NaN and infinities are refused; `unit` (e.g. "minutes") is named in the message.
    """
    bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    suffix = f" {unit}" if unit else ""

    def check(value: float | None) -> float | None:
        if value is None:
            return None
        if not math.isfinite(value):
            msg = f"must be in {bounds}{suffix} (a finite number), got {value}"
            raise typer.BadParameter(msg)
        if value < low or (low_open and value == low) or value > high:
            msg = f"must be in {bounds}{suffix}, got {value:g}"
            raise typer.BadParameter(msg)
        return value

    return check


unit_interval = number(0.0, 1.0)
"""An option callback accepting a number in [0, 1] (and None); NaN is refused."""


def choice(*options: str) -> Callable[[str | None], str | None]:
    """An option callback accepting one of `options` (and None); the message lists them."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in options:
            msg = f"must be one of {', '.join(options)}; got {value!r}"
            raise typer.BadParameter(msg)
        return value

    return check


def text(min_length: int = 1) -> Callable[[str | None], str | None]:
    """An option callback accepting text that is not blank and has at least `min_length` characters (or None)."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            msg = "must not be blank"
            raise typer.BadParameter(msg)
        if len(value) < min_length:
            msg = f"must be at least {min_length} characters long, got {len(value)}"
            raise typer.BadParameter(msg)
        return value

    return check


def texts(values: list[str] | None) -> list[str] | None:
    """An option callback for a repeatable text option: no value may be blank."""
    for value in values or []:
        text()(value)
    return values


def existing_parent(path: Path) -> None:
    """Raise `typer.BadParameter` unless the directory `path` goes in exists and is writable."""
    parent = path.parent
    if not parent.exists():
        msg = f"directory {parent} does not exist"
        raise typer.BadParameter(msg)
    if not parent.is_dir():
        msg = f"{parent} is not a directory"
        raise typer.BadParameter(msg)
    if not os.access(parent, os.W_OK):
        msg = f"directory {parent} is not writable"
        raise typer.BadParameter(msg)


def is_sqlite_file(path: Path) -> bool:
    """Whether `path` is a regular file starting with the SQLite header."""
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


_URL_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]*:)(?P<password>[^@\s]*)@")


def redact(url: str) -> str:
    """`url` with its password, if any, replaced by `***`."""
    return _URL_PASSWORD.sub(r"\g<head>***@", url)


def stdout_console() -> Console:
    """A console on the current stdout; tables keep their natural width when it is not a terminal."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=_WIDE)
    return console


def echo(text: str = "", *, nl: bool = True) -> None:
    """Print plain text on stdout exactly as given (no markup, no wrapping)."""
    typer.echo(text, nl=nl)


class _TransientProgress(Progress):
    """A progress display that leaves nothing behind: erased in a terminal, never drawn elsewhere."""

    def stop(self) -> None:
        """Stop the display (without the empty line rich's `Progress` prints when not in a terminal)."""
        self.live.stop()


@contextlib.contextmanager
def progress() -> Iterator[Progress]:
    """A transient progress display on stderr (rich draws nothing when stderr is not a terminal).

    While it runs, anything else printed to stdout (an evaluator's or a provider's prints) goes
    to stderr, so stdout holds only the command's own output: one JSON object with `--json`.
    """
    bar = _TransientProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar, contextlib.redirect_stdout(sys.stderr):
        yield bar
