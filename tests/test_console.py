from __future__ import annotations

import html
import http.server
import inspect
import json
import re
import socket
import struct
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from conftest import Clock
from console_app import IMG, MALICIOUS, SCRIPT, console_app, run
from inbox_app import sqlite_app
from starlette.applications import Starlette
from starlette.testclient import TestClient

import reliable_graph.console
from reliable_graph import EscalationInbox, run_outcome
from reliable_graph.console import TOKEN_ENV, create_app, serve

TOKEN = "test-token-0123456789"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


# -- helpers -------------------------------------------------------------------------------


def escalate(graph: Any, questions: list[str]) -> None:
    for q in questions:
        out = graph.invoke({"question": q}, {"configurable": {"thread_id": q}})
        assert run_outcome(out) == "escalated"


def login(client: TestClient) -> None:
    response = client.get(f"/?token={TOKEN}")
    assert response.status_code == 200, response.text


def csrf_of(client: TestClient, escalation_id: str) -> str:
    page = client.get(f"/escalations/{escalation_id}")
    match = CSRF.search(page.text)
    assert match, page.text
    return match.group(1)


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


def error_line(page: str) -> str:
    match = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.DOTALL)
    assert match, page
    return html.unescape(match.group(1))


def state_of(graph: Any, thread: str) -> Any:
    return graph.get_state({"configurable": {"thread_id": thread}})


@contextmanager
def client_for(app: Starlette, *, logged_in: bool = True) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=True) as client:
        if logged_in:
            login(client)
        yield client


@contextmanager
def inbox_on(tmp_path: Path, questions: list[str], **inbox_options: Any) -> Iterator[tuple[Any, EscalationInbox]]:
    with sqlite_app(tmp_path / "app.sqlite", tmp_path / "effects.log") as (graph, store):
        escalate(graph, questions)
        yield graph, EscalationInbox(store, graph=graph, **inbox_options)


# -- the token -------------------------------------------------------------------------------


