"""A reviewer's decision, and the one parser every answer goes through before it is applied.

Every rule an answer must satisfy is checked here, before anything is applied: an answer that
passes `parse_answer` cannot fail to apply, so no answer can wedge a thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from reliable_graph.errors import InvalidAnswerError
from reliable_graph.escalation.record import DECISIONS, Action

__all__ = ["ChunkInput", "Decision", "named_action", "parse_answer"]


class ChunkInput(BaseModel):
    """A context chunk given by a reviewer: non-empty text and JSON metadata.

    Example:
        ```python
        import pydantic
        from reliable_graph.escalation import ChunkInput

        assert ChunkInput(text="tide table 2026", metadata={"source": "ana"}).text == "tide table 2026"
        try:
            ChunkInput(text="   ")
        except pydantic.ValidationError:
            pass  # blank chunks are refused
        ```
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    text: StrictStr = Field(min_length=1)
    """The chunk's content."""
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    """Where it came from."""

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            msg = "context chunks must not be empty"
            raise ValueError(msg)
        return value


def _chunk(index: int, value: Any) -> dict[str, Any]:
    try:
        return ChunkInput.model_validate(value).model_dump(mode="json")
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = f"context chunk {index} must be text or {{'text': ..., 'metadata': {{...}}}} ({where}: {first['msg']})"
        raise ValueError(msg) from None


class Decision(BaseModel):
    """A reviewer's answer to an escalation.

    `approve` applies the step's proposed update as the step returned it; `edit` applies it with
    the output replaced by `output` (strict JSON); `provide_context` adds `context` (non-empty
    strings or `{"text": ..., "metadata": {...}}` chunks) and re-runs the step; `retry` re-runs it
    as is; `terminate` ends the task.

    Example:
        ```python
        import pydantic
        from reliable_graph import Decision

        assert Decision(action="edit", output={"answer": "fixed"}).output == {"answer": "fixed"}
        try:
            Decision(action="edit")
        except pydantic.ValidationError as err:
            assert "output" in str(err)
        ```
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    action: Action
    """What to do."""
    output: JsonValue = None
    """The replacement output (`edit` only)."""
    context: list[StrictStr | dict[str, JsonValue]] | None = None
    """Chunks to add before re-running (`provide_context` only): text, or `{"text": ..., "metadata": {...}}`.

    Kept as plain data (no nested model), so a decision reads the same after a checkpoint round trip."""
    reason: StrictStr | None = None
    """Why, in the reviewer's words (recorded)."""
    reviewer: StrictStr | None = None
    """Who decided (recorded)."""
    ticket: StrictStr | None = None
    """Set by the `EscalationInbox` on the answers it sends: leave it unset."""

    @model_validator(mode="after")
    def _fields_match_action(self) -> Decision:
        given = self.model_fields_set
        if self.action == "edit" and "output" not in given:
            msg = "an 'edit' decision needs 'output': the replacement output"
            raise ValueError(msg)
        if self.action != "edit" and "output" in given:
            msg = f"'output' is only for 'edit'; a {self.action!r} decision would silently drop it"
            raise ValueError(msg)
        if self.action == "provide_context" and not self.context:
            msg = "a 'provide_context' decision needs a non-empty 'context' list"
            raise ValueError(msg)
        if self.action != "provide_context" and "context" in given:
            msg = f"'context' is only for 'provide_context'; a {self.action!r} decision would drop it"
            raise ValueError(msg)
        if any(isinstance(c, str) and not c.strip() for c in self.context or ()):
            msg = "context chunks must not be empty"
            raise ValueError(msg)
        if self.context is not None:
            self.context = [c if isinstance(c, str) else _chunk(i, c) for i, c in enumerate(self.context)]
        try:
            json.dumps(self.output, allow_nan=False)
        except ValueError as exc:
            msg = "'output' must be strict JSON: NaN and Infinity are not allowed"
            raise ValueError(msg) from exc
        return self

    def context_chunks(self) -> list[dict[str, Any]]:
        """The given context as chunk dicts."""
        return [{"text": c, "metadata": {}} if isinstance(c, str) else dict(c) for c in self.context or ()]

    def recorded(self) -> dict[str, Any]:
        """What a record keeps of this decision: action, reviewer, reason, and the texts a reviewer supplied.

        The output of an edit is not kept (the state holds it).
        """
        kept: dict[str, Any] = {
            k: v for k, v in {"action": self.action, "reviewer": self.reviewer, "reason": self.reason}.items() if v
        }
        if self.action == "provide_context":
            kept["context"] = [str(c["text"])[:2000] for c in self.context_chunks()]
        return kept


