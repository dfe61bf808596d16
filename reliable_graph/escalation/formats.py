"""One escalation, three shapes: the library's own, Agent Inbox's, and LangChain's HITL middleware's.

Whatever shape a reviewer is shown, `parse_answer` accepts an answer in any of the three.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import TypeAdapter

from reliable_graph.escalation.decision import Decision
from reliable_graph.escalation.record import DECISIONS

__all__ = ["Format", "render", "response_schema", "to_agent_inbox", "to_hitl_request"]

Format = Literal["reliable", "agent_inbox", "hitl"]
"""How an escalation is shown: the `Escalation` itself, an Agent Inbox `HumanInterrupt` list, or a
LangChain v1 `HumanInTheLoopMiddleware` `HITLRequest`."""

_HITL = {"approve": "approve", "edit": "edit", "terminate": "reject", "provide_context": "respond"}
_ARG_ORDER = ("output", "reason", "confidence", "threshold", "inputs", "context", "attempts", "conversation")


def _args(escalation: Mapping[str, Any]) -> dict[str, Any]:
    """The escalation as action arguments: the output first, then everything a reviewer needs."""
    first = {k: escalation[k] for k in _ARG_ORDER if k in escalation and escalation[k] is not None}
    rest = {k: v for k, v in escalation.items() if k not in first and k != "description" and v is not None}
    return {**first, **rest}


def to_agent_inbox(escalation: Mapping[str, Any]) -> dict[str, Any]:
    """Render an escalation as an Agent Inbox `HumanInterrupt`.

    `action_request.args` carries the whole escalation (output, reason, confidence, inputs,
    context, attempts...) and `description` says at a glance what a reviewer needs.
    accept -> approve, edit -> edit, response -> provide_context, ignore -> terminate.

    Example:
        ```python
        from reliable_graph import to_agent_inbox

        inbox = to_agent_inbox({"step": "draft", "confidence": 0.4, "threshold": 0.8, "description": "Step 'draft'...",
                                "reason": "cites no source", "output": "text", "inputs": {"question": "q"},
                                "allowed_decisions": ["approve", "edit", "terminate"]})
        assert inbox["action_request"]["action"] == "draft"
        assert inbox["action_request"]["args"]["output"] == "text" and inbox["action_request"]["args"]["inputs"]
        assert inbox["config"]["allow_respond"] is False and inbox["config"]["allow_ignore"] is True
        ```
    """
    allowed = set(escalation.get("allowed_decisions") or DECISIONS)
    return {
        "action_request": {"action": escalation["step"], "args": _args(escalation)},
        "config": {
            "allow_accept": "approve" in allowed,
            "allow_edit": "edit" in allowed,
            "allow_respond": "provide_context" in allowed,
            "allow_ignore": "terminate" in allowed,
        },
        "description": escalation.get("description") or escalation.get("reason", ""),
    }


def to_hitl_request(escalation: Mapping[str, Any]) -> dict[str, Any]:
    """Render an escalation as LangChain v1 `HumanInTheLoopMiddleware`'s `HITLRequest`.

    approve -> approve, edit -> edit, reject -> terminate, respond -> provide_context (a
    reviewer's `retry` has no HITL equivalent and is not offered in this shape).

    Example:
        ```python
        from reliable_graph import to_hitl_request

        req = to_hitl_request({"step": "draft", "reason": "cites no source", "output": "text",
                               "allowed_decisions": ["approve", "edit", "terminate", "retry"]})
        assert req["action_requests"][0]["name"] == "draft"
        assert req["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
        ```
    """
    allowed = escalation.get("allowed_decisions") or DECISIONS
    return {
        "action_requests": [
            {
                "name": escalation["step"],
                "args": _args(escalation),
                "description": escalation.get("description") or escalation.get("reason", ""),
            }
        ],
        "review_configs": [
            {"action_name": escalation["step"], "allowed_decisions": [_HITL[a] for a in allowed if a in _HITL]}
        ],
    }


def render(escalation: Mapping[str, Any], format: Format) -> Any:
    """The interrupt value of `escalation` in `format`.

    Example:
        ```python
        from reliable_graph.escalation import render

        esc = {"id": "e1", "step": "draft", "task": "draft", "confidence": 0.2, "threshold": 0.5,
               "reason": "no source", "output": "x"}
        assert render(esc, "reliable") == esc
        [request] = render(esc, "agent_inbox")
        assert request["action_request"]["args"]["output"] == "x"
        ```
    """
    if format == "agent_inbox":
        return [to_agent_inbox(escalation)]
    if format == "hitl":
        return to_hitl_request(escalation)
    return dict(escalation)


def response_schema(format: Format, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The JSON schema of an answer in `format`, surfaced to clients with the interrupt.

    It is advisory: the node validates every answer itself (`parse_answer`) and asks again with
    the reason when one is rejected, so a bad answer never errors the run.

    Example:
        ```python
        from reliable_graph.escalation import response_schema

        schema = response_schema("reliable", ("approve", "edit"))
        assert schema["type"] == "object"
        ```
    """
    if format == "agent_inbox":
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
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
                    "maxItems": 1,
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
