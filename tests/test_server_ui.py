"""What the stock review UIs send, byte for byte, to the real `langgraph dev`, on fan-out and branch threads.

The request bodies are those Agent Inbox (commit f38301b9, `@langchain/langgraph-sdk` 1.9.28) and
Agent Chat UI (commit fdc87e65, its lockfile's SDK 1.8.10) were seen sending from Chromium (Agent Chat UI
pins the checkpoint it shows on every run): answers without an
interrupt id (a list of one `HumanResponse`; `{"decisions": [...]}`), Agent Inbox's "Mark as
Resolved" (`values: null, as_node: "__end__"`) and Agent Chat UI's (`command: {goto: "__end__"}`).
After every request: the thread is never in `error`, every escalation it waits on is answerable,
each decision is applied once, and the store's review index (`client.store`) says of each
escalation what the thread says (`pending` while it waits, `applied` once answered in a superstep
still waiting on others, `resolved` once the thread moved on, `dismissed` when marked resolved).
The server runs the example's `reliable_graph.server` middleware (`langgraph.json`'s `http.app`).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from test_server import client, server_url  # noqa: F401 - the module's langgraph dev server and its SDK client

from reliable_graph import run_outcome
from reliable_graph.escalation import INBOX_NAMESPACE, escalations_of

UNKNOWN = "Can I pay with bitcoin?"
CHAT_STREAM = {
    "stream_mode": ["messages-tuple", "values", "custom"],
    "stream_resumable": False,
    "on_disconnect": "cancel",
}


def chat(client: Any, thread_id: str, command: dict[str, Any], graph: str = "support_desk_chat") -> dict[str, Any]:
    """Agent Chat UI's run body: the command, its stream modes and the checkpoint it shows, pinned."""
    shown = client.threads.get_state(thread_id)["checkpoint"]
    pinned = {"checkpoint_id": shown["checkpoint_id"], "checkpoint_ns": ""}
    return {"input": {}, "command": command, **CHAT_STREAM, "assistant_id": graph, "checkpoint": pinned}


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST `body` as the UIs do; a streamed run is read to its end."""
    with httpx.Client(base_url=url, timeout=60.0) as http:
        if path.endswith("/runs/stream"):
            with http.stream("POST", path, json=body) as response:
                text = "".join(response.iter_text())
            return httpx.Response(response.status_code, text=text)
        return http.post(path, json=body)


def waiting(client: Any, thread_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(interrupt id, escalation) for every escalation the thread waits on, in the server's order."""
    thread = client.threads.get(thread_id)
    return [
        (item["id"], esc)
        for items in (thread.get("interrupts") or {}).values()
        for item in items
        for esc in escalations_of(item["value"])
    ]


def index(client: Any, thread_id: str) -> dict[str, dict[str, Any]]:
    found = client.store.search_items(list(INBOX_NAMESPACE), filter={"thread_id": thread_id}, limit=100)
    return {item["key"]: item["value"] for item in found["items"]}


def assert_index_true(client: Any, thread_id: str, *, dismissed: bool = False) -> None:
    """The store's items say of each escalation what the thread says."""
    thread = client.threads.get(thread_id)
    assert thread["status"] != "error", thread
    open_ids = {esc["id"] for _, esc in waiting(client, thread_id)}
    for key, item in index(client, thread_id).items():
        if key in open_ids:
            assert item["status"] == "pending", (key, item)
        elif dismissed and item.get("resolved_by") == "marked as resolved":
            assert item["status"] == "dismissed"
        elif thread["status"] == "idle":
            assert item["status"] in ("resolved", "dismissed"), (key, item)
        else:
            assert item["status"] in ("applied", "resolved"), (key, item)


def start(client: Any, graph: str, payload: dict[str, Any]) -> str:
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, graph, input=payload)
    assert client.threads.get(thread_id)["status"] == "interrupted"
    return thread_id


