"""Content a store or a database cannot hold still escalates, is reviewable, and applies as the step wrote it.

NUL characters (PostgreSQL refuses them in text and JSONB), NaN and the infinities (not strict
JSON), text of a million characters and nesting deeper than JSON encoders go: the escalation is
raised, the inbox indexes a safe rendering and says what it changed, and the checkpoint keeps
the step's own update, which `approve` applies.
"""

from __future__ import annotations

import math
import operator
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pytest
import review_app
from langgraph.graph import END, START, StateGraph

from reliable_graph import (
    EscalationInbox,
    HumanEscalation,
    Predicate,
    ReliabilityState,
    Score,
    reliable_step,
    step_outcomes,
)


class State(ReliabilityState, total=False):
    question: str
    output: Any
    log: Annotated[list[str], operator.add]


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


CONTENT = {
    "nul": "before\x00after",
    "nan": {"score": float("nan"), "text": "ok"},
    "huge": "x" * 1_000_000,
    "deep": deep(200),  # deeper than an escalation shows (64 levels); checkpoints (msgpack) stop at 255
}


def builder(content: Any) -> StateGraph[Any, Any, Any, Any]:
    graph = StateGraph(State)
    graph.add_node(
        reliable_step(
            lambda s: {"output": content, "log": ["drafted"]},
            name="draft",
            evaluator=Predicate(
                fn=lambda o: Score(value=0.1, reason="reason with a NUL \x00 inside", evaluator="judge")
            ),
            threshold=0.5,
            max_retries=0,
            pass_to=END,
        )
    )
    graph.add_node(HumanEscalation())
    graph.add_edge(START, "draft")
    return graph


@contextmanager
def compiled(content: Any, backend: str, where: str) -> Iterator[tuple[Any, Any]]:
    with review_app.compiled(builder(content), backend, where) as made:
        yield made


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("kind", sorted(CONTENT))
def test_content_a_database_refuses_still_escalates_and_applies(
    kind: str, backend: str, tmp_path: Path, pg_db: str
) -> None:
    where = str(tmp_path / "app.sqlite") if backend == "sqlite" else pg_db
    content = CONTENT[kind]
    config = {"configurable": {"thread_id": f"content-{kind}-{uuid.uuid4().hex[:6]}"}}
    with compiled(content, backend, where) as (graph, store):
        out = graph.invoke({"question": "q"}, config)
        [pending] = out["__interrupt__"]
        assert pending.value["step"] == "draft"
        inbox = EscalationInbox(store, graph=graph)
        [item] = inbox.list(thread_id=config["configurable"]["thread_id"])
        shown = inbox.show(item.id)
        assert "\x00" not in shown.reason and "\ufffd" in shown.reason
        notes = shown.escalation.get("notes", []) + shown.escalation.get("display_notes", [])
        if kind == "nul":
            assert shown.escalation["output"] == "before\ufffdafter" and notes
        elif kind == "nan":
            assert shown.escalation["output"] == {"score": "NaN", "text": "ok"} and notes
        elif kind == "huge":
            assert len(shown.escalation["output"]) == 100_000 and any("cut" in n for n in notes)
        else:
            assert isinstance(shown.escalation["output"], (str, list)) and notes
        if kind == "nul" and backend == "postgres":
            # PostgresSaver keeps a text value inline in JSONB, which cannot hold NUL: no run on Postgres can
            # checkpoint this output (the step's passing path would fail alike), so the reviewer replaces it
            done = inbox.resolve(item.id, {"action": "edit", "output": "before after"}, reviewer="ana")
            assert step_outcomes(done) == {"draft": "edited"} and done["output"] == "before after"
            assert inbox.show(item.id).status == "resolved"
            return
        done = inbox.resolve(item.id, {"action": "approve"}, reviewer="ana")
        assert step_outcomes(done) == {"draft": "approved"} and done["log"] == ["drafted"]
        applied = graph.get_state(config).values["output"]
        if kind == "nan":
            assert math.isnan(applied["score"]) and applied["text"] == "ok"
        else:
            assert applied == content  # the checkpoint kept the step's own value
        assert inbox.show(item.id).status == "resolved"
