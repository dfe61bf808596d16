"""Escalations in every graph shape: straight line, parallel branches, staggered supersteps, Send
fan-outs, subgraphs and Send into subgraphs; reliable_step, ConfidenceRouter and ContextGate;
four state schemas; sync and async; in-memory and SQLite checkpointers (Postgres: test_shapes_postgres).

Every test counts what ran (each step function, each downstream node) with a `Tracker`, so
"applied exactly once, nothing re-run, nothing lost" is asserted, not assumed.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("shapes")

import shapes  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: E402
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: E402
from langgraph.types import Command  # noqa: E402
from shapes import (  # noqa: E402
    BAD,
    DECISIONS,
    GOOD_CONTEXT,
    ITEM_DECISIONS,
    ITEMS,
    OK,
    OUTCOME_OF,
    SCHEMAS,
    Thread,
    Tracker,
    assert_waiting,
    by_item,
    by_step,
    decision,
    fan_out,
    fan_out_subgraph,
    gate_fan_out_subgraph,
    gate_nested,
    gate_parallel,
    gate_straight,
    nested,
    outcomes_by_step,
    parallel,
    router_nested,
    router_parallel,
    router_straight,
    scenario_nested_one_at_a_time,
    scenario_send_fan_out,
    scenario_send_subgraph_each_decision,
    staggered,
    straight,
    surfaced,
)

from reliable_graph import NoPendingEscalationError, run_outcome, step_outcomes, task_records  # noqa: E402

# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["checkpointed_attempts", "attempts_in_superstep"], autouse=True)
def attempts(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Every shape's reliable steps checkpoint each attempt, then run their retries inside their superstep."""
    shapes.STEP_OPTIONS["checkpoint_attempts"] = request.param
    yield bool(request.param)
    shapes.STEP_OPTIONS.clear()


