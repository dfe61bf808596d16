"""Support-desk graphs for LangGraph Server: reliable steps, one human review node, four ways to review.

`draft_answer` answers a customer's question from a small knowledge base and `cite_source`
finds the policy document behind it; both run at once, each scored by a deterministic check.
A question the knowledge base does not cover (say, "Can I pay with bitcoin?") fails both checks
and both steps escalate; "How long do refunds take?" passes both and finishes at once; "Is there
a warranty?" is answered but has no source, so only `cite_source` escalates.

- `support_desk` (`graph`): the library's own format, one interrupt per escalation, answered by
  interrupt id (the SDK, the inbox, the console).
- `support_desk_inbox`: Agent Inbox's format; the escalations of a thread wait on one interrupt
  (`HumanEscalation(format="agent_inbox")`, whose mode is `single`), so Agent Inbox, which shows
  and answers the first, reaches every one of them in turn.
- `support_desk_chat`: the HITL middleware format Agent Chat UI reviews, with a `messages`
  channel (Chat UI renders nothing without one): type a question, the reply comes back as a message.
- `batch_desk`: a `Send` fan-out, one `reliable_step` per question of a batch, in Agent Inbox's format.

    cd examples/server && langgraph dev      # see README.md

The graphs are compiled without a checkpointer: LangGraph Server supplies persistence (threads,
checkpoints, interrupts) itself. To run one embedded instead, compile its builder with one, e.g.
`build().compile(checkpointer=SqliteSaver(...))`.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Send

from reliable_graph import HumanEscalation, Predicate, ReliabilityState, RequiredFields, reliable_step

# The world this example lives in: what the support desk knows, and where it is written down.
FACTS = {
    "refund": "Refunds are paid within 14 days of the returned item reaching our warehouse.",
    "shipping": "Orders ship within 2 business days; express delivery takes 1 business day.",
    "warranty": "Every product carries a 2-year warranty against manufacturing defects.",
}
SOURCES = {
    "refund": "policies/refunds.md",
    "shipping": "policies/shipping.md",
    # no document for the warranty yet: citing it needs a human
}
UNKNOWN = "I could not find this in our policies; a colleague will get back to you."


class State(ReliabilityState, total=False):
    """The graph's state: the library's `reliability` key comes from `ReliabilityState`."""

    question: str
    answer: str
    citation: dict[str, Any]


class ChatState(State, total=False):
    """The same, with the conversation Agent Chat UI shows."""

    messages: Annotated[list[AnyMessage], add_messages]


class BatchState(ReliabilityState, total=False):
    """A batch of questions, answered one `Send` item each."""

    questions: list[str]
    question: str
    answers: Annotated[list[str], operator.add]


def topic_of(question: str) -> str | None:
    """The knowledge-base topic a question is about, if any (a stand-in for retrieval)."""
    words = set(re.findall(r"[a-z]+", question.lower()))
    for topic in FACTS:
        if topic in words or f"{topic}s" in words:
            return topic
    return None


def draft_answer(state: State) -> dict[str, Any]:
    """Answer from the knowledge base (in a real app: an LLM call grounded on retrieved text)."""
    topic = topic_of(state["question"])
    return {"answer": FACTS[topic] if topic else UNKNOWN}


def cite_source(state: State) -> dict[str, Any]:
    """Find the document that backs the answer (in a real app: a search or a tool call)."""
    topic = topic_of(state["question"])
    source = SOURCES.get(topic) if topic else None
    return {"citation": {"source": source, "quote": FACTS[topic] if source and topic else None}}


GROUNDED = Predicate(
    fn=lambda answer: answer != UNKNOWN,
    name="grounded",
    reason="the knowledge base has nothing on this question: write the answer, or approve the fallback",
)


def build(format: str = "reliable", *, chat: bool = False) -> StateGraph[Any, Any, Any, Any]:
    """The support desk, its review node in `format` (`chat`: with a `messages` channel for Agent Chat UI)."""
    builder = StateGraph(ChatState if chat else State)
    after = "reply" if chat else END
    builder.add_node(
        reliable_step(
            draft_answer,
            output_key="answer",
            evaluator=GROUNDED,
            threshold=1.0,
            max_retries=0,  # a lookup gives the same result twice: escalate at once
            pass_to=after,
        )
    )
    builder.add_node(
        reliable_step(
            cite_source,
            output_key="citation",
            evaluator=RequiredFields(fields=["source", "quote"]),
            threshold=1.0,
            max_retries=0,
            pass_to=after,
        )
    )
    builder.add_node(HumanEscalation(format=format))  # type: ignore[arg-type]
    if chat:

        def intake(state: ChatState) -> dict[str, Any]:
            """The customer's last message is the question (its text, however the client sent it)."""
            return {"question": state["messages"][-1].text}

        def reply(state: ChatState) -> dict[str, Any]:
            """Answer in the conversation, once both steps are done (a reviewer may have ended a step: say so)."""
            answer = state.get("answer") or UNKNOWN
            source = (state.get("citation") or {}).get("source")
            return {"messages": [AIMessage(content=f"{answer} (source: {source})" if source else answer)]}

        builder.add_node("intake", intake)
        builder.add_node("reply", reply, defer=True)
        builder.add_edge(START, "intake")
        builder.add_edge("intake", "draft_answer")
        builder.add_edge("intake", "cite_source")
        builder.add_edge("reply", END)
    else:
        builder.add_edge(START, "draft_answer")
        builder.add_edge(START, "cite_source")
    return builder


def build_batch() -> StateGraph[Any, Any, Any, Any]:
    """A batch of questions, one `Send` item each, reviewed in Agent Inbox's format (one interrupt at a time)."""

    def answer_one(state: BatchState) -> dict[str, Any]:
        topic = topic_of(state["question"])
        return {"answers": [f"{state['question']} -> {FACTS[topic] if topic else UNKNOWN}"]}

    builder = StateGraph(BatchState)
    builder.add_node("fan_out", lambda state: {})
    builder.add_node(
        reliable_step(
            answer_one,
            output_key="answers",
            evaluator=Predicate(fn=lambda answers: all(UNKNOWN not in a for a in answers), name="grounded"),
            threshold=1.0,
            max_retries=0,
            input_keys=["question"],
            pass_to="collect",
        )
    )
    builder.add_node("collect", lambda state: {}, defer=True)
    builder.add_node(HumanEscalation(format="agent_inbox"))
    builder.add_edge(START, "fan_out")
    builder.add_conditional_edges(
        "fan_out", lambda s: [Send("answer_one", {"question": q}) for q in s["questions"]], ["answer_one"]
    )
    builder.add_edge("collect", END)
    return builder


# No checkpointer: LangGraph Server persists threads itself (`langgraph dev` refuses a graph that brings one).
graph = build().compile(name="support_desk")
inbox_graph = build("agent_inbox").compile(name="support_desk_inbox")
chat_graph = build("hitl", chat=True).compile(name="support_desk_chat")
batch_graph = build_batch().compile(name="batch_desk")
