"""reliable-graph: context gates, confidence routing, retry with re-fetch and human escalation for LangGraph.

The public names load on first use (as LangChain's packages do), so `import reliable_graph`
and the `reliable-graph` command start at once; `from reliable_graph import X` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reliable_graph.errors import (
        AlreadyAnsweredError,
        EscalationSerializationError,
        InvalidAnswerError,
        InvalidScoreError,
        MissingStateKeyError,
        NoPendingEscalationError,
        ReliableGraphError,
        RouteTargetError,
    )
    from reliable_graph.escalation import (
        AlreadyResolvedError,
        AuditEntry,
        Decision,
        Escalation,
        EscalationInbox,
        HumanEscalation,
        InboxItem,
        PendingEscalation,
        aanswer_escalations,
        answer_escalations,
        apending_escalations,
        escalation_of,
        parse_answer,
        pending_escalations,
        to_agent_inbox,
        to_hitl_request,
    )
    from reliable_graph.evaluators import (
        AllOf,
        BaseEvaluator,
        Chunk,
        Completeness,
        EvalInput,
        Evaluator,
        Freshness,
        LexicalRelevance,
        Predicate,
        RegexMatch,
        RequiredFields,
        SchemaValid,
        Score,
        arun_evaluator,
        as_chunk,
        as_chunks,
        run_evaluator,
    )
    from reliable_graph.graph import validate_graph
    from reliable_graph.nodes import (
        ConfidenceRouter,
        ContextGate,
        Refetch,
        ReliableStep,
        Retrieve,
        enrich_query,
        latest_verdict,
        reliable_step,
    )
    from reliable_graph.resilience import Chaos, ConnectorRetry, FaultProfile, classify_error, inject_faults
    from reliable_graph.state import (
        RELIABILITY_KEY,
        ReliabilityState,
        StepRecord,
        merge_reliability,
        reliability_channel,
        run_outcome,
        step_outcomes,
        task_records,
    )

_EXPORTS: dict[str, str] = {
    "AllOf": "reliable_graph.evaluators",
    "AlreadyAnsweredError": "reliable_graph.errors",
    "AlreadyResolvedError": "reliable_graph.escalation",
    "AuditEntry": "reliable_graph.escalation",
    "BaseEvaluator": "reliable_graph.evaluators",
    "Chaos": "reliable_graph.resilience",
    "Chunk": "reliable_graph.evaluators",
    "Completeness": "reliable_graph.evaluators",
    "ConfidenceRouter": "reliable_graph.nodes",
    "ConnectorRetry": "reliable_graph.resilience",
    "ContextGate": "reliable_graph.nodes",
    "Decision": "reliable_graph.escalation",
    "Escalation": "reliable_graph.escalation",
    "EscalationInbox": "reliable_graph.escalation",
    "EscalationSerializationError": "reliable_graph.errors",
    "EvalInput": "reliable_graph.evaluators",
    "Evaluator": "reliable_graph.evaluators",
    "FaultProfile": "reliable_graph.resilience",
    "Freshness": "reliable_graph.evaluators",
    "HumanEscalation": "reliable_graph.escalation",
    "InboxItem": "reliable_graph.escalation",
    "InvalidAnswerError": "reliable_graph.errors",
    "InvalidScoreError": "reliable_graph.errors",
    "LexicalRelevance": "reliable_graph.evaluators",
    "MissingStateKeyError": "reliable_graph.errors",
    "NoPendingEscalationError": "reliable_graph.errors",
    "PendingEscalation": "reliable_graph.escalation",
    "Predicate": "reliable_graph.evaluators",
    "RELIABILITY_KEY": "reliable_graph.state",
    "Refetch": "reliable_graph.nodes",
    "RegexMatch": "reliable_graph.evaluators",
    "ReliabilityState": "reliable_graph.state",
    "ReliableGraphError": "reliable_graph.errors",
    "ReliableStep": "reliable_graph.nodes",
    "RequiredFields": "reliable_graph.evaluators",
    "Retrieve": "reliable_graph.nodes",
    "RouteTargetError": "reliable_graph.errors",
    "SchemaValid": "reliable_graph.evaluators",
    "Score": "reliable_graph.evaluators",
    "StepRecord": "reliable_graph.state",
    "aanswer_escalations": "reliable_graph.escalation",
    "answer_escalations": "reliable_graph.escalation",
    "apending_escalations": "reliable_graph.escalation",
    "arun_evaluator": "reliable_graph.evaluators",
    "as_chunk": "reliable_graph.evaluators",
    "as_chunks": "reliable_graph.evaluators",
    "classify_error": "reliable_graph.resilience",
    "enrich_query": "reliable_graph.nodes",
    "escalation_of": "reliable_graph.escalation",
    "inject_faults": "reliable_graph.resilience",
    "latest_verdict": "reliable_graph.nodes",
    "merge_reliability": "reliable_graph.state",
    "parse_answer": "reliable_graph.escalation",
    "pending_escalations": "reliable_graph.escalation",
    "reliability_channel": "reliable_graph.state",
    "reliable_step": "reliable_graph.nodes",
    "run_evaluator": "reliable_graph.evaluators",
    "run_outcome": "reliable_graph.state",
    "step_outcomes": "reliable_graph.state",
    "task_records": "reliable_graph.state",
    "to_agent_inbox": "reliable_graph.escalation",
    "to_hitl_request": "reliable_graph.escalation",
    "validate_graph": "reliable_graph.graph",
}
"""Where each public name lives."""

__all__ = [
    "RELIABILITY_KEY",
    "AllOf",
    "AlreadyAnsweredError",
    "AlreadyResolvedError",
    "AuditEntry",
    "Chaos",
    "ConnectorRetry",
    "BaseEvaluator",
    "Chunk",
    "Completeness",
    "ConfidenceRouter",
    "ContextGate",
    "Decision",
    "Escalation",
    "EscalationInbox",
    "EscalationSerializationError",
    "EvalInput",
    "FaultProfile",
    "Evaluator",
    "Freshness",
    "HumanEscalation",
    "InboxItem",
    "InvalidAnswerError",
    "InvalidScoreError",
    "LexicalRelevance",
    "MissingStateKeyError",
    "NoPendingEscalationError",
    "PendingEscalation",
    "Predicate",
    "Refetch",
    "RegexMatch",
    "ReliabilityState",
    "ReliableGraphError",
    "ReliableStep",
    "Retrieve",
    "RequiredFields",
    "RouteTargetError",
    "SchemaValid",
    "Score",
    "StepRecord",
    "aanswer_escalations",
    "answer_escalations",
    "apending_escalations",
    "arun_evaluator",
    "as_chunk",
    "as_chunks",
    "classify_error",
    "enrich_query",
    "escalation_of",
    "inject_faults",
    "latest_verdict",
    "merge_reliability",
    "parse_answer",
    "pending_escalations",
    "reliability_channel",
    "reliable_step",
    "run_evaluator",
    "run_outcome",
    "step_outcomes",
    "task_records",
    "to_agent_inbox",
    "to_hitl_request",
    "validate_graph",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'reliable_graph' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