_MAX_DEPTH = 64
_INT_RANGE = (-(2**63), 2**63 - 1)


def _canonical(value: Any, depth: int = 0) -> Any:
    """The answer as plain JSON data, the same before and after a checkpoint round trip.

    A checkpointer stores a resume value and LangGraph hands it back when the node runs again
    (tuples come back as lists, models are rebuilt without validation): validating this form
    makes an answer's verdict the same on every run, so a rejected answer stays rejected. Values
    no checkpointer stores faithfully (integers beyond 64 bits, text that is not valid Unicode,
    deep nesting) are refused here, before anything is applied.
    """
    if depth > _MAX_DEPTH:
        msg = f"the answer is nested deeper than {_MAX_DEPTH} levels"
        raise InvalidAnswerError(msg)
    if isinstance(value, BaseModel):
        # a model rebuilt from a checkpoint has every field "set": judge it by its values
        dumped = value.model_dump(mode="python", warnings=False)
        keep = {"output"} if dumped.get("action") == "edit" else set()
        return _canonical({k: v for k, v in dumped.items() if v is not None or k in keep}, depth + 1)
    if isinstance(value, (list, tuple)):
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            msg = "object keys in an answer must be strings"
            raise InvalidAnswerError(msg)
        return {_canonical(k, depth + 1): _canonical(v, depth + 1) for k, v in value.items()}
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            msg = "the answer holds text that is not valid Unicode (a lone surrogate)"
            raise InvalidAnswerError(msg) from None
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            msg = f"the integer {value} is outside the 64-bit range a checkpointer stores; send it as text"
            raise InvalidAnswerError(msg)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = "numbers in an answer must be finite (no NaN or Infinity)"
            raise InvalidAnswerError(msg)
        return value
    msg = f"an answer is JSON data; {type(value).__name__} is not"
    raise InvalidAnswerError(msg)


def _one(items: Any, what: str) -> Any:
    if not isinstance(items, list):
        msg = f"expected a list of exactly one {what}, got {type(items).__name__}"
        raise InvalidAnswerError(msg)
    if len(items) != 1:
        msg = f"expected exactly one {what}, got {len(items)}"
        raise InvalidAnswerError(msg)
    return items[0]


def _decode_edit(value: Any, original: Any) -> Any:
    """An edit sent as a string by a UI (Agent Inbox edits every field as text), parsed back."""
    if not isinstance(value, str) or isinstance(original, str):
        return value
    try:
        decoded = json.loads(value)
    except ValueError as exc:
        if original is None:
            return value
        msg = f"the edited output must be JSON like the original ({type(original).__name__}); got text: {exc}"
        raise InvalidAnswerError(msg) from exc
    return _canonical(decoded)


