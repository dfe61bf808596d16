"""ServerInbox, `--url` and the console against the real `langgraph dev` serving `examples/server`.

One server for the module (`server_app.langgraph_dev`). The graphs: `support_desk` (one interrupt
per escalation), `support_desk_inbox` and `batch_desk` (`mode="single"`: one interrupt carrying
every escalation of the thread).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

if sys.version_info < (3, 11):
    pytest.skip("LangGraph Server (langgraph-api) needs Python 3.11 or newer", allow_module_level=True)

from conftest import Clock
from langgraph.store.memory import InMemoryStore
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from server_app import free_port, langgraph_dev, offline_env
from starlette.testclient import TestClient

from reliable_graph import AlreadyResolvedError, InvalidAnswerError, NoPendingEscalationError, ServerInbox
from reliable_graph.cli import main
from reliable_graph.console import create_app
from reliable_graph.escalation import INBOX_NAMESPACE, index_escalation

ROOT = Path(__file__).resolve().parents[1]
UNKNOWN = "Can I pay with bitcoin?"  # neither step of the support desk can handle it: both escalate
FALLBACK = "I could not find this in our policies; a colleague will get back to you."
TOKEN = "console-token-for-tests-0123456789"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with langgraph_dev(tmp_path_factory.mktemp("langgraph_dev")) as url:
        yield url


@pytest.fixture(scope="module")
def client(server_url: str) -> Iterator[SyncLangGraphClient]:
    with get_sync_client(url=server_url, api_key=None, timeout=60.0) as sdk:
        yield sdk


@pytest.fixture
def inbox(server_url: str, clock: Clock) -> Iterator[ServerInbox]:
    with ServerInbox(server_url, api_key=None) as server_inbox:
        yield server_inbox


# -- helpers -------------------------------------------------------------------------------


def start(client: SyncLangGraphClient, graph_id: str, payload: dict[str, Any]) -> str:
    """A new thread of `graph_id`, run once on `payload` (it stops at its escalations)."""
    thread_id = str(client.threads.create()["thread_id"])
    client.runs.wait(thread_id, graph_id, input=payload)
    return thread_id


def by_step(inbox: ServerInbox, thread_id: str, **options: Any) -> dict[str, Any]:
    items = inbox.list(thread_id=thread_id, status=None, **options)
    found = {item.step: item for item in items}
    assert len(found) == len(items), items
    return found


def interrupts(client: SyncLangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    return list(client.threads.get_state(thread_id, subgraphs=True)["interrupts"])


def values(client: SyncLangGraphClient, thread_id: str) -> dict[str, Any]:
    found = client.threads.get_state(thread_id)["values"]
    assert isinstance(found, dict)
    return found


def outcomes(client: SyncLangGraphClient, thread_id: str) -> dict[str, str]:
    tasks = values(client, thread_id)["reliability"]["tasks"]
    return {key: rec["outcome"] for key, rec in tasks.items()}


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """`reliable-graph ARGV` as a user runs it, from the repository's root."""
    env = {**offline_env(), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "reliable_graph.cli", *argv]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


# -- the inbox on one interrupt per escalation ---------------------------------------------------


