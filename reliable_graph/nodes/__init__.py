"""The reliability nodes: drop them into any `StateGraph`."""

from reliable_graph.escalation import HumanEscalation
from reliable_graph.nodes.confidence import ConfidenceRouter, latest_verdict
from reliable_graph.nodes.context_gate import ContextGate
from reliable_graph.nodes.refetch import Refetch, Retrieve, enrich_query
from reliable_graph.nodes.step import ReliableStep, reliable_step

__all__ = [
    "ConfidenceRouter",
    "ContextGate",
    "HumanEscalation",
    "Refetch",
    "ReliableStep",
    "Retrieve",
    "enrich_query",
    "latest_verdict",
    "reliable_step",
]
