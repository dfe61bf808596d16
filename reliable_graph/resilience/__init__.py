"""Resilience against brittle connectors: one error classifier, connector retries, fault injection."""

from reliable_graph.resilience.chaos import (
    FAULTS,
    Chaos,
    FaultProfile,
    HTTPStatusFault,
    activate,
    active_chaos,
    inject_faults,
)
from reliable_graph.resilience.classify import ErrorClass, classify_error, retry_after, retry_on
from reliable_graph.resilience.connectors import ConnectorRetry, VirtualClock, observe_retries
from reliable_graph.resilience.runner import ExecutedTasks, durable_tasks, run_chaos

__all__ = [
    "FAULTS",
    "Chaos",
    "ConnectorRetry",
    "ErrorClass",
    "ExecutedTasks",
    "FaultProfile",
    "HTTPStatusFault",
    "VirtualClock",
    "activate",
    "active_chaos",
    "classify_error",
    "durable_tasks",
    "inject_faults",
    "observe_retries",
    "retry_after",
    "retry_on",
    "run_chaos",
]
