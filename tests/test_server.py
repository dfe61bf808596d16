"""The server example (`examples/server`) under the real `langgraph dev` server, driven by `langgraph_sdk`.

One in-memory server is started for the module (`server_app.langgraph_dev`: a free loopback port,
nothing that could reach the network).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

if sys.version_info < (3, 11):
    pytest.skip("LangGraph Server (langgraph-api) needs Python 3.11 or newer", allow_module_level=True)

from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from server_app import langgraph_dev

GRAPH_ID = "support_desk"
UNKNOWN_QUESTION = "Can I pay with bitcoin?"  # neither step can handle it: both escalate


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with langgraph_dev(tmp_path_factory.mktemp("langgraph_dev")) as url:
        yield url


@pytest.fixture(scope="module")
def client(server_url: str) -> Iterator[SyncLangGraphClient]:
    with get_sync_client(url=server_url, api_key=None, timeout=30.0) as sdk:
        yield sdk


# -- helpers -------------------------------------------------------------------------------


def start(client: SyncLangGraphClient, question: str) -> tuple[str, Any]:
    """A new thread, and the result of its first run."""
    thread_id = client.threads.create()["thread_id"]
    return thread_id, client.runs.wait(thread_id, GRAPH_ID, input={"question": question})


def pending(client: SyncLangGraphClient, thread_id: str) -> dict[str, dict[str, Any]]:
    """The thread's pending interrupts, by the step whose escalation each carries."""
    interrupts = client.threads.get_state(thread_id)["interrupts"]
    by_step = {item["value"]["step"]: dict(item) for item in interrupts}
    assert len(by_step) == len(interrupts), interrupts
    return by_step


def values_of(client: SyncLangGraphClient, thread_id: str) -> dict[str, Any]:
    """The thread's current state values."""
    values = client.threads.get_state(thread_id)["values"]
    assert isinstance(values, dict)
    return values


def interrupted_threads(client: SyncLangGraphClient) -> set[str]:
    return {t["thread_id"] for t in client.threads.search(status="interrupted", limit=1000)}


def resume(client: SyncLangGraphClient, thread_id: str, answers: dict[str, Any]) -> Any:
    """Answer escalations by interrupt id, in one run, and wait for it."""
    return client.runs.wait(thread_id, GRAPH_ID, command={"resume": answers})


# -- tests ---------------------------------------------------------------------------------


def test_parallel_escalations_leave_the_thread_interrupted_with_two_interrupts(client: SyncLangGraphClient) -> None:
    thread_id, out = start(client, UNKNOWN_QUESTION)
    assert len(out["__interrupt__"]) == 2  # runs.wait hands back both interrupts

    assert client.threads.get(thread_id)["status"] == "interrupted"
    assert thread_id in interrupted_threads(client)

    state = client.threads.get_state(thread_id)
    assert state["next"] == ["human_escalation", "human_escalation"]
    interrupts = pending(client, thread_id)
    assert set(interrupts) == {"draft_answer", "cite_source"}
    assert len({item["id"] for item in interrupts.values()}) == 2
    for step, item in interrupts.items():
        value = item["value"]
        assert value["step"] == step and value["task"] == step
        assert value["confidence"] == 0.0 and value["threshold"] == 1.0
        assert isinstance(value["reason"], str) and value["reason"]
        assert value["inputs"] == {"question": UNKNOWN_QUESTION}
        assert value["rejected"] is None and value["round"] == 1
        assert "approve" in value["allowed_decisions"]
    assert "source" in interrupts["cite_source"]["value"]["reason"]
    assert "knowledge base" in interrupts["draft_answer"]["value"]["reason"]

    # each pending task carries its own interrupt (the thread lists them by task id)
    by_task = client.threads.get(thread_id)["interrupts"]
    assert sorted(len(items) for items in by_task.values()) == [1, 1]
    values = values_of(client, thread_id)
    tasks = values["reliability"]["tasks"]
    assert {key: (rec["outcome"], rec["pending"]) for key, rec in tasks.items()} == {
        "draft_answer": ("escalate", "review"),
        "cite_source": ("escalate", "review"),
    }
    assert "answer" not in values and "citation" not in values


def test_invalid_answer_leaves_the_thread_interrupted_and_says_why(client: SyncLangGraphClient) -> None:
    thread_id, _ = start(client, UNKNOWN_QUESTION)
    before = pending(client, thread_id)
    draft = before["draft_answer"]

    # an edit without its output: runs.create, then join
    run = client.runs.create(thread_id, GRAPH_ID, command={"resume": {draft["id"]: {"action": "edit"}}})
    client.runs.join(thread_id, run["run_id"])
    assert client.runs.get(thread_id, run["run_id"])["status"] == "success"  # the run did not error
    assert client.threads.get(thread_id)["status"] == "interrupted"
    assert thread_id in interrupted_threads(client)

    after = pending(client, thread_id)
    again = after["draft_answer"]
    assert again["id"] != draft["id"]  # asked again: a new interrupt...
    assert again["value"]["id"] == draft["value"]["id"]  # ...for the same escalation
    assert "output" in again["value"]["rejected"]["reason"]
    assert again["value"]["rejected"]["count"] == 1
    assert after["cite_source"]["id"] == before["cite_source"]["id"]  # the other one is untouched
    assert after["cite_source"]["value"]["rejected"] is None
    assert "answer" not in values_of(client, thread_id)  # nothing applied

    # a second invalid answer, with runs.wait: counted, still no error
    out = resume(client, thread_id, {again["id"]: {"action": "publish"}})
    third = {item["value"]["step"]: item for item in out["__interrupt__"]}["draft_answer"]
    assert third["value"]["rejected"]["count"] == 2 and "action" in third["value"]["rejected"]["reason"]
    assert client.threads.get(thread_id)["status"] == "interrupted"

    # the re-asked escalation still takes a valid answer
    resume(client, thread_id, {third["id"]: {"action": "edit", "output": "Only card payments."}})
    cite = pending(client, thread_id)["cite_source"]
    resume(client, thread_id, {cite["id"]: {"action": "terminate", "reason": "no payment policy to cite"}})
    assert client.threads.get(thread_id)["status"] == "idle"
    values = values_of(client, thread_id)
    assert values["answer"] == "Only card payments."
    outcomes = {key: rec["outcome"] for key, rec in values["reliability"]["tasks"].items()}
    assert outcomes == {"draft_answer": "edited", "cite_source": "terminated"}


