"""`--url`: the commands on a LangGraph Server deployment instead of a checkpoint database (`--db`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from reliable_graph import ServerInbox
from reliable_graph.cli._common import CliError, redact

__all__ = ["UrlOption", "check_url", "exclusive", "server_inbox", "server_threads"]


def check_url(value: str | None) -> str | None:
    """The --url callback: an http:// or https:// URL with a host (or None)."""
    if value is None:
        return None
    scheme, _, rest = value.strip().partition("://")
    if scheme not in ("http", "https") or not rest.strip("/"):
        msg = f"must be a LangGraph Server's http:// or https:// URL (e.g. http://127.0.0.1:2024), got {value!r}"
        raise typer.BadParameter(msg)
    return value.strip()


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="http://HOST:PORT",
        callback=check_url,
        help=(
            "A LangGraph Server deployment, instead of --db: its store holds the inbox, its threads the "
            "escalations (API key from LANGGRAPH_API_KEY or LANGSMITH_API_KEY)."
        ),
    ),
]
"""The `--url` option the inbox, console and report commands share."""


def exclusive(db: str | None, url: str | None, graph: str | None = None) -> None:
    """Refuse `--db` with `--url`, neither of them, and `--graph` with `--url` (one line each)."""
    if db is not None and url is not None:
        raise CliError("--db and --url are exclusive: give a checkpoint database (--db) or a LangGraph Server (--url)")
    if db is None and url is None:
        raise CliError("give --db PATH|URL (a checkpoint database) or --url http://HOST:PORT (a LangGraph Server)")
    if url is not None and graph is not None:
        raise CliError("--graph goes with --db: a LangGraph Server (--url) applies decisions with its own graphs")


@contextmanager
def server_inbox(url: str, **options: Any) -> Iterator[ServerInbox]:
    """A `ServerInbox` on `url`, checked to be a LangGraph Server; unreachable is a one-line error naming --url."""
    try:
        with ServerInbox(url, **options) as inbox:
            inbox.check()
            yield inbox
    except ConnectionError as exc:
        raise CliError(f"--url: {exc}") from None


def server_threads(url: str) -> list[dict[str, Any]]:
    """Every thread of the deployment at `url`, with its values and status (`threads.search`, paged)."""
    import httpx
    from langgraph_sdk import get_sync_client

    page_size = 1000  # the most threads.search gives at once
    shown = redact(url)
    found: list[dict[str, Any]] = []
    try:
        with get_sync_client(url=url) as client:
            while True:
                page = client.threads.search(limit=page_size, offset=len(found))
                found.extend(dict(thread) for thread in page)
                if len(page) < page_size:
                    return found
    except httpx.TransportError as exc:
        raise CliError(f"--url: cannot reach LangGraph Server at {shown}: {exc}") from None
    except httpx.HTTPStatusError as exc:
        raise CliError(f"--url {shown}: listing threads answered {exc.response.status_code}") from None
