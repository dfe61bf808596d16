"""Exceptions that carry the data a caller needs, not only a message."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyAnsweredError",
    "ConcurrentResumeError",
    "EscalationSerializationError",
    "InvalidAnswerError",
    "InvalidScoreError",
    "MissingStateKeyError",
    "NoPendingEscalationError",
    "ReliableGraphError",
    "RouteTargetError",
    "ThreadBusyError",
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
            f"node {node!r} reads state key {key!r}, which this run's state does not hold: it was not in "
            f"the run's input and no node wrote it. Give {key!r} in the input (and declare it in the state "
            "schema if it is not), or pass the key's real name to the node's *_key parameter"
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

    def __init__(self, *, step: str, field: str, value: Any, why: str | None = None) -> None:
        self.step = step
        self.field = field
        self.value = value
        if why is not None:
            text = f"step {step!r} escalated with a {field} that {why}, which strict JSON cannot hold"
        else:
            text = (
                f"step {step!r} escalated with a {field} of type {type(value).__name__}, which is not "
                "JSON-serialisable; return plain data, a pydantic model or a dataclass from the step"
            )
        super().__init__(text)


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

    def __init__(self, *, interrupt_ids: list[str], pending: list[str], what: str = "interrupt id") -> None:
        self.interrupt_ids = interrupt_ids
        self.pending = pending
        shown = ", ".join(pending) or "none"
        if what == "escalation id":
            text = f"no escalation {', '.join(interrupt_ids)} in this inbox (waiting, first few: {shown})"
        else:
            text = f"no pending escalation with {what} {', '.join(interrupt_ids)} (pending: {shown})"
        super().__init__(text)


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


class ConcurrentResumeError(ReliableGraphError, RuntimeError):
    """A run tried to carry on a reviewer's decision that another live run of the thread is applying.

    LangGraph does not serialise runs of one thread: two resumes started together can both load
    the checkpoint where an answer was recorded and both run what follows it. The node that
    applies the decision lets one run through and stops the other with this error, before the
    continuation (and its side effects) runs a second time. Answer through `answer_escalations`
    or the `EscalationInbox`, which take the thread's lock, to never see it.

    Example:
        ```python
        from reliable_graph import ConcurrentResumeError

        err = ConcurrentResumeError(escalation_id="e1", thread_id="t1", holder="a run of another process")
        assert err.escalation_id == "e1" and "t1" in str(err)
        ```
    """

    def __init__(self, *, escalation_id: str, thread_id: str | None, holder: str) -> None:
        self.escalation_id = escalation_id
        self.thread_id = thread_id
        self.holder = holder
        super().__init__(
            f"the decision on escalation {escalation_id} (thread {thread_id}) is being applied by {holder}; "
            "this run stopped before applying it a second time. Nothing is lost: read the thread's state "
            "again, or run EscalationInbox.reconcile() if that run died"
        )


class ThreadBusyError(ReliableGraphError, TimeoutError):
    """A thread's review lock stayed held by another resolution for longer than the wait allowed.

    Example:
        ```python
        from reliable_graph import ThreadBusyError

        err = ThreadBusyError(thread_id="t1", waited=30.0)
        assert err.thread_id == "t1" and "30" in str(err)
        ```
    """

    def __init__(self, *, thread_id: str, waited: float) -> None:
        self.thread_id = thread_id
        self.waited = waited
        super().__init__(
            f"thread {thread_id} stayed locked by another resolution for {waited:g} s; nothing was applied. "
            "Try again, or run EscalationInbox.reconcile() if its holder died"
        )
