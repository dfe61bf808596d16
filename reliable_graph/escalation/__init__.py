"""Escalations: the record a reviewer sees, the decision formats, the HumanEscalation node."""

from reliable_graph.escalation.decision import ChunkInput, Decision, parse_answer
from reliable_graph.escalation.formats import Format, render, response_schema, to_agent_inbox, to_hitl_request
from reliable_graph.escalation.inbox import (
    INBOX_NAMESPACE,
    AlreadyResolvedError,
    AuditEntry,
    EscalationInbox,
    InboxItem,
    index_escalation,
)
from reliable_graph.escalation.node import HumanEscalation
from reliable_graph.escalation.record import DECISIONS, Action, Escalation, ReviewTask, StepTask, escalation_id
from reliable_graph.escalation.resume import (
    PendingEscalation,
    aanswer_escalations,
    answer_escalations,
    apending_escalations,
    escalation_of,
    pending_escalations,
)

__all__ = [
    "DECISIONS",
    "INBOX_NAMESPACE",
    "Action",
    "AlreadyResolvedError",
    "AuditEntry",
    "EscalationInbox",
    "InboxItem",
    "index_escalation",
    "ChunkInput",
    "Decision",
    "Escalation",
    "Format",
    "HumanEscalation",
    "PendingEscalation",
    "ReviewTask",
    "StepTask",
    "aanswer_escalations",
    "answer_escalations",
    "apending_escalations",
    "escalation_id",
    "escalation_of",
    "parse_answer",
    "pending_escalations",
    "render",
    "response_schema",
    "to_agent_inbox",
    "to_hitl_request",
]