def _from_agent_inbox(item: Mapping[str, Any], original: Any) -> dict[str, Any]:
    kind = item.get("type")
    extra = set(item) - {"type", "args"}
    if extra:
        msg = f"an Agent Inbox response has only 'type' and 'args'; got {sorted(extra)}"
        raise InvalidAnswerError(msg)
    args = item.get("args")
    if kind == "accept":
        return {"action": "approve"}
    if kind == "ignore":
        return {"action": "terminate"}
    if kind == "response":
        if not isinstance(args, str) or not args.strip():
            msg = "an Agent Inbox 'response' needs its text in 'args'"
            raise InvalidAnswerError(msg)
        return {"action": "provide_context", "context": [args]}
    if kind == "edit":
        inner = args.get("args") if isinstance(args, Mapping) and isinstance(args.get("args"), Mapping) else args
        if not isinstance(inner, Mapping) or "output" not in inner:
            msg = "an Agent Inbox 'edit' needs args={'action': ..., 'args': {'output': ...}}"
            raise InvalidAnswerError(msg)
        return {"action": "edit", "output": _decode_edit(inner["output"], original)}
    msg = f"an Agent Inbox response type must be accept, edit, response or ignore; got {kind!r}"
    raise InvalidAnswerError(msg)


_HITL_KEYS = {
    "approve": {"type"},
    "reject": {"type", "message"},
    "respond": {"type", "message"},
    "edit": {"type", "edited_action"},
}


def _from_hitl(item: Mapping[str, Any], original: Any) -> dict[str, Any]:
    kind = item.get("type")
    extra = set(item) - _HITL_KEYS.get(str(kind), set(item))
    if extra:
        msg = f"a {kind!r} decision does not take {sorted(extra)}"
        raise InvalidAnswerError(msg)
    if kind == "approve":
        return {"action": "approve"}
    if kind == "reject":
        message = item.get("message")
        return {"action": "terminate", **({"reason": message} if isinstance(message, str) and message else {})}
    if kind == "respond":
        message = item.get("message")
        if not isinstance(message, str) or not message.strip():
            msg = "a 'respond' decision needs a non-empty 'message'"
            raise InvalidAnswerError(msg)
        return {"action": "provide_context", "context": [message]}
    if kind == "edit":
        action = item.get("edited_action")
        args = action.get("args") if isinstance(action, Mapping) else None
        if not isinstance(args, Mapping) or "output" not in args:
            msg = "an 'edit' decision needs edited_action={'name': ..., 'args': {'output': ...}}"
            raise InvalidAnswerError(msg)
        return {"action": "edit", "output": _decode_edit(args["output"], original)}
    msg = f"a decision type must be approve, edit, reject or respond; got {kind!r}"
    raise InvalidAnswerError(msg)


def _as_fields(answer: Any, original: Any) -> Any:
    if isinstance(answer, Mapping) and "decisions" in answer:
        if set(answer) != {"decisions"}:
            msg = f"a HumanInTheLoopMiddleware response has only 'decisions'; got {sorted(answer)}"
            raise InvalidAnswerError(msg)
        item = _one(answer["decisions"], "decision")
        if not isinstance(item, Mapping):
            msg = f"a decision must be an object, got {type(item).__name__}"
            raise InvalidAnswerError(msg)
        return _from_hitl(item, original)
    if isinstance(answer, list):
        item = _one(answer, "Agent Inbox response")
        if not isinstance(item, Mapping):
            msg = f"an Agent Inbox response must be an object, got {type(item).__name__}"
            raise InvalidAnswerError(msg)
        return _from_agent_inbox(item, original)
    if isinstance(answer, Mapping) and "type" in answer and "action" not in answer:
        return _from_agent_inbox(answer, original)
    if not isinstance(answer, Mapping):
        msg = f"an answer is a decision object such as {{'action': 'approve'}}; got {type(answer).__name__}"
        raise InvalidAnswerError(msg)
    return answer


