"""`reliable-graph inbox ...`: the escalation inbox from the terminal."""

from __future__ import annotations

import errno
import importlib
import ipaddress
import json
import socket
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import StateGraph
from langgraph.store.sqlite import SqliteStore
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reliable_graph import (
    AlreadyResolvedError,
    EscalationInbox,
    InvalidAnswerError,
    NoPendingEscalationError,
    RouteTargetError,
    ServerInbox,
    ThreadBusyError,
    parse_answer,
    validate_graph,
)
from reliable_graph.cli._common import CliError, at_least, choice, number, text, texts
from reliable_graph.cli._server import UrlOption, exclusive, server_inbox
from reliable_graph.escalation import STATUSES

__all__ = ["console_command", "inbox_app", "load_graph", "open_inbox"]

inbox_app = typer.Typer(
    help=(
        "Work through escalations across threads: list the queue, show one, claim it, resolve it "
        "(exactly once), release it, read the audit trail, apply deadlines, rebuild the index; "
        "on a checkpoint database (--db) or a LangGraph Server deployment (--url)."
    ),
    no_args_is_help=True,
)
"""The `inbox` command group."""

LIST_STATUSES = ("open", *STATUSES, "all")
"""What `inbox list --status` takes: an item's status, `open` (pending or claimed) or `all`."""
ACTIONS = ("approve", "edit", "provide_context", "retry", "terminate")
"""The decisions `inbox resolve --action` takes."""
MAX_LEASE_MINUTES = 7 * 24 * 60
"""The longest claim `inbox claim --lease` grants: a week."""
MAX_MINUTES = 366 * 24 * 60
"""The longest `--older-than` and `--deadline`: a year."""
MIN_TOKEN_LENGTH = 16
"""The shortest `console --token` accepted (a generated one is longer)."""

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", callback=text(), help="The checkpoint database: a SQLite file or a postgresql:// URL (or --url)."
    ),
]
GraphOption = Annotated[
    str | None,
    typer.Option(
        "--graph",
        callback=text(),
        help="Your graph as module:attr (a StateGraph, a compiled graph, or a function returning either).",
    ),
]
ConsoleGraphOption = Annotated[
    str | None,
    typer.Option(
        "--graph",
        callback=text(),
        help=(
            "Your graph as module:attr (a StateGraph, a compiled graph, or a function returning either); "
            "required with --db, the console applies decisions through it (not with --url)."
        ),
    ),
]
IdArgument = Annotated[
    str, typer.Argument(metavar="ID", callback=text(), help="The escalation's id (from `inbox list`).")
]


def load_graph(spec: str) -> StateGraph[Any, Any, Any, Any]:
    """The user's graph builder from `module:attr` (a builder, a compiled graph, or a factory of either).

    Example:
        ```python
        from reliable_graph.cli.inbox import load_graph

        try:
            load_graph("no_colon_here")
        except Exception as err:
            assert "module:attr" in str(err)
        ```
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise CliError(f"--graph must be module:attr, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"--graph {spec}: cannot import {module_name!r} ({exc})") from None
    finally:
        sys.path.pop(0)
    target = getattr(module, attr, None)
    if target is None:
        raise CliError(f"--graph {spec}: {module_name!r} has no attribute {attr!r}")
    if callable(target) and not isinstance(target, StateGraph) and not hasattr(target, "builder"):
        target = target()
    builder = getattr(target, "builder", target)
    if not isinstance(builder, StateGraph):
        raise CliError(f"--graph {spec}: expected a StateGraph or a compiled one, got {type(target).__name__}")
    return builder


def _check_langgraph_file(path: Path) -> None:
    """Refuse a SQLite file no LangGraph checkpointer or store wrote: the inbox would add its tables to it."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CliError(f"--db {path}: cannot read it as a SQLite database ({exc})") from None
    if not tables & {"checkpoints", "store"}:
        msg = (
            f"--db {path}: not a LangGraph database (no checkpoints or store table): "
            "the inbox opens only a file your graph's checkpointer or store wrote, and adds nothing to others"
        )
        raise CliError(msg)


