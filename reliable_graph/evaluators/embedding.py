"""Embedding relevance: cosine similarity of the query and each chunk, in one batched call."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reliable_graph.evaluators.base import BaseEvaluator, EvalInput, Score

__all__ = ["EmbeddingRelevance", "cosine"]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors (0.0 when either is all zeros).

    Raises:
        ValueError: the vectors differ in length.

    Example:
        ```python
        from reliable_graph.evaluators.embedding import cosine

        assert cosine([1.0, 0.0], [2.0, 0.0]) == 1.0
        assert cosine([1.0, 0.0], [0.0, 3.0]) == 0.0
        ```
    """
    if len(a) != len(b):
        msg = f"cannot compare vectors of {len(a)} and {len(b)} dimensions"
        raise ValueError(msg)
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 0.0 if norm == 0.0 else dot / norm


@dataclass
class EmbeddingRelevance(BaseEvaluator):
    """Relevance of each chunk as its cosine similarity to the query, with any LangChain `Embeddings`.

    The query and all chunks are embedded in ONE `embed_documents([query, *chunks])` call
    (`aembed_documents` when async), so a gate costs one embedding request however many chunks
    it scores. A chunk is relevant when its similarity reaches `chunk_threshold`; the score is the
    share of relevant chunks, like `LexicalRelevance`. `details["per_chunk"]` lists every
    chunk's similarity (negative similarities count as 0), in context order, which lets
    `ContextGate` drop the irrelevant ones. (The query is embedded as a document to keep one
    call; with an asymmetric query/document model, calibrate `chunk_threshold` accordingly.)

    Example:
        ```python
        from langchain_core.embeddings import Embeddings
        from reliable_graph import EvalInput
        from reliable_graph.evaluators.embedding import EmbeddingRelevance

        class Keywords(Embeddings):  # stands in for OpenAIEmbeddings(...)
            vocabulary = ("water", "boil", "cat")

            def embed_documents(self, texts):
                return [[float(w in t.lower()) for w in self.vocabulary] for t in texts]

            def embed_query(self, text):
                return self.embed_documents([text])[0]

        ev = EmbeddingRelevance(embeddings=Keywords(), chunk_threshold=0.5)
        score = ev.evaluate(EvalInput(query="When does water boil?",
                                      contexts=["Water boils at 100 C.", "Cats sleep a lot."]))
        assert score.value == 0.5 and [round(s, 3) for s in score.details["per_chunk"]] == [1.0, 0.0]
        ```
    """

    embeddings: Any
    """A LangChain `Embeddings` (anything with `embed_documents` and `aembed_documents`)."""
    chunk_threshold: float = 0.5
    """The cosine similarity at which a chunk counts as relevant, in [0, 1]; depends on the model."""
    name: str = "embedding_relevance"
    """The evaluator's name in scores and events."""

    def __post_init__(self) -> None:
        if not callable(getattr(self.embeddings, "embed_documents", None)):
            msg = (
                "EmbeddingRelevance(embeddings=...) needs a LangChain Embeddings with embed_documents, "
                f"got {type(self.embeddings).__name__}"
            )
            raise TypeError(msg)
        if not 0.0 <= self.chunk_threshold <= 1.0:
            msg = f"EmbeddingRelevance(chunk_threshold={self.chunk_threshold!r}) must be in [0, 1]"
            raise ValueError(msg)

    def _texts(self, sample: EvalInput) -> list[str] | Score:
        if not sample.query or not sample.query.strip():
            return Score.failing(self.name, "no query to judge the context's relevance against")
        texts = sample.texts
        if not texts:
            return Score.failing(self.name, "the context is empty: nothing was retrieved")
        return [sample.query, *texts]

    def _score(self, texts: list[str], vectors: Sequence[Sequence[float]]) -> Score:
        if len(vectors) != len(texts):
            msg = f"the embeddings returned {len(vectors)} vectors for {len(texts)} texts"
            raise ValueError(msg)
        query, *chunks = vectors
        similarity = [cosine(query, v) for v in chunks]
        per_chunk = [min(max(s, 0.0), 1.0) for s in similarity]
        relevant = [i for i, s in enumerate(per_chunk) if s >= self.chunk_threshold]
        reason = (
            f"{len(relevant)} of {len(chunks)} chunks have a cosine similarity to the query of at least "
            f"{self.chunk_threshold:.2f} (best {max(similarity):.2f})"
        )
        return Score(
            value=len(relevant) / len(chunks),
            reason=reason,
            evaluator=self.name,
            details={"per_chunk": per_chunk, "relevant": relevant, "similarity": similarity},
        )

    def evaluate(self, sample: EvalInput) -> Score:
        """Embed the query and the chunks in one call and compare them."""
        texts = self._texts(sample)
        if isinstance(texts, Score):
            return texts
        return self._score(texts, self.embeddings.embed_documents(texts))

    async def aevaluate(self, sample: EvalInput) -> Score:
        """Async twin of `evaluate` (one `aembed_documents` call)."""
        texts = self._texts(sample)
        if isinstance(texts, Score):
            return texts
        return self._score(texts, await self.embeddings.aembed_documents(texts))
