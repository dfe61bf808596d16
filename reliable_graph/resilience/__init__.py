"""Resilience against brittle connectors: retries with back-off on transient errors."""

from reliable_graph.resilience.connectors import ConnectorRetry, VirtualClock

__all__ = ["ConnectorRetry", "VirtualClock"]
