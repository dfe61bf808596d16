"""Escalations in three shapes: the library's own, Agent Inbox's, and LangChain's HITL middleware's.

One interrupt may carry one escalation (`HumanEscalation(mode="per_task")`) or every escalation
waiting in a graph (`mode="single"`): Agent Inbox gets a list of `HumanInterrupt`s (it shows and
answers the first), HITL clients one `HITLRequest` with an action request per escalation (Agent
Chat UI steps through them and answers all). In the stock UIs' shapes only what a decision reads
is an editable argument (the output; a context gate's chunks); everything else a reviewer needs
is in the description, as Markdown the UIs render; the whole escalation rides along under
`escalation` / `escalations`, which the UIs ignore and the library reads back.

Whatever shape a reviewer is shown, `parse_answer` accepts an answer in any of the three.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import TypeAdapter

from reliable_graph.escalation.decision import Decision
from reliable_graph.escalation.record import DECISIONS

__all__ = [
    "Format",
    "action_name",
    "describe_markdown",
    "render",
    "response_schema",
    "to_agent_inbox",
    "to_hitl_request",
]

Format = Literal["reliable", "agent_inbox", "hitl"]
"""How an escalation is shown: the `Escalation` itself, an Agent Inbox `HumanInterrupt` list, or a
LangChain v1 `HumanInTheLoopMiddleware` `HITLRequest`."""

_HITL = {"approve": "approve", "edit": "edit", "terminate": "reject", "provide_context": "respond"}
_SHOWN = 600
"""Characters of a long value shown in the description (the whole escalation rides along)."""


def action_name(escalation: Mapping[str, Any]) -> str:
    """The action name a stock UI shows for `escalation` and sends back with an edit or an accept.

    The escalation's task: its step's path for a step that runs once in a superstep, the path
    and a tag of the task's input for each task of a `Send` fan-out (`item#bcb698f5f5`), so that
    no two escalations waiting together share a name and an answer meant for one of them cannot
    be taken for another's (the review node refuses an answer naming another action).

    Example:
        ```python
        from reliable_graph.escalation.formats import action_name

        assert action_name({"step": "draft", "path": "sub/draft", "task": "sub/draft"}) == "sub/draft"
        assert action_name({"step": "item", "path": "item", "task": "item#bcb698f5f5"}) == "item#bcb698f5f5"
        assert action_name({"step": "draft"}) == "draft"
        ```
    """
    return str(escalation.get("task") or escalation.get("path") or escalation["step"])


def _editable(escalation: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a reviewer edits: the output (a gate's context). Never null (Agent Inbox cannot show one)."""
    output = escalation.get("output")
    return {"output": "" if output is None else output}


def _text(value: Any, limit: int = _SHOWN) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= limit else shown[:limit] + f"… ({len(shown):,} characters)"


def _fenced(value: Any) -> str:
    shown = _text(value, 4000)
    fence = "```"
    while fence in shown:
        fence += "`"
    return f"{fence}\n{shown}\n{fence}"


