from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from graphs import State, config
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from reliable_graph import (
    Completeness,
    ContextGate,
    Freshness,
    HumanEscalation,
    LexicalRelevance,
    MissingStateKeyError,
    Refetch,
    as_chunks,
    step_outcomes,
)

NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)
MODES = ("node", "inline")
"""How a gate re-fetches: through a `Refetch` node (`refetch_to=`) or inside itself (`refetch=`)."""
_mode = ["node"]


@pytest.fixture(params=MODES, autouse=True)
def mode(request: pytest.FixtureRequest) -> str:
    """Every test of this module runs with both ways of re-fetching: the records and outputs are the same."""
    _mode[0] = request.param
    return str(request.param)


def gate_graph(retriever: Any, **kwargs: Any) -> Any:
    builder = StateGraph(State)
    inline = _mode[0] == "inline"
    options: dict[str, Any] = {
        "name": "gate",
        "step": "answer",
        "threshold": 0.5,
        "pass_to": "answer",
        "refetch_to": None if inline else "refetch",
        "escalate_to": "human_escalation",
    }
    if inline:
        options["refetch"] = retriever
    options.update(kwargs)
    evaluators = options.pop("evaluators", [LexicalRelevance(), Completeness(topics=["tide tables"])])
    builder.add_node(ContextGate(evaluators, **options))
    if not inline:
        builder.add_node(Refetch(retriever, name="refetch", step="answer", goto="gate"))
    builder.add_node("answer", lambda s: {"output": [c.text for c in as_chunks(s["context"])]})
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "gate")
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=InMemorySaver())


def test_context_gate_passes_good_context_straight_to_step() -> None:
    fetched: list[str] = []
    graph = gate_graph(fetched.append)
    out = graph.invoke({"question": "tide tables for Brest", "context": ["Tide tables for Brest, May."]}, config())
    assert out["output"] == ["Tide tables for Brest, May."] and not fetched
    gate = out["reliability"]["tasks"]["answer"]["gate"]
    assert gate["verdict"] == "pass" and [c["passed"] for c in gate["checks"]] == [True, True]


def test_context_gate_refetches_with_missing_topics_then_passes() -> None:
    queries: list[str] = []

    def retriever(query: str) -> list[str]:
        queries.append(query)
        return ["Brest tide tables: high water 06:12."]

    out = gate_graph(retriever).invoke(
        {"question": "tide tables for Brest", "context": ["Brest has a port."]}, config()
    )
    assert len(queries) == 1 and "must cover: tide tables" in queries[0]
    assert out["reliability"]["tasks"]["answer"]["gate"]["verdict"] == "pass"
    assert out["reliability"]["tasks"]["answer"]["refetches"] == 1
    assert "Brest tide tables: high water 06:12." in out["output"]


def test_context_gate_escalates_when_refetches_are_spent() -> None:
    calls: list[str] = []
    graph = gate_graph(
        lambda q: calls.append(q) or ["still nothing useful"],
        max_refetches=2,
        threshold={"lexical_relevance": 0.3, "completeness": 1.0},
    )
    out = graph.invoke({"question": "tide tables for Brest", "context": ["cats"]}, config())
    assert len(calls) == 2
    payload = out["__interrupt__"][0].value
    assert payload["step"] == "answer" and "tide tables" in payload["reason"]
    assert step_outcomes(out) == {"answer": "escalate"}
    # a reviewer supplies the missing context: the gate re-checks it and the step runs
    out = graph.invoke(
        Command(resume={"action": "provide_context", "context": ["Tide tables for Brest: 06:12"]}), config()
    )
    assert "Tide tables for Brest: 06:12" in out["output"]


def test_context_gate_drops_irrelevant_chunks() -> None:
    graph = gate_graph(lambda q: [], drop_below=0.5, evaluators=[LexicalRelevance()], threshold=0.3)
    out = graph.invoke(
        {"question": "tide tables Brest", "context": ["Brest tide tables", "cats purr", "tables"]}, config()
    )
    assert out["output"] == ["Brest tide tables"]
    assert out["reliability"]["tasks"]["answer"]["gate"]["dropped"] == [1, 2]


