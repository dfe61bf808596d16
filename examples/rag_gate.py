"""A RAG step behind a context gate: re-fetch on weak context, escalate when it stays weak.

The graph is `Retrieve` (the first fetch) -> `ContextGate` -> `answer`, a `reliable_step` that
answers from the context and is scored by a deterministic evaluator. The gate checks the
context with `LexicalRelevance` (does each chunk share the question's words?) and
`Completeness` (does some chunk cover the topic the question needs?). Below its threshold it
searches again itself (`refetch=search`), with a query enriched by what was missing, and
checks the new context; once its re-fetch is spent it escalates to a human. (`refetch_to=`
a `Refetch` node does the same in two more supersteps.)

- "When does the Ouessant ferry leave on Sundays?": the first fetch finds look-alike chunks
  (weekday and summer timetables: lexically relevant, but no Sunday timetable); the gate
  re-fetches with "must cover: sunday timetable", finds it, and the step answers.
- "Is the lighthouse museum on Ouessant open in January?": nothing in the documents covers it,
  re-fetched or not: the gate escalates, a reviewer supplies the context (`provide_context`),
  the gate checks it and the step answers from it: the run finishes.

Run it (offline, no model needed):

    python examples/rag_gate.py
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.documents import Document
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from reliable_graph import (
    Completeness,
    ContextGate,
    HumanEscalation,
    LexicalRelevance,
    ReliabilityState,
    RequiredFields,
    Retrieve,
    answer_escalations,
    as_chunks,
    pending_escalations,
    reliable_step,
    run_outcome,
    step_outcomes,
    validate_graph,
)

# A handful of documents: a stand-in for your vector store or search API.
DOCS = {
    "weekday": "The Ouessant ferry leaves Brest at 08:30 on weekdays.",
    "summer": "In July and August the Ouessant ferry also leaves Camaret at 10:00.",
    "sunday": "Sunday timetable for Ouessant: boats depart Le Conquet at 09:45.",
    "lighthouses": "Ouessant has five lighthouses; Le Creac'h is among the most powerful in Europe.",
    "tickets": "Tickets for the ferry can be bought online or at the port.",
}


def words(text: str) -> set[str]:
    """Lower-case words, plural 's' dropped: enough for a toy keyword search."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z0-9]+", text.lower())}


def search(query: str, k: int = 2) -> list[Document]:
    """A keyword search over DOCS: the k documents sharing the most words with the query.

    A re-fetch query enriched by the gate (`enrich_query`) reads
    "question | must cover: topic, ... | previous context failed because: ...": documents that
    cover those topics rank first, as a search engine's required terms would.
    """
    question, *hints = query.split(" | ")
    topics = [h.removeprefix("must cover: ") for h in hints if h.startswith("must cover: ")]
    required = [words(t) for topic in topics for t in topic.split(", ")]

    def rank(item: tuple[str, str]) -> tuple[int, int]:
        text = words(item[1])
        return sum(r <= text for r in required), len(words(question) & text)

    best = sorted(DOCS.items(), key=rank, reverse=True)[:k]
    return [Document(page_content=text, metadata={"source": doc_id}) for doc_id, text in best]


class State(ReliabilityState, total=False):
    question: str
    needs: list[str]  # the topics the answer depends on: the gate's Completeness reads them
    context: list[Any]
    answer: dict[str, Any]


def answer(state: State) -> dict[str, Any]:
    """Answer from the chunk that covers what the question needs (an LLM call in a real app)."""
    needed = [words(topic) for topic in state["needs"]]
    for chunk in as_chunks(state.get("context", [])):
        if all(n <= words(chunk.text) for n in needed):
            return {"answer": {"text": chunk.text, "source": chunk.metadata.get("source")}}
    return {"answer": {"text": None, "source": None}}


def build() -> StateGraph[Any, Any, Any, Any]:
    """Retrieve -> gate (re-fetch up to once, then escalate) -> answer -> END."""
    builder = StateGraph(State)
    builder.add_node(Retrieve(search, name="retrieve", step="answer", goto="gate"))
    builder.add_node(
        ContextGate(
            # look-alike chunks share the question's words, so relevance alone lets them through;
            # Completeness checks the topic the answer depends on, and names it for the re-fetch
            [LexicalRelevance(chunk_threshold=0.5), Completeness(topics_key="needs")],
            name="gate",
            step="answer",
            threshold=0.5,
            drop_below=0.5,  # chunks sharing under half the question's words never reach the step
            max_refetches=1,
            pass_to="answer",
            escalate_to="human_escalation",
            refetch=search,  # re-fetch inside the gate, with the query enriched by what was missing
        )
    )
    builder.add_node(
        reliable_step(
            answer,
            evaluator=RequiredFields(fields=["text", "source"]),  # deterministic: no judge model
            threshold=1.0,
            max_retries=0,
            output_key="answer",
            pass_to=END,
        )
    )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, "retrieve")
    return builder


def show(events: list[Any]) -> None:
    """Print the fetches and the gate's verdicts from the graph's custom stream events."""
    for event in events:
        if event["type"] == "reliable_graph.refetch":  # Retrieve's first fetch and the gate's re-fetches
            query = event["query"].split(" | previous context")[0]  # the reasons make the line long
            print(f"  fetch {query!r}: {event['fetched']} chunks")
        elif event["type"] == "reliable_graph.gate":
            checks = ", ".join(f"{c['evaluator']} {c['score']:.2f}" for c in event["checks"])
            print(f"  gate: {event['verdict']} ({checks})")


def main() -> None:
    graph = validate_graph(build().compile(checkpointer=InMemorySaver()))

    questions = {
        "ferry": ("When does the Ouessant ferry leave on Sundays?", ["sunday timetable"]),
        "museum": ("Is the lighthouse museum on Ouessant open in January?", ["museum january"]),
    }
    for thread, (question, needs) in questions.items():
        config: Any = {"configurable": {"thread_id": thread}}
        print(f"[{thread}] {question}")
        show(list(graph.stream({"question": question, "needs": needs}, config, stream_mode="custom")))
        for waiting in pending_escalations(graph, config):
            print(f"  run: {run_outcome(graph.get_state(config))}, reason: {waiting.escalation['reason']}")
            reviewer_context = {  # only the museum question escalates: the reviewer phoned the museum
                "text": "The lighthouse museum on Ouessant is open at weekends in January, 13:30 to 17:30.",
                "metadata": {"source": "reviewer: phoned the museum"},
            }
            events = answer_escalations(
                graph,
                config,
                {waiting.interrupt_id: {"action": "provide_context", "context": [reviewer_context]}},
                stream_mode="custom",
            )
            print("  reviewer: provide_context")
            show(events)
        values = graph.get_state(config).values
        print(f"  answer: {values['answer']['text']!r} (source: {values['answer']['source']})")
        print(f"  step outcomes: {step_outcomes(values)}; run: {run_outcome(graph.get_state(config))}")


if __name__ == "__main__":
    main()