def test_server_inbox_lists_claims_and_resolves_each_escalation_once(
    client: SyncLangGraphClient, inbox: ServerInbox, clock: Clock
) -> None:
    thread_id = start(client, "support_desk", {"question": UNKNOWN})
    items = by_step(inbox, thread_id)
    assert set(items) == {"draft_answer", "cite_source"}
    assert {i.status for i in items.values()} == {"pending"} and {i.kind for i in items.values()} == {"escalation"}
    draft, cite = items["draft_answer"], items["cite_source"]
    assert draft.thread_id == thread_id and draft.confidence == 0.0 and draft.threshold == 1.0
    assert "knowledge base" in draft.reason and draft.escalation == {}  # list leaves the escalation out
    shown = inbox.show(draft.id)
    assert shown.escalation["inputs"] == {"question": UNKNOWN} and shown.escalation["output"] == FALLBACK
    assert [i.id for i in inbox.list(thread_id=thread_id, step="cite_source")] == [cite.id]
    oldest = [i.id for i in inbox.list(thread_id=thread_id)]
    assert sorted(oldest) == sorted([draft.id, cite.id])
    assert [i.id for i in inbox.list(thread_id=thread_id, limit=1, offset=1)] == oldest[1:]
    assert [i.id for i in inbox.list(thread_id=thread_id, order="confidence")] == oldest  # both 0.0: oldest first

    # claims: one holder at a time, a lapsed claim is pending again
    claimed = inbox.claim(draft.id, reviewer="ana")
    assert (claimed.status, claimed.assignee) == ("claimed", "ana")
    assert [i.id for i in inbox.list(status="claimed", assignee="ana")] == [draft.id]
    with pytest.raises(AlreadyResolvedError) as refused:
        inbox.claim(draft.id, reviewer="bo")
    assert refused.value.by == "ana" and refused.value.status == "claimed"
    with pytest.raises(AlreadyResolvedError, match="claimed by ana"):
        inbox.resolve(draft.id, {"action": "approve"}, reviewer="bo")
    clock.advance(inbox.lease + timedelta(seconds=1))
    assert inbox.show(draft.id).status == "pending" and inbox.show(draft.id).assignee is None
    assert inbox.claim(draft.id, reviewer="bo").assignee == "bo"
    with pytest.raises(AlreadyResolvedError, match="claimed by bo"):
        inbox.release(draft.id, reviewer="ana")
    clock.advance(timedelta(minutes=1))
    assert inbox.release(draft.id, reviewer="bo").status == "pending"
    with pytest.raises(AlreadyResolvedError, match="no claim to give back"):
        inbox.release(draft.id, reviewer="bo")

    # bad input changes nothing
    before = interrupts(client, thread_id)
    clock.advance(timedelta(minutes=1))
    with pytest.raises(InvalidAnswerError, match="output"):
        inbox.resolve(draft.id, {"action": "edit"}, reviewer="ana")
    with pytest.raises(ValueError, match="reviewer"):
        inbox.resolve(draft.id, {"action": "approve"}, reviewer="  ")
    with pytest.raises(NoPendingEscalationError):
        inbox.resolve("0" * 20, {"action": "approve"}, reviewer="ana")
    assert interrupts(client, thread_id) == before and inbox.show(draft.id).status == "pending"

    # the first answer applies; a second one is refused, naming who and when
    out = inbox.resolve(draft.id, {"action": "edit", "output": "Card only."}, reviewer="ana", reason="policy 4")
    assert len(out["__interrupt__"]) == 1  # the thread still waits on cite_source
    applied = inbox.show(draft.id)
    assert (applied.status, applied.resolved_by) == ("applied", "ana")
    assert applied.decision == {"action": "edit", "output": "Card only.", "reason": "policy 4", "reviewer": "ana"}
    with pytest.raises(AlreadyResolvedError) as late:
        inbox.resolve(draft.id, {"action": "approve"}, reviewer="bo")
    assert late.value.by == "ana" and late.value.at == applied.resolved_at
    clock.advance(timedelta(minutes=1))
    citation = {"source": "policies/payments.md", "quote": "Card and PayPal."}
    inbox.resolve(cite.id, {"action": "edit", "output": citation}, reviewer="bo")

    assert client.threads.get(thread_id)["status"] == "idle"
    assert values(client, thread_id)["answer"] == "Card only." and values(client, thread_id)["citation"] == citation
    assert outcomes(client, thread_id) == {"draft_answer": "edited", "cite_source": "edited"}
    assert {i.step: (i.status, i.resolved_by) for i in by_step(inbox, thread_id).values()} == {
        "draft_answer": ("resolved", "ana"),
        "cite_source": ("resolved", "bo"),
    }
    assert inbox.list(thread_id=thread_id) == []  # nothing open
    trail = inbox.audit(draft.id)
    assert [(e.event, e.actor) for e in trail] == [
        ("index", "system"),
        ("claim", "ana"),
        ("claim", "bo"),
        ("release", "bo"),
        ("resolve", "ana"),
    ]
    assert (trail[-1].before, trail[-1].after, trail[-1].reason) == (FALLBACK, "Card only.", "policy 4")


