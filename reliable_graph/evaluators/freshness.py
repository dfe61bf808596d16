"""Freshness: are the chunks' timestamps within `max_age`?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from reliable_graph.evaluators.base import BaseEvaluator, EvalInput, Score

__all__ = ["Freshness"]

MissingPolicy = Literal["stale", "fresh", "ignore"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_timestamp(value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime, an ISO-8601 string or epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str):
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        msg = f"cannot read a timestamp from a {type(value).__name__}"
        raise TypeError(msg)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


@dataclass
class Freshness(BaseEvaluator):
    """The share of chunks whose `metadata[timestamp_key]` is within `max_age` of now.

    Policy for a chunk without a timestamp (`missing`): `"stale"` (the default: a chunk that
    cannot show its age does not pass a time-sensitive step), `"fresh"`, or `"ignore"` (left
    out of the share; with nothing left, the score fails). Naive datetimes are read as UTC.

    Example:
        ```python
        from datetime import datetime, timedelta, timezone
        from reliable_graph import EvalInput, Freshness

        now = datetime(2026, 11, 24, tzinfo=timezone.utc)
        ev = Freshness(max_age=timedelta(days=7), now=lambda: now)
        sample = EvalInput(contexts=[
            {"text": "new", "metadata": {"timestamp": "2026-11-23T00:00:00Z"}},
            {"text": "old", "metadata": {"timestamp": "2026-01-01T00:00:00Z"}},
            {"text": "undated"},
        ])
        score = ev.evaluate(sample)
        assert round(score.value, 3) == 0.333 and score.details["stale"] == [1] and score.details["undated"] == [2]
        ```
    """

    max_age: timedelta
    """How old a chunk may be."""
    missing: MissingPolicy = "stale"
    """What a chunk without a timestamp counts as."""
    timestamp_key: str = "timestamp"
    """The metadata key holding the chunk's timestamp."""
    now: Callable[[], datetime] = field(default=_utcnow)
    """The clock (inject one in tests)."""
    name: str = "freshness"
    """The evaluator's name in scores and events."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0):
            msg = f"Freshness(max_age=...) must be a positive timedelta, got {self.max_age!r}"
            raise ValueError(msg)
        if self.missing not in ("stale", "fresh", "ignore"):
            msg = f"Freshness(missing={self.missing!r}) must be 'stale', 'fresh' or 'ignore'"
            raise ValueError(msg)

    def evaluate(self, sample: EvalInput) -> Score:
        """Compare every chunk's timestamp with the clock."""
        chunks = sample.chunks
        if not chunks:
            return Score.failing(self.name, "the context is empty: nothing to judge the age of")
        now = parse_timestamp(self.now())
        assert now is not None
        fresh: list[int] = []
        stale: list[int] = []
        undated: list[int] = []
        for i, chunk in enumerate(chunks):
            stamp = parse_timestamp(chunk.metadata.get(self.timestamp_key))
            if stamp is None:
                undated.append(i)
            elif now - stamp <= self.max_age:
                fresh.append(i)
            else:
                stale.append(i)
        counted = len(fresh) + len(stale)
        good = len(fresh)
        if self.missing != "ignore":
            counted += len(undated)
            good += len(undated) if self.missing == "fresh" else 0
        details = {"fresh": fresh, "stale": stale, "undated": undated}
        if counted == 0:
            return Score.failing(self.name, "no chunk carries a timestamp", **details)
        parts = [f"{len(stale)} of {len(chunks)} chunks older than {self.max_age}"]
        if undated:
            parts.append(f"{len(undated)} undated (counted as {self.missing})")
        return Score(value=good / counted, reason="; ".join(parts), evaluator=self.name, details=details)