def named_action(answer: Any) -> str | None:
    """The action an Agent Inbox or HITL answer names (an edit's or an accept's), or None when it names none.

    Example:
        ```python
        from reliable_graph.escalation.decision import named_action

        edit = [{"type": "edit", "args": {"action": "item#b4", "args": {"output": "x"}}}]
        assert named_action(edit) == "item#b4"
        hitl = {"decisions": [{"type": "edit", "edited_action": {"name": "draft", "args": {"output": "x"}}}]}
        assert named_action(hitl) == "draft"
        assert named_action([{"type": "response", "args": "see the policy"}]) is None
        assert named_action({"action": "approve"}) is None
        ```
    """
    item = answer
    if isinstance(item, Mapping) and set(item) == {"decisions"} and isinstance(item["decisions"], list):
        item = item["decisions"][0] if len(item["decisions"]) == 1 else None
    elif isinstance(item, list):
        item = item[0] if len(item) == 1 else None
    if not isinstance(item, Mapping) or "action" in item:
        return None
    kind = item.get("type")
    args = item.get("args")
    if kind in ("edit", "accept") and isinstance(args, Mapping) and isinstance(args.get("action"), str):
        return str(args["action"])
    edited = item.get("edited_action")
    if kind == "edit" and isinstance(edited, Mapping) and isinstance(edited.get("name"), str):
        return str(edited["name"])
    return None


def parse_answer(
    answer: Any,
    *,
    allowed: Sequence[str] = DECISIONS,
    kind: str = "output",
    original: Any = None,
) -> Decision:
    """Validate a reviewer's answer in any of the three formats and return it as a `Decision`.

    Accepts the library's own `Decision` (or its dict), an Agent Inbox `HumanResponse` list (one
    response), and a `HumanInTheLoopMiddleware` response (`{"decisions": [one decision]}`).

    Args:
        answer: The resume value.
        allowed: The decisions allowed for this escalation.
        kind: `"output"`, or `"gate"` (an edit must then be a list of context chunks).
        original: The output under review (an edit sent as text is parsed back to its type).

    Raises:
        InvalidAnswerError: the answer breaks a rule; its `reason` says which.

    Example:
        ```python
        from reliable_graph import InvalidAnswerError, parse_answer

        assert parse_answer({"action": "approve"}).action == "approve"
        assert parse_answer([{"type": "edit", "args": {"action": "s", "args": {"output": '{"a": 1}'}}}],
                            original={"a": 0}).output == {"a": 1}
        assert parse_answer({"decisions": [{"type": "reject", "message": "wrong"}]}).action == "terminate"
        try:
            parse_answer({"action": "edit", "output": b"bytes"})
        except InvalidAnswerError as err:
            assert "bytes is not" in err.reason
        ```
    """
    if answer is None or (isinstance(answer, Mapping) and not answer):
        msg = "an empty answer: resume with a decision such as {'action': 'approve'}"
        raise InvalidAnswerError(msg, answer=answer)
    try:
        fields = _as_fields(_canonical(answer), original)
        decision = Decision.model_validate(fields)
    except InvalidAnswerError as err:
        raise InvalidAnswerError(err.reason, answer=answer) from None
    except ValidationError as err:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in err.errors(include_url=False)
        )
        raise InvalidAnswerError(details, answer=answer) from None
    except (TypeError, ValueError, RecursionError) as err:
        raise InvalidAnswerError(f"unreadable answer: {err}", answer=answer) from None
    if decision.action not in allowed:
        msg = f"decision {decision.action!r} is not allowed here (allowed: {', '.join(allowed)})"
        raise InvalidAnswerError(msg, answer=answer)
    if kind == "gate" and decision.action == "edit":
        output = decision.output
        if not isinstance(output, list) or not output:
            msg = "editing a context gate's escalation replaces the context: 'output' must be a list of chunks"
            raise InvalidAnswerError(msg, answer=answer)
        try:
            [ChunkInput.model_validate({"text": c} if isinstance(c, str) else c) for c in output]
        except ValidationError as err:
            msg = f"each context chunk must be text or {{'text': ..., 'metadata': {{...}}}}: {err.errors()[0]['msg']}"
            raise InvalidAnswerError(msg, answer=answer) from None
    return decision