def test_server_inbox_list_filters_by_age_kind_and_status(
    client: SyncLangGraphClient, server_url: str, clock: Clock
) -> None:
    thread_id = start(client, "support_desk", {"question": "Is there a warranty?"})  # only cite_source escalates
    with ServerInbox(server_url, api_key=None) as probe:
        [item] = probe.list(thread_id=thread_id)
    created = datetime.fromisoformat(item.created_at)
    at = Clock(created + timedelta(minutes=10))
    with ServerInbox(server_url, api_key=None, clock=lambda: at.at) as inbox:
        assert [i.id for i in inbox.list(thread_id=thread_id, older_than=timedelta(minutes=5))] == [item.id]
        assert inbox.list(thread_id=thread_id, older_than=timedelta(minutes=20)) == []
        assert [i.id for i in inbox.list(thread_id=thread_id, kind="escalation")] == [item.id]
        assert inbox.list(thread_id=thread_id, kind="audit") == []
        assert inbox.list(thread_id=thread_id, status="resolved") == []
        for bad, match in (
            ({"status": "done"}, "unknown status"),
            ({"order": "newest"}, "order"),
            ({"limit": 0}, "limit"),
            ({"older_than": timedelta(minutes=-1)}, "negative"),
        ):
            with pytest.raises(ValueError, match=match):
                inbox.list(**bad)
    with pytest.raises(ValueError, match="http"):
        ServerInbox("localhost:2024")
    with pytest.raises(ValueError, match="lease"):
        ServerInbox(server_url, lease=timedelta(0))


def test_run_error_reads_a_failed_run_of_the_server(client: SyncLangGraphClient) -> None:
    from reliable_graph._compat import run_error

    thread_id = str(client.threads.create()["thread_id"])
    failed = client.runs.wait(thread_id, "batch_desk", input={}, raise_error=False)  # no questions to fan out
    error = run_error(failed)
    assert error is not None and error["error"] == "KeyError" and "questions" in error["message"]
    assert run_error(client.runs.wait(thread_id, "batch_desk", input={"questions": []}, raise_error=False)) is None


# -- one interrupt carrying several escalations ----------------------------------------------------


def test_server_inbox_answers_single_mode_threads_by_escalation_id(
    client: SyncLangGraphClient, inbox: ServerInbox, clock: Clock
) -> None:
    thread_id = start(client, "support_desk_inbox", {"question": UNKNOWN})
    [interrupt] = interrupts(client, thread_id)
    assert len(interrupt["value"]) == 2  # one interrupt, two escalations (Agent Inbox's format)
    items = by_step(inbox, thread_id)
    shown_first = interrupt["value"][0]["escalation"]["step"]
    second = items["cite_source" if shown_first == "draft_answer" else "draft_answer"]
    first = items[shown_first]

    # the escalation shown second, answered first: only it applies; the thread asks the other again
    inbox.resolve(second.id, {"action": "terminate", "reason": "out of scope"}, reviewer="ana")
    [again] = interrupts(client, thread_id)
    assert again["id"] != interrupt["id"] and [v["escalation"]["id"] for v in again["value"]] == [first.id]
    assert inbox.show(second.id).status == "applied" and inbox.show(first.id).status == "pending"
    clock.advance(timedelta(minutes=1))
    with pytest.raises(AlreadyResolvedError):
        inbox.resolve(second.id, {"action": "approve"}, reviewer="bo")
    inbox.resolve(first.id, {"action": "approve"}, reviewer="bo")

    assert client.threads.get(thread_id)["status"] == "idle"
    expected = {shown_first: "approved", second.step: "terminated"}
    assert outcomes(client, thread_id) == expected
    assert {i.id: (i.status, i.resolved_by) for i in inbox.list(thread_id=thread_id, status=None)} == {
        first.id: ("resolved", "bo"),
        second.id: ("resolved", "ana"),
    }


