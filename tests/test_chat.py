"""Chat graphs are first class: message lists as output and query, retries that say why, escalations
that show the conversation, edits that stay AI messages."""

from __future__ import annotations

from typing import Any

import pytest
from fake_chat import ScriptedChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

from reliable_graph import (
    HumanEscalation,
    Predicate,
    RegexMatch,
    ReliabilityState,
    reliable_step,
    step_outcomes,
)


class ChatState(MessagesState, ReliabilityState):
    pass


QUESTION = "What is the capital of France?"
CONFIG: Any = {"configurable": {"thread_id": "chat"}}


def _graph(model: Any, evaluator: Any, *, is_async: bool = False) -> Any:
    def answer(state: ChatState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def aanswer(state: ChatState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(ChatState)
    builder.add_node(
        reliable_step(
            aanswer if is_async else answer,
            name="answer",
            evaluator=evaluator,
            threshold=1.0,
            output_key="messages",
            pass_to=END,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "answer")
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_regex_scores_the_last_ai_message_and_the_retry_says_why(is_async: bool) -> None:
    model = ScriptedChatModel(responses=["I believe it is Lyon.", "The capital of France is Paris."])
    graph = _graph(model, RegexMatch(pattern=r"\bParis\b"), is_async=is_async)
    state = {"messages": [HumanMessage(QUESTION)]}
    out = await graph.ainvoke(state, CONFIG) if is_async else graph.invoke(state, CONFIG)
    assert step_outcomes(out) == {"answer": "retry_pass"}
    assert [m.content for m in out["messages"]] == [QUESTION, "The capital of France is Paris."]
    first, second = model.prompts
    assert [m.content for m in first] == [QUESTION]
    assert second[-1].type == "human" and "did not pass the check" in second[-1].content
    assert "Paris" in second[-1].content or "regex" in second[-1].content.lower()  # the reason, named


def test_the_query_is_the_last_human_message() -> None:
    seen: list[Any] = []

    def judge(sample: Any) -> bool:
        seen.append((sample.query, sample.output))
        return True

    model = ScriptedChatModel(responses=["Paris."])
    graph = _graph(model, Predicate(fn=judge, pass_input=True, name="judge"))
    graph.invoke({"messages": [HumanMessage("hello"), AIMessage("hi"), HumanMessage(QUESTION)]}, CONFIG)
    assert seen == [(QUESTION, "Paris.")]


def test_the_escalation_shows_the_conversation_and_an_edit_stays_an_ai_message() -> None:
    model = ScriptedChatModel(responses=["Lyon.", "Marseille."])
    graph = _graph(model, RegexMatch(pattern=r"\bParis\b"))
    out = graph.invoke({"messages": [HumanMessage(QUESTION)]}, CONFIG)
    esc = out["__interrupt__"][0].value
    assert esc["output"] == "Marseille." and esc["inputs"] == {}  # no "question: None"
    # what the model saw on its last attempt: the question, then why its first answer failed
    assert [m["role"] for m in esc["conversation"]] == ["human", "human"]
    assert esc["conversation"][0]["content"] == QUESTION and "did not pass" in esc["conversation"][1]["content"]
    out = graph.invoke(Command(resume={"action": "edit", "output": "Paris."}), CONFIG)
    assert step_outcomes(out) == {"answer": "edited"}
    last = out["messages"][-1]
    assert isinstance(last, AIMessage) and last.content == "Paris." and len(out["messages"]) == 2


def test_plain_outputs_and_queries_skip_the_chat_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    from reliable_graph import _messages
    from reliable_graph.nodes import _scoring

    class PlainState(ReliabilityState, total=False):
        question: str
        output: Any

    builder = StateGraph(PlainState)
    builder.add_node(
        reliable_step(
            lambda s: {"output": {"city": "Paris"}},
            name="answer",
            evaluator=Predicate(fn=lambda o: o["city"] == "Paris", name="paris"),
            threshold=1.0,
            pass_to=END,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "answer")
    graph = builder.compile(checkpointer=InMemorySaver())

    def forbidden(*args: Any) -> Any:
        raise AssertionError("chat handling used on a plain output and query")

    with monkeypatch.context() as patched:
        helpers = [
            (_messages, "is_messages"),
            (_messages, "last_text"),
            (_scoring, "is_messages"),
            (_scoring, "query_of"),
        ]
        for module, name in helpers:
            patched.setattr(module, name, forbidden)
        out = graph.invoke({"question": "capital of France?"}, CONFIG)
        assert out["output"] == {"city": "Paris"} and step_outcomes(out) == {"answer": "pass"}
        with pytest.raises(AssertionError, match="chat handling"):  # a chat step does use it
            _graph(ScriptedChatModel(responses=["Paris."]), RegexMatch(pattern="Paris")).invoke(
                {"messages": [HumanMessage(QUESTION)]}, CONFIG
            )
