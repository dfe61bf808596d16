"""Escalations: the record a reviewer sees, the decision formats, the HumanEscalation node."""

from reliable_graph.escalation.decision import ChunkInput, Decision, parse_answer
from reliable_graph.escalation.formats import (
    Format,
    describe_markdown,
    render,
    response_schema,
    to_agent_inbox,
    to_hitl_request,
)
from reliable_graph.escalation.inbox import (
    INBOX_NAMESPACE,
    AlreadyResolvedError,
    AuditEntry,
    EscalationInbox,
    InboxItem,
    index_escalation,
)
from reliable_graph.escalation.node import HumanEscalation, Mode
from reliable_graph.escalation.protocol import STATUSES, CrashPoint, ThreadView, on_crash_point, read_thread
from reliable_graph.escalation.record import DECISIONS, Action, Escalation, ReviewTask, StepTask, escalation_id
from reliable_graph.escalation.resume import (
    PendingEscalation,
    aanswer_escalations,
    answer_escalations,
    apending_escalations,
    escalation_of,
    escalations_of,
    pending_escalations,
)
from reliable_graph.escalation.server_inbox import ServerInbox

__all__ = [
    "DECISIONS",
    "INBOX_NAMESPACE",
    "STATUSES",
    "Action",
    "AlreadyResolvedError",
    "AuditEntry",
    "EscalationInbox",
    "InboxItem",
    "Mode",
    "index_escalation",
    "ChunkInput",
    "CrashPoint",
    "Decision",
    "Escalation",
    "Format",
    "HumanEscalation",
    "PendingEscalation",
    "ReviewTask",
    "ServerInbox",
    "StepTask",
    "ThreadView",
    "aanswer_escalations",
    "answer_escalations",
    "apending_escalations",
    "escalation_id",
    "describe_markdown",
    "escalation_of",
    "escalations_of",
    "on_crash_point",
    "parse_answer",
    "pending_escalations",
    "read_thread",
    "render",
    "response_schema",
    "to_agent_inbox",
    "to_hitl_request",
]