def test_server_inbox_resolves_a_send_fan_out(client: SyncLangGraphClient, inbox: ServerInbox, clock: Clock) -> None:
    questions = [
        "Can I pay with bitcoin?",
        "How long do refunds take?",
        "Do you ship to Mars?",
        "Is there a loyalty card?",
    ]
    thread_id = start(client, "batch_desk", {"questions": questions})
    [interrupt] = interrupts(client, thread_id)
    assert len(interrupt["value"]) == 3  # the refunds question passes
    items = {i.escalation["inputs"]["question"]: i for i in (inbox.show(x.id) for x in inbox.list(thread_id=thread_id))}
    assert set(items) == {questions[0], questions[2], questions[3]}
    decisions = {
        questions[0]: {"action": "edit", "output": ["Card only."]},
        questions[2]: {"action": "approve"},
        questions[3]: {"action": "terminate"},
    }
    for n, (question, answer) in enumerate(decisions.items()):
        clock.advance(timedelta(minutes=1))
        inbox.resolve(items[question].id, answer, reviewer=f"reviewer{n}")
    assert client.threads.get(thread_id)["status"] == "idle"
    answers = values(client, thread_id)["answers"]
    assert sorted(answers) == sorted(
        [
            "Card only.",
            f"{questions[1]} -> Refunds are paid within 14 days of the returned item reaching our warehouse.",
        ]
        + [f"{questions[2]} -> {FALLBACK}"]
    )  # each decision applied once: the terminated task contributes nothing
    assert sorted(outcomes(client, thread_id).values()) == ["approved", "edited", "pass", "terminated"]
    assert {i.status for i in inbox.list(thread_id=thread_id, status=None)} == {"resolved"}


# -- an answer sent from a stale read --------------------------------------------------------------


def racing(late: ServerInbox, first: ServerInbox, escalation_id: str, answer: dict[str, Any], reviewer: str) -> None:
    """Make `first` resolve `escalation_id` between `late`'s read of the thread and its resume (the race's window)."""
    send = late._remote.resume

    def after_the_other(*args: Any, **kwargs: Any) -> Any:
        late._remote.resume = send  # type: ignore[method-assign]
        first.resolve(escalation_id, answer, reviewer=reviewer)
        return send(*args, **kwargs)

    late._remote.resume = after_the_other  # type: ignore[method-assign]


@pytest.mark.parametrize("graph_id", ["support_desk", "support_desk_inbox"])
def test_server_inbox_an_answer_read_before_another_run_applies_nothing(
    client: SyncLangGraphClient, server_url: str, graph_id: str, clock: Clock
) -> None:
    thread_id = start(client, graph_id, {"question": UNKNOWN})
    with ServerInbox(server_url, api_key=None) as ana, ServerInbox(server_url, api_key=None) as bo:
        items = by_step(ana, thread_id)
        draft, cite = items["draft_answer"], items["cite_source"]
        racing(bo, ana, draft.id, {"action": "edit", "output": "by ana"}, "ana")
        with pytest.raises(AlreadyResolvedError) as lost:  # bo's resume names an interrupt ana's run consumed
            bo.resolve(draft.id, {"action": "edit", "output": "by bo"}, reviewer="bo")
        assert lost.value.by == "ana"
        assert (bo.show(draft.id).resolved_by, bo.show(cite.id).status) == ("ana", "pending")
        assert [e["id"] for _, e in bo._remote.waiting(thread_id)] == [cite.id]  # still asked, unanswered

        # the other escalation took nothing from bo's late answer: bo's own answer to it applies
        bo.resolve(cite.id, {"action": "terminate", "reason": "no source"}, reviewer="bo")
    assert client.threads.get(thread_id)["status"] == "idle"
    assert values(client, thread_id)["answer"] == "by ana" and "citation" not in values(client, thread_id)
    assert outcomes(client, thread_id) == {"draft_answer": "edited", "cite_source": "terminated"}


def test_server_inbox_a_stale_read_of_a_single_interrupt_still_answers_its_own_escalation(
    client: SyncLangGraphClient, server_url: str, clock: Clock
) -> None:
    thread_id = start(client, "support_desk_inbox", {"question": UNKNOWN})
    with ServerInbox(server_url, api_key=None) as ana, ServerInbox(server_url, api_key=None) as bo:
        items = by_step(ana, thread_id)
        draft, cite = items["draft_answer"], items["cite_source"]
        # bo read the one interrupt carrying both; ana's run answers draft_answer (the thread asks again, a new id)
        racing(bo, ana, draft.id, {"action": "approve"}, "ana")
        bo.resolve(cite.id, {"action": "terminate"}, reviewer="bo")  # names the consumed id: the task's next question
        assert (bo.show(draft.id).resolved_by, bo.show(cite.id).resolved_by) == ("ana", "bo")
    assert client.threads.get(thread_id)["status"] == "idle"
    assert values(client, thread_id)["answer"] == FALLBACK and "citation" not in values(client, thread_id)
    assert outcomes(client, thread_id) == {"draft_answer": "approved", "cite_source": "terminated"}