@contextmanager
def open_inbox(db: str, graph: str | None, **options: Any) -> Iterator[EscalationInbox]:
    """An `EscalationInbox` on `db` (SQLite path or Postgres URL), with the user's graph compiled on it."""
    builder = load_graph(graph) if graph else None
    if builder is not None:
        try:
            validate_graph(builder)  # a route to nowhere, or a reviewer's context the graph would drop
        except (ValueError, RouteTargetError) as exc:
            raise CliError(f"--graph {graph}: {exc}") from None
    if db.startswith(("postgresql://", "postgres://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
            from langgraph.store.postgres import PostgresStore
        except ImportError:
            raise CliError(
                '--db is a Postgres URL: install the extra, pip install "reliable-graph[postgres]"'
            ) from None
        try:
            with PostgresSaver.from_conn_string(db) as saver, PostgresStore.from_conn_string(db) as store:
                store.setup()
                compiled = builder.compile(checkpointer=saver, store=store) if builder else None
                yield EscalationInbox(store, graph=compiled, **options)
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise CliError(f"--db {db}: {exc}") from None
            raise
        return
    path = Path(db)
    if not path.is_file():
        raise CliError(f"--db {db}: no such database file")
    with path.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise CliError(f"--db {db}: not a SQLite database")
    _check_langgraph_file(path)
    saver_conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    store_conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    try:
        sqlite_store = SqliteStore(store_conn)
        sqlite_store.setup()
        compiled = builder.compile(checkpointer=SqliteSaver(saver_conn), store=sqlite_store) if builder else None
        yield EscalationInbox(sqlite_store, graph=compiled, **options)
    finally:
        store_conn.close()
        saver_conn.close()


@contextmanager
def _open(
    db: str | None, url: str | None, graph: str | None, **options: Any
) -> Iterator[EscalationInbox | ServerInbox]:
    """The inbox on `--db` (with `--graph`) or on the LangGraph Server at `--url` (exactly one of them)."""
    exclusive(db, url, graph)
    if url is not None:
        with server_inbox(url, **{k: v for k, v in options.items() if k == "lease"}) as remote:
            yield remote
        return
    assert db is not None  # exclusive() refused neither
    with open_inbox(db, graph, **options) as local:
        yield local


@contextmanager
def _handled() -> Iterator[None]:
    try:
        yield
    except (AlreadyResolvedError, NoPendingEscalationError, InvalidAnswerError, ThreadBusyError) as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:
        if "graph=" in str(exc):
            raise CliError("this command applies decisions: give --graph module:attr") from None
        raise


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str))


