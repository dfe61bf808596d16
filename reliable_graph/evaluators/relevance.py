"""Offline lexical relevance of context chunks to the query: no model, no network."""

from __future__ import annotations

from dataclasses import dataclass

from reliable_graph.evaluators._text import DEFAULT_LANGUAGE, check_language, terms
from reliable_graph.evaluators.base import BaseEvaluator, EvalInput, Score

__all__ = ["LexicalRelevance"]


@dataclass
class LexicalRelevance(BaseEvaluator):
    """Relevance of each chunk as the share of the query's content words it contains.

    A chunk is relevant when its share reaches `chunk_threshold`; the score is the share of
    relevant chunks. `details["per_chunk"]` lists every chunk's share, in context order,
    which lets `ContextGate` drop the irrelevant ones.

    Words are compared after Unicode normalisation and casefolding, without English stopwords,
    reduced by the Snowball stemmer for `language` ("prices" meets "price", "Élection" meets
    "élections"); Chinese, Japanese and Korean text is compared as character bigrams.

    Example:
        ```python
        from reliable_graph import EvalInput, LexicalRelevance

        ev = LexicalRelevance(chunk_threshold=0.5)
        sample = EvalInput(
            query="What is the boiling point of water?",
            contexts=["Water boils at 100 C: its boiling point at sea level.", "Cats sleep a lot."],
        )
        score = ev.evaluate(sample)
        assert score.value == 0.5 and score.details["relevant"] == [0]

        ja = LexicalRelevance().evaluate(EvalInput(
            query="東京の天気予報",
            contexts=["明日の東京の天気予報は晴れです。", "ラーメンの作り方を説明します。"],
        ))
        assert ja.details["relevant"] == [0]
        fr = LexicalRelevance(language="french").evaluate(
            EvalInput(query="Élection présidentielle", contexts=["Les élections présidentielles de 2027"])
        )
        assert fr.value == 1.0
        ```
    """

    chunk_threshold: float = 0.3
    """The share of query words a chunk must contain to count as relevant, in [0, 1]."""
    name: str = "lexical_relevance"
    """The evaluator's name in scores and events."""
    language: str = DEFAULT_LANGUAGE
    """The Snowball stemmer to reduce words with, one of `snowballstemmer.algorithms()`."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.chunk_threshold <= 1.0:
            msg = f"LexicalRelevance(chunk_threshold={self.chunk_threshold!r}) must be in [0, 1]"
            raise ValueError(msg)
        self.language = check_language(self.language, owner="LexicalRelevance")

    def evaluate(self, sample: EvalInput) -> Score:
        """Score every chunk against the query."""
        if not sample.query:
            return Score.failing(self.name, "no query to judge the context's relevance against")
        texts = sample.texts
        if not texts:
            return Score.failing(self.name, "the context is empty: nothing was retrieved")
        query_terms = terms(sample.query, self.language)
        if not query_terms:
            return Score.failing(self.name, f"the query {sample.query!r} has no content words")
        per_chunk = [len(query_terms & terms(t, self.language)) / len(query_terms) for t in texts]
        relevant = [i for i, s in enumerate(per_chunk) if s >= self.chunk_threshold]
        value = len(relevant) / len(texts)
        reason = (
            f"{len(relevant)} of {len(texts)} chunks share at least {self.chunk_threshold:.0%} "
            "of the query's content words"
        )
        return Score(
            value=value,
            reason=reason,
            evaluator=self.name,
            details={"per_chunk": per_chunk, "relevant": relevant},
        )