def test_context_gate_freshness_rejects_stale_context() -> None:
    old = (NOW - timedelta(days=30)).isoformat()
    new = (NOW - timedelta(hours=1)).isoformat()
    fresh = Freshness(max_age=timedelta(days=1), now=lambda: NOW)
    graph = gate_graph(lambda q: [{"text": "today", "metadata": {"timestamp": new}}], evaluators=[fresh], threshold=0.5)
    events = list(
        graph.stream(
            {"question": "prices", "context": [{"text": "last month", "metadata": {"timestamp": old}}]},
            config(),
            stream_mode=["custom", "values"],
        )
    )
    out = [v for mode, v in events if mode == "values"][-1]
    assert out["output"] == ["last month", "today"]
    gates = [e for mode, e in events if mode == "custom" and e["type"] == "reliable_graph.gate"]
    assert gates[0]["verdict"] == "refetch" and gates[-1]["verdict"] == "pass"
    assert gates[0]["checks"][0]["details"] == {"fresh": [], "stale": [0], "undated": []}
    assert gates[-1]["checks"][0]["details"] == {"fresh": [1], "stale": [0], "undated": []}


async def test_context_gate_async() -> None:
    async def retriever(query: str) -> list[str]:
        return ["Tide tables for Brest."]

    out = await gate_graph(retriever).ainvoke({"question": "tide tables for Brest", "context": []}, config())
    assert out["output"] == ["Tide tables for Brest."]


def test_context_gate_per_evaluator_thresholds() -> None:
    gate = ContextGate(
        [LexicalRelevance(), Completeness(topics=["x"])],
        threshold={"lexical_relevance": 0.2, "completeness": 1.0},
    )
    assert gate.thresholds == {"lexical_relevance": 0.2, "completeness": 1.0}
    with pytest.raises(ValueError, match="missing"):
        ContextGate([LexicalRelevance(), Completeness(topics=["x"])], threshold={"lexical_relevance": 0.2})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ContextGate(LexicalRelevance(), threshold=2)
    with pytest.raises(ValueError, match="distinct"):
        ContextGate([LexicalRelevance(), LexicalRelevance()])
    with pytest.raises(ValueError, match="refetch_to"):
        ContextGate(LexicalRelevance(), pass_to="a")


def test_context_gate_missing_context_key_names_it() -> None:
    with pytest.raises(MissingStateKeyError) as info:
        gate_graph(lambda q: []).invoke({"question": "q"}, config())
    assert info.value.key == "context" and info.value.node == "gate"


def test_context_gate_without_targets_returns_plain_update() -> None:
    gate = ContextGate(LexicalRelevance(), name="g")
    update = gate.invoke({"question": "tides", "context": ["tides today"]})
    assert isinstance(update, dict) and update["reliability"]["tasks"]["g"]["gate"]["verdict"] == "pass"


def test_context_gate_refetch_appends_to_the_chunks_it_kept() -> None:
    fetched: list[str] = []

    def retriever(query: str) -> list[str]:
        fetched.append(query)
        return ["Tide tables for Brest: 06:12"]

    graph = gate_graph(retriever, drop_below=0.5, threshold={"lexical_relevance": 0.3, "completeness": 1.0})
    events = list(
        graph.stream(
            {"question": "tide tables Brest", "context": ["cats purr", "Brest harbour tables"]},
            config(),
            stream_mode=["custom", "values"],
        )
    )
    out = [v for mode, v in events if mode == "values"][-1]
    # the look-alike chunk was dropped before the re-fetch; the new chunk joined the one kept
    assert out["output"] == ["Brest harbour tables", "Tide tables for Brest: 06:12"] and len(fetched) == 1
    gates = [e for mode, e in events if mode == "custom" and e["type"] == "reliable_graph.gate"]
    assert [(g["verdict"], g["dropped"]) for g in gates] == [("refetch", [0]), ("pass", [])]
    record = out["reliability"]["tasks"]["answer"]
    assert record["refetches"] == 1 and record["gate"]["verdict"] == "pass" and "dropped" not in record["gate"]
