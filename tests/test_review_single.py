"""`HumanEscalation(mode="single")`: one interrupt per graph carrying every escalation, answerable without an id.

The answers are exactly what the stock UIs send (Agent Inbox: a list of one `HumanResponse`,
never keyed by interrupt id; Agent Chat UI: `{"decisions": [...]}`, one decision per action
request of the one interrupt), on every shape whose escalations wait in one graph; the library's
own clients (`answer_escalations` by escalation id, the inbox, reviewers at once) work on the same
threads. Each decision is applied once, the downstream node runs once, the thread finishes.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from langgraph.types import Command
from review_app import DOWNSTREAM, ESCALATING, TASKS, app

from reliable_graph import EscalationInbox, answer_escalations, pending_escalations, run_outcome, step_outcomes
from reliable_graph.escalation import INBOX_NAMESPACE, escalations_of

ONE_GRAPH_SHAPES = ("straight", "branches", "send", "subgraph")
"""Shapes whose escalations all wait in one graph (a `Send` into subgraphs waits in each instance)."""


def task_of(escalation: dict[str, Any]) -> str:
    return str(escalation["output"][0]).split("=", 1)[0]


def interrupts(graph: Any, config: Any) -> list[Any]:
    snapshot = graph.get_state(config, subgraphs=True)
    found = list(snapshot.interrupts)
    for task in snapshot.tasks:
        if task.state is not None:
            found += [i for t in task.state.tasks for i in t.interrupts]
    return list({i.id: i for i in found}.values())


def finished_once(graph: Any, config: Any, shape: str, effects: Path, *, edited: str = "edited") -> None:
    state = graph.get_state(config)
    assert not state.next and run_outcome(state) == "ok", state.tasks
    results = Counter(state.values["results"])
    expected = {f"{t}={edited if t in ESCALATING[shape] else 'ok'}" for t in TASKS[shape]}
    assert set(results) == expected and set(results.values()) == {1}, results
    thread = config["configurable"]["thread_id"]
    lines = [line for line in effects.read_text().splitlines() if line.startswith(f"{thread} ")]
    assert lines == [f"{thread} {DOWNSTREAM[shape]}"]


@pytest.mark.parametrize("shape", ONE_GRAPH_SHAPES)
def test_agent_inbox_answers_every_escalation_one_at_a_time_without_an_id(shape: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    config = {"configurable": {"thread_id": f"ai-{shape}"}}
    with app(shape, "sqlite", str(tmp_path / "a.sqlite"), effects=effects, format="agent_inbox") as (graph, store):
        graph.invoke({"question": "q"}, config)
        for answered in range(len(ESCALATING[shape])):
            items = {i.key: i.value for i in store.search(INBOX_NAMESPACE, limit=100)}
            statuses = Counter(v["status"] for v in items.values())  # the store's items tell the truth throughout
            assert statuses == Counter({"pending": len(items) - answered, "applied": answered}), statuses
            [only] = interrupts(graph, config)  # one interrupt, whatever the shape
            shown = only.value[0]  # what Agent Inbox shows and answers: the first HumanInterrupt
            assert shown["action_request"]["args"] == {"output": shown["escalation"]["output"]}
            assert len(escalations_of(only.value)) == len(pending_escalations(graph, config))
            left = len(ESCALATING[shape]) - answered  # a list row shows the reason first, then how many wait
            assert shown["description"].startswith(shown["escalation"]["reason"])
            assert (f"*1 of {left} escalations waiting on this thread.*" in shown["description"]) == (left > 1)
            edit = {
                "action": shown["action_request"]["action"],
                "args": {"output": [f"{task_of(shown['escalation'])}=edited"]},
            }
            graph.invoke(Command(resume=[{"type": "edit", "args": edit}]), config)  # no interrupt id: accepted
        finished_once(graph, config, shape, effects)
        assert set(step_outcomes(graph.get_state(config)).values()) <= {"pass", "edited"}
        items = [i.value for i in store.search(INBOX_NAMESPACE, limit=100)]
        assert {(v["status"], v["resolved_by"], v["decision"]["action"]) for v in items} == {
            ("resolved", "a direct resume", "edit")
        }


@pytest.mark.parametrize("shape", ONE_GRAPH_SHAPES)
def test_agent_chat_ui_submits_all_decisions_at_once(shape: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    config = {"configurable": {"thread_id": f"chat-{shape}"}}
    with app(shape, "sqlite", str(tmp_path / "a.sqlite"), effects=effects, format="hitl") as (graph, _):
        graph.invoke({"question": "q"}, config)
        [only] = interrupts(graph, config)
        requests = only.value["action_requests"]
        assert len(requests) == len(ESCALATING[shape]) and all(r["args"] == r["arguments"] for r in requests)
        decisions = [
            {"type": "edit", "edited_action": {"name": r["name"], "args": {"output": [f"{task_of(e)}=edited"]}}}
            for r, e in zip(requests, only.value["escalations"], strict=True)
        ]
        graph.invoke(Command(resume={"decisions": decisions}), config)  # "Submit all N decisions"
        finished_once(graph, config, shape, effects)


def test_agent_chat_ui_approving_one_asks_the_rest_again(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    config = {"configurable": {"thread_id": "chat-partial"}}
    with app("send", "sqlite", str(tmp_path / "a.sqlite"), effects=effects, format="hitl") as (graph, _):
        graph.invoke({"question": "q"}, config)
        rounds = 0
        while interrupts(graph, config):
            [only] = interrupts(graph, config)
            assert len(only.value["action_requests"]) == len(ESCALATING["send"]) - rounds
            graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)  # one decision: the first
            rounds += 1
        assert rounds == len(ESCALATING["send"])
        finished_once(graph, config, "send", effects, edited="draft")  # approve applies the step's own output


def test_a_bad_part_of_an_answer_is_asked_again_with_the_reason_and_the_good_parts_apply(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    config = {"configurable": {"thread_id": "chat-bad"}}
    with app("branches", "sqlite", str(tmp_path / "a.sqlite"), effects=effects, format="hitl") as (graph, _):
        graph.invoke({"question": "q"}, config)
        [only] = interrupts(graph, config)
        first, second = only.value["escalations"]
        one, two = (r["name"] for r in only.value["action_requests"])  # the names the UI shows and sends back
        bad = {"type": "edit", "edited_action": {"name": one, "args": {}}}  # no output
        good = {"type": "edit", "edited_action": {"name": two, "args": {"output": [f"{task_of(second)}=edited"]}}}
        graph.invoke(Command(resume={"decisions": [bad, good]}), config)
        [again] = interrupts(graph, config)
        [left] = again.value["escalations"]
        assert left["id"] == first["id"] and "output" in left["rejected"]["reason"]
        fixed = {"type": "edit", "edited_action": {"name": one, "args": {"output": [f"{task_of(first)}=edited"]}}}
        graph.invoke(Command(resume={"decisions": [fixed]}), config)
        finished_once(graph, config, "branches", effects)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("shape", [*ONE_GRAPH_SHAPES, "send_subgraph"])
def test_the_library_clients_answer_single_mode_threads_by_escalation_id(
    shape: str, backend: str, tmp_path: Path, pg_db: str
) -> None:
    where = str(tmp_path / "a.sqlite") if backend == "sqlite" else pg_db
    effects = tmp_path / "effects.log"
    thread = f"single-{shape}-{uuid.uuid4().hex[:6]}"
    config = {"configurable": {"thread_id": thread}}
    with app(shape, backend, where, effects=effects, format="agent_inbox") as (graph, store):
        graph.invoke({"question": "q"}, config)
        pending = pending_escalations(graph, config)
        assert sorted(task_of(p.escalation) for p in pending) == sorted(ESCALATING[shape])
        first, *rest = pending
        answer_escalations(
            graph,
            config,
            {first.escalation["id"]: {"action": "edit", "output": [f"{task_of(first.escalation)}=edited"]}},
        )
        inbox = EscalationInbox(store, graph=graph)
        errors: list[BaseException] = []

        def one(escalation: dict[str, Any], n: int) -> None:
            try:
                inbox.resolve(
                    escalation["id"], {"action": "edit", "output": [f"{task_of(escalation)}=edited"]}, reviewer=f"r{n}"
                )
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        workers = [threading.Thread(target=one, args=(p.escalation, n)) for n, p in enumerate(rest)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert not errors, errors
        finished_once(graph, config, shape, effects)
        inbox.reconcile()
        assert {i.status for i in inbox.list(thread_id=thread, status=None)} == {"resolved"}


@pytest.mark.parametrize("format", ["agent_inbox", "reliable"])
def test_a_late_answer_for_an_escalation_answered_before_is_ignored_not_taken_for_the_next(
    format: str, tmp_path: Path
) -> None:
    # LangGraph hands an answer keyed by a task's first interrupt to that task's next question: a
    # reviewer who read the interrupt before another's answer consumed it must not answer (or get a
    # rejection recorded on) the escalation asked next.
    effects = tmp_path / "effects.log"
    config = {"configurable": {"thread_id": f"late-{format}"}}
    with app("branches", "sqlite", str(tmp_path / "a.sqlite"), effects=effects, format=format, mode="single") as (
        graph,
        store,
    ):
        graph.invoke({"question": "q"}, config)
        [first_interrupt] = interrupts(graph, config)
        first, second = escalations_of(first_interrupt.value)
        approve = {"action": "edit", "output": [f"{task_of(first)}=edited"], "reviewer": "ana"}
        graph.invoke(Command(resume={first_interrupt.id: {first["id"]: approve}}), config)
        [asked] = interrupts(graph, config)
        [still] = escalations_of(asked.value)
        assert still["id"] == second["id"] and not still.get("rejected")

        late = {"action": "terminate", "reviewer": "bo"}  # read before ana's answer consumed the interrupt
        events = list(
            graph.stream(Command(resume={first_interrupt.id: {first["id"]: late}}), config, stream_mode="custom")
        )
        [again] = interrupts(graph, config)
        [shown] = escalations_of(again.value)
        assert shown["id"] == second["id"] and not shown.get("rejected"), shown["rejected"]  # asked again, unchanged
        assert {"type": "reliable_graph.late_answer_ignored", "escalation": first["id"]} in events
        items = {i.key: i.value for i in store.search(INBOX_NAMESPACE, limit=100)}
        assert items[first["id"]]["decision"]["action"] == "edit" and items[first["id"]]["resolved_by"] == "ana"
        assert items[second["id"]]["status"] == "pending"

        edit = {"action": "edit", "output": [f"{task_of(second)}=edited"], "reviewer": "cy"}
        graph.invoke(Command(resume={again.id: {second["id"]: edit}}), config)
        finished_once(graph, config, "branches", effects)


def test_a_late_keyed_answer_on_a_per_task_interrupt_is_asked_again_without_a_rejection(tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    config = {"configurable": {"thread_id": "late-per-task"}}
    with app("straight", "sqlite", str(tmp_path / "a.sqlite"), effects=effects, mode="per_task") as (graph, _):
        graph.invoke({"question": "q"}, config)
        [asked] = interrupts(graph, config)
        [escalation] = escalations_of(asked.value)
        other = "0123456789abcdef0123"  # an escalation id this interrupt does not carry
        graph.invoke(Command(resume={asked.id: {other: {"action": "approve"}}}), config)
        [again] = interrupts(graph, config)
        [shown] = escalations_of(again.value)
        assert shown["id"] == escalation["id"] and not shown.get("rejected"), shown["rejected"]
        edit = {"action": "edit", "output": [f"{task_of(escalation)}=edited"]}
        graph.invoke(Command(resume={again.id: {escalation["id"]: edit, other: {"action": "terminate"}}}), config)
        finished_once(graph, config, "straight", effects)


@pytest.mark.parametrize("format", ["agent_inbox", "hitl"])
@pytest.mark.parametrize("shape", ["send", "branches", "subgraph"])
def test_a_stale_ui_answer_naming_an_escalation_answered_meanwhile_is_refused_not_applied_to_the_next(
    shape: str, format: str, tmp_path: Path
) -> None:
    """Two reviewers look at the same first escalation; one answers it; the other's edit or accept, sent
    without an id as the stock UIs send it, names the action it was shown: it is refused (the reviewer is
    asked again, with the reason) instead of landing on the escalation that is first now."""
    effects = tmp_path / "effects.log"
    config = {"configurable": {"thread_id": f"stale-{shape}-{format}"}}
    with app(shape, "sqlite", str(tmp_path / "a.sqlite"), effects=effects, format=format) as (graph, _):
        graph.invoke({"question": "q"}, config)
        [only] = interrupts(graph, config)
        seen = escalations_of(only.value)
        names = (
            [r["action_request"]["action"] for r in only.value]
            if format == "agent_inbox"
            else [r["name"] for r in only.value["action_requests"]]
        )
        assert len(set(names)) == len(names)  # no two waiting escalations share an action name
        first, first_name = seen[0], names[0]
        answer_escalations(graph, config, {first["id"]: {"action": "approve", "reviewer": "bo"}})  # reviewer B
        output = [f"{task_of(first)}=stale"]  # reviewer A, still looking at the first escalation
        stale: list[Any]
        for stale in (
            (
                [{"type": "edit", "args": {"action": first_name, "args": {"output": output}}}],
                [{"type": "accept", "args": {"action": first_name, "args": {"output": first["output"]}}}],
            )
            if format == "agent_inbox"
            else ({"decisions": [{"type": "edit", "edited_action": {"name": first_name, "args": {"output": output}}}]},)
        ):
            graph.invoke(Command(resume=stale), config)
            [now] = interrupts(graph, config)
            waiting = escalations_of(now.value)
            assert first["id"] not in {e["id"] for e in waiting} and len(waiting) == len(seen) - 1
            assert "nothing was applied" in waiting[0]["rejected"]["reason"]
            assert first_name in waiting[0]["rejected"]["reason"]
        for escalation in waiting:  # the rest answered as they are shown now
            answer_escalations(
                graph, config, {escalation["id"]: {"action": "edit", "output": [f"{task_of(escalation)}=edited"]}}
            )
        results = Counter(graph.get_state(config).values["results"])
        assert all(not r.endswith("=stale") for r in results) and set(results.values()) == {1}
        assert results[f"{task_of(first)}=draft"] == 1  # B's approve: the step's own output, once
