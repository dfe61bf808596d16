import math
import re

import pytest
from langchain_core.embeddings import Embeddings

from reliable_graph import EvalInput, Evaluator
from reliable_graph.evaluators.embedding import EmbeddingRelevance, cosine

VOCABULARY = ("water", "boil", "temperature", "cat", "sleep", "paris")


class CountingEmbeddings(Embeddings):
    """Bag-of-words vectors over a fixed vocabulary; counts every call."""

    def __init__(self, vectors: list[list[float]] | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.vectors = vectors

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if self.vectors is not None:
            return self.vectors
        words = [set(re.findall(r"[a-z]+", t.lower())) for t in texts]
        return [[float(any(w.startswith(v) for w in ws)) for v in VOCABULARY] for ws in words]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("embed_documents", len(texts)))
        return self._embed(texts)

    def embed_query(self, text: str) -> list[float]:
        self.calls.append(("embed_query", 1))
        return self._embed([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("aembed_documents", len(texts)))
        return self._embed(texts)


QUERY = "At what temperature does water boil?"
CHUNKS = [
    "Water boils at a temperature of 100 C at sea level.",
    "Cats sleep most of the day.",
    "Boiling water is hot.",
]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_embedding_relevance_one_batched_call(mode: str) -> None:
    embeddings = CountingEmbeddings()
    ev = EmbeddingRelevance(embeddings=embeddings, chunk_threshold=0.5)
    sample = EvalInput(query=QUERY, contexts=CHUNKS * 7)  # 21 chunks
    score = ev.evaluate(sample) if mode == "sync" else await ev.aevaluate(sample)
    name = "embed_documents" if mode == "sync" else "aembed_documents"
    assert embeddings.calls == [(name, 22)]
    assert len(score.details["per_chunk"]) == 21
    assert isinstance(ev, Evaluator)


def test_embedding_relevance_per_chunk_cosine() -> None:
    score = EmbeddingRelevance(embeddings=CountingEmbeddings(), chunk_threshold=0.5).evaluate(
        EvalInput(query=QUERY, contexts=CHUNKS)
    )
    per_chunk = score.details["per_chunk"]
    assert per_chunk[0] == pytest.approx(1.0)
    assert per_chunk[1] == 0.0
    assert per_chunk[2] == pytest.approx(2 / math.sqrt(6))  # water, boil of water, boil, temperature
    assert score.details["relevant"] == [0, 2] and score.value == pytest.approx(2 / 3)
    assert "2 of 3 chunks" in score.reason


def test_embedding_relevance_negative_similarity_counts_zero() -> None:
    embeddings = CountingEmbeddings(vectors=[[1.0, 0.0], [-1.0, 0.0], [0.6, 0.8]])
    score = EmbeddingRelevance(embeddings=embeddings).evaluate(EvalInput(query="q", contexts=["a", "b"]))
    assert score.details["per_chunk"] == [0.0, pytest.approx(0.6)]
    assert score.details["similarity"][0] == -1.0 and score.value == 0.5


def test_embedding_relevance_empty_context_is_failing_score() -> None:
    embeddings = CountingEmbeddings()
    score = EmbeddingRelevance(embeddings=embeddings).evaluate(EvalInput(query=QUERY, contexts=[]))
    assert score.value == 0.0 and score.reason.startswith("the context is empty") and embeddings.calls == []
    no_query = EmbeddingRelevance(embeddings=embeddings).evaluate(EvalInput(contexts=CHUNKS))
    assert no_query.value == 0.0 and "no query" in no_query.reason


def test_embedding_relevance_wrong_vector_count_raises() -> None:
    ev = EmbeddingRelevance(embeddings=CountingEmbeddings(vectors=[[1.0]]))
    with pytest.raises(ValueError, match="returned 1 vectors for 3 texts"):
        ev.evaluate(EvalInput(query=QUERY, contexts=CHUNKS[:2]))


def test_embedding_relevance_construction_errors() -> None:
    with pytest.raises(TypeError, match="Embeddings"):
        EmbeddingRelevance(embeddings=object())
    with pytest.raises(ValueError, match="chunk_threshold"):
        EmbeddingRelevance(embeddings=CountingEmbeddings(), chunk_threshold=2)


def test_embedding_cosine() -> None:
    assert cosine([0.0, 0.0], [1.0, 1.0]) == 0.0
    assert cosine([1.0, 1.0], [1.0, 1.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dimensions"):
        cosine([1.0], [1.0, 2.0])