@pytest.fixture(params=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    """Run the graph with invoke (sync step functions) or ainvoke (async step functions)."""
    return bool(request.param == "async")


@pytest.fixture(params=["memory", "sqlite"])
async def saver(request: pytest.FixtureRequest, tmp_path: Path, is_async: bool) -> AsyncIterator[Any]:
    """InMemorySaver, or SqliteSaver / AsyncSqliteSaver on a real file."""
    if request.param == "memory":
        yield InMemorySaver()
        return
    path = tmp_path / "checkpoints.sqlite"
    if is_async:
        async with AsyncSqliteSaver.from_conn_string(str(path)) as checkpointer:
            yield checkpointer
        return
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


# -- reliable_step: straight line --------------------------------------------------------------


@pytest.mark.parametrize("action", list(DECISIONS))
@pytest.mark.parametrize("schema", list(SCHEMAS))
async def test_reliable_step_straight_line_decision_applies_once(schema: str, action: str, is_async: bool) -> None:
    tracker = Tracker({"second": [BAD, BAD, OK]})
    thread = Thread(straight(tracker, schema=SCHEMAS[schema], is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q", "context": ["c0"]})
    [interrupt] = surfaced(out)
    esc = interrupt.value
    assert (esc["step"], esc["task"], esc["path"]) == ("second", "second", "second")
    assert esc["inputs"] == {"question": "q"} and esc["output"] == "second=bad"
    assert esc["update"]["second"] == "second=bad" and esc["confidence"] == 0.0 and esc["threshold"] == 1.0
    assert [a["attempt"] for a in esc["attempts"]] == [1, 2] and esc["allowed_decisions"] == list(DECISIONS)
    await assert_waiting(thread, out, [interrupt])
    assert dict(tracker.calls) == {"first": 1, "second": 2}

    out = await thread.resume({interrupt.id: decision(action, output="second=edited")})
    assert "__interrupt__" not in out
    second = {
        "approve": "second=bad",
        "edit": "second=edited",
        "provide_context": "second=ok",
        "retry": "second=ok",
        "terminate": None,
    }[action]
    reran = action in ("provide_context", "retry")
    finished = action != "terminate"
    assert dict(tracker.calls) == {"first": 1, "second": 3 if reran else 2, **({"finish": 1} if finished else {})}
    assert out["first"] == "first=ok" and out.get("second") == second
    if finished:
        assert tracker.seen["finish"] == [{"first": "first=ok", "second": second}]
    if reran:
        hint = ["hint from a reviewer"] if action == "provide_context" else []
        assert tracker.contexts["second"] == [["c0"], ["c0"], ["c0", *hint]]
    assert step_outcomes(out) == {"first": "pass", "second": OUTCOME_OF[action]}
    assert run_outcome(out) == run_outcome(await thread.state()) == ("ok" if finished else "terminated")
    if schema == "messages":
        # the update the step proposed is applied whole (approve, and edit but for the output key),
        # a failed attempt's update never is
        message = {"approve": "second=bad", "edit": "second=bad", "provide_context": "second=ok", "retry": "second=ok"}
        assert [m.content for m in out["messages"]] == ["first=ok", *([message[action]] if finished else [])]


async def test_reliable_step_straight_line_answer_through_the_library(is_async: bool) -> None:
    tracker = Tracker({"first": [BAD]})
    thread = Thread(straight(tracker, is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    [interrupt] = surfaced(out)
    assert interrupt.value["step"] == "first" and tracker.calls["second"] == 0
    out = await thread.answer({"action": "edit", "output": "first=ok"})  # one pending: the answer alone will do
    assert dict(tracker.calls) == {"first": 2, "second": 1, "finish": 1}
    assert step_outcomes(out) == {"first": "edited", "second": "pass"} and run_outcome(out) == "ok"


# -- reliable_step: parallel branches in one superstep -------------------------------------------


@pytest.mark.parametrize("how", ["one_at_a_time", "all_at_once"])
async def test_reliable_step_parallel_branches_escalate_and_apply_once(saver: Any, is_async: bool, how: str) -> None:
    tracker = Tracker({"left": [BAD, BAD], "right": [BAD, BAD, OK]})
    thread = Thread(parallel(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    out = await thread.invoke({"question": "q", "context": ["c0"]})
    interrupts = surfaced(out)
    found = by_step(interrupts)
    assert sorted(found) == ["left", "right"]
    assert all(i.value["inputs"] == {"question": "q"} and i.value["task"] == i.value["step"] for i in interrupts)
    await assert_waiting(thread, out, interrupts)
    assert dict(tracker.calls) == {"left": 2, "right": 2}

    edit_left = decision("edit", output="left=edited")
    if how == "all_at_once":
        out = await thread.resume({found["left"].id: edit_left, found["right"].id: decision("retry")})
    else:
        out = await thread.resume({found["left"].id: edit_left})
        assert [i.id for i in surfaced(out)] == [found["right"].id]
        await assert_waiting(thread, out, [found["right"]])
        assert dict(tracker.calls) == {"left": 2, "right": 2}
        out = await thread.resume({found["right"].id: decision("retry")})

    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert dict(tracker.calls) == {"left": 2, "right": 3, "join": 1}
    assert tracker.seen["join"] == [{"left": "left=edited", "right": "right=ok"}]
    assert (out["left"], out["right"]) == ("left=edited", "right=ok")
    assert step_outcomes(out) == {"left": "edited", "right": "retry_pass"}
    assert set(task_records(out)) == {"left", "right"}


# -- reliable_step: escalations in different supersteps ----------------------------------------


async def test_reliable_step_staggered_escalations_surface_one_after_another(saver: Any, is_async: bool) -> None:
    tracker = Tracker({"short": [BAD, BAD, OK], "long": [BAD, BAD]})
    thread = Thread(staggered(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    out = await thread.invoke({"question": "q", "context": ["c0"]})
    [first] = surfaced(out)
    assert first.value["step"] == "short"
    await assert_waiting(thread, out, [first])

    out = await thread.resume({first.id: decision("retry")})
    [second] = surfaced(out)
    assert second.value["step"] == "long" and second.id != first.id
    await assert_waiting(thread, out, [second])
    # the short step's re-run waits for the superstep that holds the long branch's review
    assert dict(tracker.calls) == {"short": 2, "pre": 1, "long": 2}

    out = await thread.resume({second.id: decision("approve")})
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    # the short step re-ran once; nothing else ran again
    assert {k: tracker.calls[k] for k in ("short", "pre", "long")} == {"short": 3, "pre": 1, "long": 2}
    assert (out["short"], out["long"]) == ("short=ok", "long=bad")
    assert tracker.seen["join"][-1] == {"short": "short=ok", "long": "long=bad"}
    assert step_outcomes(out) == {"short": "retry_pass", "long": "approved"}


async def test_reliable_step_staggered_deferred_join_runs_once() -> None:
    tracker = Tracker({"short": [BAD, BAD], "long": [BAD, BAD]})
    thread = Thread(staggered(tracker), is_async=False)
    out = await thread.invoke({"question": "q"})
    while out.get("__interrupt__"):
        out = await thread.resume({i.id: decision("approve") for i in out["__interrupt__"]})
    assert tracker.seen["join"] == [{"short": "short=bad", "long": "long=bad"}]


# -- reliable_step: Send fan-out ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["one_at_a_time", "all_at_once"])
@pytest.mark.parametrize("schema", list(SCHEMAS))
async def test_reliable_step_send_fan_out_escalations_apply_once(schema: str, how: str, is_async: bool) -> None:
    tracker = Tracker({"item:b": [BAD, BAD], "item:d": [BAD, BAD]})
    graph = fan_out(tracker, schema=SCHEMAS[schema], is_async=is_async)
    thread = Thread(graph, is_async=is_async)
    await scenario_send_fan_out(thread, tracker, all_at_once=how == "all_at_once")
    if schema == "messages":
        values = (await thread.state()).values
        contents = sorted(m.content for m in values["messages"])
        assert contents == [f"item:{x}={'bad' if x in 'bd' else 'ok'}" for x in ITEMS]


async def test_reliable_step_send_fan_out_on_checkpointers(saver: Any, is_async: bool) -> None:
    tracker = Tracker({"item:b": [BAD, BAD], "item:d": [BAD, BAD]})
    thread = Thread(fan_out(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    await scenario_send_fan_out(thread, tracker)


@pytest.mark.parametrize("order", ["abcde", "edcba"])
async def test_reliable_step_send_each_decision_applies_to_its_own_item(order: str, is_async: bool) -> None:
    tracker = Tracker({f"item:{x}": [BAD, BAD, OK] for x in ITEMS})
    thread = Thread(fan_out(tracker, is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    found = by_item(surfaced(out))
    assert sorted(found) == list(ITEMS)
    await assert_waiting(thread, out, list(found.values()))
    for n, item in enumerate(order):
        out = await thread.resume({found[item].id: decision(ITEM_DECISIONS[item], output=[f"{item}=edited"])})
        assert sorted(i.id for i in surfaced(out)) == sorted(found[x].id for x in order[n + 1 :])
    assert sorted(out["results"]) == ["b=edited", "item:a=bad", "item:c=ok", "item:d=ok"]
    # retry and provide_context re-ran only their own item, each with its own input
    assert {x: tracker.calls[f"item:{x}"] for x in ITEMS} == {"a": 2, "b": 2, "c": 3, "d": 3, "e": 2}
    assert tracker.contexts["item:c"][-1] == ["ctx-c", "hint from a reviewer"]
    assert tracker.contexts["item:d"][-1] == ["ctx-d"]
    records = task_records(out)
    assert {x: records[found[x].value["task"]]["outcome"] for x in ITEMS} == {
        x: OUTCOME_OF[a] for x, a in ITEM_DECISIONS.items()
    }
    assert len(records) == 5 and sorted(tracker.seen["collect"][-1]["results"]) == sorted(out["results"])
    assert run_outcome(out) == "terminated"


async def test_reliable_step_send_retry_that_fails_again_reescalates_only_that_item(is_async: bool) -> None:
    tracker = Tracker({"item:b": [BAD], "item:d": [BAD]})
    thread = Thread(fan_out(tracker, is_async=is_async), is_async=is_async)
    found = by_item(surfaced(await thread.invoke({"question": "q"})))
    out = await thread.resume({found["b"].id: decision("retry")})
    assert [i.id for i in surfaced(out)] == [found["d"].id]
    out = await thread.resume({found["d"].id: decision("approve")})
    [again] = surfaced(out)
    esc = again.value
    assert again.id != found["b"].id and esc["task"] == found["b"].value["task"] and esc["inputs"] == {"item": "b"}
    assert esc["round"] == 2 and esc["previous_decision"] == {"action": "retry"} and len(esc["attempts"]) == 3
    assert tracker.calls["item:b"] == 3 and tracker.calls["item:d"] == 2
    await assert_waiting(thread, out, [again])
    out = await thread.resume({again.id: decision("approve")})
    assert sorted(out["results"]) == ["item:a=ok", "item:b=bad", "item:c=ok", "item:d=bad", "item:e=ok"]
    assert {x: tracker.calls[f"item:{x}"] for x in ITEMS} == {"a": 1, "b": 3, "c": 1, "d": 2, "e": 1}
    record = task_records(out)[esc["task"]]
    assert record["outcome"] == "approved" and record["rounds"] == 2 and len(task_records(out)) == 5


async def test_reliable_step_send_items_with_equal_inputs_escalate_separately() -> None:
    tracker = Tracker({"item:x": [BAD]})
    thread = Thread(fan_out(tracker, items=("x", "x", "y")), is_async=False)
    out = await thread.invoke({"question": "q"})
    interrupts = surfaced(out)
    assert [i.value["inputs"] for i in interrupts] == [{"item": "x"}, {"item": "x"}]
    out = await thread.resume({i.id: decision("edit", output=[f"x{n}"]) for n, i in enumerate(interrupts)})
    assert sorted(out["results"]) == ["item:y=ok", "x0", "x1"]
    assert sorted(step_outcomes(out).values()) == ["edited", "edited", "pass"]


async def test_reliable_step_send_deferred_aggregator_runs_once_after_reviews() -> None:
    tracker = Tracker({"item:b": [BAD, BAD], "item:d": [BAD, BAD]})
    thread = Thread(fan_out(tracker), is_async=False)
    out = await thread.invoke({"question": "q"})
    await thread.resume({i.id: decision("approve") for i in out["__interrupt__"]})
    assert tracker.calls["collect"] == 1
    assert sorted(tracker.seen["collect"][0]["results"]) == [f"item:{x}={'bad' if x in 'bd' else 'ok'}" for x in ITEMS]


async def test_reliable_step_send_deferred_aggregator_runs_once_after_an_automatic_retry() -> None:
    tracker = Tracker({"item:b": [BAD, OK]})
    out = await Thread(fan_out(tracker), is_async=False).invoke({"question": "q"})
    assert sorted(step_outcomes(out).values()) == ["pass", "pass", "pass", "pass", "retry_pass"]
    assert tracker.calls["collect"] == 1 and len(tracker.seen["collect"][0]["results"]) == 5


# -- reliable_step: a compiled subgraph used as a node -------------------------------------------


async def test_reliable_step_subgraph_escalations_apply_once(saver: Any, is_async: bool) -> None:
    tracker = Tracker({"draft": [BAD, BAD, OK], "title": [BAD, BAD]})
    thread = Thread(nested(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    await scenario_nested_one_at_a_time(thread, tracker)


async def test_reliable_step_subgraph_answers_all_at_once(is_async: bool) -> None:
    tracker = Tracker({"draft": [BAD, BAD], "title": [BAD, BAD]})
    thread = Thread(nested(tracker, is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    found = by_step(surfaced(out))
    out = await thread.answer(
        {found["draft"].value["id"]: decision("approve"), found["title"].id: decision("edit", output="T")}
    )
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert dict(tracker.calls) == {"intro": 1, "outline": 1, "draft": 2, "title": 2, "after": 1}
    assert tracker.seen["after"] == [{"intro": "intro=ok", "outline": "outline=ok", "draft": "draft=bad", "title": "T"}]
    assert outcomes_by_step(out) == Counter(
        {("intro", "pass"): 1, ("outline", "pass"): 1, ("draft", "approved"): 1, ("title", "edited"): 1}
    )
    assert len(task_records(out)) == 4


@pytest.mark.parametrize("action", list(DECISIONS))
async def test_reliable_step_subgraph_each_decision(action: str, is_async: bool) -> None:
    tracker = Tracker({"draft": [BAD, BAD, OK], "title": [BAD, BAD]})
    thread = Thread(nested(tracker, is_async=is_async), is_async=is_async)
    found = by_step(surfaced(await thread.invoke({"question": "q", "context": ["c0"]})))
    out = await thread.resume({found["draft"].id: decision(action, output="draft=edited")})
    assert [i.id for i in surfaced(out)] == [found["title"].id]
    assert run_outcome(out) == run_outcome(await thread.state()) == "escalated"
    out = await thread.resume({found["title"].id: decision("approve")})
    assert "__interrupt__" not in out
    draft = {
        "approve": "draft=bad",
        "edit": "draft=edited",
        "provide_context": "draft=ok",
        "retry": "draft=ok",
        "terminate": None,
    }[action]
    reran = action in ("provide_context", "retry")
    assert dict(tracker.calls) == {"intro": 1, "outline": 1, "draft": 3 if reran else 2, "title": 2, "after": 1}
    assert out.get("draft") == draft and out["title"] == "title=bad"
    assert tracker.seen["after"] == [
        {"intro": "intro=ok", "outline": "outline=ok", "draft": draft, "title": "title=bad"}
    ]
    if reran:
        hint = ["hint from a reviewer"] if action == "provide_context" else []
        assert tracker.contexts["draft"] == [["c0"], ["c0"], ["c0", *hint]]
        assert tracker.contexts["title"] == [["c0"], ["c0"]]
    assert outcomes_by_step(out) == Counter(
        {("intro", "pass"): 1, ("outline", "pass"): 1, ("draft", OUTCOME_OF[action]): 1, ("title", "approved"): 1}
    )
    assert run_outcome(out) == ("terminated" if action == "terminate" else "ok")


# -- reliable_step and ConfidenceRouter: Send fan-out into a subgraph ----------------------------


@pytest.mark.parametrize("kind", ["step", "router"])
async def test_send_into_subgraph_escalations_apply_once(kind: str, saver: Any, is_async: bool) -> None:
    tracker = Tracker({"work:b": [BAD, BAD], "work:d": [BAD, BAD]})
    thread = Thread(fan_out_subgraph(tracker, kind=kind, is_async=is_async, checkpointer=saver), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    interrupts = surfaced(out)
    found = by_item(interrupts)
    assert sorted(found) == ["b", "d"]
    for item, interrupt in found.items():
        esc = interrupt.value
        assert (esc["step"], esc["path"]) == ("work", "per_item/work") and esc["task"].startswith("per_item/work#")
        assert esc["output"] == f"work:{item}=bad"
    # only the subgraphs wait: the parent reads as escalated
    await assert_waiting(thread, out, interrupts)
    assert (await thread.state()).next == ("per_item", "per_item")
    assert tracker.calls["finalize"] == 3 and tracker.calls["collect"] == 0

    out = await thread.resume({found["d"].id: decision("approve")})
    assert [i.id for i in surfaced(out)] == [found["b"].id]
    await assert_waiting(thread, out, [found["b"]])
    assert tracker.calls["collect"] == 0

    out = await thread.resume({found["b"].id: decision("edit", output="b=edited")})
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    expected = ["b=edited", "work:a=ok", "work:c=ok", "work:d=bad", "work:e=ok"]
    assert sorted(out["results"]) == expected
    assert {x: tracker.calls[f"work:{x}"] for x in ITEMS} == {"a": 1, "b": 2, "c": 1, "d": 2, "e": 1}
    assert tracker.calls["finalize"] == 5 and tracker.calls["fan"] == 1
    assert tracker.calls["collect"] == 1 and sorted(tracker.seen["collect"][0]["results"]) == expected
    records = task_records(out)
    assert len(records) == 5 and all(rec["path"] == "per_item/work" for rec in records.values())
    assert outcomes_by_step(out) == Counter({("work", "pass"): 3, ("work", "edited"): 1, ("work", "approved"): 1})


@pytest.mark.parametrize("order", ["abcde", "edcba"])
@pytest.mark.parametrize("kind", ["step", "router"])
async def test_send_into_subgraph_each_decision_applies_to_its_own_item(kind: str, order: str, is_async: bool) -> None:
    tracker = Tracker({f"work:{x}": [BAD, BAD, OK] for x in ITEMS})
    thread = Thread(fan_out_subgraph(tracker, kind=kind, is_async=is_async), is_async=is_async)
    await scenario_send_subgraph_each_decision(thread, tracker, order=list(order))


async def test_send_into_subgraph_answers_all_at_once(is_async: bool) -> None:
    tracker = Tracker({f"work:{x}": [BAD, BAD, OK] for x in ITEMS})
    thread = Thread(fan_out_subgraph(tracker, kind="router", is_async=is_async), is_async=is_async)
    found = by_item(surfaced(await thread.invoke({"question": "q"})))
    answers = {found[x].id: decision(ITEM_DECISIONS[x], output=f"{x}=edited") for x in ITEMS}
    out = await thread.answer(answers)
    assert "__interrupt__" not in out
    assert sorted(out["results"]) == ["b=edited", "work:a=bad", "work:c=ok", "work:d=ok"]
    assert {x: tracker.calls[f"work:{x}"] for x in ITEMS} == {"a": 2, "b": 2, "c": 3, "d": 3, "e": 2}
    assert tracker.calls["finalize"] == 4 and tracker.calls["collect"] == 1
    assert sorted(step_outcomes(out).values()) == sorted(OUTCOME_OF.values())


def test_send_into_subgraph_answers_from_a_fresh_graph_on_the_same_sqlite_file(tmp_path: Path) -> None:
    """Each answer comes from a new graph on a new connection (another worker): nothing is lost or re-run."""
    tracker = Tracker({"work:b": [BAD, BAD], "work:d": [BAD, BAD, OK]})
    path = tmp_path / "checkpoints.sqlite"

    def step(arg: Any) -> Any:
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            graph = fan_out_subgraph(tracker, kind="router", checkpointer=SqliteSaver(conn))
            return graph.invoke(arg, {"configurable": {"thread_id": "durable"}})
        finally:
            conn.close()

    found = by_item(surfaced(step({"question": "q"})))
    assert sorted(found) == ["b", "d"]
    out = step(Command(resume={found["b"].id: decision("approve")}))
    assert [i.id for i in surfaced(out)] == [found["d"].id]
    out = step(Command(resume={found["d"].id: decision("retry")}))
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert sorted(out["results"]) == ["work:a=ok", "work:b=bad", "work:c=ok", "work:d=ok", "work:e=ok"]
    assert {x: tracker.calls[f"work:{x}"] for x in ITEMS} == {"a": 1, "b": 2, "c": 1, "d": 3, "e": 1}
    assert tracker.calls["finalize"] == 5 and tracker.calls["collect"] == 1
    assert Counter(step_outcomes(out).values()) == Counter({"pass": 3, "approved": 1, "retry_pass": 1})


@pytest.mark.parametrize("shape", ["send", "subgraph", "send_into_subgraph"])
async def test_a_repeated_answer_applies_nothing_twice(shape: str) -> None:
    """A reviewer's answer sent again (a double click) is refused by the library and ignored by a raw resume."""
    plan = {"item:b": [BAD], "item:d": [BAD], "draft": [BAD], "title": [BAD], "work:b": [BAD], "work:d": [BAD]}
    tracker = Tracker(plan)
    build = {"send": fan_out, "subgraph": nested, "send_into_subgraph": fan_out_subgraph}[shape]
    thread = Thread(build(tracker), is_async=False)
    first, second = surfaced(await thread.invoke({"question": "q"}))
    edited = ["X"] if shape == "send" else "X"
    out = await thread.resume({first.id: decision("edit", output=edited)})
    assert [i.id for i in surfaced(out)] == [second.id]
    calls = dict(tracker.calls)
    with pytest.raises(NoPendingEscalationError):
        await thread.answer({first.id: decision("approve")})
    out = await thread.resume({first.id: decision("approve")})
    assert [i.id for i in surfaced(out)] == [second.id] and dict(tracker.calls) == calls
    out = await thread.resume({second.id: decision("approve")})
    assert "__interrupt__" not in out
    records = task_records(out)
    assert records[first.value["task"]]["outcome"] == "edited"
    assert records[second.value["task"]]["outcome"] == "approved"
    values = out["results"] if shape != "subgraph" else [out["draft"], out["title"]]
    assert values.count("X") == 1


async def test_run_outcome_is_escalated_while_an_item_waits_after_another_was_terminated() -> None:
    tracker = Tracker({"work:b": [BAD, BAD], "work:d": [BAD, BAD]})
    thread = Thread(fan_out_subgraph(tracker), is_async=False)
    found = by_item(surfaced(await thread.invoke({"question": "q"})))
    out = await thread.resume({found["b"].id: decision("terminate")})
    assert [i.id for i in surfaced(out)] == [found["d"].id]
    assert run_outcome(out) == "escalated"
    assert run_outcome(await thread.state()) == "escalated"


# -- ConfidenceRouter --------------------------------------------------------------------------


@pytest.mark.parametrize("action", list(DECISIONS))
async def test_confidence_router_straight_line_decision_applies_once(action: str, is_async: bool) -> None:
    tracker = Tracker({"draft": [BAD, BAD, OK]})
    thread = Thread(router_straight(tracker, is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q", "context": ["c0"]})
    [interrupt] = surfaced(out)
    esc = interrupt.value
    assert (esc["step"], esc["task"], esc["output"], esc["inputs"]) == (
        "draft",
        "draft",
        "draft=bad",
        {"question": "q"},
    )
    await assert_waiting(thread, out, [interrupt])
    assert dict(tracker.calls) == {"draft": 2}
    out = await thread.resume({interrupt.id: decision(action, output="draft=edited")})
    assert "__interrupt__" not in out
    reran = action in ("provide_context", "retry")
    finished = action != "terminate"
    assert dict(tracker.calls) == {"draft": 3 if reran else 2, **({"finish": 1} if finished else {})}
    draft = {"approve": "draft=bad", "edit": "draft=edited", "provide_context": "draft=ok", "retry": "draft=ok"}
    if finished:
        assert tracker.seen["finish"] == [{"draft": draft[action]}]
    if action == "provide_context":
        assert tracker.contexts["draft"][-1] == ["c0", "hint from a reviewer"]
    assert step_outcomes(out) == {"draft": OUTCOME_OF[action]}
    assert run_outcome(out) == ("ok" if finished else "terminated")


@pytest.mark.parametrize("how", ["one_at_a_time", "all_at_once"])
async def test_confidence_router_parallel_branches_apply_once(how: str, is_async: bool) -> None:
    tracker = Tracker({"left": [BAD, BAD], "right": [BAD, BAD]})
    thread = Thread(router_parallel(tracker, is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    found = by_step(surfaced(out))
    assert sorted(found) == ["left", "right"]
    await assert_waiting(thread, out, list(found.values()))
    answers = {found["left"].id: decision("edit", output="left=edited"), found["right"].id: decision("approve")}
    if how == "all_at_once":
        out = await thread.resume(answers)
    else:
        out = await thread.resume({found["right"].id: answers[found["right"].id]})
        assert [i.id for i in surfaced(out)] == [found["left"].id]
        await assert_waiting(thread, out, [found["left"]])
        out = await thread.resume({found["left"].id: answers[found["left"].id]})
    assert "__interrupt__" not in out
    assert dict(tracker.calls) == {"left": 2, "right": 2, "join": 1}
    assert tracker.seen["join"] == [{"left": "left=edited", "right": "right=bad"}]
    assert step_outcomes(out) == {"left": "edited", "right": "approved"}


async def test_confidence_router_in_subgraph_apply_once(is_async: bool) -> None:
    tracker = Tracker({"draft": [BAD, BAD], "title": [BAD, BAD, OK]})
    thread = Thread(router_nested(tracker, is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q", "context": ["c0"]})
    interrupts = surfaced(out)
    found = by_step(interrupts)
    assert {s: i.value["path"] for s, i in found.items()} == {"draft": "sub/draft", "title": "sub/title"}
    await assert_waiting(thread, out, interrupts)
    out = await thread.resume({found["title"].id: decision("provide_context")})
    assert [i.id for i in surfaced(out)] == [found["draft"].id]
    await assert_waiting(thread, out, [found["draft"]])
    out = await thread.resume({found["draft"].id: decision("approve")})
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert dict(tracker.calls) == {"draft": 2, "title": 3, "after": 1}
    assert tracker.contexts["title"][-1] == ["c0", "hint from a reviewer"]
    assert tracker.seen["after"] == [{"draft": "draft=bad", "title": "title=ok"}]
    records = task_records(out)
    assert sorted(rec["path"] for rec in records.values()) == ["sub/draft", "sub/title"]
    assert outcomes_by_step(out) == Counter({("draft", "approved"): 1, ("title", "retry_pass"): 1})


# -- ContextGate -------------------------------------------------------------------------------

GATE_INPUT = {"question": "tide tables", "context": ["cats"], "ctx_a": ["cats"], "ctx_b": ["dogs"]}


@pytest.mark.parametrize("action", list(DECISIONS))
@pytest.mark.parametrize("inline", [False, True], ids=["refetch_node", "inline_refetch"])
async def test_context_gate_straight_line_decision_applies_once(action: str, is_async: bool, inline: bool) -> None:
    tracker = Tracker()
    thread = Thread(gate_straight(tracker, inline=inline), is_async=is_async)
    out = await thread.invoke(GATE_INPUT)
    [interrupt] = surfaced(out)
    esc = interrupt.value
    fetched = ["cats", "nothing useful for first"]
    assert (esc["step"], esc["task"], esc["kind"]) == ("first", "first", "gate")
    assert [c["text"] for c in esc["output"]] == fetched and "tide tables" in esc["reason"]
    await assert_waiting(thread, out, [interrupt])
    assert dict(tracker.calls) == {"refetch_first": 1}

    out = await thread.resume({interrupt.id: decision(action, output=[GOOD_CONTEXT], context=[GOOD_CONTEXT])})
    if action == "retry":  # re-fetched once more, still lacking the topic: asked again, round 2
        [again] = surfaced(out)
        assert again.id != interrupt.id and again.value["round"] == 2 and again.value["kind"] == "gate"
        assert tracker.calls["refetch_first"] == 2 and tracker.calls["first"] == 0
        out = await thread.resume({again.id: decision("approve")})
    assert "__interrupt__" not in out
    if action == "terminate":
        assert dict(tracker.calls) == {"refetch_first": 1} and run_outcome(out) == "terminated"
        assert step_outcomes(out) == {"first": "terminated"}
        return
    context = {
        "approve": fetched,
        "retry": fetched,
        "edit": [GOOD_CONTEXT],
        "provide_context": [*fetched, GOOD_CONTEXT],
    }[action]
    assert tracker.calls["first"] == 1 and tracker.calls["finish"] == 1 and tracker.contexts["first"] == [context]
    verdict = {"approve": "approved", "retry": "approved", "edit": "edited", "provide_context": "pass"}[action]
    [(key, record)] = task_records(out).items()
    assert key == "first" and record["gate"]["verdict"] == verdict and run_outcome(out) == "ok"


@pytest.mark.parametrize("inline", [False, True], ids=["refetch_node", "inline_refetch"])
async def test_context_gate_parallel_branches_apply_once(is_async: bool, inline: bool) -> None:
    tracker = Tracker()
    thread = Thread(gate_parallel(tracker, inline=inline), is_async=is_async)
    out = await thread.invoke(GATE_INPUT)
    found = by_step(surfaced(out))
    assert sorted(found) == ["left", "right"] and all(i.value["kind"] == "gate" for i in found.values())
    await assert_waiting(thread, out, list(found.values()))
    out = await thread.resume({found["left"].id: decision("approve")})
    assert [i.id for i in surfaced(out)] == [found["right"].id]
    await assert_waiting(thread, out, [found["right"]])
    out = await thread.resume({found["right"].id: decision("edit", output=[GOOD_CONTEXT])})
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert dict(tracker.calls) == {"refetch_left": 1, "refetch_right": 1, "left": 1, "right": 1, "join": 1}
    assert tracker.contexts["left"] == [["cats", "nothing useful for left"]]
    assert tracker.contexts["right"] == [[GOOD_CONTEXT]]
    records = task_records(out)
    assert {k: r["gate"]["verdict"] for k, r in records.items()} == {"left": "approved", "right": "edited"}


@pytest.mark.parametrize("inline", [False, True], ids=["refetch_node", "inline_refetch"])
async def test_context_gate_in_subgraph_apply_once(is_async: bool, inline: bool) -> None:
    tracker = Tracker()
    thread = Thread(gate_nested(tracker, inline=inline), is_async=is_async)
    out = await thread.invoke(GATE_INPUT)
    interrupts = surfaced(out)
    found = by_step(interrupts)
    assert {s: i.value["path"] for s, i in found.items()} == {"left": "sub/left", "right": "sub/right"}
    await assert_waiting(thread, out, interrupts)
    out = await thread.resume({found["left"].id: decision("provide_context", context=[GOOD_CONTEXT])})
    assert [i.id for i in surfaced(out)] == [found["right"].id]
    await assert_waiting(thread, out, [found["right"]])
    out = await thread.resume({found["right"].id: decision("approve")})
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert dict(tracker.calls) == {"refetch_left": 1, "refetch_right": 1, "left": 1, "right": 1, "after": 1}
    assert tracker.contexts["left"] == [["cats", "nothing useful for left", GOOD_CONTEXT]]
    records = task_records(out)
    assert {r["path"]: r["gate"]["verdict"] for r in records.values()} == {"sub/left": "pass", "sub/right": "approved"}


@pytest.mark.parametrize("inline", [False, True], ids=["refetch_node", "inline_refetch"])
async def test_context_gate_per_item_in_send_into_subgraph(is_async: bool, inline: bool) -> None:
    tracker = Tracker()
    thread = Thread(gate_fan_out_subgraph(tracker, inline=inline), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    interrupts = surfaced(out)
    assert len(interrupts) == 2 and all(i.value["kind"] == "gate" for i in interrupts)
    assert all(i.value["path"] == "per_item/work" and i.value["task"].startswith("per_item/work#") for i in interrupts)
    await assert_waiting(thread, out, interrupts)
    assert tracker.calls["refetch_work"] == 2 and tracker.calls["collect"] == 0
    first, second = interrupts
    out = await thread.resume({first.id: decision("provide_context", context=[GOOD_CONTEXT])})
    assert [i.id for i in surfaced(out)] == [second.id]
    out = await thread.resume({second.id: decision("edit", output=["edited context"])})
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert {x: tracker.calls[f"work:{x}"] for x in ITEMS} == dict.fromkeys(ITEMS, 1)
    assert tracker.calls["refetch_work"] == 2 and tracker.calls["collect"] == 1
    assert sorted(r.split(":")[1] for r in out["results"]) == ["1", "1", "1", "1", "3"]
    verdicts = Counter(r["gate"]["verdict"] for r in task_records(out).values())
    assert verdicts == Counter({"pass": 4, "edited": 1})


# -- drawing -----------------------------------------------------------------------------------

DRAWN: list[tuple[str, Callable[[Tracker], Any], set[tuple[str, str]]]] = [
    ("straight", straight, {("first", "human_escalation"), ("first", "first"), ("second", "second")}),
    ("parallel", parallel, {("left", "human_escalation"), ("left", "left"), ("right", "right")}),
    ("staggered", staggered, {("short", "human_escalation"), ("long", "human_escalation"), ("long", "long")}),
    ("send", fan_out, {("item", "human_escalation"), ("item", "item"), ("item", "collect")}),
    (
        "subgraph",
        nested,
        {("intro", "human_escalation"), ("sub:draft", "sub:human_escalation"), ("sub:draft", "sub:draft")},
    ),
    (
        "send_into_subgraph",
        fan_out_subgraph,
        {("per_item:work", "per_item:human_escalation"), ("per_item:work", "per_item:work")},
    ),
    (
        "send_into_subgraph_router",
        lambda t: fan_out_subgraph(t, kind="router"),
        {("per_item:check", "per_item:human_escalation"), ("per_item:check", "per_item:work")},
    ),
    ("router", router_straight, {("check_draft", "human_escalation"), ("check_draft", "draft")}),
    ("router_parallel", router_parallel, {("check_left", "human_escalation"), ("check_right", "right")}),
    ("router_subgraph", router_nested, {("sub:check_title", "sub:human_escalation"), ("sub:check_title", "sub:title")}),
    ("gate", gate_straight, {("gate_first", "human_escalation"), ("gate_first", "gate_first")}),
    ("gate_parallel", gate_parallel, {("gate_left", "human_escalation"), ("gate_right", "refetch_right")}),
    ("gate_subgraph", gate_nested, {("sub:gate_left", "sub:human_escalation"), ("sub:gate_left", "sub:gate_left")}),
    (
        "gate_inline_refetch",
        lambda t: gate_parallel(t, inline=True),
        {("gate_left", "human_escalation"), ("gate_left", "left"), ("gate_right", "gate_right")},
    ),
]


@pytest.mark.parametrize(("shape", "build", "expected"), DRAWN, ids=[d[0] for d in DRAWN])
def test_get_graph_draws_escalation_edge_and_retry_loop(
    shape: str, build: Callable[[Tracker], Any], expected: set[tuple[str, str]]
) -> None:
    edges = {(e.source, e.target) for e in build(Tracker()).get_graph(xray=True).edges}
    assert expected <= edges, sorted(expected - edges)