def inbox_answer(escalation: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Agent Inbox's body for one action on what it shows (the first HumanInterrupt)."""
    action = escalation["task"]  # the action name the UI shows (the task: unique among those waiting)
    if kind == "edit":  # every edited field comes back as text
        output = {"source": "policies/payments.md", "quote": "We accept cards."} if action == "cite_source" else None
        text = json.dumps(output) if output is not None else "We accept cards and PayPal."
        return [{"type": "edit", "args": {"action": action, "args": {"output": text}}}]
    if kind == "accept":
        return [{"type": "accept", "args": {"action": action, "args": {"output": escalation["output"]}}}]
    if kind == "ignore":
        return [{"type": "ignore", "args": None}]
    return [{"type": "response", "args": "See policies/payments.md: cards only."}]


@pytest.mark.parametrize("graph", ["support_desk_inbox", "support_desk"])
def test_agent_inbox_answers_every_escalation_of_a_branch_thread(client: Any, server_url: str, graph: str) -> None:
    """Two escalations in parallel branches: one interrupt (single mode) or two (per task: the middleware sends
    Agent Inbox's un-keyed answer to the first, which is the one it shows)."""
    thread_id = start(client, graph, {"question": UNKNOWN})
    assert_index_true(client, thread_id)
    for kind in ("edit", "accept"):
        [(_, shown), *_rest] = waiting(client, thread_id)
        body = {"command": {"resume": inbox_answer(shown, kind)}, "stream_mode": "events", "assistant_id": graph}
        assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200
        assert_index_true(client, thread_id)
    assert client.threads.get(thread_id)["status"] == "idle" and waiting(client, thread_id) == []
    state = client.threads.get_state(thread_id)
    assert run_outcome(state) == "ok"
    outcomes = Counter(rec.get("outcome") for rec in state["values"]["reliability"]["tasks"].values())
    assert outcomes == Counter({"edited": 1, "approved": 1})
    assert {v["status"] for v in index(client, thread_id).values()} == {"resolved"}


def test_agent_inbox_works_through_a_send_fan_out(client: Any, server_url: str) -> None:
    questions = ["refunds?", "bitcoin?", "crypto?", "shipping?", "gold bars?"]
    thread_id = start(client, "batch_desk", {"questions": questions})
    assert len(client.threads.get(thread_id)["interrupts"]) == 1  # three escalations, one interrupt
    answered = 0
    while waiting(client, thread_id):
        [(_, shown), *_] = waiting(client, thread_id)
        edit = [
            {
                "type": "edit",
                "args": {
                    "action": shown["task"],  # what Agent Inbox shows: the task, one per fan-out item
                    "args": {"output": json.dumps([f"{shown['inputs']['question']} -> by hand"])},
                },
            }
        ]
        body = {"command": {"resume": edit}, "stream_mode": "events", "assistant_id": "batch_desk"}
        assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200
        answered += 1
        assert_index_true(client, thread_id)
    assert answered == 3
    answers = Counter(client.threads.get_state(thread_id)["values"]["answers"])
    assert set(answers.values()) == {1} and sum(a.endswith("-> by hand") for a in answers) == 3


def test_a_stale_agent_inbox_answer_is_refused_not_applied_to_the_next_escalation(client: Any, server_url: str) -> None:
    """Reviewers A and B open the same fan-out thread; B accepts the escalation both see; A's edit of it,
    sent later without an id, names the action A was shown and is refused: nothing lands on the next one."""
    thread_id = start(client, "batch_desk", {"questions": ["refunds?", "bitcoin?", "crypto?"]})
    [(_, seen), (_, other)] = waiting(client, thread_id)
    accept = [{"type": "accept", "args": {"action": seen["task"], "args": {"output": json.dumps(seen["output"])}}}]
    body = {"command": {"resume": accept}, "stream_mode": "events", "assistant_id": "batch_desk"}
    assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200  # B
    stale = [{"type": "edit", "args": {"action": seen["task"], "args": {"output": json.dumps(["A's stale answer"])}}}]
    body = {"command": {"resume": stale}, "stream_mode": "events", "assistant_id": "batch_desk"}
    assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200  # A, too late
    [(_, now)] = waiting(client, thread_id)
    assert now["id"] == other["id"] and "nothing was applied" in now["rejected"]["reason"]
    assert client.threads.get(thread_id)["status"] == "interrupted"
    assert_index_true(client, thread_id)
    assert index(client, thread_id)[other["id"]]["status"] == "pending"
    assert "A's stale answer" not in json.dumps(client.threads.get_state(thread_id)["values"])


def test_agent_inbox_response_and_ignore(client: Any, server_url: str) -> None:
    thread_id = start(client, "support_desk_inbox", {"question": UNKNOWN})
    [(_, first), (_, second)] = waiting(client, thread_id)
    body = {
        "command": {"resume": inbox_answer(first, "response")},
        "stream_mode": "events",
        "assistant_id": "support_desk_inbox",
    }
    post(server_url, f"/threads/{thread_id}/runs/stream", body)
    ignore = {"command": {"resume": inbox_answer(second, "ignore")}, "assistant_id": "support_desk_inbox"}
    created = post(server_url, f"/threads/{thread_id}/runs", ignore)  # Agent Inbox's ignore: runs.create, not streamed
    assert created.status_code == 200
    client.runs.join(thread_id, created.json()["run_id"])
    assert_index_true(client, thread_id)
    # the response re-ran its step with the reviewer's text as context: it escalated again (round 2)
    again = waiting(client, thread_id)
    assert [esc["round"] for _, esc in again] == [2] and again[0][1]["step"] == first["step"]
    items = index(client, thread_id)
    assert items[first["id"]]["status"] == "resolved" and items[first["id"]]["decision"]["action"] == "provide_context"
    assert items[second["id"]]["decision"]["action"] == "terminate"


def test_agent_inbox_mark_as_resolved_dismisses(client: Any, server_url: str) -> None:
    thread_id = start(client, "support_desk_inbox", {"question": UNKNOWN})
    response = post(server_url, f"/threads/{thread_id}/state", {"values": None, "as_node": "__end__"})
    assert response.status_code == 200
    assert client.threads.get(thread_id)["status"] == "idle"
    assert {v["status"] for v in index(client, thread_id).values()} == {"dismissed"}
    assert run_outcome(client.threads.get_state(thread_id)) == "dismissed"
    assert_index_true(client, thread_id, dismissed=True)


def test_agent_chat_ui_submits_all_decisions_of_a_branch_thread(client: Any, server_url: str) -> None:
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "support_desk_chat", input={"messages": [{"role": "user", "content": UNKNOWN}]})
    [(interrupt_id, first), (same, second)] = waiting(client, thread_id)
    assert interrupt_id == same  # one interrupt, two action requests
    decisions = [
        {"type": "edit", "edited_action": {"name": "draft_answer", "args": {"output": "We accept cards."}}},
        {"type": "reject", "message": "no source for payments yet"},
    ]
    if first["step"] != "draft_answer":
        decisions.reverse()
    body = chat(client, thread_id, {"resume": {"decisions": decisions}})
    assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200
    assert client.threads.get(thread_id)["status"] == "idle"
    state = client.threads.get_state(thread_id)
    assert state["values"]["answer"] == "We accept cards." and run_outcome(state) == "terminated"
    assert {v["status"] for v in index(client, thread_id).values()} == {"resolved"}


