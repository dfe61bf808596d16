"""LangGraph Server middleware: the stock review UIs' requests made to work, the review index kept true.

Add it to a deployment's `langgraph.json` (it needs the `server` and `console` extras)::

    {"graphs": {...}, "http": {"app": "reliable_graph.server:app"}}

What it does, before LangGraph sees the request:

- **An answer sent without an interrupt id** to a thread with several interrupts pending (one
  per subgraph instance, or a graph with `HumanEscalation(mode="per_task")`): an Agent Inbox
  answer (a list of responses; Agent Inbox shows and answers a thread's first interrupt) is
  sent to that first interrupt; any other un-keyed answer is refused with HTTP 409 saying why,
  where LangGraph would fail the run and leave the thread in `error`.
- **Agent Chat UI's "Mark as Resolved"** (a run with `command: {goto: "__end__"}` on a thread
  with escalations waiting): the thread's pending work is cleared as Agent Inbox's "Mark as
  Resolved" does (`update_state(values=None, as_node="__end__")`), so the escalations close;
  the run then goes on from the cleared thread, not from the checkpoint Agent Chat UI pins (where
  it would fork and ask the reviewer again).

And after it: once a thread's pending work is cleared (either "Mark as Resolved"; work that
comes due after a clear, such as a deferred fan-in, is cleared too, so the thread ends), the
thread's escalations in the store's index (`("reliable_graph", "escalations")`) whose decision
has not taken effect read `dismissed`.
Answers need nothing from here: the review node and the node applying a decision note
`applied` and `resolved` in the index themselves, whatever client answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from reliable_graph.escalation.inbox import INBOX_NAMESPACE

__all__ = ["ReviewMiddleware", "app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_RUNS = re.compile(r"^/threads/(?P<thread>[^/]+)/runs(?:/stream|/wait)?/?$")
_STATE = re.compile(r"^/threads/(?P<thread>[^/]+)/state/?$")
_INTERRUPT_ID = re.compile(r"^[0-9a-f]{32}$")
_INTERNAL = b"x-reliable-graph"
_END = "__end__"
_OPEN = ("pending", "claimed", "resolving", "applied")
"""What "Mark as Resolved" dismisses: every escalation whose decision has not taken effect (`resolved` has)."""
_CLEARS = 8
"""How many times a thread's pending work is cleared in a row at most (a deferred fan-in comes due after a clear)."""


def _keyed(resume: Any) -> bool:
    """Whether a resume names its interrupts (a map whose keys are all interrupt ids), as LangGraph checks it."""
    return isinstance(resume, dict) and bool(resume) and all(_INTERRUPT_ID.match(str(k)) for k in resume)


def _clears(command: Any) -> bool:
    goto = command.get("goto") if isinstance(command, dict) else None
    return "resume" not in (command or {}) and (goto == _END or goto == [_END])


