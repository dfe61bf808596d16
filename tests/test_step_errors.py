"""reliable_step, Refetch and Retrieve on connector errors: classify, retry, escalate, or propagate."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from reliable_graph import (
    ContextGate,
    HumanEscalation,
    LexicalRelevance,
    Predicate,
    ReliabilityState,
    Retrieve,
    reliable_step,
    step_outcomes,
)
from reliable_graph.resilience import ConnectorRetry, VirtualClock, connectors, observe_retries

REQUEST = httpx.Request("GET", "https://api.test/search")


class State(ReliabilityState, total=False):
    question: str
    context: list[Any]
    output: Any


def status(code: int) -> httpx.HTTPStatusError:
    return httpx.HTTPStatusError(f"HTTP {code}", request=REQUEST, response=httpx.Response(code, request=REQUEST))


def _graph(step: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node(step)
    builder.add_node(HumanEscalation())
    builder.add_edge(START, step.name)
    return builder.compile(checkpointer=InMemorySaver())


def _failing(errors: list[BaseException], calls: list[int]) -> Any:
    def answer(state: State) -> dict[str, Any]:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return {"output": "fine"}

    return answer


CONFIG: Any = {"configurable": {"thread_id": "t"}}
KNOWN = Predicate(fn=bool, name="known")


@pytest.mark.parametrize("is_async", [False, True])
async def test_retries_spent_escalate_naming_the_error(is_async: bool) -> None:
    calls: list[int] = []
    clock = VirtualClock()
    retry = ConnectorRetry(max_attempts=3, sleep=clock.sleep, asleep=clock.asleep)
    step = reliable_step(_failing([status(503)] * 5, calls), evaluator=KNOWN, threshold=1.0, pass_to=END, retry=retry)
    graph = _graph(step)
    out = await graph.ainvoke({"question": "q"}, CONFIG) if is_async else graph.invoke({"question": "q"}, CONFIG)
    reason = out["__interrupt__"][0].value["reason"]
    assert "after 3 attempts (transient error): HTTPStatusError (HTTP 503)" in reason
    assert len(calls) == 3 and clock.waits == 2


def test_retry_none_lets_a_transient_error_propagate_and_resume_later() -> None:
    calls: list[int] = []
    step = reliable_step(
        _failing([httpx.ReadTimeout("slow", request=REQUEST)], calls),
        evaluator=KNOWN,
        threshold=1.0,
        pass_to=END,
        retry=None,
    )
    graph = _graph(step)
    with pytest.raises(httpx.ReadTimeout):
        graph.invoke({"question": "q"}, CONFIG)  # the orchestrator (Temporal, RetryPolicy) retries
    out = graph.invoke(None, CONFIG)
    assert out["output"] == "fine" and step_outcomes(out) == {"answer": "pass"} and len(calls) == 2


def test_retry_none_still_escalates_a_permanent_error() -> None:
    step = reliable_step(_failing([status(401)], []), evaluator=KNOWN, threshold=1.0, pass_to=END, retry=None)
    out = _graph(step).invoke({"question": "q"}, CONFIG)
    assert "HTTP 401" in out["__interrupt__"][0].value["reason"]


def test_an_unknown_error_is_a_bug_and_propagates_unretried() -> None:
    calls: list[int] = []
    step = reliable_step(_failing([KeyError("answer")], calls), evaluator=KNOWN, threshold=1.0, pass_to=END)
    with pytest.raises(KeyError):
        _graph(step).invoke({"question": "q"}, CONFIG)
    assert len(calls) == 1


def test_escalate_on_adds_classes_to_escalate_at_once() -> None:
    step = reliable_step(
        _failing([ValueError("quota exhausted")], []),
        evaluator=KNOWN,
        threshold=1.0,
        pass_to=END,
        escalate_on=(ValueError,),
    )
    out = _graph(step).invoke({"question": "q"}, CONFIG)
    assert "ValueError: quota exhausted" in out["__interrupt__"][0].value["reason"]


def test_an_interrupt_inside_the_step_reaches_langgraph_untouched() -> None:
    calls: list[int] = []

    def ask(state: State) -> dict[str, Any]:
        calls.append(1)
        return {"output": interrupt("which source?")}

    graph = _graph(reliable_step(ask, evaluator=KNOWN, threshold=1.0, pass_to=END, name="ask"))
    out = graph.invoke({"question": "q"}, CONFIG)
    assert out["__interrupt__"][0].value == "which source?" and len(calls) == 1
    out = graph.invoke(Command(resume="the archive"), CONFIG)
    assert out["output"] == "the archive" and step_outcomes(out) == {"ask": "pass"}


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_permanent_refetch_error_escalates_the_step(is_async: bool) -> None:
    def search(query: str) -> list[str]:
        raise status(404)

    step = reliable_step(
        lambda s: {"output": ""}, name="answer", evaluator=KNOWN, threshold=1.0, pass_to=END, refetch=search
    )
    graph = _graph(step)
    state = {"question": "q", "context": ["c"]}
    out = await graph.ainvoke(state, CONFIG) if is_async else graph.invoke(state, CONFIG)
    reason = out["__interrupt__"][0].value["reason"]
    assert "the re-fetch for step 'answer' failed (retrying cannot help): HTTPStatusError (HTTP 404)" in reason


@pytest.mark.parametrize("is_async", [False, True])
async def test_retrieve_then_gate_escalates_a_failed_first_fetch_and_a_reviewer_supplies_context(
    is_async: bool,
) -> None:
    calls: list[str] = []

    async def asearch(query: str) -> list[str]:
        calls.append(query)
        raise status(403)

    def search(query: str) -> list[str]:
        calls.append(query)
        raise status(403)

    builder = StateGraph(State)
    builder.add_node(Retrieve(asearch if is_async else search, step="answer", goto="gate"))
    builder.add_node(
        ContextGate(
            LexicalRelevance(),
            name="gate",
            step="answer",
            pass_to=END,
            refetch_to="retrieve",
            escalate_to="human_escalation",
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "retrieve")
    graph = builder.compile(checkpointer=InMemorySaver())
    out = (
        await graph.ainvoke({"question": "tide tables"}, CONFIG)
        if is_async
        else graph.invoke({"question": "tide tables"}, CONFIG)
    )
    esc = out["__interrupt__"][0].value
    assert esc["kind"] == "gate" and "the retrieval for step 'answer' failed" in esc["reason"]
    assert calls == ["tide tables"] and out["context"] == []
    answer = Command(resume={"action": "provide_context", "context": ["tide tables for the harbour"]})
    out = await graph.ainvoke(answer, CONFIG) if is_async else graph.invoke(answer, CONFIG)
    assert "__interrupt__" not in out and [c["text"] for c in out["context"]] == ["tide tables for the harbour"]


class _NoTenacity:
    """Stands in for the tenacity module: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        msg = f"tenacity.{name} was used by a step that needed no retry"
        raise AssertionError(msg)


