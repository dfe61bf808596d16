"""A real local sentence-embedding model (the embeddings extra) behind EmbeddingRelevance, offline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph

from reliable_graph import ContextGate, EvalInput, ReliabilityState

pytest.importorskip("sentence_transformers", reason="the embeddings extra is not installed here")
from reliable_graph.evaluators import EmbeddingRelevance, LocalEmbeddings

QUESTION = "How much did the company's revenue grow in the third quarter?"
RELEVANT = "Third-quarter revenue rose 12% year over year to $4.1 billion, driven by cloud sales."
UNRELATED = [
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Penguins huddle together to survive the Antarctic winter.",
    "The museum reopens on Monday after renovation of its east wing.",
]


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


def test_the_relevant_chunk_ranks_above_the_unrelated_ones(embeddings: LocalEmbeddings) -> None:
    relevance = EmbeddingRelevance(embeddings=embeddings, chunk_threshold=0.3)
    score = relevance.evaluate(EvalInput(query=QUESTION, contexts=[*UNRELATED[:2], RELEVANT, UNRELATED[2]]))
    per_chunk = score.details["per_chunk"]
    assert per_chunk[2] == max(per_chunk) and per_chunk[2] > 0.5
    assert all(per_chunk[2] - other > 0.3 for i, other in enumerate(per_chunk) if i != 2)
    assert score.value == 0.25  # one chunk of four is relevant


def test_async_gives_the_same_vectors(embeddings: LocalEmbeddings) -> None:
    sync = embeddings.embed_documents([QUESTION, RELEVANT])
    both = asyncio.run(embeddings.aembed_documents([QUESTION, RELEVANT]))
    assert len(sync[0]) == 384 and all(abs(a - b) < 1e-5 for a, b in zip(sync[1], both[1], strict=True))
    assert embeddings.embed_documents([]) == []


class State(ReliabilityState, total=False):
    question: str
    context: list[Any]


def test_a_context_gate_drops_the_unrelated_chunks(embeddings: LocalEmbeddings) -> None:
    builder = StateGraph(State)
    builder.add_node(
        ContextGate(
            EmbeddingRelevance(embeddings=embeddings, chunk_threshold=0.3),
            name="gate",
            step="answer",
            threshold=0.2,
            drop_below=0.3,
            pass_to=END,
            refetch_to="gate",
            escalate_to="gate",
        )
    )
    builder.add_edge(START, "gate")
    out = builder.compile().invoke({"question": QUESTION, "context": [UNRELATED[0], RELEVANT, UNRELATED[1]]})
    assert [c["text"] for c in out["context"]] == [RELEVANT]


def test_a_missing_model_directory_is_a_clear_error(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match="no model directory at .*nothing"):
        LocalEmbeddings(tmp_path / "nothing").embed_query("x")
