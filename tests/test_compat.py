"""The LangGraph details without a public API, checked against the installed LangGraph.

If one of these fails after a LangGraph upgrade, fix `reliable_graph/_compat.py` before anything else.
"""

import operator
import re
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send, interrupt
from typing_extensions import TypedDict

from reliable_graph._compat import (
    current_checkpoint_id,
    declare_destinations,
    is_plain_task,
    is_push_task,
    namespace_path,
    pending_write_kinds,
)

PACKAGE = Path(__file__).resolve().parents[1] / "reliable_graph"


class S(TypedDict, total=False):
    seen: Annotated[list[Any], operator.add]


def test_compat_is_push_task_tells_send_from_edges() -> None:
    def probe(state: Any, config: RunnableConfig) -> dict[str, Any]:
        return {"seen": [("push" if is_push_task(config) else "pull", state.get("i"))]}

    builder = StateGraph(S)
    builder.add_node("probe", probe)
    builder.add_conditional_edges(START, lambda s: ["probe", Send("probe", {"i": 1})])
    out = builder.compile().invoke({"seen": []})
    assert sorted(out["seen"], key=str) == [("pull", None), ("push", 1)]


def test_compat_is_plain_task_is_a_top_level_node_an_edge_started() -> None:
    def probe(state: Any, config: RunnableConfig) -> dict[str, Any]:
        return {"seen": [(state.get("i"), is_plain_task(config), not is_push_task(config))]}

    inner = StateGraph(S)
    inner.add_node("probe", probe)
    inner.add_edge(START, "probe")
    builder = StateGraph(S)
    builder.add_node("probe", probe)
    builder.add_node("sub", inner.compile())
    builder.add_conditional_edges(START, lambda s: ["probe", "sub", Send("probe", {"i": 1})])
    out = builder.compile(checkpointer=InMemorySaver()).invoke({"seen": []}, {"configurable": {"thread_id": "p"}})
    # the edge's task, the Send item's, the subgraph's node (started by an edge, but not top-level)
    assert sorted(out["seen"], key=str) == [(1, False, False), (None, False, True), (None, True, True)]


def test_compat_namespace_path_names_the_subgraph() -> None:
    def probe(state: Any, config: RunnableConfig) -> dict[str, Any]:
        names, levels = namespace_path(config)
        return {"seen": [names]}

    inner = StateGraph(S)
    inner.add_node("probe", probe)
    inner.add_edge(START, "probe")
    outer = StateGraph(S)
    outer.add_node("sub", inner.compile())
    outer.add_node("probe", probe)
    outer.add_edge(START, "sub")
    outer.add_edge("sub", "probe")
    out = outer.compile(checkpointer=InMemorySaver()).invoke({"seen": []}, {"configurable": {"thread_id": "ns"}})
    assert ["sub", "probe"] in out["seen"] and ["probe"] in out["seen"]


def test_compat_current_checkpoint_id_is_the_one_the_task_started_from() -> None:
    seen: list[str | None] = []

    def probe(state: Any, config: RunnableConfig) -> dict[str, Any]:
        seen.append(current_checkpoint_id(config))
        return {}

    builder = StateGraph(S)
    builder.add_node("probe", probe)
    builder.add_edge(START, "probe")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "cp"}}
    graph.invoke({"seen": []}, config)
    before_probe = next(h for h in graph.get_state_history(config) if h.next == ("probe",))
    assert seen == [before_probe.config["configurable"]["checkpoint_id"]]


def test_compat_declare_destinations_draws_edges() -> None:
    class Node:
        name = "n"

        def __call__(self, state: Any, config: RunnableConfig | None = None) -> Any:
            return self.invoke(state, config)

        def invoke(self, state: Any, config: Any = None) -> Any:
            return {}

    node = Node()
    declare_destinations(node, ["a", "b"])
    builder = StateGraph(S)
    builder.add_node("n", node)
    builder.add_node("a", lambda s: {})
    builder.add_node("b", lambda s: {})
    builder.add_edge(START, "n")
    edges = {(e.source, e.target) for e in builder.compile().get_graph().edges}
    assert {("n", "a"), ("n", "b")} <= edges


