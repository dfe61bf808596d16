"""Completeness: does the context cover the topics and dependencies a step declares?"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from reliable_graph._state_access import read_optional
from reliable_graph.evaluators._text import DEFAULT_LANGUAGE, check_language, terms
from reliable_graph.evaluators.base import BaseEvaluator, EvalInput, Score

__all__ = ["Completeness"]


@dataclass
class Completeness(BaseEvaluator):
    """The share of required topics that some chunk covers, naming the missing ones.

    A topic is covered when one chunk contains all of its content words. Topics come from
    `topics`, from the state key `topics_key` (declared dependencies computed upstream), or both.
    Words are compared as in `LexicalRelevance`: Unicode-normalised, casefolded, reduced by the
    Snowball stemmer for `language`, Chinese, Japanese and Korean as character bigrams. A topic
    from the state that has no content words to look for (empty, punctuation) counts as missing.

    Example:
        ```python
        from reliable_graph import Completeness, EvalInput

        ev = Completeness(topics=["revenue 2025", "headcount"])
        score = ev.evaluate(EvalInput(contexts=["Revenue in 2025 rose 12%."]))
        assert score.value == 0.5 and score.details["missing"] == ["headcount"]
        assert "headcount" in score.reason

        de = Completeness(topics=["Straßenbahn"], language="german")
        assert de.evaluate(EvalInput(contexts=["Die STRASSENBAHNEN fahren wieder."])).value == 1.0
        ```
    """

    topics: Sequence[str] = ()
    """Topics the context must cover."""
    topics_key: str | None = None
    """A state key holding more required topics (a list of strings)."""
    name: str = "completeness"
    """The evaluator's name in scores and events."""
    language: str = DEFAULT_LANGUAGE
    """The Snowball stemmer to reduce words with, one of `snowballstemmer.algorithms()`."""

    def __post_init__(self) -> None:
        if isinstance(self.topics, str):
            msg = "Completeness(topics=...) takes a list of topics, not one string"
            raise TypeError(msg)
        if not self.topics and self.topics_key is None:
            msg = "Completeness needs topics=[...] or topics_key='...'"
            raise ValueError(msg)
        self.language = check_language(self.language, owner="Completeness")
        for topic in self.topics:
            if not isinstance(topic, str):
                msg = f"Completeness topic {topic!r} must be a string, got {type(topic).__name__}"
                raise TypeError(msg)
            if not terms(topic, self.language):
                msg = f"Completeness topic {topic!r} has no content words to look for"
                raise ValueError(msg)

    def evaluate(self, sample: EvalInput) -> Score:
        """Look for every required topic in the context."""
        required = list(self.topics)
        if self.topics_key is not None:
            extra = read_optional(sample.state, self.topics_key) or []
            if isinstance(extra, (str, bytes)) or not isinstance(extra, (Sequence, AbstractSet)):
                return Score.failing(
                    self.name, f"state[{self.topics_key!r}] must be a list of topics, got {type(extra).__name__}"
                )
            if odd := [t for t in extra if not isinstance(t, str)]:
                return Score.failing(
                    self.name, f"state[{self.topics_key!r}] holds topics that are not strings: {odd!r}"[:500]
                )
            required += [t for t in extra if t not in required]
        if not required:
            return Score(value=1.0, reason="no topics are required", evaluator=self.name)
        wanted = {t: terms(t, self.language) for t in required}
        chunk_terms = [terms(t, self.language) for t in sample.texts]
        missing = [t for t in required if not wanted[t] or not any(wanted[t] <= ct for ct in chunk_terms)]
        covered = len(required) - len(missing)
        reason = (
            f"the context covers all {len(required)} required topics"
            if not missing
            else f"the context lacks {len(missing)} of {len(required)} required topics: {', '.join(missing)}"
        )
        if empty := [t for t in required if not wanted[t]]:
            verb = "has" if len(empty) == 1 else "have"
            reason += f" ({', '.join(repr(t) for t in empty)} {verb} no content words to look for)"
        return Score(
            value=covered / len(required),
            reason=reason,
            evaluator=self.name,
            details={"missing": missing, "required": required},
        )
