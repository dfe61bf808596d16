"""The web review console: the inbox's queue and escalations as HTML pages, decisions as POSTs.

An ASGI app on Starlette with Jinja2 templates (autoescaped) and no JavaScript. GETs only read;
the three POST routes (claim, release, resolve) are the only ones that change anything, each
checked for the session and its CSRF token, and answered with a 303 back to the escalation.
Errors are one line on the page with a 4xx status (500 if the step itself fails), never a
traceback. The inbox's calls block (a resolution runs the graph), so they run in a worker
thread, one at a time.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from reliable_graph import (
    AlreadyResolvedError,
    EscalationInbox,
    InboxItem,
    InvalidAnswerError,
    NoPendingEscalationError,
    ServerInbox,
)
from reliable_graph.console._format import (
    compact,
    duration,
    lapsed,
    num,
    one_line,
    percent,
    pretty,
    pretty_json,
    refusal,
    when,
)
from reliable_graph.console._security import SECURITY_HEADERS, Guard, Keys, same_origin
from reliable_graph.escalation import STATUSES

__all__ = ["TOKEN_ENV", "create_app", "serve"]

TOKEN_ENV = "RELIABLE_GRAPH_CONSOLE_TOKEN"
"""The environment variable the console reads its token from when `token=` is not given."""

T = TypeVar("T")

_TEMPLATES = Path(__file__).parent / "templates"
_STATUSES: dict[str, tuple[str, ...] | None] = {
    "open": ("pending", "claimed"),
    **{status: (status,) for status in STATUSES},
    "all": None,
}
_ORDERS = {"oldest": "oldest first", "confidence": "lowest confidence first"}
_DECISIONS = ("approve", "edit", "provide_context", "retry", "terminate")
_ATTEMPT_COLUMNS = ("attempt", "kind", "score", "threshold", "verdict", "reason")
_PER_PAGE = 25
_MAX_BODY = 1_000_000
_MAX_NAME = 200
_REVIEWER_COOKIE = "rg_console_reviewer"
"""Remembers the reviewer's name for the next form (a convenience, never an identity)."""
_FLASH = {
    "claim": "Claimed: the escalation is yours until the lease ends.",
    "release": "Released: the escalation is back in the queue.",
    "approve": "Resolved: approved; the step's proposed update was applied and the thread went on.",
    "edit": "Resolved: your edited output was applied and the thread went on.",
    "provide_context": "Resolved: your context was added and the step ran again.",
    "retry": "Resolved: the step ran again.",
    "terminate": "Resolved: the task was terminated.",
}


