"""Freshness: are the chunks' timestamps within `max_age`?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from reliable_graph.evaluators.base import BaseEvaluator, EvalInput, Score

__all__ = ["Freshness"]

MissingPolicy = Literal["stale", "fresh", "ignore"]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(datetime)


def parse_timestamp(value: Any) -> datetime | None:
    """A UTC datetime from a datetime, a date, an ISO-8601 string or epoch seconds; None for None.

    Parsing is pydantic's: `Z`, `+00:00` and `+0000` offsets, a space for the `T`, numbers and
    numeric strings as Unix time (in milliseconds above 2e10, as pydantic reads them). Naive
    values are read as UTC. Strings pydantic refuses are tried with `datetime.fromisoformat`.

    Raises:
        ValueError: `value` is not a timestamp; the message says what was wrong.

    Example:
        ```python
        from reliable_graph.evaluators.freshness import parse_timestamp

        a = parse_timestamp("2026-01-01T05:30:00+0530")
        assert a == parse_timestamp("2026-01-01T00:00:00Z") == parse_timestamp(1767225600)
        assert parse_timestamp(None) is None
        ```
    """
    if value is None:
        return None
    if isinstance(value, bool):
        msg = "a bool is not a timestamp"
        raise ValueError(msg)
    if isinstance(value, str):
        value = value.strip()
    try:
        stamp = _TIMESTAMP.validate_python(value)
    except ValidationError as exc:
        fallback = _fromisoformat(value)
        if fallback is None:
            problem = exc.errors(include_url=False)[0]["msg"] if exc.error_count() else str(exc)
            msg = f"{_short(value)} is not a timestamp ({problem})"
            raise ValueError(msg) from None
        stamp = fallback
    try:
        return stamp.replace(tzinfo=timezone.utc) if stamp.utcoffset() is None else stamp.astimezone(timezone.utc)
    except (OverflowError, ValueError, TypeError) as exc:
        msg = f"{_short(value)} cannot be read as a UTC time ({exc})"
        raise ValueError(msg) from None


def _fromisoformat(value: Any) -> datetime | None:
    """`datetime.fromisoformat`'s reading of a string (broader from Python 3.11), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Freshness(BaseEvaluator):
    """The share of chunks whose `metadata[timestamp_key]` is within `max_age` of now.

    Policy for a chunk without a timestamp (`missing`): `"stale"` (the default: a chunk that
    cannot show its age does not pass a time-sensitive step), `"fresh"`, or `"ignore"` (left
    out of the share; with nothing left, the score fails). Naive datetimes are read as UTC.
    Timestamps are datetimes, dates, ISO-8601 strings (`Z`, `+00:00` or `+0000` offsets) or Unix
    time numbers, parsed by pydantic on every Python version. A timestamp that cannot be read
    fails the score (value 0), naming the chunk and the value: the data needs fixing, and its
    age cannot be vouched for. `details["invalid"]` then lists those chunks.

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

        offsets = EvalInput(contexts=[{"text": "x", "metadata": {"timestamp": "2026-11-23T09:00:00+0000"}}])
        assert ev.evaluate(offsets).value == 1.0
        junk = ev.evaluate(EvalInput(contexts=[{"text": "x", "metadata": {"timestamp": "last tuesday"}}]))
        assert junk.value == 0.0 and "'last tuesday'" in junk.reason and junk.details["invalid"] == [0]
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
        try:
            now = parse_timestamp(self.now())
        except ValueError as exc:
            return Score.failing(self.name, f"the clock Freshness(now=...) gave no usable time: {exc}")
        if now is None:
            return Score.failing(self.name, "the clock Freshness(now=...) returned None")
        fresh: list[int] = []
        stale: list[int] = []
        undated: list[int] = []
        invalid: dict[int, str] = {}
        for i, chunk in enumerate(chunks):
            try:
                stamp = parse_timestamp(chunk.metadata.get(self.timestamp_key))
            except ValueError as exc:
                invalid[i] = str(exc)
                continue
            if stamp is None:
                undated.append(i)
            elif now - stamp <= self.max_age:
                fresh.append(i)
            else:
                stale.append(i)
        details: dict[str, Any] = {"fresh": fresh, "stale": stale, "undated": undated}
        if invalid:
            first, problem = next(iter(invalid.items()))
            more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
            reason = f"chunk {first} has an unreadable metadata[{self.timestamp_key!r}]: {problem}{more}"
            return Score.failing(self.name, reason, **details, invalid=sorted(invalid))
        counted = len(fresh) + len(stale)
        good = len(fresh)
        if self.missing != "ignore":
            counted += len(undated)
            good += len(undated) if self.missing == "fresh" else 0
        if counted == 0:
            return Score.failing(self.name, "no chunk carries a timestamp", **details)
        parts = [f"{len(stale)} of {len(chunks)} chunks older than {self.max_age}"]
        if undated:
            parts.append(f"{len(undated)} undated (counted as {self.missing})")
        return Score(value=good / counted, reason="; ".join(parts), evaluator=self.name, details=details)