class ReviewMiddleware:
    """ASGI middleware for LangGraph Server; see the module's docstring for what it does.

    Example:
        ```python
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from reliable_graph.server import ReviewMiddleware

        app = Starlette(middleware=[Middleware(ReviewMiddleware)])  # what reliable_graph.server:app is
        assert app.user_middleware[0].cls is ReviewMiddleware
        ```
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self._client: Any = None

    def client(self) -> Any:
        """The in-process SDK client (requests it sends pass this middleware untouched)."""
        if self._client is None:
            from langgraph_sdk import get_client

            self._client = get_client(url=None, headers={_INTERNAL.decode(): "1"})
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI request: look at the review requests, pass the rest through."""
        if scope.get("type") != "http" or scope.get("method") != "POST" or _INTERNAL in dict(scope["headers"]):
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path") or "")
        runs, state = _RUNS.match(path), _STATE.match(path)
        if runs is None and state is None:
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        thread = (runs or state).group("thread")  # type: ignore[union-attr]
        dismiss = False
        if state is not None and isinstance(data, dict) and data.get("as_node") == _END and data.get("values") is None:
            dismiss = True  # Agent Inbox's "Mark as Resolved"
        elif runs is not None and isinstance(data, dict) and isinstance(data.get("command"), dict):
            command = data["command"]
            if _clears(command) and await self._waiting(thread):
                await self._clear(thread)  # Agent Chat UI's "Mark as Resolved", made real
                # the run goes on from the cleared thread, not from the checkpoint the UI pinned (it
                # pins the one it showed, where the run would fork and ask the reviewer again)
                data = {k: v for k, v in data.items() if k not in ("checkpoint", "checkpoint_id")}
                body = json.dumps(data).encode()
                if not await self._waiting(thread):  # the thread's pending work really is gone
                    await self._dismiss(thread, "marked as resolved")
            elif "resume" in command and not _keyed(command["resume"]):
                pending = await self._waiting(thread)
                if len(pending) > 1:
                    if not isinstance(command["resume"], list):
                        await _refuse(send, len(pending))
                        return
                    data = {**data, "command": {**command, "resume": {pending[0]: command["resume"]}}}
                    body = json.dumps(data).encode()
        if not dismiss:
            await self.app(_with_length(scope, body), _replay(body, receive), send)
            return
        held: list[Message] = []  # the answer waits until the index says dismissed: a client reading next sees it

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(_with_length(scope, body), _replay(body, receive), hold)
        done = held and held[0]["type"] == "http.response.start" and 200 <= int(held[0]["status"]) < 300
        if done and not await self._waiting(thread):  # the thread's pending work really is gone
            await self._clear(thread)  # and what comes due after it (a deferred fan-in)
            await self._dismiss(thread, "marked as resolved")
        for message in held:
            await send(message)

    async def _clear(self, thread: str) -> None:
        """Clear the thread's pending work until nothing is due: the thread ends where "Mark as Resolved" asked.

        A cleared superstep can leave work due (a deferred fan-in, continuations of answers given
        before); each is cleared the same way (`update_state(values=None, as_node="__end__")`).
        """
        client = self.client()
        for _ in range(_CLEARS):
            state = await client.threads.get_state(thread)
            if not state.get("next"):
                return
            await client.threads.update_state(thread, None, as_node=_END)

    async def _waiting(self, thread: str) -> list[str]:
        """The ids of the interrupts pending in `thread`, in the order the server lists them (Agent Inbox's)."""
        found = await self.client().threads.get(thread)
        interrupts = found.get("interrupts") or {}
        return [str(i["id"]) for items in interrupts.values() for i in items if i.get("id")]

    async def _dismiss(self, thread: str, why: str) -> None:
        """Every open escalation of `thread` in the index: `dismissed` (its thread no longer waits on it)."""
        store = self.client().store
        at = datetime.now(timezone.utc).isoformat()
        offset = 0
        while True:
            page = await store.search_items(
                list(INBOX_NAMESPACE), filter={"thread_id": thread}, limit=100, offset=offset
            )
            items = page.get("items") or []
            for item in items:
                value = item["value"]
                if value.get("status") in _OPEN:
                    dismissed = {
                        **value,
                        "status": "dismissed",
                        "resolved_by": why,
                        "resolved_at": at,
                        "updated_at": at,
                    }
                    await store.put_item(list(INBOX_NAMESPACE), item["key"], dismissed, index=False)
            if len(items) < 100:
                return
            offset += len(items)


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The request's (possibly rewritten) body once, then the real channel (a client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _with_length(scope: Scope, body: bytes) -> Scope:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}


async def _refuse(send: Send, pending: int) -> None:
    detail = (
        f"{pending} escalations wait on this thread in separate interrupts (one per subgraph instance) and this "
        "answer names none of them; answer each by interrupt id (reliable-graph's inbox, console or the SDK), "
        "or give the graph's HumanEscalation mode='single'"
    )
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 409,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = Starlette(middleware=[Middleware(ReviewMiddleware)])
"""The app to name in `langgraph.json`'s `http.app`: no routes, the middleware only."""