def _no_constants(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


class _Console:
    """The endpoints, around one inbox."""

    def __init__(self, inbox: EscalationInbox | ServerInbox, *, keys: Keys, title: str) -> None:
        self.inbox = inbox
        self.keys = keys
        self.title = title
        self.lock = threading.Lock()
        self.refusals: OrderedDict[str, tuple[int, str, dict[str, str]]] = OrderedDict()
        """Refusals waiting for the GET they redirect to (token -> status, message, the form as posted)."""
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters.update(pretty=pretty, compact=compact, when=when, num=num)
        self.templates = Jinja2Templates(env=env)

    def deadline(self, item: InboxItem) -> str | None:
        """When the inbox's default action applies to `item` (the rule `sweep()` follows)."""
        if item.deadline or self.inbox.deadline is None or item.status not in ("pending", "claimed"):
            return item.deadline
        try:
            return (datetime.fromisoformat(item.created_at) + self.inbox.deadline).isoformat()
        except ValueError:
            return None

    async def _run(self, fn: Callable[[], T]) -> T:
        def locked() -> T:
            with self.lock:
                return fn()

        return await run_in_threadpool(locked)

    # -- rendering ---------------------------------------------------------------------------

    def _render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        session = str(request.state.session)
        base = {
            "title": self.title,
            "base": request.scope.get("root_path", ""),
            "csrf": self.keys.csrf(session),
            "reviewer": unquote(request.cookies.get(_REVIEWER_COOKIE, ""))[:_MAX_NAME],
            "flash": None,
            "error": None,
            "deadline": self.deadline,
        }
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)

    def _message(self, request: Request, status_code: int, message: str) -> Response:
        return self._render(request, "message.html", status_code, error=one_line(message))

    # -- the queue ---------------------------------------------------------------------------

    async def queue(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status", "open")
        order = query.get("order", "oldest")
        if status not in _STATUSES:
            return self._message(request, 400, f"unknown status {status!r}: use one of {', '.join(_STATUSES)}")
        if order not in _ORDERS:
            return self._message(request, 400, f"unknown order {order!r}: use oldest or confidence")
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", str(_PER_PAGE)))
        except ValueError:
            return self._message(request, 400, "page and per_page must be whole numbers")
        if page < 1 or not 1 <= per_page <= 200:
            return self._message(request, 400, "page must be at least 1 and per_page between 1 and 200")
        text = {key: query.get(key, "").strip()[:_MAX_NAME] for key in ("step", "thread", "assignee")}
        items = await self._run(
            lambda: self.inbox.list(
                status=_STATUSES[status],
                step=text["step"] or None,
                thread_id=text["thread"] or None,
                assignee=text["assignee"] or None,
                order="confidence" if order == "confidence" else "oldest",
                limit=per_page + 1,
                offset=(page - 1) * per_page,
            )
        )
        more = len(items) > per_page
        filters = {"status": status, "order": order, **text}

        def page_url(number: int) -> str:
            params = {k: v for k, v in filters.items() if v and (k, v) not in (("status", "open"), ("order", "oldest"))}
            if per_page != _PER_PAGE:
                params["per_page"] = str(per_page)
            if number > 1:
                params["page"] = str(number)
            return f"{request.scope.get('root_path', '')}/" + (f"?{urlencode(params)}" if params else "")

        return self._render(
            request,
            "queue.html",
            items=items[:per_page],
            filters=filters,
            statuses=list(_STATUSES),
            orders=_ORDERS,
            page=page,
            per_page=per_page,
            default_per_page=_PER_PAGE,
            previous_url=page_url(page - 1) if page > 1 else None,
            next_url=page_url(page + 1) if more else None,
        )

    # -- one escalation ----------------------------------------------------------------------

    async def show(self, request: Request) -> Response:
        done = request.query_params.get("done", "")
        refused = self.refusals.pop(request.query_params.get("refused", ""), None)
        if refused is not None:  # a refused form, shown after a redirect: a reload does not post it again
            status_code, message, form = refused
            return await self._page(
                request, request.path_params["escalation_id"], status_code=status_code, error=message, form=form
            )
        return await self._page(request, request.path_params["escalation_id"], flash=_FLASH.get(done), done=done)

    async def _page(
        self,
        request: Request,
        escalation_id: str,
        *,
        status_code: int = 200,
        error: str | None = None,
        flash: str | None = None,
        form: Mapping[str, str] | None = None,
        done: str = "",
    ) -> Response:
        def load() -> tuple[InboxItem, list[Any], list[InboxItem]]:
            item = self.inbox.show(escalation_id)
            trail = self.inbox.audit(escalation_id)
            others = []
            if item.thread_id:
                others = [i for i in self.inbox.list(thread_id=item.thread_id, limit=50) if i.id != item.id]
            return item, trail, others

        try:
            item, trail, others = await self._run(load)
        except NoPendingEscalationError:
            return self._message(request, 404, f"There is no escalation {escalation_id!r} in this inbox.")
        esc = item.escalation
        confidence = float(esc.get("confidence", item.confidence) or 0.0)
        threshold = float(esc.get("threshold", item.threshold) or 0.0)
        attempts = [
            (a, {k: v for k, v in a.items() if k not in _ATTEMPT_COLUMNS}) if isinstance(a, dict) else ({}, {"a": a})
            for a in esc.get("attempts") or []
        ]
        allowed = [d for d in _DECISIONS if d in (esc.get("allowed_decisions") or _DECISIONS)]
        again: list[InboxItem] = []
        if done in ("provide_context", "retry"):
            again = [
                o
                for o in await self._run(lambda: [self.inbox.show(o.id) for o in others])
                if o.escalation.get("task") == esc.get("task")
            ]
            if again:
                flash = f"{flash} It escalated again: round {again[0].escalation.get('round', 2)} waits below."
            else:
                flash = f"{flash} It did not escalate again."
        reviewer = unquote(request.cookies.get(_REVIEWER_COOKIE, ""))[:_MAX_NAME]
        held = item.status == "claimed" and not lapsed(item) and item.assignee not in (None, reviewer)
        decided = item.decision or {}
        return self._render(
            request,
            "escalation.html",
            status_code,
            item=item,
            esc=esc,
            trail=trail,
            attempts=attempts,
            others=others,
            confidence=confidence,
            threshold=threshold,
            confidence_pct=percent(confidence),
            threshold_pct=percent(threshold),
            lapsed=lapsed(item),
            is_open=item.status in ("pending", "claimed"),
            lease=duration(self.inbox.lease),
            allowed=allowed,
            form=dict(form or {}),
            edit_text=(form or {}).get("output", pretty_json(esc.get("output"))),
            again=again,
            held_by_other=held,
            applied_output=decided.get("output") if decided.get("action") == "edit" else None,
            edited=decided.get("action") == "edit",
            error=one_line(error) if error else None,
            flash=flash,
        )

    # -- the three routes that change anything -----------------------------------------------

    async def _form(self, request: Request) -> dict[str, str] | Response:
        """The POSTed fields, once the request is shown to come from this session's own pages."""
        if not same_origin(request):
            return self._message(request, 403, "Refused: this form was posted from another site.")
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > _MAX_BODY:
            return self._message(request, 413, f"Refused: a form must be under {_MAX_BODY} bytes.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                return self._message(request, 413, f"Refused: a form must be under {_MAX_BODY} bytes.")
        fields: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
            except (UnicodeDecodeError, ValueError):
                pairs = []
            for key, value in pairs:
                fields.setdefault(key, value)
        if not self.keys.csrf_ok(str(request.state.session), fields.get("csrf")):
            return self._message(request, 403, "Refused: the form's CSRF token is missing or wrong; reload the page.")
        return fields

    async def claim(self, request: Request) -> Response:
        return await self._act(request, "claim")

    async def release(self, request: Request) -> Response:
        return await self._act(request, "release")

    async def resolve(self, request: Request) -> Response:
        return await self._act(request, "resolve")

    async def _act(self, request: Request, verb: str) -> Response:
        escalation_id = request.path_params["escalation_id"]
        fields = await self._form(request)
        if isinstance(fields, Response):
            return fields
        reviewer = fields.get("reviewer", "").strip()

        async def refuse(status_code: int, message: str) -> Response:
            # Post/Redirect/Get: the refusal is shown by a GET, so reloading it posts nothing again
            token = secrets.token_urlsafe(16)
            with self.lock:
                self.refusals[token] = (status_code, message, {k: v for k, v in fields.items() if k != "csrf"})
                while len(self.refusals) > 1000:
                    self.refusals.popitem(last=False)
            base = request.scope.get("root_path", "")
            return RedirectResponse(f"{base}/escalations/{quote(escalation_id, safe='')}?refused={token}", 303)

        if not reviewer:
            return await refuse(400, "Enter your name as reviewer: every claim and decision is recorded with it.")
        if len(reviewer) > _MAX_NAME:
            return await refuse(400, f"A reviewer name has at most {_MAX_NAME} characters.")
        done = verb
        try:
            if verb == "claim":
                await self._run(lambda: self.inbox.claim(escalation_id, reviewer=reviewer))
            elif verb == "release":
                await self._run(lambda: self.inbox.release(escalation_id, reviewer=reviewer))
            else:
                answer = _answer(fields, reviewer)
                done = str(answer["action"])
                await self._run(lambda: self.inbox.resolve(escalation_id, answer, reviewer=reviewer))
        except _BadForm as err:
            return await refuse(400, str(err))
        except InvalidAnswerError as err:
            return await refuse(400, f"Answer rejected, nothing was applied: {err.reason}")
        except AlreadyResolvedError as err:
            return await refuse(409, refusal(err))
        except NoPendingEscalationError:
            return self._message(request, 404, f"There is no escalation {escalation_id!r} in this inbox.")
        except ConnectionError:
            raise  # a ServerInbox's server stopped answering: the app's 502 page
        except Exception as err:  # noqa: BLE001 - the step itself failed while the decision was applied
            message = (
                f"Applying the decision failed: {type(err).__name__}: {err}. "
                "The inbox finishes it on reconcile(); see the server's log."
            )
            return await refuse(500, message)
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/escalations/{quote(escalation_id, safe='')}?done={done}", 303)
        response.set_cookie(
            _REVIEWER_COOKIE,
            quote(reviewer, safe=""),  # any name, as cookie-safe ASCII
            max_age=30 * 24 * 3600,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=base or "/",
        )
        return response


class _BadForm(ValueError):
    """A decision form that cannot become an answer (unknown action, edit that is not JSON)."""


def _answer(fields: Mapping[str, str], reviewer: str) -> dict[str, Any]:
    action = fields.get("action", "")
    if action not in _DECISIONS:
        msg = f"Unknown decision {action!r}: use one of {', '.join(_DECISIONS)}."
        raise _BadForm(msg)
    answer: dict[str, Any] = {"action": action, "reviewer": reviewer}
    reason = fields.get("reason", "").strip()
    if reason:
        answer["reason"] = reason
    if action == "edit":
        text = fields.get("output", "")
        try:
            answer["output"] = json.loads(text, parse_constant=_no_constants)
        except json.JSONDecodeError as err:
            msg = (
                f"The edited output is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                'nothing was applied. Text goes in double quotes, like "signed".'
            )
            raise _BadForm(msg) from None
        except ValueError as err:
            msg = f"The edited output is not valid JSON ({err}); nothing was applied."
            raise _BadForm(msg) from None
    elif action == "provide_context":
        answer["context"] = [fields.get("context", "")]
    return answer


async def _unreachable(request: Request, exc: Exception) -> Response:
    """A `ServerInbox` whose LangGraph Server stopped answering: one line, 502."""
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>502</title><p>502: the LangGraph Server behind this inbox "
        "cannot be reached; see the console's log.",
        status_code=502,
        headers=dict(SECURITY_HEADERS),
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>500</title><p>500: the console hit an internal error; "
        "see the server's log.",
        status_code=500,
        headers=dict(SECURITY_HEADERS),
    )


def create_app(
    inbox: EscalationInbox | ServerInbox, *, token: str | None = None, title: str = "reliable-graph inbox"
) -> Starlette:
    """The web review console for `inbox`: an ASGI app (Starlette, Jinja2 templates, no JavaScript).

    Pages: `GET /` is the queue (filters `status` (`open`, an item's status such as `pending`,
    `claimed`, `resolved` or `dismissed`, or `all`), `step`, `thread`, `assignee`; `order`
    `oldest` or `confidence`; `page`, `per_page`). `GET /escalations/{id}` shows one escalation
    with everything a reviewer needs, its audit trail and the forms. `POST /escalations/{id}/claim`,
    `/release` and `/resolve` are the only routes that change anything. Each answers with a 303
    to a GET of the escalation, so that a reload posts nothing again: `?done=ACTION` when it was
    done (the page says what happened), `?refused=TOKEN` when it was refused. That GET shows the
    page with the form as it was typed and a one-line message, under the refusal's status: 400
    for a missing reviewer name, an answer that breaks a rule or an edit that is not JSON, 409
    when someone else resolved or holds it, 500 when the step failed while the decision was
    applied. A refusal is kept in memory and shown once (reloading shows the page as it is now).
    A POST refused before its form is read (another origin, a missing or wrong CSRF token, a body
    over 1 MB) or naming no escalation is answered at once with a one-line page (403, 413, 404),
    and a `ServerInbox` whose server stopped answering gives 502.

    Every route needs the token: given once as `?token=` (which starts a session in an HttpOnly,
    SameSite=Strict cookie and redirects to the same page without it), then the cookie; anything
    else gets 401 and no data. Every form carries the session's CSRF token and every POST without
    it, with a wrong one, or from another origin gets 403. Agent data is shown as text only
    (autoescaped, JSON in `<pre>`), under a Content-Security-Policy that allows no script at all.

    Args:
        inbox: The inbox to review: an `EscalationInbox` (built with `graph=` so decisions can be
            applied) or a `ServerInbox` (a LangGraph Server deployment's).
        token: The access token; default the `RELIABLE_GRAPH_CONSOLE_TOKEN` environment variable,
            else a new random one. The app keeps it in `app.state.token` (to print the URL).
        title: The heading of every page.

    Returns:
        The Starlette app, to serve with any ASGI server (`serve` runs uvicorn).

    Raises:
        TypeError: `inbox` is neither an `EscalationInbox` nor a `ServerInbox`.
        ValueError: `token` is empty.

    Example:
        ```python
        import re
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from langgraph.store.memory import InMemoryStore
        from starlette.testclient import TestClient
        from reliable_graph import EscalationInbox, HumanEscalation, Predicate, ReliabilityState, reliable_step
        from reliable_graph.console import create_app

        class State(ReliabilityState, total=False):
            question: str
            output: str

        builder = StateGraph(State)
        builder.add_node(reliable_step(lambda s: {"output": "?"}, name="draft", threshold=1.0, max_retries=0,
                                       evaluator=Predicate(fn=lambda o: o != "?"), pass_to=END))
        builder.add_node(HumanEscalation())
        builder.add_edge(START, "draft")
        store = InMemoryStore()
        graph = builder.compile(checkpointer=InMemorySaver(), store=store)
        config = {"configurable": {"thread_id": "t1"}}
        graph.invoke({"question": "why?"}, config)

        app = create_app(EscalationInbox(store, graph=graph), token="s3cret")
        client = TestClient(app)
        assert client.get("/").status_code == 401            # no token, no data
        queue = client.get("/?token=s3cret")                 # the token once, a session cookie after that
        [link] = re.findall(r'href="(/escalations/[^"]+)"', queue.text)
        page = client.get(link)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        form = {"csrf": csrf, "reviewer": "ana", "action": "edit", "output": '"42"', "reason": "checked"}
        done = client.post(link + "/resolve", data=form)     # a 303 back to the escalation
        assert done.status_code == 200 and "Resolved" in done.text
        assert graph.get_state(config).values["output"] == "42"
        assert client.post(link + "/resolve", data={**form, "csrf": "forged"}).status_code == 403
        ```
    """
    if not isinstance(inbox, (EscalationInbox, ServerInbox)):
        msg = f"create_app needs an EscalationInbox or a ServerInbox, not {type(inbox).__name__}"
        raise TypeError(msg)
    if token is None:
        token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(32)
    if not token.strip():
        msg = "create_app(token=...) must not be empty"
        raise ValueError(msg)
    keys = Keys(token)
    console = _Console(inbox, keys=keys, title=title)
    app = Starlette(
        routes=[
            Route("/", console.queue, methods=["GET"]),
            Route("/escalations/{escalation_id}", console.show, methods=["GET"]),
            Route("/escalations/{escalation_id}/claim", console.claim, methods=["POST"]),
            Route("/escalations/{escalation_id}/release", console.release, methods=["POST"]),
            Route("/escalations/{escalation_id}/resolve", console.resolve, methods=["POST"]),
        ],
        middleware=[Middleware(Guard, keys=keys)],
        exception_handlers={ConnectionError: _unreachable, Exception: _server_error},
    )
    app.state.token = token
    app.state.inbox = inbox
    return app


def serve(
    inbox: EscalationInbox | ServerInbox, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None
) -> None:
    """Serve the console for `inbox` with uvicorn until interrupted, printing the URL to open.

    The URL carries the token once (`?token=...`); the browser keeps a session cookie after that.
    uvicorn's access log is off, so the token is never written to a log.

    Args:
        inbox: The inbox to review.
        host: The interface to listen on (loopback by default: the console is for the reviewer's machine
            or a trusted network behind TLS).
        port: The port.
        token: As for `create_app`.
    """
    import uvicorn

    app = create_app(inbox, token=token)
    shown = f"[{host}]" if ":" in host else host
    print(f"reliable-graph inbox console: http://{shown}:{port}/?token={quote(app.state.token, safe='')}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
