"""Chat graphs: reading message lists as the output to score, the query, and the conversation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

__all__ = ["conversation", "is_messages", "last_text", "message_text", "query_of", "scorable", "with_feedback"]

CONVERSATION_LIMIT = 20
"""The latest messages an escalation shows a reviewer."""


PLAIN = frozenset({str, bytes, dict, int, float, bool, type(None)})
"""Types that are never messages: recognised at once (most outputs and queries are one of them)."""


def is_messages(value: Any) -> bool:
    """A message, or a non-empty list of them (what a chat step returns or keeps in state)."""
    if type(value) in PLAIN:
        return False
    if isinstance(value, BaseMessage):
        return True
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and bool(value)
        and all(isinstance(m, BaseMessage) for m in value)
    )


def message_text(message: BaseMessage) -> str:
    """The text of a message: its string content, or its text blocks joined."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def last_text(messages: Any, kind: type[BaseMessage]) -> str | None:
    """The text of the last message of `kind` (AIMessage, HumanMessage) in `messages`, or None."""
    items = [messages] if isinstance(messages, BaseMessage) else list(messages)
    for message in reversed(items):
        if isinstance(message, kind):
            return message_text(message)
    return None


def scorable(output: Any) -> Any:
    """What an evaluator scores: the last AI message's text for a message list, else the output."""
    if type(output) in PLAIN:
        return output
    if is_messages(output):
        text = last_text(output, AIMessage)
        return text if text is not None else message_text(output if isinstance(output, BaseMessage) else output[-1])
    return output


def query_of(messages: Any) -> str | None:
    """The query of a conversation: the last human message's text."""
    return last_text(messages, HumanMessage) if is_messages(messages) else None


def conversation(messages: Any, limit: int = CONVERSATION_LIMIT) -> list[dict[str, Any]] | None:
    """The latest messages as `{"role", "content"}` (tool calls kept), for a reviewer; None if not messages."""
    if not is_messages(messages):
        return None
    items = [messages] if isinstance(messages, BaseMessage) else list(messages)
    shown = []
    for message in items[-limit:]:
        entry: dict[str, Any] = {"role": message.type, "content": message_text(message)}
        calls = getattr(message, "tool_calls", None)
        if calls:
            entry["tool_calls"] = [{"name": c.get("name"), "args": c.get("args")} for c in calls]
        shown.append(entry)
    return shown


def with_feedback(messages: Sequence[BaseMessage], reason: str) -> list[BaseMessage]:
    """`messages` plus a human message telling the model why its last answer was rejected."""
    note = HumanMessage(
        content=f"Your previous answer did not pass the check: {reason}. Answer again, fixing that.",
        id="reliable-graph-retry-feedback",
    )
    return [*messages, note]