# -- the audit trail shows what other clients did --------------------------------------------------


def test_server_inbox_audit_shows_answers_and_dismissals_other_clients_sent(
    client: SyncLangGraphClient, inbox: ServerInbox
) -> None:
    thread_id = start(client, "support_desk", {"question": UNKNOWN})
    items = by_step(inbox, thread_id)
    pending = {i["value"]["step"]: i["id"] for i in interrupts(client, thread_id)}
    draft = items["draft_answer"]
    client.runs.wait(
        thread_id, "support_desk", command={"resume": {pending["draft_answer"]: {draft.id: {"action": "approve"}}}}
    )
    assert (inbox.show(draft.id).status, inbox.show(draft.id).resolved_by) == ("applied", "a direct resume")
    assert [(e.event, e.actor) for e in inbox.audit(draft.id)] == [("index", "system"), ("resolve", "a direct resume")]

    other = start(client, "support_desk_inbox", {"question": UNKNOWN})
    client.threads.update_state(other, None, as_node="__end__")  # Agent Inbox's "Mark as Resolved"
    gone = inbox.list(thread_id=other, status="dismissed")
    assert len(gone) == 2 and {i.resolved_by for i in gone} == {"marked as resolved"}
    assert [e.event for e in inbox.audit(gone[0].id)] == ["index", "dismissed"]
    with pytest.raises(AlreadyResolvedError, match="dismissed"):
        inbox.resolve(gone[0].id, {"action": "approve"}, reviewer="ana")
    everything = inbox.audit()
    assert {e.escalation_id for e in everything} >= {draft.id, gone[0].id, gone[1].id}


def test_server_inbox_labels_an_audit_once(client: SyncLangGraphClient, inbox: ServerInbox, clock: Clock) -> None:
    local = InMemoryStore()  # the item a step with audit_rate=... indexes, copied to the server's store
    passing = {"id": "a0d170000000000000a1", "kind": "audit", "thread_id": "t-audit", "step": "audited_step"}
    passing |= {"task": "audited_step", "confidence": 0.9, "threshold": 0.5, "reason": "sampled for audit"}
    index_escalation(local, {**passing, "output": "42", "created_at": "2026-12-05T23:00:00+00:00"})
    value = local.get(INBOX_NAMESPACE, passing["id"]).value  # type: ignore[union-attr]
    client.store.put_item(list(INBOX_NAMESPACE), passing["id"], value, index=False)
    assert inbox.audit_labels()["audited_step"] == {"labelled": 0, "wrong": 0, "pending": 1}
    assert inbox.resolve(passing["id"], {"action": "edit", "output": "41"}, reviewer="ana") is None
    with pytest.raises(AlreadyResolvedError):
        inbox.resolve(passing["id"], {"action": "approve"}, reviewer="bo")
    assert inbox.audit_labels()["audited_step"] == {"labelled": 1, "wrong": 1, "pending": 0}
    [*_, line] = inbox.audit(passing["id"])
    assert (line.event, line.actor, line.before, line.after) == ("resolve", "ana", "42", "41")


# -- reconcile -----------------------------------------------------------------------------------