def describe_markdown(escalation: Mapping[str, Any]) -> str:
    """What a reviewer reads first, as Markdown the stock UIs render: the reason leads, every fact below.

    Paragraphs are separated by blank lines (Agent Inbox joins single newlines), values are
    cut at a length a side panel shows, and the first line differs between escalations (it is
    the reason), so list rows that show a description's first characters tell them apart.

    Example:
        ```python
        from reliable_graph.escalation import describe_markdown

        text = describe_markdown({"step": "draft", "path": "draft", "reason": "cites no source", "confidence": 0.2,
                                  "threshold": 0.8, "output": "Paris", "inputs": {"question": "capital?"},
                                  "attempts": [{"n": 1, "score": 0.2, "verdict": "escalate"}], "round": 1})
        assert text.startswith("cites no source") and "### Output" in text and "0.20" in text
        ```
    """
    esc = escalation
    what = "its context" if esc.get("kind") == "gate" else "its output"
    first = _text(esc.get("reason") or "no reason given", 300)
    inputs = esc.get("inputs") or {}
    if inputs:  # list rows show a description's first characters: say which task this is there
        key, value = next(iter(inputs.items()))
        first += f" ({key}: {_text(value, 80)})"
    lines = [
        first,
        f"**Step** `{esc.get('path') or esc.get('step')}` · {what} scored **{float(esc.get('confidence') or 0):.2f}** "
        f"against a threshold of **{float(esc.get('threshold') or 0):.2f}** · round {esc.get('round', 1)}",
    ]
    rejected = esc.get("rejected")
    if isinstance(rejected, Mapping) and rejected.get("reason"):
        lines.append(f"> **Your last answer was not applied:** {_text(rejected['reason'], 300)}")
    previous = esc.get("previous_decision")
    if isinstance(previous, Mapping) and previous.get("action"):
        said = f"**Last decision:** {previous['action']}"
        if previous.get("reviewer"):
            said += f" by {previous['reviewer']}"
        if previous.get("reason"):
            said += f": {_text(previous['reason'], 300)}"
        lines.append(said)
    lines += ["### Output", _fenced(esc.get("output"))]
    if inputs:
        lines.append("### Inputs")
        lines.append("\n".join(f"- **{k}**: {_text(v)}" for k, v in inputs.items()))
    context = esc.get("context") or []
    lines.append(f"### Context ({len(context)} chunk{'s' if len(context) != 1 else ''})")
    if context:
        lines.append(
            "\n".join(
                f"{n}. {_text(c.get('text', ''))}"
                + (f" *({_text(c['metadata'].get('source'), 120)})*" if (c.get("metadata") or {}).get("source") else "")
                for n, c in enumerate(context, start=1)
            )
        )
    attempts = esc.get("attempts") or []
    if attempts:
        lines.append("### Attempts")
        rows = ["| # | score | verdict | reason |", "|---|---|---|---|"]
        for a in attempts:
            reason = _text(a.get("reason") or "", 160).replace("|", "\\|").replace("\n", " ")
            number = a.get("attempt", a.get("n", ""))
            rows.append(f"| {number} | {float(a.get('score') or 0):.2f} | {a.get('verdict', '')} | {reason} |")
        lines.append("\n".join(rows))
    notes = list(esc.get("notes") or []) + list(esc.get("display_notes") or [])
    if notes:
        lines.append("### Shown changed")
        lines.append("\n".join(f"- {_text(n, 300)}" for n in notes))
    lines.append(f"*Escalation `{esc.get('id', '?')}` · thread `{esc.get('thread_id', '?')}`*")
    return "\n\n".join(lines)


def to_agent_inbox(escalation: Mapping[str, Any]) -> dict[str, Any]:
    """Render an escalation as an Agent Inbox `HumanInterrupt`.

    `action_request.args` holds only what an edit changes (the output), so every field Agent
    Inbox shows as editable is read; `description` is the Markdown of `describe_markdown`; the
    whole escalation rides along under `escalation`. accept -> approve, edit -> edit, response
    -> provide_context, ignore -> terminate.

    Example:
        ```python
        from reliable_graph import to_agent_inbox

        inbox = to_agent_inbox({"id": "e1", "step": "draft", "confidence": 0.4, "threshold": 0.8,
                                "reason": "cites no source", "output": "text", "inputs": {"question": "q"},
                                "allowed_decisions": ["approve", "edit", "terminate"]})
        assert inbox["action_request"] == {"action": "draft", "args": {"output": "text"}}
        assert inbox["description"].startswith("cites no source") and inbox["escalation"]["id"] == "e1"
        assert inbox["config"]["allow_respond"] is False and inbox["config"]["allow_ignore"] is True
        ```
    """
    allowed = set(escalation.get("allowed_decisions") or DECISIONS)
    return {
        "action_request": {"action": action_name(escalation), "args": _editable(escalation)},
        "config": {
            "allow_accept": "approve" in allowed,
            "allow_edit": "edit" in allowed,
            "allow_respond": "provide_context" in allowed,
            "allow_ignore": "terminate" in allowed,
        },
        "description": describe_markdown(escalation),
        "escalation": dict(escalation),
    }


