"""How `ServerInbox` reads the server's items: an item with its claim, the lines its record gives, rounds."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reliable_graph.escalation._remote import when
from reliable_graph.escalation.inbox import InboxItem, _public
from reliable_graph.escalation.protocol import APPLIED, CLAIMED, DIRECT, OPEN, PENDING, RESOLVED


def item_of(
    value: Mapping[str, Any], claim: Mapping[str, Any] | None, now: datetime, *, with_escalation: bool
) -> InboxItem:
    """The `InboxItem` of a store item and its claim (a claim is live until its lease lapses at `now`)."""
    status = str(value.get("status") or PENDING)
    until = when((claim or {}).get("lease_until"))
    live = status == PENDING and until is not None and until > now  # a lapsed claim is pending
    return InboxItem(
        id=str(value.get("id")),
        thread_id=value.get("thread_id"),
        step=str(value.get("step") or ""),
        status=CLAIMED if live else status,
        confidence=float(value.get("confidence") or 0.0),
        threshold=float(value.get("threshold") or 0.0),
        reason=str(value.get("reason") or ""),
        created_at=str(value.get("created_at") or ""),
        assignee=(claim or {}).get("assignee") if live else None,
        lease_until=(claim or {}).get("lease_until") if live else None,
        resolved_by=value.get("resolved_by"),
        resolved_at=value.get("resolved_at"),
        decision=_public(value.get("decision")),
        escalation=dict(value.get("escalation") or {}) if with_escalation else {},
        kind=str(value.get("kind") or "escalation"),
    )


def same_decision(decision: Any, body: Mapping[str, Any]) -> bool:
    """Whether a recorded decision is `body` (the answer a caller sent)."""
    return json.dumps(_public(decision), sort_keys=True) == json.dumps(dict(body), sort_keys=True)


def later_round(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether escalation `one` is a later round than `other` (by round, else by time)."""
    rounds = (one.get("round"), other.get("round"))
    if all(isinstance(r, int) for r in rounds) and rounds[0] != rounds[1]:
        return bool(rounds[0] > rounds[1])  # type: ignore[operator]
    return str(one.get("created_at") or "") > str(other.get("created_at") or "")


def recorded_lines(value: Mapping[str, Any], written: set[str]) -> list[dict[str, Any]]:
    """The audit lines an item's own record gives (its `index`, how it ended) where no written line says so."""
    key = str(value.get("id"))
    lines: list[dict[str, Any]] = []
    if "index" not in written:  # reconcile() writes its own when it indexes an escalation
        lines.append({"escalation_id": key, "at": value.get("created_at") or "", "actor": "system", "event": "index"})
    status = str(value.get("status") or PENDING)
    event = "resolve" if status in (APPLIED, RESOLVED) else status
    if status not in OPEN and event not in written:
        decision = _public(value.get("decision"))
        lines.append(
            {
                "escalation_id": key,
                "at": value.get("resolved_at") or value.get("updated_at") or "",
                "actor": value.get("resolved_by") or DIRECT,
                "event": event,
                "decision": decision,
                "reason": (decision or {}).get("reason"),
            }
        )
    return lines