def test_server_inbox_reconcile_reindexes_and_retires(
    client: SyncLangGraphClient, server_url: str, inbox: ServerInbox, clock: Clock
) -> None:
    # an escalation waiting in its thread, missing from the index (a store wiped, a write lost)
    lost = start(client, "batch_desk", {"questions": ["Do you ship to Mars?"]})
    [item] = inbox.list(thread_id=lost)
    client.store.delete_item(list(INBOX_NAMESPACE), item.id)
    assert inbox.list(thread_id=lost) == []
    assert inbox.reconcile() == 1
    again = inbox.show(item.id)
    assert (again.status, again.step) == ("pending", "answer_one")
    assert again.escalation["inputs"] == {"question": "Do you ship to Mars?"}
    assert [(e.event, e.actor) for e in inbox.audit(item.id)] == [("index", "reconcile")]
    assert inbox.reconcile() == 0  # nothing missing any more

    # a thread cleared behind the index's back (not through reliable_graph.server's middleware)
    cleared = start(client, "support_desk", {"question": UNKNOWN})
    with get_sync_client(url=server_url, api_key=None, headers={"x-reliable-graph": "1"}) as raw:
        raw.threads.update_state(cleared, None, as_node="__end__")
    assert {i.status for i in inbox.list(thread_id=cleared)} == {"pending"}
    # a round-1 escalation the index still shows open although the task asked again (round 2)
    retried = start(client, "support_desk", {"question": "Is there a warranty?"})
    [first] = inbox.list(thread_id=retried)
    inbox.resolve(first.id, {"action": "retry"}, reviewer="ana")  # the step runs again and escalates again
    [second] = inbox.list(thread_id=retried)
    assert second.id != first.id and inbox.show(second.id).escalation["round"] == 2
    stale = client.store.get_item(list(INBOX_NAMESPACE), first.id)["value"]
    client.store.put_item(list(INBOX_NAMESPACE), first.id, {**stale, "status": "pending"}, index=False)

    clock.advance(timedelta(minutes=5))
    assert inbox.reconcile() == 0
    assert {(i.status, i.resolved_by) for i in inbox.list(thread_id=cleared, status=None)} == {
        ("dismissed", "reconcile")
    }
    assert inbox.show(first.id).status == "superseded" and inbox.show(second.id).status == "pending"
    assert [e.event for e in inbox.audit(first.id)][-1] == "superseded"
    assert inbox.show(item.id).status == "pending"  # still waiting in its thread: left alone


# -- the CLI with --url ----------------------------------------------------------------------------


