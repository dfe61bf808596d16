"""How the console shows values: agent data as text or indented JSON, times in UTC, one-line messages."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from reliable_graph import AlreadyResolvedError, InboxItem

__all__ = ["compact", "duration", "lapsed", "num", "one_line", "percent", "pretty", "pretty_json", "refusal", "when"]


def pretty(value: Any) -> str:
    """Agent data for a <pre>: text as is, anything else as indented JSON (escaped by the template)."""
    return value if isinstance(value, str) else pretty_json(value)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def when(value: Any) -> str:
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def num(value: Any) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "-"


def percent(value: float) -> str:
    return f"{min(max(value, 0.0), 1.0) * 100:.1f}"


def duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return f"{value.total_seconds():g} s"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def lapsed(item: InboxItem) -> bool:
    if item.status != "claimed" or not item.lease_until:
        return False
    try:
        return datetime.fromisoformat(item.lease_until) < datetime.now(timezone.utc)
    except ValueError:
        return False


def refusal(err: AlreadyResolvedError) -> str:
    if err.status == "claimed":
        return f"Refused: {err.by or 'someone'} holds the claim on this escalation until {when(err.at)}."
    return f"Refused: this escalation is already {err.status} by {err.by or 'someone'} at {when(err.at)}."


def one_line(text: str) -> str:
    return " ".join(text.split())