def test_answering_each_escalation_in_its_own_run_completes_the_thread(client: SyncLangGraphClient) -> None:
    thread_id, _ = start(client, UNKNOWN_QUESTION)
    first = pending(client, thread_id)
    fallback = first["draft_answer"]["value"]["output"]

    resume(client, thread_id, {first["draft_answer"]["id"]: {"action": "approve", "reviewer": "ana"}})
    assert client.threads.get(thread_id)["status"] == "interrupted"
    left = pending(client, thread_id)
    assert list(left) == ["cite_source"] and left["cite_source"]["id"] == first["cite_source"]["id"]

    citation = {"source": "policies/payments.md", "quote": "We accept card and PayPal payments."}
    resume(client, thread_id, {left["cite_source"]["id"]: {"action": "edit", "output": citation}})

    thread = client.threads.get(thread_id)
    assert thread["status"] == "idle" and not thread["interrupts"]
    assert thread_id not in interrupted_threads(client)
    values = values_of(client, thread_id)
    assert values["answer"] == fallback  # approved: the step's own output
    assert values["citation"] == citation  # edited
    tasks = values["reliability"]["tasks"]
    assert tasks["draft_answer"]["outcome"] == "approved"
    assert tasks["draft_answer"]["decision"] == {"action": "approve", "reviewer": "ana"}
    assert tasks["cite_source"]["outcome"] == "edited"
    assert tasks["cite_source"]["decision"] == {"action": "edit"}
    assert not any(rec.get("pending") for rec in tasks.values())


def test_both_escalations_answered_in_one_run_in_other_formats(client: SyncLangGraphClient) -> None:
    thread_id, _ = start(client, UNKNOWN_QUESTION)
    interrupts = pending(client, thread_id)
    answers = {
        # LangChain HITL middleware shape
        interrupts["draft_answer"]["id"]: {
            "decisions": [{"type": "edit", "edited_action": {"name": "draft_answer", "args": {"output": "Card only."}}}]
        },
        # Agent Inbox shape
        interrupts["cite_source"]["id"]: [{"type": "accept", "args": None}],
    }
    out = resume(client, thread_id, answers)
    assert "__interrupt__" not in out
    assert client.threads.get(thread_id)["status"] == "idle"
    values = values_of(client, thread_id)
    assert values["answer"] == "Card only."
    assert values["citation"] == interrupts["cite_source"]["value"]["output"]
    outcomes = {key: rec["outcome"] for key, rec in values["reliability"]["tasks"].items()}
    assert outcomes == {"draft_answer": "edited", "cite_source": "approved"}


@pytest.mark.parametrize(
    ("question", "escalated", "outcomes"),
    [
        ("How long do refunds take?", set(), {"draft_answer": "pass", "cite_source": "pass"}),
        ("Is there a warranty?", {"cite_source"}, {"draft_answer": "pass", "cite_source": "escalate"}),
    ],
)
def test_only_failing_steps_wait_for_a_human(
    client: SyncLangGraphClient, question: str, escalated: set[str], outcomes: dict[str, str]
) -> None:
    thread_id, _ = start(client, question)
    assert client.threads.get(thread_id)["status"] == ("interrupted" if escalated else "idle")
    assert set(pending(client, thread_id)) == escalated
    values = values_of(client, thread_id)
    assert {key: rec["outcome"] for key, rec in values["reliability"]["tasks"].items()} == outcomes
    assert values["answer"]  # the passing step's update is applied at once


def test_escalations_are_indexed_in_the_servers_store(client: SyncLangGraphClient) -> None:
    thread_id, _ = start(client, "Can I pay with bitcoin?")
    waiting = pending(client, thread_id)
    found = client.store.search_items(["reliable_graph", "escalations"], filter={"thread_id": thread_id}, limit=50)
    items = {item["key"]: item["value"] for item in found["items"]}
    assert set(items) == {esc["value"]["id"] for esc in waiting.values()}  # one item per escalation, none twice
    assert {v["status"] for v in items.values()} == {"pending"}
    assert {v["step"] for v in items.values()} == {"draft_answer", "cite_source"}
    # resolving through the official client: by interrupt id, read from the thread
    interrupts = client.threads.get_state(thread_id)["interrupts"]
    answers = {i["id"]: {"action": "terminate", "reason": "out of scope"} for i in interrupts}
    resume(client, thread_id, answers)
    assert client.threads.get(thread_id)["status"] == "idle"