def test_cli_inbox_with_url(client: SyncLangGraphClient, server_url: str) -> None:
    thread_id = start(client, "support_desk", {"question": UNKNOWN})
    done = cli("inbox", "list", "--url", server_url, "--thread", thread_id, "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["step"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"draft_answer", "cite_source"} and {r["status"] for r in rows.values()} == {"pending"}
    draft = rows["draft_answer"]["id"]
    shown = cli("inbox", "show", draft, "--url", server_url, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["escalation"]["inputs"] == {"question": UNKNOWN}
    assert cli("inbox", "claim", draft, "--url", server_url, "--reviewer", "ana").returncode == 0
    refused = cli("inbox", "claim", draft, "--url", server_url, "--reviewer", "bo")
    assert refused.returncode == 2 and "claimed by ana" in refused.stderr and len(refused.stderr.splitlines()) == 1
    resolved = cli(
        "inbox",
        "resolve",
        draft,
        "--url",
        server_url,
        "--action",
        "edit",
        "--output",
        "Card only.",
        "--reviewer",
        "ana",
    )
    assert resolved.returncode == 0, resolved.stderr
    late = cli("inbox", "resolve", draft, "--url", server_url, "--reviewer", "bo")
    assert late.returncode == 2 and "by ana" in late.stderr and "Traceback" not in late.stderr
    trail = cli("inbox", "audit", draft, "--url", server_url, "--json")
    assert [e["event"] for e in json.loads(trail.stdout)] == ["index", "claim", "resolve"]
    cite = rows["cite_source"]["id"]
    ended = cli("inbox", "resolve", cite, "--url", server_url, "--action", "terminate", "--reviewer", "bo")
    assert ended.returncode == 0, ended.stderr
    assert values(client, thread_id)["answer"] == "Card only."  # applied once the superstep's answers are all in
    assert outcomes(client, thread_id) == {"draft_answer": "edited", "cite_source": "terminated"}
    reconciled = cli("inbox", "reconcile", "--url", server_url)
    assert reconciled.returncode == 0 and "re-indexed from the server's threads" in reconciled.stdout


def test_cli_url_errors_are_one_line_naming_the_flag(server_url: str, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    (tmp_path / "x.sqlite").write_bytes(b"")  # --db's own checks pass; the two flags together do not
    for argv, needle in (
        (["inbox", "list", "--url", server_url, "--db", str(tmp_path / "x.sqlite")], "--db and --url are exclusive"),
        (["inbox", "list"], "give --db"),
        (["inbox", "list", "--url", "localhost:2024"], "--url"),
        (["inbox", "list", "--url", nobody], f"--url: cannot reach LangGraph Server at {nobody}"),
        (["inbox", "list", "--url", f"{server_url}/nothing-here"], "is not a LangGraph Server"),
        (["inbox", "resolve", "abc", "--url", server_url, "--graph", "a:b"], "--graph goes with --db"),
        (["inbox", "sweep", "--url", server_url], "sweep is not supported"),
        (["inbox", "show", "0" * 20, "--url", server_url], "no escalation"),
        (["report", "--url", nobody], "--url"),
        (["report", "--url", server_url, "--db", str(tmp_path / "x.sqlite")], "--db and --url are exclusive"),
        (["console", "--url", nobody, "--token", TOKEN], "--url"),
    ):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code == 2, (argv, err.getvalue())
        assert needle in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1, (argv, err.getvalue())


def test_cli_report_with_url(client: SyncLangGraphClient, server_url: str) -> None:
    start(client, "support_desk", {"question": "How long do refunds take?"})  # passes: completed
    threads = client.threads.search(limit=1000)
    done = cli("report", "--url", server_url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    with_record = [t for t in threads if isinstance((t.get("values") or {}).get("reliability"), dict)]
    assert report["threads"] == len(with_record) and report["source"] == server_url
    assert report["other_threads"] == len(threads) - len(with_record)
    assert report["statuses"]["completed"] >= 1
    table = cli("report", "--url", server_url)
    assert table.returncode == 0 and "draft_answer" in table.stdout


# -- the console with --url ------------------------------------------------------------------------


def test_console_over_a_server_inbox(client: SyncLangGraphClient, server_url: str, clock: Clock) -> None:
    thread_id = start(client, "support_desk", {"question": "Is there a warranty?"})  # only cite_source escalates
    citation = {"source": "policies/warranty.md", "quote": "2 years."}
    with ServerInbox(server_url, api_key=None) as inbox:
        draft = by_step(inbox, thread_id)["cite_source"]
        app = create_app(inbox, token=TOKEN)
        with TestClient(app, follow_redirects=True) as browser:
            assert browser.get("/").status_code == 401
            queue = browser.get(f"/?token={TOKEN}&thread={thread_id}")
            assert queue.status_code == 200 and draft.id in queue.text
            page = browser.get(f"/escalations/{draft.id}")
            assert page.status_code == 200 and "quote" in page.text
            csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
            assert (
                browser.post(f"/escalations/{draft.id}/claim", data={"csrf": csrf, "reviewer": "ana"}).status_code
                == 200
            )
            assert inbox.show(draft.id).assignee == "ana"
            form = {"csrf": csrf, "reviewer": "ana", "action": "edit", "output": json.dumps(citation)}
            assert browser.post(f"/escalations/{draft.id}/resolve", data={**form, "csrf": "forged"}).status_code == 403
            done = browser.post(f"/escalations/{draft.id}/resolve", data=form)
            assert done.status_code == 200 and "Resolved" in done.text
            again = browser.post(f"/escalations/{draft.id}/resolve", data={**form, "reviewer": "bo"})
            assert again.status_code == 409 and "ana" in again.text
    assert values(client, thread_id)["citation"] == citation
    assert outcomes(client, thread_id) == {"draft_answer": "pass", "cite_source": "edited"}
    with ServerInbox(f"http://127.0.0.1:{free_port()}", api_key=None) as gone:
        with TestClient(create_app(gone, token=TOKEN), raise_server_exceptions=False) as browser:
            page = browser.get(f"/?token={TOKEN}")
            assert page.status_code == 502 and "cannot be reached" in page.text


def test_cli_console_serves_a_server_inbox(client: SyncLangGraphClient, server_url: str) -> None:
    import httpx

    thread_id = start(client, "support_desk", {"question": UNKNOWN})
    port = free_port()
    env = {**offline_env(), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "reliable_graph.cli", "console", "--url", server_url, "--port", str(port)]
    proc = subprocess.Popen([*command, "--token", TOKEN], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/?token=" in line
        page = None
        for _ in range(100):  # uvicorn starts listening just after printing the URL
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/?token={TOKEN}&thread={thread_id}", follow_redirects=True)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert page is not None and page.status_code == 200
        assert "draft_answer" in page.text and "cite_source" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


# -- eight reviewers racing ----------------------------------------------------------------------


def test_eight_reviewer_processes_resolve_each_escalation_exactly_once(
    client: SyncLangGraphClient, server_url: str
) -> None:
    threads = {
        "support_desk": [start(client, "support_desk", {"question": UNKNOWN}) for _ in range(2)],
        "support_desk_inbox": [start(client, "support_desk_inbox", {"question": UNKNOWN})],
        "batch_desk": [
            start(client, "batch_desk", {"questions": ["Do you ship to Mars?", UNKNOWN, "Is there a loyalty card?"]})
        ],
    }
    with ServerInbox(server_url, api_key=None) as inbox:
        items = {i.id: i for ts in threads.values() for t in ts for i in inbox.list(thread_id=t)}
    assert len(items) == 2 * 2 + 2 + 3
    reviewers = [f"reviewer{n}" for n in range(8)]
    env = {**offline_env(), "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    child = str(ROOT / "tests" / "server_race_child.py")
    procs = [
        subprocess.Popen(
            [sys.executable, child, server_url, name, json.dumps(sorted(items))],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in reviewers
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # every reviewer starts together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=600) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results: dict[str, list[tuple[str, str]]] = {key: [] for key in items}
    runs = 0
    for name, proc, (out, err) in zip(reviewers, procs, outputs, strict=True):
        assert proc.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines() if line.strip()]
        runs += lines[-1]["runs"]
        for line in lines[:-1]:
            results[line["id"]].append((name, line["result"]))
    winners = {}
    for key, seen in results.items():
        won = [name for name, result in seen if result == "won"]
        assert len(seen) == 8 and len(won) == 1, (key, seen)  # exactly one winner per escalation
        winners[key] = won[0]
        assert sorted(result for _, result in seen if result != "won") == [f"lost:{won[0]}"] * 7
    print(f"\n8 reviewers, {len(items)} escalations: {runs} runs sent that the server ran")

    with ServerInbox(server_url, api_key=None) as inbox:
        for key, winner in winners.items():
            item = inbox.show(key)
            assert (item.status, item.resolved_by) == ("resolved", winner)  # the store names the one winner
            assert item.decision is not None and item.decision["reviewer"] == winner
            resolves = [(e.actor, e.event) for e in inbox.audit(key) if e.event == "resolve"]
            assert resolves == [(winner, "resolve")]
    for graph_id in ("support_desk", "support_desk_inbox"):
        for thread_id in threads[graph_id]:  # each decision applied once, the winner's
            assert client.threads.get(thread_id)["status"] == "idle"
            by = {items[k].step: w for k, w in winners.items() if items[k].thread_id == thread_id}
            state = values(client, thread_id)
            assert state["answer"] == f"by {by['draft_answer']}"
            assert state["citation"]["source"] == f"by {by['cite_source']}"
            assert outcomes(client, thread_id) == {"draft_answer": "edited", "cite_source": "edited"}
            tasks = state["reliability"]["tasks"]
            assert {k: rec["decision"]["reviewer"] for k, rec in tasks.items()} == by
    [batch] = threads["batch_desk"]
    assert client.threads.get(batch)["status"] == "idle"
    batch_winners = sorted(f"by {w}" for k, w in winners.items() if items[k].thread_id == batch)
    assert sorted(values(client, batch)["answers"]) == batch_winners  # three edits, none applied twice
    assert sorted(outcomes(client, batch).values()) == ["edited"] * 3
    assert {t["thread_id"] for t in client.threads.search(status="error", limit=1000)}.isdisjoint(
        [t for ts in threads.values() for t in ts]
    )
