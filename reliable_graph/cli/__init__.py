"""The `reliable-graph` command line: `demo`, `report`, `calibrate`, `chaos`, `inbox`, `console`.

This module stays light: the command's own modules (and LangGraph) are imported inside `main`,
so Ctrl-C is a clean exit from the first instant, imports included.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_INTERRUPTED = 130
"""The exit code after Ctrl-C (128 + SIGINT), as shells use."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `reliable-graph` command with `argv` (default: the process's arguments); return the exit code.

    Errors are one line on stderr: 2 for bad input, 1 for an unexpected error (rerun with
    `--debug` for the traceback), 130 after Ctrl-C, at any moment, start-up included.

    Example:
        ```python
        import contextlib, io
        from reliable_graph.cli import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--help"]) == 0
        assert "Usage: reliable-graph" in out.getvalue()
        assert main(["demo", "--steps", "0"]) == 2
        ```
    """
    try:
        from reliable_graph.cli.app import main as run

        return run(argv)
    except KeyboardInterrupt:  # during the imports, or between two steps the command guards
        try:
            print("reliable-graph: interrupted", file=sys.stderr, flush=True)
        except (KeyboardInterrupt, OSError):
            pass
        return _INTERRUPTED