def test_agent_chat_ui_approving_one_at_a_time(client: Any, server_url: str) -> None:
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "support_desk_chat", input={"messages": [{"role": "user", "content": UNKNOWN}]})
    for left in (2, 1):
        assert len(waiting(client, thread_id)) == left
        body = chat(client, thread_id, {"resume": {"decisions": [{"type": "approve"}]}})
        assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200
        assert_index_true(client, thread_id)
    assert client.threads.get(thread_id)["status"] == "idle"
    messages = client.threads.get_state(thread_id)["values"]["messages"]
    assert messages[-1]["type"] == "ai"  # the reply went back into the conversation


def test_agent_chat_ui_mark_as_resolved_dismisses(client: Any, server_url: str) -> None:
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, "support_desk_chat", input={"messages": [{"role": "user", "content": UNKNOWN}]})
    body = chat(client, thread_id, {"goto": "__end__"})  # pinned where the escalations wait, as the UI does
    assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200
    assert client.threads.get(thread_id)["status"] == "idle" and waiting(client, thread_id) == []
    assert {v["status"] for v in index(client, thread_id).values()} == {"dismissed"}
    assert run_outcome(client.threads.get_state(thread_id)) == "dismissed"
    assert_index_true(client, thread_id, dismissed=True)


def test_an_answer_that_names_no_interrupt_among_several_is_refused_and_the_thread_stays_interrupted(
    client: Any,
    server_url: str,
) -> None:
    thread_id = start(client, "support_desk", {"question": UNKNOWN})  # two interrupts (per task)
    body = chat(client, thread_id, {"resume": {"decisions": [{"type": "approve"}]}}, graph="support_desk")
    refused = post(server_url, f"/threads/{thread_id}/runs/stream", body)
    assert refused.status_code == 409 and "by interrupt id" in refused.json()["detail"]
    assert client.threads.get(thread_id)["status"] == "interrupted" and len(waiting(client, thread_id)) == 2
    assert_index_true(client, thread_id)


@pytest.mark.parametrize("graph", ["batch_desk", "support_desk_inbox"])
def test_agent_inbox_mark_as_resolved_after_one_answer_ends_the_thread(
    client: Any, server_url: str, graph: str
) -> None:
    """One escalation answered, then "Mark as Resolved": the thread ends (a deferred fan-in cleared too) and no
    item claims a decision that never took effect."""
    payload = {"questions": ["refunds?", "bitcoin?", "crypto?"]} if graph == "batch_desk" else {"question": UNKNOWN}
    thread_id = start(client, graph, payload)
    [(_, shown), *_] = waiting(client, thread_id)
    body = {"command": {"resume": [{"type": "accept", "args": None}]}, "stream_mode": "events", "assistant_id": graph}
    assert post(server_url, f"/threads/{thread_id}/runs/stream", body).status_code == 200
    assert index(client, thread_id)[shown["id"]]["status"] == "applied"  # the other still waits
    assert post(server_url, f"/threads/{thread_id}/state", {"values": None, "as_node": "__end__"}).status_code == 200
    state = client.threads.get_state(thread_id)
    assert state["next"] == [] and client.threads.get(thread_id)["status"] == "idle"
    assert {v["status"] for v in index(client, thread_id).values()} == {"dismissed"}
