"""Exceptions that carry the data a caller needs, not only a message."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyAnsweredError",
    "EscalationSerializationError",
    "InvalidAnswerError",
    "InvalidScoreError",
    "MissingStateKeyError",
    "NoPendingEscalationError",
    "ReliableGraphError",
    "RouteTargetError",
]


class ReliableGraphError(Exception):
    """Base class of the library's errors.

    Example:
        ```python
        from reliable_graph import MissingStateKeyError, ReliableGraphError

        assert issubclass(MissingStateKeyError, ReliableGraphError)
        ```
    """


class MissingStateKeyError(ReliableGraphError, KeyError):
    """A node read a state key that the state does not have.

    Example:
        ```python
        from reliable_graph import MissingStateKeyError

        err = MissingStateKeyError(node="gate", key="context")
        assert "'context'" in str(err) and "'gate'" in str(err)
        ```
    """

    def __init__(self, *, node: str, key: str) -> None:
        self.node = node
        self.key = key
        super().__init__(
            f"node {node!r} reads state key {key!r}, which the state does not have; "
            f"add {key!r} to the graph's state schema and input, or pass {key!r}'s real name "
            "to the node's *_key parameter"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class RouteTargetError(ReliableGraphError, ValueError):
    """A node routes to a target that is not a node of the graph.

    Example:
        ```python
        from reliable_graph import RouteTargetError

        err = RouteTargetError(node="draft", parameter="pass_to", target="revew", known=["review"])
        assert err.target == "revew" and "review" in str(err)
        ```
    """

    def __init__(self, *, node: str, parameter: str, target: str, known: list[str]) -> None:
        self.node = node
        self.parameter = parameter
        self.target = target
        self.known = known
        super().__init__(
            f"node {node!r} routes {parameter}={target!r}, which is not a node of the graph "
            f"(nodes: {', '.join(sorted(known))})"
        )


class InvalidScoreError(ReliableGraphError, ValueError):
    """An evaluator produced a value that is not a score in [0, 1].

    Example:
        ```python
        from reliable_graph import InvalidScoreError, Score

        try:
            Score(value=1.5, reason="too sure", evaluator="custom")
        except InvalidScoreError as err:
            assert err.evaluator == "custom" and err.value == 1.5
        ```
    """

    def __init__(self, message: str, *, evaluator: str, value: Any) -> None:
        self.evaluator = evaluator
        self.value = value
        super().__init__(message)


class EscalationSerializationError(ReliableGraphError, TypeError):
    """An escalation holds a value that cannot be turned into JSON.

    Example:
        ```python
        from reliable_graph import EscalationSerializationError

        err = EscalationSerializationError(step="draft", field="output", value=object())
        assert err.step == "draft" and "output" in str(err)
        ```
    """

    def __init__(self, *, step: str, field: str, value: Any) -> None:
        self.step = step
        self.field = field
        self.value = value
        super().__init__(
            f"step {step!r} escalated with a {field} of type {type(value).__name__}, which is not "
            "JSON-serialisable; return plain data, a pydantic model or a dataclass from the step"
        )


class InvalidAnswerError(ReliableGraphError, ValueError):
    """A reviewer's answer to an escalation breaks a rule; nothing was applied.

    Example:
        ```python
        from reliable_graph import InvalidAnswerError

        err = InvalidAnswerError("decision 'edit' is not allowed here", answer={"action": "edit"})
        assert err.reason.startswith("decision") and err.answer == {"action": "edit"}
        ```
    """

    def __init__(self, reason: str, *, answer: Any = None, interrupt_id: str | None = None) -> None:
        self.reason = reason
        self.answer = answer
        self.interrupt_id = interrupt_id
        where = f" (interrupt {interrupt_id})" if interrupt_id else ""
        super().__init__(f"answer rejected{where}: {reason}")


class NoPendingEscalationError(ReliableGraphError, LookupError):
    """An answer names an escalation that is not pending (answered already, or never raised).

    Example:
        ```python
        from reliable_graph import NoPendingEscalationError

        err = NoPendingEscalationError(interrupt_ids=["abc"], pending=["def"])
        assert err.interrupt_ids == ["abc"] and "def" in str(err)
        ```
    """

    def __init__(self, *, interrupt_ids: list[str], pending: list[str]) -> None:
        self.interrupt_ids = interrupt_ids
        self.pending = pending
        shown = ", ".join(pending) or "none"
        super().__init__(f"no pending escalation with interrupt id {', '.join(interrupt_ids)} (pending: {shown})")


class AlreadyAnsweredError(ReliableGraphError, LookupError):
    """An escalation was already answered at the checkpoint an answer addresses (time travel, a fork).

    LangGraph replays the answer recorded at that checkpoint whatever a new resume says, so the
    library refuses instead of letting a new decision be silently replaced by the old one.

    Example:
        ```python
        from reliable_graph import AlreadyAnsweredError

        err = AlreadyAnsweredError(interrupt_id="abc", checkpoint_id="1f0")
        assert err.interrupt_id == "abc" and "1f0" in str(err)
        ```
    """

    def __init__(self, *, interrupt_id: str, checkpoint_id: str | None) -> None:
        self.interrupt_id = interrupt_id
        self.checkpoint_id = checkpoint_id
        super().__init__(
            f"escalation {interrupt_id} was already answered at checkpoint {checkpoint_id}; resuming there "
            "would replay the recorded answer, not yours. To decide again, resume from the checkpoint "
            "before the escalation was raised (graph.invoke(None, that_config)), which raises it anew"
        )