def to_hitl_request(escalation: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Render one escalation, or several, as LangChain v1 `HumanInTheLoopMiddleware`'s `HITLRequest`.

    One action request per escalation, in order; its `args` (also under `arguments`, where Agent
    Inbox reads a HITL request) hold only what an edit changes. approve -> approve, edit -> edit,
    reject -> terminate, respond -> provide_context (a reviewer's `retry` has no HITL equivalent
    and is not offered in this shape). The escalations ride along under `escalations`.

    Example:
        ```python
        from reliable_graph import to_hitl_request

        req = to_hitl_request({"id": "e1", "step": "draft", "reason": "cites no source", "output": "text",
                               "allowed_decisions": ["approve", "edit", "terminate", "retry"]})
        assert req["action_requests"][0]["name"] == "draft" and req["action_requests"][0]["args"] == {"output": "text"}
        assert req["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
        ```
    """
    escalations = [escalation] if isinstance(escalation, Mapping) else list(escalation)
    requests, configs = [], []
    for n, esc in enumerate(escalations):
        name = action_name(esc)
        allowed = esc.get("allowed_decisions") or DECISIONS
        description = describe_markdown(esc)
        if n == 0 and len(escalations) > 1:  # some UIs show only the first description: list them all there
            waiting = "\n".join(
                f"{k}. **{e.get('path') or e['step']}**: {_text(e.get('reason') or '', 160)}"
                for k, e in enumerate(escalations, start=1)
            )
            description = (
                f"**{len(escalations)} escalations wait on this thread:**\n\n{waiting}\n\n---\n\n{description}"
            )
        requests.append({"name": name, "args": _editable(esc), "arguments": _editable(esc), "description": description})
        configs.append({"action_name": name, "allowed_decisions": [_HITL[a] for a in allowed if a in _HITL]})
    return {"action_requests": requests, "review_configs": configs, "escalations": [dict(e) for e in escalations]}


def render(escalation: Mapping[str, Any] | Sequence[Mapping[str, Any]], format: Format) -> Any:
    """The interrupt value of one escalation, or of several waiting together (`mode="single"`), in `format`.

    Example:
        ```python
        from reliable_graph.escalation import render

        esc = {"id": "e1", "step": "draft", "task": "draft", "confidence": 0.2, "threshold": 0.5,
               "reason": "no source", "output": "x"}
        assert render(esc, "reliable") == esc
        [request] = render(esc, "agent_inbox")
        assert request["action_request"]["args"] == {"output": "x"}
        assert [e["id"] for e in render([esc, {**esc, "id": "e2"}], "reliable")["escalations"]] == ["e1", "e2"]
        ```
    """
    many = not isinstance(escalation, Mapping)
    escalations: list[Mapping[str, Any]] = [escalation] if isinstance(escalation, Mapping) else list(escalation)
    if format == "agent_inbox":
        shown = [to_agent_inbox(e) for e in escalations]
        if len(shown) > 1:  # Agent Inbox shows the first: say how many wait behind it, after the reason
            # (a list row shows the description's first characters: the reason, which tells the rows apart)
            reason, _, rest = str(shown[0]["description"]).partition("\n\n")
            count = f"*1 of {len(shown)} escalations waiting on this thread.*"
            shown[0]["description"] = "\n\n".join(part for part in (reason, count, rest) if part)
        return shown
    if format == "hitl":
        return to_hitl_request(escalations)
    if many:
        return {
            "escalations": [dict(e) for e in escalations],
            "answer": "one decision (for the first), a list in order, or {escalation id: decision}",
        }
    return dict(escalations[0])


def response_schema(format: Format, allowed: tuple[str, ...], count: int = 1) -> dict[str, Any]:
    """The JSON schema of an answer in `format` to `count` escalations, surfaced to clients with the interrupt.

    It is advisory: the node validates every answer itself (`parse_answer`) and asks again with
    the reason when one is rejected, so a bad answer never errors the run.

    Example:
        ```python
        from reliable_graph.escalation import response_schema

        schema = response_schema("reliable", ("approve", "edit"))
        assert schema["type"] == "object"
        assert response_schema("hitl", ("approve",), count=3)["properties"]["decisions"]["maxItems"] == 3
        ```
    """
    if format == "agent_inbox":
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": count,
            "items": {
                "type": "object",
                "properties": {"type": {"enum": ["accept", "edit", "response", "ignore"]}, "args": {}},
                "required": ["type"],
            },
        }
    if format == "hitl":
        return {
            "type": "object",
            "properties": {
                "decisions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": count,
                    "items": {
                        "type": "object",
                        "properties": {"type": {"enum": [_HITL[a] for a in allowed if a in _HITL]}},
                        "required": ["type"],
                    },
                }
            },
            "required": ["decisions"],
        }
    schema = TypeAdapter(Decision).json_schema()
    schema["description"] = "A reviewer's decision on an escalation."
    schema["properties"]["action"] = {"enum": list(allowed), "title": "Action", "type": "string"}
    return schema
