"""The escalation shapes of test_shapes on PostgresSaver and AsyncPostgresSaver.

Needs the Postgres of CI (trust auth on 127.0.0.1:5432, database `test`); these tests fail,
never skip, when it is unreachable. Every test uses its own thread id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.register_assert_rewrite("shapes")

import shapes  # noqa: E402
from shapes import (  # noqa: E402
    BAD,
    ITEMS,
    OK,
    Thread,
    Tracker,
    by_step,
    checkpointer,
    decision,
    fan_out,
    fan_out_subgraph,
    nested,
    parallel,
    scenario_nested_one_at_a_time,
    scenario_send_fan_out,
    scenario_send_subgraph_each_decision,
    staggered,
    surfaced,
)

from reliable_graph import run_outcome, step_outcomes  # noqa: E402


@pytest.fixture(params=[True, False], ids=["checkpointed_attempts", "attempts_in_superstep"], autouse=True)
def attempts(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Every shape's reliable steps checkpoint each attempt, then run their retries inside their superstep."""
    shapes.STEP_OPTIONS["checkpoint_attempts"] = request.param
    yield bool(request.param)
    shapes.STEP_OPTIONS.clear()


@pytest.fixture(params=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


@pytest.fixture
async def saver(is_async: bool, tmp_path: Any) -> AsyncIterator[Any]:
    """PostgresSaver (sync runs) or AsyncPostgresSaver (async runs), tables set up."""
    async with checkpointer("postgres", tmp_path, is_async=is_async) as chosen:
        yield chosen


@pytest.mark.parametrize("how", ["one_at_a_time", "all_at_once"])
async def test_postgres_send_fan_out_escalations_apply_once(saver: Any, is_async: bool, how: str) -> None:
    tracker = Tracker({"item:b": [BAD, BAD], "item:d": [BAD, BAD]})
    thread = Thread(fan_out(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    await scenario_send_fan_out(thread, tracker, all_at_once=how == "all_at_once")


async def test_postgres_subgraph_escalations_apply_once(saver: Any, is_async: bool) -> None:
    tracker = Tracker({"draft": [BAD, BAD, OK], "title": [BAD, BAD]})
    thread = Thread(nested(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    await scenario_nested_one_at_a_time(thread, tracker)


@pytest.mark.parametrize("kind", ["step", "router"])
async def test_postgres_send_into_subgraph_each_decision(saver: Any, is_async: bool, kind: str) -> None:
    tracker = Tracker({f"work:{x}": [BAD, BAD, OK] for x in ITEMS})
    thread = Thread(fan_out_subgraph(tracker, kind=kind, is_async=is_async, checkpointer=saver), is_async=is_async)
    await scenario_send_subgraph_each_decision(thread, tracker, order=["e", "c", "a", "d", "b"])


async def test_postgres_parallel_branches_apply_once(saver: Any, is_async: bool) -> None:
    tracker = Tracker({"left": [BAD, BAD], "right": [BAD, BAD, OK]})
    thread = Thread(parallel(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    found = by_step(surfaced(await thread.invoke({"question": "q"})))
    out = await thread.resume({found["right"].id: decision("retry")})
    assert [i.id for i in surfaced(out)] == [found["left"].id]
    out = await thread.resume({found["left"].id: decision("edit", output="left=edited")})
    assert "__interrupt__" not in out and run_outcome(out) == "ok"
    assert dict(tracker.calls) == {"left": 2, "right": 3, "join": 1}
    assert step_outcomes(out) == {"left": "edited", "right": "retry_pass"}


async def test_postgres_staggered_escalations_surface_one_after_another(saver: Any, is_async: bool) -> None:
    tracker = Tracker({"short": [BAD, BAD], "long": [BAD, BAD]})
    thread = Thread(staggered(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    [first] = surfaced(await thread.invoke({"question": "q"}))
    out = await thread.resume({first.id: decision("approve")})
    [second] = surfaced(out)
    assert (first.value["step"], second.value["step"]) == ("short", "long")
    out = await thread.resume({second.id: decision("terminate")})
    assert "__interrupt__" not in out and run_outcome(out) == "terminated"
    assert {k: tracker.calls[k] for k in ("short", "pre", "long")} == {"short": 2, "pre": 1, "long": 2}
    assert step_outcomes(out) == {"short": "approved", "long": "terminated"}
