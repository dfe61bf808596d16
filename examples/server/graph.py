"""A support-desk graph for LangGraph Server: two reliable steps in parallel, one human review node.

`draft_answer` answers a customer's question from a small knowledge base and `cite_source`
finds the policy document behind it; both run at once, each scored by a deterministic check.
A question the knowledge base does not cover (say, "Can I pay with bitcoin?") fails both checks:
each step escalates to the `human_escalation` node, where each waits on its own interrupt until
a reviewer answers it by interrupt id. "How long do refunds take?" passes both and finishes at
once; "Is there a warranty?" is answered but has no source, so only `cite_source` escalates.

    cd examples/server && langgraph dev      # see README.md

The graph is compiled without a checkpointer: LangGraph Server supplies persistence (threads,
checkpoints, interrupts) itself. To run it embedded instead, compile it with one, e.g.
`builder.compile(checkpointer=SqliteSaver(...))`.
"""

from __future__ import annotations

import re
from typing import Any

from langgraph.graph import END, START, StateGraph

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


builder = StateGraph(State)
builder.add_node(
    reliable_step(
        draft_answer,
        output_key="answer",
        evaluator=Predicate(
            fn=lambda answer: answer != UNKNOWN,
            name="grounded",
            reason="the knowledge base has nothing on this question: write the answer, or approve the fallback",
        ),
        threshold=1.0,
        max_retries=0,  # a lookup gives the same result twice: escalate at once
        pass_to=END,
    )
)
builder.add_node(
    reliable_step(
        cite_source,
        output_key="citation",
        evaluator=RequiredFields(fields=["source", "quote"]),
        threshold=1.0,
        max_retries=0,
        pass_to=END,
    )
)
builder.add_node(HumanEscalation())  # default name "human_escalation", reliable_step's escalate_to
builder.add_edge(START, "draft_answer")
builder.add_edge(START, "cite_source")

# No checkpointer: LangGraph Server persists threads itself (`langgraph dev` refuses a graph that brings one).
graph = builder.compile(name="support_desk")