async def _run(graph: Any, state: Any, is_async: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run to the end; the final state and the custom stream's events."""
    if is_async:
        events = [e async for e in graph.astream(state, CONFIG, stream_mode="custom")]
    else:
        events = list(graph.stream(state, CONFIG, stream_mode="custom"))
    return graph.get_state(CONFIG).values, events


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_passing_step_and_its_refetch_never_enter_the_retry_machinery(
    is_async: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connectors, "tenacity", _NoTenacity())
    answers = iter(["", "Paris"])
    step = reliable_step(
        lambda s: {"output": next(answers)},
        name="answer",
        evaluator=KNOWN,
        threshold=1.0,
        pass_to=END,
        refetch=lambda q: ["Paris is the capital of France"],
    )
    values, _ = await _run(_graph(step), {"question": "capital?", "context": []}, is_async)
    assert values["output"] == "Paris" and step_outcomes(values) == {"answer": "retry_pass"}


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_transient_error_gets_its_retries_waits_and_events(is_async: bool) -> None:
    calls: list[int] = []
    clock = VirtualClock()
    hook: list[tuple[str, float]] = []
    observed: list[tuple[str, float]] = []
    retry = ConnectorRetry(
        initial_wait=0.1,
        jitter=False,
        sleep=clock.sleep,
        asleep=clock.asleep,
        on_retry=lambda exc, wait: hook.append((type(exc).__name__, wait)),
    )
    limited = httpx.Response(429, headers={"Retry-After": "0.3"}, request=REQUEST)
    errors: list[BaseException] = [
        httpx.ReadTimeout("slow", request=REQUEST),
        httpx.HTTPStatusError("429", request=REQUEST, response=limited),
    ]
    step = reliable_step(_failing(errors, calls), evaluator=KNOWN, threshold=1.0, pass_to=END, retry=retry)
    with observe_retries(lambda exc, wait: observed.append((type(exc).__name__, wait))):
        values, events = await _run(_graph(step), {"question": "q"}, is_async)
    # three calls: the back-off before retry 1, the server's Retry-After before retry 2
    assert len(calls) == 3 and values["output"] == "fine"
    assert hook == observed == [("ReadTimeout", pytest.approx(0.1)), ("HTTPStatusError", pytest.approx(0.3))]
    assert clock.waits == 2 and clock.total == pytest.approx(0.4)
    # the retries happen inside the attempt: one scored attempt, which passes
    assert step_outcomes(values) == {"answer": "pass"}
    kinds = [(e["type"], e.get("verdict") or e.get("outcome")) for e in events]
    assert kinds == [("reliable_graph.verdict", "pass"), ("reliable_graph.outcome", "pass")]
    assert events[1]["attempts"] == 1


@pytest.mark.parametrize("is_async", [False, True])
async def test_retry_after_retries_spent_are_counted_in_the_escalation(is_async: bool) -> None:
    calls: list[int] = []
    clock = VirtualClock()
    retry = ConnectorRetry(max_attempts=3, jitter=False, sleep=clock.sleep, asleep=clock.asleep)
    limited = httpx.Response(429, headers={"Retry-After": "0.5"}, request=REQUEST)
    errors: list[BaseException] = [httpx.HTTPStatusError("429", request=REQUEST, response=limited) for _ in range(4)]
    step = reliable_step(_failing(errors, calls), evaluator=KNOWN, threshold=1.0, pass_to=END, retry=retry)
    graph = _graph(step)
    out = await graph.ainvoke({"question": "q"}, CONFIG) if is_async else graph.invoke({"question": "q"}, CONFIG)
    reason = out["__interrupt__"][0].value["reason"]
    assert "step 'answer' failed after 3 attempts (transient error): HTTPStatusError (HTTP 429)" in reason
    assert len(calls) == 3 and clock.waits == 2 and clock.total == pytest.approx(1.0)