def test_compat_pending_write_kinds_sees_interrupts_and_errors() -> None:
    def ask(state: Any) -> dict[str, Any]:
        interrupt("?")
        return {}

    def boom(state: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    saver = InMemorySaver()
    for name, fn in (("ask", ask), ("boom", boom)):
        builder = StateGraph(S)
        builder.add_node(name, fn)
        builder.add_edge(START, name)
        builder.add_edge(name, END)
        try:
            builder.compile(checkpointer=saver).invoke({"seen": []}, {"configurable": {"thread_id": name}})
        except RuntimeError:
            pass
    kinds = {
        name: pending_write_kinds(saver.get_tuple({"configurable": {"thread_id": name}}).pending_writes)  # type: ignore[union-attr]
        for name in ("ask", "boom")
    }
    assert kinds == {"ask": {"interrupt"}, "boom": {"error"}}


def test_compat_is_the_only_place_that_reaches_into_langgraph() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_compat.py":
            continue
        text = path.read_text()
        if re.search(r"langgraph\._internal|__error__|__pregel", text):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_compat_is_silent_writer_knows_when_nobody_streams_custom() -> None:
    from langgraph.config import get_stream_writer

    from reliable_graph._compat import is_silent_writer

    seen: list[bool] = []

    def probe(state: Any) -> dict[str, Any]:
        seen.append(is_silent_writer(get_stream_writer()))
        return {}

    builder = StateGraph(S)
    builder.add_node("probe", probe)
    builder.add_edge(START, "probe")
    graph = builder.compile()
    graph.invoke({"seen": []})
    list(graph.stream({"seen": []}, stream_mode="custom"))
    list(graph.stream({"seen": []}, stream_mode=["values", "custom"]))
    assert seen == [True, False, False]


def test_compat_strict_resume_refuses_a_consumed_interrupt_before_writing() -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.errors import UnknownInterruptError
    from langgraph.types import Command, interrupt

    from reliable_graph._compat import strict_resume

    def ask(state: Any) -> dict[str, Any]:
        return {"seen": [interrupt("first?"), interrupt("second?")]}

    builder = StateGraph(S)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "strict"}}
    [first] = graph.invoke({"seen": []}, config)["__interrupt__"]
    [second] = graph.invoke(Command(resume={first.id: "a"}), config)["__interrupt__"]
    before = len(list(graph.get_state_history(config)))
    with pytest.raises(UnknownInterruptError):
        graph.invoke(Command(resume={first.id: "again"}), strict_resume(config))
    assert len(list(graph.get_state_history(config))) == before
    assert graph.invoke(Command(resume={second.id: "b"}), strict_resume(config))["seen"] == ["a", "b"]


def test_compat_copy_checkpoint_makes_an_older_checkpoint_the_newest() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from reliable_graph._compat import copy_checkpoint

    builder = StateGraph(S)
    builder.add_node("one", lambda s: {"seen": [1]})
    builder.add_node("two", lambda s: {"seen": [2]})
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "copy"}}
    graph.invoke({"seen": []}, config)
    older = next(s for s in graph.get_state_history(config) if s.next == ("two",))
    copy_checkpoint(graph, older.config)
    newest = graph.get_state(config)
    assert newest.values == older.values and newest.next == ("two",) and newest.metadata["source"] == "fork"


def test_compat_command_builds_the_same_command() -> None:
    from langgraph.types import Command

    from reliable_graph import _compat

    assert _compat._COMMAND_SLOTS is not None  # Command is still the slotted dataclass it sets directly
    update = {"output": 1}
    built = _compat.command("next", update)
    assert type(built) is Command and built == Command(goto="next", update=update)
    assert built.update is update and built.graph is None and built.resume is None and built.goto == "next"


def test_compat_listening_writer_is_langgraphs_writer_when_someone_listens() -> None:
    from langgraph.config import get_stream_writer

    from reliable_graph._compat import listening_writer

    seen: list[Any] = []

    def probe(state: Any) -> dict[str, Any]:
        writer = listening_writer()
        seen.append(writer is get_stream_writer() if writer is not None else None)
        return {}

    builder = StateGraph(S)
    builder.add_node("probe", probe)
    builder.add_edge(START, "probe")
    graph = builder.compile()
    for _ in range(2):  # the silent writer remembered from the first step: still None
        graph.invoke({"seen": []})
        list(graph.stream({"seen": []}, stream_mode="custom"))
    assert seen == [None, True, None, True]
    assert listening_writer() is None  # outside a run
