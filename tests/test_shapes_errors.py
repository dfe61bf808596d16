"""Connector errors inside reliable steps, in every graph shape: a transient one is retried
inside the step (one logical attempt, no escalation), a permanent one escalates at once naming
the error, and the reviewer's retry applies exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("shapes")

from shapes import (  # noqa: E402
    FORBIDDEN,
    ITEMS,
    OK,
    SCHEMAS,
    TIMEOUT,
    Thread,
    Tracker,
    by_item,
    by_step,
    checkpointer,
    decision,
    fan_out,
    fan_out_subgraph,
    nested,
    parallel,
    straight,
    surfaced,
)

from reliable_graph import run_outcome, step_outcomes, task_records  # noqa: E402
from reliable_graph.resilience import observe_retries  # noqa: E402


@pytest.fixture(params=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def saver(request: pytest.FixtureRequest, tmp_path: Path, is_async: bool) -> AsyncIterator[Any]:
    """Where the state persists: in memory, a real SQLite file, or the CI's PostgreSQL."""
    async with checkpointer(request.param, tmp_path / "c.sqlite", is_async=is_async) as chosen:
        yield chosen


@pytest.fixture(autouse=True)
def retries() -> Iterator[list[str]]:
    """Every retry any step makes (with the default retry policy, real jittered waits)."""
    retried: list[str] = []
    with observe_retries(lambda exc, wait: retried.append(type(exc).__name__)):
        yield retried


def _reason(interrupt: Any) -> str:
    return str(interrupt.value["reason"])


@pytest.mark.parametrize("schema", list(SCHEMAS))
async def test_straight_line_transient_is_retried_permanent_escalates(
    schema: str, is_async: bool, retries: list[str]
) -> None:
    tracker = Tracker({"first": [TIMEOUT, TIMEOUT, OK], "second": [FORBIDDEN, OK]})
    thread = Thread(straight(tracker, schema=SCHEMAS[schema], is_async=is_async), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    [interrupt] = surfaced(out)
    assert interrupt.value["step"] == "second"
    assert "HTTPStatusError (HTTP 403)" in _reason(interrupt) and "retrying cannot help" in _reason(interrupt)
    assert interrupt.value["output"] is None and interrupt.value["confidence"] == 0.0
    assert dict(tracker.calls) == {"first": 3, "second": 1}  # two retries inside first's one attempt
    assert retries == ["ReadTimeout", "ReadTimeout"]
    out = await thread.resume({interrupt.id: decision("retry")})
    assert run_outcome(out) == "ok" and out["second"] == "second=ok"
    assert dict(tracker.calls) == {"first": 3, "second": 2, "finish": 1}
    assert step_outcomes(out) == {"first": "pass", "second": "retry_pass"}
    assert len(task_records(out)["first"]["attempts"]) == 1  # connector retries are not scored attempts


async def test_parallel_branches(is_async: bool, saver: Any) -> None:
    tracker = Tracker({"left": [FORBIDDEN, OK], "right": [TIMEOUT, OK]})
    thread = Thread(parallel(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    found = by_step(surfaced(out))
    assert sorted(found) == ["left"] and "HTTP 403" in _reason(found["left"])
    assert dict(tracker.calls) == {"left": 1, "right": 2}
    out = await thread.resume({found["left"].id: decision("retry")})
    assert run_outcome(out) == "ok" and dict(tracker.calls) == {"left": 2, "right": 2, "join": 1}
    assert step_outcomes(out) == {"left": "retry_pass", "right": "pass"}


async def test_send_fan_out(is_async: bool, saver: Any) -> None:
    tracker = Tracker({"item:b": [FORBIDDEN, OK], "item:d": [TIMEOUT, OK], "item:e": [FORBIDDEN, OK]})
    thread = Thread(fan_out(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    found = by_item(surfaced(out))
    assert sorted(found) == ["b", "e"] and all("HTTP 403" in _reason(i) for i in found.values())
    assert tracker.calls["item:d"] == 2 and tracker.calls["collect"] == 0
    out = await thread.resume({found["b"].id: decision("retry")})
    assert [i.id for i in surfaced(out)] == [found["e"].id]  # e still waits, b applied once
    out = await thread.resume({found["e"].id: decision("terminate")})
    assert run_outcome(out) in ("ok", "terminated") and tracker.calls["collect"] == 1
    results = sorted(tracker.seen["collect"][0]["results"])
    assert results == [f"item:{x}=ok" for x in ITEMS if x != "e"]
    assert {k: v for k, v in tracker.calls.items() if k.startswith("item:")} == {
        "item:a": 1,
        "item:b": 2,
        "item:c": 1,
        "item:d": 2,
        "item:e": 1,
    }


async def test_subgraph(is_async: bool, saver: Any) -> None:
    tracker = Tracker({"draft": [FORBIDDEN, OK], "title": [TIMEOUT, TIMEOUT, OK]})
    thread = Thread(nested(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    [interrupt] = surfaced(out)
    assert interrupt.value["step"] == "draft" and interrupt.value["path"].endswith("draft")
    assert "HTTP 403" in _reason(interrupt) and tracker.calls["title"] == 3 and tracker.calls["after"] == 0
    out = await thread.resume({interrupt.id: decision("retry")})
    assert run_outcome(out) == "ok" and tracker.calls["draft"] == 2 and tracker.calls["after"] == 1


async def test_send_into_subgraph(is_async: bool, saver: Any) -> None:
    tracker = Tracker({"work:c": [FORBIDDEN, OK], "work:a": [TIMEOUT, OK]})
    thread = Thread(fan_out_subgraph(tracker, is_async=is_async, checkpointer=saver), is_async=is_async)
    out = await thread.invoke({"question": "q"})
    found = by_item(surfaced(out))
    assert sorted(found) == ["c"] and "HTTP 403" in _reason(found["c"])
    out = await thread.resume({found["c"].id: decision("retry")})
    assert run_outcome(out) == "ok" and tracker.calls["collect"] == 1
    assert sorted(tracker.seen["collect"][0]["results"]) == [f"work:{x}=ok" for x in ITEMS]
    assert tracker.calls["work:c"] == 2 and tracker.calls["work:a"] == 2 and tracker.calls["finalize"] == 5