def test_console_requires_the_token(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (_, inbox):
        [item] = inbox.list()
        app = create_app(inbox, token=TOKEN)
        with TestClient(app, follow_redirects=False) as client:
            for method, url in [
                ("GET", "/"),
                ("GET", f"/escalations/{item.id}"),
                ("POST", f"/escalations/{item.id}/claim"),
                ("POST", f"/escalations/{item.id}/release"),
                ("POST", f"/escalations/{item.id}/resolve"),
                ("GET", "/?token=wrong"),
                ("GET", f"/escalations/{item.id}?token="),
            ]:
                response = client.request(method, url)
                assert response.status_code == 401, (method, url)
                assert "tides" not in response.text and item.id not in response.text
                assert "set-cookie" not in response.headers
            client.cookies.set("rg_console_session", "forged.0000")
            assert client.get("/").status_code == 401

            first = client.get(f"/?token={TOKEN}&status=all")
            assert first.status_code == 303 and first.headers["location"] == "/?status=all"  # token out of the URL
            cookie = first.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
            client.cookies.clear()
            client.cookies.set("rg_console_session", cookie.split(";")[0].split("=", 1)[1])
            page = client.get("/?status=all")
            assert page.status_code == 200 and "tides" in page.text
            assert client.get("/?token=wrong").status_code == 401  # a wrong token is refused, cookie or not

        other = create_app(inbox, token="another-token")
        with TestClient(other, follow_redirects=False) as client:
            session = client.get("/?token=another-token").headers["set-cookie"].split(";")[0].split("=", 1)[1]
        with TestClient(app) as client:
            client.cookies.set("rg_console_session", session)  # a session of another console
            assert client.get("/").status_code == 401


def test_console_token_comes_from_the_argument_the_environment_or_is_generated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with inbox_on(tmp_path, []) as (_, inbox):
        monkeypatch.setenv(TOKEN_ENV, "from-the-env")
        assert create_app(inbox).state.token == "from-the-env"
        assert create_app(inbox, token="given").state.token == "given"
        monkeypatch.delenv(TOKEN_ENV)
        first, second = create_app(inbox).state.token, create_app(inbox).state.token
        assert len(first) >= 32 and first != second
        with client_for(create_app(inbox), logged_in=False) as client:
            assert client.get("/").status_code == 401
        with pytest.raises(ValueError, match="empty"):
            create_app(inbox, token=" ")
        with pytest.raises(TypeError, match="EscalationInbox"):
            create_app(object())  # type: ignore[arg-type]


def test_console_sends_security_headers_on_every_response(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (_, inbox):
        [item] = inbox.list()
        with client_for(create_app(inbox, token=TOKEN)) as client:
            responses = [
                client.get("/"),
                client.get(f"/escalations/{item.id}"),
                client.get("/escalations/nope"),
                client.get("/no/such/page"),
                client.post(f"/escalations/{item.id}/claim", data={}),
            ]
            client.cookies.clear()
            responses.append(client.get("/"))
        assert [r.status_code for r in responses] == [200, 200, 404, 404, 403, 401]
        for response in responses:
            assert response.headers["content-security-policy"] == CSP
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "Traceback" not in response.text


# -- CSRF and GETs ---------------------------------------------------------------------------


def test_console_posts_need_the_csrf_token_of_the_session(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (graph, inbox):
        [item] = inbox.list()
        before = state_of(graph, "tides")
        app = create_app(inbox, token=TOKEN)
        with client_for(app) as elsewhere:
            foreign = csrf_of(elsewhere, item.id)  # the CSRF token of another session
        with client_for(app) as client:
            good = csrf_of(client, item.id)
            assert good != foreign
            answers = {"action": "edit", "output": '"forged"', "reviewer": "mallory"}
            for route in ("claim", "release", "resolve"):
                url = f"/escalations/{item.id}/{route}"
                for data, headers in [
                    (answers, {}),
                    ({**answers, "csrf": ""}, {}),
                    ({**answers, "csrf": "guess"}, {}),
                    ({**answers, "csrf": foreign}, {}),
                    ({**answers, "csrf": good}, {"origin": "http://evil.example"}),
                    ({**answers, "csrf": good}, {"origin": "null"}),
                ]:
                    response = client.post(url, data=data, headers=headers)
                    assert response.status_code == 403, (route, data, headers)
                    assert "Refused" in error_line(response.text)
                response = client.post(url, files={"csrf": (None, good)})  # only the console's own url-encoded forms
                assert response.status_code == 403
        assert inbox.show(item.id).status == "pending" and inbox.show(item.id).assignee is None
        assert [e.event for e in inbox.audit(item.id)] == ["index"]
        after = state_of(graph, "tides")
        assert after.config == before.config and "output" not in after.values


def test_console_get_never_changes_anything(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides", "moon"]) as (graph, inbox):
        items = inbox.list()
        before = {t: state_of(graph, t).config for t in ("tides", "moon")}
        with client_for(create_app(inbox, token=TOKEN)) as client:
            csrf = csrf_of(client, items[0].id)
            decision = f"action=approve&reviewer=ana&csrf={csrf}&output=%22x%22"
            for item in items:
                for url in [
                    f"/escalations/{item.id}?{decision}",
                    f"/escalations/{item.id}?done=approve",
                    f"/?status=all&{decision}",
                    f"/?token={TOKEN}&{decision}",
                ]:
                    assert client.get(url).status_code == 200
                for route in ("claim", "release", "resolve"):
                    response = client.get(f"/escalations/{item.id}/{route}?{decision}")
                    assert response.status_code == 405
        assert {t: state_of(graph, t).config for t in ("tides", "moon")} == before
        for item in items:
            assert inbox.show(item.id).status == "pending"
            assert [e.event for e in inbox.audit(item.id)] == ["index"]


# -- decisions -------------------------------------------------------------------------------


def test_console_resolve_applies_exactly_once(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (graph, inbox):
        [item] = inbox.list()
        with client_for(create_app(inbox, token=TOKEN)) as client:
            csrf = csrf_of(client, item.id)
            form = {"csrf": csrf, "reviewer": "ana", "action": "edit", "output": '"signed"', "reason": "checked"}
            response = client.post(f"/escalations/{item.id}/resolve", data=form, follow_redirects=False)
            assert response.status_code == 303
            assert response.headers["location"] == f"/escalations/{item.id}?done=edit"
            page = client.get(response.headers["location"])
            assert "Resolved: your edited output was applied" in page.text
            assert '<span class="badge status-resolved" id="status">resolved</span>' in page.text
            assert 'id="decide-approve"' not in page.text  # no more decision forms
            values = state_of(graph, "tides").values
            assert values["output"] == "signed" and values["done"] == "signed"

            again = client.post(f"/escalations/{item.id}/resolve", data={**form, "action": "approve"})
            assert again.status_code == 409
            assert error_line(again.text).startswith("Refused: this escalation is already resolved by ana at ")
            assert "Traceback" not in again.text
        assert (tmp_path / "effects.log").read_text().splitlines() == ["tides"]
        trail = inbox.audit(item.id)
        assert [e.event for e in trail].count("resolve") == 1
        assert (trail[-1].actor, trail[-1].before, trail[-1].after) == ("ana", "draft for tides", "signed")
        assert inbox.show(item.id).decision == {
            "action": "edit",
            "output": "signed",
            "reason": "checked",
            "reviewer": "ana",
        }


@pytest.mark.parametrize(
    ("decision", "outcome"),
    [
        ({"action": "approve"}, "ok"),
        ({"action": "terminate", "reason": "off topic"}, "terminated"),
        ({"action": "retry"}, "escalated"),
        ({"action": "provide_context", "context": "Tides follow the moon."}, "escalated"),
    ],
    ids=["approve", "terminate", "retry", "provide_context"],
)
def test_console_applies_every_decision(tmp_path: Path, decision: dict[str, str], outcome: str) -> None:
    with inbox_on(tmp_path, ["tides"]) as (graph, inbox):
        [item] = inbox.list()
        with client_for(create_app(inbox, token=TOKEN)) as client:
            form = {"csrf": csrf_of(client, item.id), "reviewer": "ana", **decision}
            page = client.post(f"/escalations/{item.id}/resolve", data=form)
            assert page.status_code == 200 and 'class="flash"' in page.text
            assert run_outcome(state_of(graph, "tides")) == outcome
            if outcome == "escalated":  # the step ran again and escalated anew: the page links to it
                [fresh] = inbox.list(thread_id="tides")
                assert fresh.id != item.id and f'href="/escalations/{fresh.id}"' in page.text
        assert inbox.show(item.id).status == "resolved"


def test_console_bad_edit_json_gives_a_clear_message(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (graph, inbox):
        [item] = inbox.list()
        with client_for(create_app(inbox, token=TOKEN)) as client:
            csrf = csrf_of(client, item.id)
            form = {"csrf": csrf, "reviewer": "ana", "action": "edit", "output": "signed <b>by</b> ana"}
            page = client.post(f"/escalations/{item.id}/resolve", data=form)
            assert page.status_code == 400
            message = error_line(page.text)
            assert message.startswith("The edited output is not valid JSON (Expecting value at line 1, column 1)")
            assert "nothing was applied" in message and "\n" not in message
            assert "signed &lt;b&gt;by&lt;/b&gt; ana</textarea>" in page.text  # what was typed, kept (inert)
            page = client.post(f"/escalations/{item.id}/resolve", data={**form, "output": "NaN"})
            assert page.status_code == 400 and "NaN is not JSON" in error_line(page.text)
            assert "Traceback" not in page.text
        assert inbox.show(item.id).status == "pending"
        assert "output" not in state_of(graph, "tides").values


def test_console_shows_rejected_answers_and_bad_forms_as_one_line(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (_, inbox):
        [item] = inbox.list()
        with client_for(create_app(inbox, token=TOKEN)) as client:
            csrf = csrf_of(client, item.id)
            url = f"/escalations/{item.id}/resolve"
            for form, status, expected in [
                ({"action": "provide_context", "context": "  "}, 400, "Answer rejected, nothing was applied: "),
                ({"action": "shrug"}, 400, "Unknown decision 'shrug'"),
                ({"action": "approve", "reviewer": ""}, 400, "Enter your name as reviewer"),
                ({"action": "approve", "reviewer": "x" * 201}, 400, "A reviewer name has at most 200 characters"),
            ]:
                page = client.post(url, data={"csrf": csrf, "reviewer": "ana", **form})
                assert page.status_code == status, form
                assert error_line(page.text).startswith(expected)
                assert "Traceback" not in page.text
            for route in ("claim", "release", "resolve"):
                missing = client.post(f"/escalations/nope/{route}", data={"csrf": csrf, "reviewer": "ana"})
                assert missing.status_code == 404 and "no escalation 'nope'" in error_line(missing.text)
        assert inbox.show(item.id).status == "pending"


def test_console_step_failure_while_applying_is_one_line(tmp_path: Path) -> None:
    # the step after review appends to a file: give it a directory, and it raises
    with sqlite_app(tmp_path / "app.sqlite", tmp_path) as (graph, store):
        escalate(graph, ["tides"])
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list()
        with client_for(create_app(inbox, token=TOKEN)) as client:
            form = {"csrf": csrf_of(client, item.id), "reviewer": "ana", "action": "approve"}
            page = client.post(f"/escalations/{item.id}/resolve", data=form)
        assert page.status_code == 500
        assert error_line(page.text).startswith("Applying the decision failed: IsADirectoryError")
        assert "Traceback" not in page.text


def test_console_claims_release_and_conflicts(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (_, inbox):
        [item] = inbox.list()
        app = create_app(inbox, token=TOKEN)
        with client_for(app) as ana, client_for(app) as bo:
            url = f"/escalations/{item.id}"
            page = ana.post(f"{url}/claim", data={"csrf": csrf_of(ana, item.id), "reviewer": "ana"})
            assert page.status_code == 200 and "Claimed: the escalation is yours" in page.text
            assert re.search(r'id="assignee">ana <span class="muted">until ', page.text)
            assert 'value="ana"' in ana.get(url).text  # the name is remembered for the next form
            bo_csrf = csrf_of(bo, item.id)
            for route, form in [
                ("claim", {}),
                ("release", {}),
                ("resolve", {"action": "approve"}),
            ]:
                refused = bo.post(f"{url}/{route}", data={"csrf": bo_csrf, "reviewer": "bo", **form})
                assert refused.status_code == 409, route
                assert error_line(refused.text).startswith("Refused: ana holds the claim on this escalation until ")
            page = ana.post(f"{url}/release", data={"csrf": csrf_of(ana, item.id), "reviewer": "ana"})
            assert "Released" in page.text and 'id="claim"' in page.text
            name = 'Zoë "李明"; ana'  # any name: remembered in a cookie, shown escaped
            page = bo.post(f"{url}/claim", data={"csrf": bo_csrf, "reviewer": name})
            assert page.status_code == 200 and 'value="Zoë &#34;李明&#34;; ana"' in page.text
            page = bo.post(f"{url}/release", data={"csrf": bo_csrf, "reviewer": name})
            assert page.status_code == 200 and "Released" in page.text
        assert inbox.show(item.id).status == "pending"
        assert [(e.event, e.actor) for e in inbox.audit(item.id)] == [
            ("index", "system"),
            ("claim", "ana"),
            ("release", "ana"),
            ("claim", 'Zoë "李明"; ana'),
            ("release", 'Zoë "李明"; ana'),
        ]


# -- pages -----------------------------------------------------------------------------------


def test_console_queue_filters_sorts_and_pages(tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["q1", "q2", "q3"]) as (_, inbox):
        ids = [i.id for i in inbox.list()]
        with client_for(create_app(inbox, token=TOKEN)) as client:
            page = client.get("/")
            assert rows(page.text) == ids
            for i in ids:
                assert page.text.count(f'href="/escalations/{i}"') == 1
            first = client.get("/?per_page=2")
            assert rows(first.text) == ids[:2] and 'rel="prev"' not in first.text
            [next_url] = re.findall(r'rel="next" href="([^"]+)"', first.text)
            second = client.get(next_url.replace("&amp;", "&"))
            assert rows(second.text) == ids[2:] and 'rel="next"' not in second.text and 'rel="prev"' in second.text
            assert rows(client.get("/?thread=q2").text) == [ids[1]]
            assert sorted(rows(client.get("/?step=draft&order=confidence").text)) == sorted(ids)
            assert "No escalations match" in client.get("/?step=nope").text
            assert rows(client.get("/?status=resolved").text) == []

            csrf = csrf_of(client, ids[0])
            client.post(f"/escalations/{ids[0]}/claim", data={"csrf": csrf, "reviewer": "ana"})
            assert rows(client.get("/?assignee=ana").text) == [ids[0]]
            assert rows(client.get("/?status=pending").text) == ids[1:]
            client.post(f"/escalations/{ids[1]}/resolve", data={"csrf": csrf, "reviewer": "bo", "action": "approve"})
            assert rows(client.get("/").text) == [ids[0], ids[2]]
            assert rows(client.get("/?status=resolved").text) == [ids[1]]
            assert rows(client.get("/?status=all").text) == ids

            for bad in ("/?order=newest", "/?status=lost", "/?page=0", "/?page=two", "/?per_page=1000"):
                response = client.get(bad)
                assert response.status_code == 400 and error_line(response.text), bad


def test_console_escalation_page_shows_what_a_reviewer_needs(tmp_path: Path, clock: Clock) -> None:
    """At 23:50 UTC (the frozen clock), a 4-hour deadline falls on the next day, and the page says so."""
    with console_app(tmp_path / "app.sqlite") as (graph, store):
        run(graph, "Brest")
        inbox = EscalationInbox(store, graph=graph, deadline=timedelta(hours=4))
        [item] = inbox.list()
        esc = inbox.show(item.id).escalation
        with client_for(create_app(inbox, token=TOKEN, title="Tides review")) as client:
            page = client.get(f"/escalations/{item.id}").text
    assert "<title>answer · Tides review</title>" in page
    for expected in [
        "path <code>answer</code>",
        "thread <code>Brest</code>",
        'confidence <b id="confidence">0.35</b> vs threshold <b id="threshold">0.80</b>',
        "the answer cites no source: the only tide table in the context is from 2023",
        "needs a decision: its output scored 0.35 against a threshold of 0.80 after 2 attempt(s).",
        "Attempts (2)",
        "<td>retry</td>",
        "<td>escalate</td>",
        "&#34;question&#34;: &#34;Brest&#34;",  # the inputs, as escaped JSON
        "High tide at Brest is at 14:32 local time, 5.9 m above chart datum.",
        "Proposed update (what approve applies)",
        "Context (2 chunks)",
        "Tide table for Brest: high water 14:32, 5.9 m; low water 08:17, 1.4 m.",
        "shom.fr/tides",
        esc["last_good_checkpoint_id"],
        "2026-12-05 23:50:00 UTC",  # created
        "<dt>Deadline</dt><dd>2026-12-06 03:50:00 UTC</dd>",
        '<span class="badge status-pending" id="status">pending</span>',
        '<dd id="assignee">-',
        "<td>system</td><td>index</td>",
        "approve, edit, provide_context, retry, terminate",
    ]:
        assert expected in page, expected
    for form in (
        "claim",
        "decide-approve",
        "decide-edit",
        "decide-provide_context",
        "decide-retry",
        "decide-terminate",
    ):
        assert f'id="{form}"' in page, form
    assert page.count('name="reviewer"') == 6 and page.count('name="reason"') == 5
    assert page.count(f'name="csrf" value="{CSRF.search(page).group(1)}"') == 6  # type: ignore[union-attr]


def test_console_shows_agent_data_as_inert_text(tmp_path: Path) -> None:
    with console_app(tmp_path / "app.sqlite") as (graph, store):
        run(graph, "xss")
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list()
        with client_for(create_app(inbox, token=TOKEN)) as client:
            pages = [client.get("/").text, client.get(f"/escalations/{item.id}").text]
    for page in pages:
        assert "<script" not in page and "<img" not in page
        assert "&lt;img src=x onerror=" in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in pages[1]


def test_console_unknown_escalation_is_404(tmp_path: Path) -> None:
    with inbox_on(tmp_path, []) as (_, inbox), client_for(create_app(inbox, token=TOKEN)) as client:
        response = client.get("/escalations/" + quote("<b>nope"))
        assert response.status_code == 404
        assert error_line(response.text) == "There is no escalation '<b>nope' in this inbox."
        assert "<b>nope" not in response.text


def test_console_create_app_example_runs() -> None:
    doc = inspect.getdoc(create_app) or ""
    [block] = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    module = types.ModuleType("doc_console_create_app")
    sys.modules[module.__name__] = module
    try:
        exec(compile(textwrap.dedent(block), "<create_app example>", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    assert reliable_graph.console.__all__ == ["TOKEN_ENV", "create_app", "serve"]


def test_serve_prints_the_url_with_the_token_and_runs_uvicorn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    with inbox_on(tmp_path, []) as (_, inbox):
        serve(inbox, port=9999, token="a b")
    assert capsys.readouterr().out.strip() == "reliable-graph inbox console: http://127.0.0.1:9999/?token=a%20b"
    [(app, options)] = calls
    assert app.state.token == "a b"
    assert options == {"host": "127.0.0.1", "port": 9999, "log_level": "warning", "access_log": False}


# -- end to end, in a real browser -----------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (CI installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free loopback port; stop it afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ws="none", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@contextmanager
def other_site(html: str) -> Iterator[str]:
    """A page on another origin (another port), as an attacker would serve it."""
    body = html.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def new_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_console_e2e_review_flow_in_chromium(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with inbox_on(tmp_path, ["tides", "moon"]) as (graph, inbox):
        item = inbox.list(thread_id="tides")[0]
        with served(create_app(inbox, token=TOKEN)) as base, new_page(browser) as page:
            response = page.goto(f"{base}/?token={TOKEN}")
            assert response is not None and response.ok
            assert page.url == f"{base}/"  # the token is out of the address bar
            expect(page.locator("table.queue tbody tr")).to_have_count(2)
            expect(page.locator(f'tr[data-id="{item.id}"]')).to_contain_text("tides")

            page.locator(f'tr[data-id="{item.id}"] a').click()
            expect(page.locator("#status")).to_have_text("pending")
            expect(page.locator("#output pre").first).to_have_text("draft for tides")

            page.locator("#claim input[name=reviewer]").fill("ana")
            page.locator("#claim button").click()
            expect(page.locator(".flash")).to_contain_text("Claimed")
            expect(page.locator("#assignee")).to_contain_text("ana")

            edit = page.locator("#decide-edit")
            expect(edit.locator("textarea")).to_have_value('"draft for tides"')
            expect(edit.locator("input[name=reviewer]")).to_have_value("ana")
            edit.locator("textarea").fill('"not JSON')
            edit.locator("button").click()
            expect(page.locator(".error")).to_contain_text("not valid JSON")
            assert inbox.show(item.id).status == "claimed"

            page.locator("#decide-edit textarea").fill('"approved by ana"')
            page.locator("#decide-edit input[name=reason]").fill("checked against the tide table")
            page.locator("#decide-edit button").click()
            expect(page.locator(".flash")).to_contain_text("Resolved: your edited output was applied")
            expect(page.locator("#status")).to_have_text("resolved")
            expect(page.locator("#resolved-by")).to_contain_text("ana")
            expect(page.locator("#audit")).to_contain_text("checked against the tide table")
            expect(page.locator("#decide-edit")).to_have_count(0)

            values = state_of(graph, "tides").values
            assert values["output"] == "approved by ana" and values["done"] == "approved by ana"
            assert "output" not in state_of(graph, "moon").values

            page.locator("header a").click()
            expect(page.locator("table.queue tbody tr")).to_have_count(1)
        assert (tmp_path / "effects.log").read_text().splitlines() == ["tides"]


def test_console_e2e_agent_output_is_inert_in_chromium(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with console_app(tmp_path / "app.sqlite") as (graph, store):
        run(graph, "xss")
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list()
        with served(create_app(inbox, token=TOKEN)) as base, new_page(browser) as page:
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"{base}/?token={TOKEN}")
            expect(page.locator("table.queue")).to_contain_text(IMG)
            page.goto(f"{base}/escalations/{item.id}")
            expect(page.locator("#output pre").first).to_contain_text(SCRIPT)
            expect(page.locator("#output pre").first).to_contain_text(json.dumps(IMG))  # as JSON: quotes escaped
            expect(page.locator("#context")).to_contain_text(MALICIOUS)
            expect(page.locator("#inputs")).to_contain_text(json.dumps(MALICIOUS))
            expect(page.locator("#why .reason")).to_contain_text(IMG)
            assert page.evaluate("window.pwned") is None
            assert page.locator("script").count() == 0 and page.locator("img").count() == 0
            assert errors == []


def test_console_e2e_cross_origin_post_is_refused_in_chromium(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with inbox_on(tmp_path, ["tides"]) as (graph, inbox):
        [item] = inbox.list()
        before = state_of(graph, "tides").config
        with served(create_app(inbox, token=TOKEN)) as base, new_page(browser) as page:
            page.goto(f"{base}/?token={TOKEN}")  # the reviewer is logged in
            action = f"{base}/escalations/{item.id}/resolve"
            fields = (
                '<input name="action" value="edit"><input name="output" value="&quot;pwned&quot;">'
                '<input name="reviewer" value="mallory">'
            )
            attack = (
                "<!doctype html><title>free tides</title>"
                f'<form id="guess" method="post" action="{action}">{fields}'
                '<input name="csrf" value="guess"><button>go</button></form>'
                f'<form id="none" method="post" action="{action}">{fields}<button>go</button></form>'
            )
            with other_site(attack) as evil:
                assert evil.split(":")[2] != base.split(":")[2]  # another origin: another port
                for form in ("guess", "none"):
                    page.goto(evil)
                    with page.expect_navigation() as navigation:
                        page.locator(f"#{form} button").click()
                    response = navigation.value
                    assert response is not None and response.status == 403, form
                    expect(page.locator(".error")).to_contain_text("Refused")
            for data in ({"action": "approve", "reviewer": "mallory"}, {"action": "approve", "csrf": "guess"}):
                response = page.request.post(action, form=data)  # the browser's cookies, no CSRF token
                assert response.status == 403
        assert inbox.show(item.id).status == "pending"
        assert [e.event for e in inbox.audit(item.id)] == ["index"]
        assert state_of(graph, "tides").config == before


def test_console_e2e_wrong_token_is_401_in_chromium(browser: Any, tmp_path: Path) -> None:
    with inbox_on(tmp_path, ["tides"]) as (_, inbox):
        [item] = inbox.list()
        with served(create_app(inbox, token=TOKEN)) as base, new_page(browser) as page:
            for url in (f"{base}/?token=wrong", f"{base}/", f"{base}/escalations/{item.id}"):
                response = page.goto(url)
                assert response is not None and response.status == 401, url
                content = page.content()
                assert "tides" not in content and item.id not in content and "401 Unauthorized" in content
            assert page.context.cookies() == []
            response = page.request.post(f"{base}/escalations/{item.id}/resolve", form={"action": "approve"})
            assert response.status == 401
        assert inbox.show(item.id).status == "pending"


def test_console_e2e_screenshot_of_an_escalation(browser: Any, tmp_path: Path, clock: Clock) -> None:
    from playwright.sync_api import expect

    with console_app(tmp_path / "app.sqlite") as (graph, store):
        run(graph, "Brest")
        run(graph, "Saint-Malo")
        inbox = EscalationInbox(store, graph=graph, deadline=timedelta(hours=4))
        item = inbox.list(thread_id="Brest")[0]
        with served(create_app(inbox, token=TOKEN)) as base, new_page(browser) as page:
            page.goto(f"{base}/escalations/{item.id}?token={TOKEN}")
            page.locator("#claim input[name=reviewer]").fill("ana")
            page.locator("#claim button").click()
            expect(page.locator(".flash")).to_contain_text("Claimed")
            shot = tmp_path / "console.png"  # never the tracked docs/console.png: docs/pictures.py makes that one
            page.screenshot(path=str(shot), full_page=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk: the whole page, 1200 wide
    assert width == 1200 and height >= 900


def test_console_e2e_rough_edges_in_chromium(browser: Any, tmp_path: Path) -> None:
    """A refusal is a GET (a reload posts nothing), forms another reviewer holds are shut, an edit shows what was
    applied, and a re-run that escalates again says so and links the new round."""
    from playwright.sync_api import expect

    with inbox_on(tmp_path, ["tides", "moon"]) as (graph, inbox):
        tides, moon = inbox.list(thread_id="tides")[0], inbox.list(thread_id="moon")[0]
        with served(create_app(inbox, token=TOKEN)) as base, new_page(browser) as ana, new_page(browser) as bo:
            for page in (ana, bo):
                page.goto(f"{base}/?token={TOKEN}")
            ana.goto(f"{base}/escalations/{tides.id}")
            ana.locator("#claim input[name=reviewer]").fill("ana")
            ana.locator("#claim button").click()
            expect(ana.locator("#assignee")).to_contain_text("ana")

            bo.goto(f"{base}/escalations/{moon.id}")
            bo.locator("#decide-edit textarea").fill('"not JSON')
            bo.locator("#decide-edit input[name=reviewer]").fill("bo")
            posts: list[str] = []
            bo.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
            bo.locator("#decide-edit button").click()
            expect(bo.locator(".error")).to_contain_text("not valid JSON")
            assert "?refused=" in bo.url and len(posts) == 1  # the refusal came back as a GET
            expect(bo.locator("#decide-edit textarea")).to_have_value('"not JSON')  # what bo typed is kept
            bo.reload()
            assert len(posts) == 1 and bo.locator(".error").count() == 0  # a reload posts nothing again
            assert [e.event for e in inbox.audit(moon.id)] == ["index"]

            bo.goto(f"{base}/escalations/{tides.id}")
            expect(bo.locator("#held")).to_contain_text("ana holds the claim")
            expect(bo.locator("#decide-approve button")).to_be_disabled()

            bo.goto(f"{base}/escalations/{moon.id}")
            bo.locator("#decide-edit textarea").fill('"approved by bo"')
            bo.locator("#decide-edit input[name=reviewer]").fill("bo")
            bo.locator("#decide-edit button").click()
            expect(bo.locator("#applied-output")).to_have_text("approved by bo")
            expect(bo.locator("#rejected-output")).to_contain_text("draft for moon")

            ana.locator("#decide-provide_context textarea").fill("the 2024 tide table")
            ana.locator("#decide-provide_context button").click()
            expect(ana.locator(".flash")).to_contain_text("It escalated again: round 2")
            ana.locator("#again a").click()
            expect(ana.locator("#status")).to_have_text("pending")
            expect(ana.locator("#context")).to_contain_text("the 2024 tide table")
        assert state_of(graph, "moon").values["output"] == "approved by bo"