@inbox_app.command("list")
def list_command(
    db: DbOption = None,
    url: UrlOption = None,
    graph: GraphOption = None,
    status: Annotated[
        str,
        typer.Option(
            callback=choice(*LIST_STATUSES),
            help="open (pending or claimed), pending, claimed, resolving, resolved, expired, or all.",
        ),
    ] = "open",
    step: Annotated[str | None, typer.Option(callback=text(), help="Only this step.")] = None,
    thread: Annotated[str | None, typer.Option(callback=text(), help="Only this thread.")] = None,
    assignee: Annotated[str | None, typer.Option(callback=text(), help="Only this reviewer's claims.")] = None,
    older_than: Annotated[
        float | None,
        typer.Option(
            callback=number(0, MAX_MINUTES, unit="minutes"),
            help=f"Only escalations older than this many minutes (0 to {MAX_MINUTES}, a year).",
        ),
    ] = None,
    sort: Annotated[
        str, typer.Option(callback=choice("oldest", "confidence"), help="oldest or confidence (lowest first).")
    ] = "oldest",
    limit: Annotated[int, typer.Option(callback=at_least(1, 1000), help="Page size, 1 to 1000.")] = 50,
    page: Annotated[int, typer.Option(callback=at_least(1), help="Page number, from 1.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
) -> None:
    """List the queue, oldest (or least confident) first."""
    statuses: Any = {"open": ("pending", "claimed"), "all": None}.get(status, status)
    with _handled(), _open(db, url, graph) as inbox:
        items = inbox.list(
            status=statuses,
            step=step,
            thread_id=thread,
            assignee=assignee,
            older_than=timedelta(minutes=older_than) if older_than is not None else None,
            order="confidence" if sort == "confidence" else "oldest",
            limit=limit,
            offset=(page - 1) * limit,
        )
    rows: list[dict[str, Any]] = [
        {
            "id": i.id,
            "status": i.status,
            "step": i.step,
            "thread": i.thread_id,
            "confidence": i.confidence,
            "threshold": i.threshold,
            "reason": i.reason,
            "created": i.created_at,
            "assignee": i.assignee,
        }
        for i in items
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"escalations ({status}, page {page})")
    for column in ("id", "status", "step", "thread", "confidence", "reason", "created", "assignee"):
        table.add_column(column)
    for r in rows:  # agent text is data, never rich markup
        table.add_row(
            *(
                Text(str(cell))
                for cell in (
                    r["id"],
                    r["status"],
                    r["step"],
                    r["thread"],
                    f"{r['confidence']:.2f} < {r['threshold']:.2f}",
                    r["reason"],
                    r["created"][:19],
                    r["assignee"] or "",
                )
            )
        )
    Console(width=200).print(table)


@inbox_app.command("show")
def show_command(
    escalation_id: IdArgument,
    db: DbOption = None,
    url: UrlOption = None,
    graph: GraphOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everything a reviewer needs about one escalation, and its audit trail."""
    with _handled(), _open(db, url, graph) as inbox:
        item = inbox.show(escalation_id)
        audit = inbox.audit(escalation_id)
    esc = item.escalation
    if as_json:
        _print_json(
            {"status": item.status, "assignee": item.assignee, "escalation": esc, "audit": [_audit(a) for a in audit]}
        )
        return
    console = Console(width=160)
    console.print(Text(f"{esc.get('path', item.step)}  status {item.status}  thread {item.thread_id}", style="bold"))
    console.print(esc.get("description", ""), markup=False)
    for label, key in (("inputs", "inputs"), ("output", "output"), ("context", "context"), ("attempts", "attempts")):
        console.print(f"[bold]{label}[/bold]")
        console.print(json.dumps(esc.get(key), indent=2, default=str), markup=False)
    console.print(f"last good checkpoint: {esc.get('last_good_checkpoint_id')}", markup=False)
    for entry in audit:
        console.print(f"{entry.at[:19]}  {entry.actor:12} {entry.event}", markup=False)


def _audit(entry: Any) -> dict[str, Any]:
    return {k: getattr(entry, k) for k in ("escalation_id", "at", "actor", "event", "decision", "reason")}


@inbox_app.command("claim")
def claim_command(
    escalation_id: IdArgument,
    reviewer: Annotated[str, typer.Option(callback=text(), help="Who claims it.")],
    db: DbOption = None,
    url: UrlOption = None,
    lease: Annotated[
        float,
        typer.Option(
            callback=number(0, MAX_LEASE_MINUTES, low_open=True, unit="minutes"),
            help=f"Minutes the claim holds, at most {MAX_LEASE_MINUTES} (a week).",
        ),
    ] = 15.0,
) -> None:
    """Claim an escalation for a while (it returns to the queue when the lease lapses)."""
    with _handled(), _open(db, url, None, lease=timedelta(minutes=lease)) as inbox:
        item = inbox.claim(escalation_id, reviewer=reviewer)
    typer.echo(f"{escalation_id} claimed by {item.assignee} until {item.lease_until}")


@inbox_app.command("release")
def release_command(
    escalation_id: IdArgument,
    reviewer: Annotated[str, typer.Option(callback=text(), help="Who holds the claim.")],
    db: DbOption = None,
    url: UrlOption = None,
) -> None:
    """Give a claim back to the queue."""
    with _handled(), _open(db, url, None) as inbox:
        inbox.release(escalation_id, reviewer=reviewer)
    typer.echo(f"{escalation_id} is back in the queue")


@inbox_app.command("resolve")
def resolve_command(
    escalation_id: IdArgument,
    db: DbOption = None,
    url: UrlOption = None,
    graph: GraphOption = None,
    action: Annotated[
        str, typer.Option(callback=choice(*ACTIONS), help="approve, edit, provide_context, retry or terminate.")
    ] = "approve",
    output: Annotated[
        str | None,
        typer.Option(
            help=(
                "For edit: the new output, read like the output it replaces: as text when that is text, "
                "as JSON otherwise (an object, a list, a number)."
            ),
        ),
    ] = None,
    context: Annotated[
        list[str] | None, typer.Option(callback=texts, help="For provide_context: a chunk of text (repeatable).")
    ] = None,
    reviewer: Annotated[str, typer.Option(callback=text(), help="Who decides.")] = "cli",
    reason: Annotated[str | None, typer.Option(callback=text(), help="Why (kept in the audit trail).")] = None,
) -> None:
    """Apply a decision to the escalation's thread, exactly once."""
    exclusive(db, url, graph)
    if graph is None and url is None:
        raise CliError("resolve applies the decision to the thread: give --graph module:attr")
    if output is not None and action != "edit":
        raise CliError(f"--output is the new output of an edit: give it with --action edit, not {action}")
    if output is None and action == "edit":
        raise CliError("--action edit needs --output (the new output)")
    if context and action != "provide_context":
        raise CliError(f"--context goes with --action provide_context, not {action}")
    if not context and action == "provide_context":
        raise CliError("--action provide_context needs --context TEXT (repeatable)")
    answer: dict[str, Any] = {"action": action, "reviewer": reviewer}
    if context:
        answer["context"] = list(context)
    if reason:
        answer["reason"] = reason
    with _handled(), _open(db, url, graph) as inbox:
        if output is not None:
            answer["output"] = _edited(output, inbox.show(escalation_id).escalation)
        inbox.resolve(escalation_id, answer, reviewer=reviewer, reason=reason)
    typer.echo(f"{escalation_id} resolved: {action}")


def _edited(output: str, escalation: dict[str, Any]) -> Any:
    """--output read like the output it replaces (text stays text, JSON otherwise), as `parse_answer` reads an edit."""
    edit = {"type": "edit", "args": {"action": str(escalation.get("step") or "step"), "args": {"output": output}}}
    try:
        return parse_answer(edit, kind=escalation.get("kind", "output"), original=escalation.get("output")).output
    except InvalidAnswerError as exc:
        raise CliError(f"--output: {exc.reason}") from None


@inbox_app.command("audit")
def audit_command(
    db: DbOption = None,
    url: UrlOption = None,
    escalation_id: Annotated[
        str | None, typer.Argument(callback=text(), help="One escalation's trail (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The append-only audit trail: who did what, when, with which decision."""
    with _handled(), _open(db, url, None) as inbox:
        entries = inbox.audit(escalation_id)
    if as_json:
        _print_json([_audit(e) for e in entries])
        return
    table = Table(title="audit trail")
    for column in ("at", "escalation", "actor", "event", "decision", "reason"):
        table.add_column(column)
    for e in entries:  # agent text is data, never rich markup
        cells = (e.at[:19], e.escalation_id, e.actor, e.event, json.dumps(e.decision) if e.decision else "", e.reason)
        table.add_row(*(Text(str(c or "")) for c in cells))
    Console(width=200).print(table)


@inbox_app.command("sweep")
def sweep_command(
    db: DbOption = None,
    url: UrlOption = None,
    graph: GraphOption = None,
    deadline: Annotated[
        float,
        typer.Option(
            callback=number(0, MAX_MINUTES, low_open=True, unit="minutes"),
            help=f"Minutes an escalation may wait, at most {MAX_MINUTES} (a year).",
        ),
    ] = 60.0,
    action: Annotated[
        str,
        typer.Option(
            callback=choice("terminate", "approve"), help="The default decision on expiry: terminate or approve."
        ),
    ] = "terminate",
    assign_to: Annotated[
        str | None, typer.Option(callback=text(), help="Hand expired escalations to this reviewer instead.")
    ] = None,
) -> None:
    """Apply the default action to escalations past their deadline (safe from many processes; --db only)."""
    if url is not None:
        raise CliError(
            "--url: sweep is not supported on a LangGraph Server deployment (its inbox keeps no deadlines); "
            "run it on a checkpoint database (--db)"
        )
    exclusive(db, url, graph)
    on_expiry: dict[str, Any] = (
        {"assign_to": assign_to} if assign_to else {"action": action, "reason": "deadline passed"}
    )
    if not assign_to and graph is None:
        raise CliError("sweep applies the default decision: give --graph module:attr (or --assign-to)")
    assert db is not None  # exclusive() refused neither
    with _handled(), open_inbox(db, graph, deadline=timedelta(minutes=deadline), on_expiry=on_expiry) as inbox:
        done = inbox.sweep()
    typer.echo(f"{len(done)} escalation(s) past their deadline handled")


@inbox_app.command("reconcile")
def reconcile_command(db: DbOption = None, url: UrlOption = None, graph: GraphOption = None) -> None:
    """Rebuild the index from the checkpoints (or the server's threads) and finish what a crash cut short."""
    exclusive(db, url, graph)
    if graph is None and url is None:
        raise CliError("reconcile reads the threads through your graph: give --graph module:attr")
    with _handled(), _open(db, url, graph) as inbox:
        added = inbox.reconcile()
    where = "the server's threads" if url is not None else "the checkpoints"
    typer.echo(f"{added} escalation(s) re-indexed from {where}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    """A one-line error naming --port (or --host) when the console could not listen there."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CliError(f"--host {host}: cannot listen on it ({exc.strerror or exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                msg = f"--port {port}: already in use on {host} (another console or program listens there)"
                raise CliError(msg) from None
            raise CliError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


def console_command(
    db: DbOption = None,
    url: UrlOption = None,
    graph: ConsoleGraphOption = None,
    host: Annotated[
        str,
        typer.Option(
            callback=text(),
            help="The address to listen on (loopback by default; another address opens the console to the network).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(callback=at_least(1, 65535), help="The port, 1 to 65535.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RELIABLE_GRAPH_CONSOLE_TOKEN",
            callback=text(MIN_TOKEN_LENGTH),
            help=f"The access token, at least {MIN_TOKEN_LENGTH} characters (default: generated and printed).",
        ),
    ] = None,
) -> None:
    """Serve the web review console for the inbox on `--db` (applying decisions through `--graph`) or `--url`."""
    try:
        from reliable_graph.console import serve
    except ImportError:
        raise CliError('the console needs its extra: pip install "reliable-graph[console]"') from None
    exclusive(db, url, graph)
    if graph is None and url is None:
        raise CliError("the console applies decisions to threads: give --graph module:attr")
    _check_port_free(host, port)
    if not _is_loopback(host):
        warning = typer.style("warning", fg="yellow", bold=True)
        typer.echo(
            f"{warning}: --host {host}: the console is reachable from the network; anyone who can reach this "
            "machine and has the token can resolve escalations: serve it behind TLS, or keep the default 127.0.0.1",
            err=True,
        )
    with _handled(), _open(db, url, graph) as inbox:
        serve(inbox, host=host, port=port, token=token)
