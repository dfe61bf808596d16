"""Call a brittle connector (an API, a retriever, a model endpoint) with retries on transient errors.

A thin layer over tenacity (already a langchain-core dependency): exponential back-off,
a `Retry-After` hint honoured when the exception carries one (HTTP 429), a bounded number of
attempts, and an injectable `sleep` so that tests and benchmarks can sum the waits on a
`VirtualClock` instead of sleeping. Errors that retrying cannot fix (HTTP 400-class) are not
in `retry_on` and propagate at once; route them to a human with `reliable_step(escalate_on=...)`.
Use LangGraph's `RetryPolicy` instead when a whole node should re-run.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity
from tenacity import RetryCallState

__all__ = ["ConnectorRetry", "VirtualClock"]

T = TypeVar("T")


@dataclass
class VirtualClock:
    """A stand-in for `time.sleep` that adds up the waits instead of sleeping.

    Pass its `sleep` to `ConnectorRetry(sleep=...)`; `total` is then the time the retries would
    have waited, to report next to any figure measured with it.

    Example:
        ```python
        from reliable_graph.resilience import VirtualClock

        clock = VirtualClock()
        clock.sleep(0.25)
        clock.sleep(0.5)
        assert clock.total == 0.75 and clock.waits == 2
        ```
    """

    total: float = 0.0
    """Seconds of waiting summed so far."""
    waits: int = 0
    """How many waits were requested."""

    def sleep(self, seconds: float) -> None:
        """Record a wait of `seconds` without sleeping."""
        self.total += float(seconds)
        self.waits += 1

    async def asleep(self, seconds: float) -> None:
        """Async twin of `sleep`."""
        self.sleep(seconds)


def _check_non_negative(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        msg = f"ConnectorRetry({what}=...) must be a non-negative number, got {value!r}"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorRetry:
    """How to retry a connector call: which errors, how many attempts, how long to wait.

    The wait before retry *n* (1-based) is `initial_wait * backoff ** (n - 1)`, capped at
    `max_wait`; when the exception has a numeric attribute named `retry_after_attr` (a rate
    limit's Retry-After, in seconds) that value is waited instead (also capped at `max_wait`).
    After `max_attempts` failed attempts the last exception is re-raised unchanged.

    Example:
        ```python
        from reliable_graph.resilience import ConnectorRetry, VirtualClock

        class RateLimited(Exception):
            def __init__(self, retry_after: float) -> None:
                super().__init__("HTTP 429")
                self.retry_after = retry_after

        failures = [RateLimited(0.2), TimeoutError("slow")]

        def flaky() -> str:
            if failures:
                raise failures.pop(0)
            return "ok"

        clock = VirtualClock()
        retry = ConnectorRetry(max_attempts=3, initial_wait=0.1, retry_on=(RateLimited, TimeoutError),
                               sleep=clock.sleep)
        assert retry.call(flaky) == "ok"
        assert clock.waits == 2 and abs(clock.total - 0.4) < 1e-9  # Retry-After 0.2, then 0.1 * 2 (retry 2)
        ```
    """

    max_attempts: int = 5
    """Attempts in all, the first included (at least 1)."""
    initial_wait: float = 0.1
    """Back-off before the first retry, in seconds."""
    backoff: float = 2.0
    """Multiplier of the back-off after each retry (at least 1)."""
    max_wait: float = 10.0
    """Cap on any single wait, Retry-After included, in seconds."""
    retry_on: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)
    """Exception classes worth retrying; anything else propagates at once."""
    retry_after_attr: str = "retry_after"
    """Attribute of the exception holding a server's Retry-After, in seconds."""
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    """The sync sleep (default `time.sleep`); a `VirtualClock().sleep` sums waits instead."""
    asleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    """The async sleep (default `asyncio.sleep`)."""

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            msg = f"ConnectorRetry(max_attempts=...) must be an integer >= 1, got {self.max_attempts!r}"
            raise ValueError(msg)
        _check_non_negative(self.initial_wait, "initial_wait")
        _check_non_negative(self.max_wait, "max_wait")
        _check_non_negative(self.backoff, "backoff")
        if self.backoff < 1:
            msg = f"ConnectorRetry(backoff=...) must be at least 1, got {self.backoff!r}"
            raise ValueError(msg)
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in self.retry_on
        ):
            msg = f"ConnectorRetry(retry_on=...) must be a tuple of exception classes, got {self.retry_on!r}"
            raise TypeError(msg)
        if not callable(self.sleep) or not callable(self.asleep):
            msg = "ConnectorRetry(sleep=..., asleep=...) must be callables taking seconds"
            raise TypeError(msg)

    def wait_for(self, exc: BaseException | None, retry_number: int) -> float:
        """The wait before retry `retry_number` (1-based) after `exc`, in seconds.

        Example:
            ```python
            from reliable_graph.resilience import ConnectorRetry

            retry = ConnectorRetry(initial_wait=0.1, backoff=2.0, max_wait=0.3)
            assert [retry.wait_for(None, n) for n in (1, 2, 3)] == [0.1, 0.2, 0.3]
            ```
        """
        hint = getattr(exc, self.retry_after_attr, None) if exc is not None else None
        if isinstance(hint, (int, float)) and not isinstance(hint, bool) and hint >= 0 and not math.isnan(hint):
            return float(min(hint, self.max_wait))
        return float(min(self.initial_wait * self.backoff ** (retry_number - 1), self.max_wait))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.wait_for(exc, state.attempt_number)

    def _options(self) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.max_attempts),
            "wait": self._wait,
            "retry": tenacity.retry_if_exception_type(self.retry_on),
            "reraise": True,
        }

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)`, retrying on `retry_on`; re-raise the last error when out of attempts.

        Example:
            ```python
            from reliable_graph.resilience import ConnectorRetry, VirtualClock

            calls = []

            def always_down() -> None:
                calls.append(1)
                raise ConnectionError("refused")

            retry = ConnectorRetry(max_attempts=3, sleep=VirtualClock().sleep)
            try:
                retry.call(always_down)
            except ConnectionError:
                pass
            assert len(calls) == 3
            ```
        """
        retrying = tenacity.Retrying(sleep=self.sleep, **self._options())
        return retrying(fn, *args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Async twin of `call` for a coroutine function, waiting with `asleep`.

        Example:
            ```python
            import asyncio
            from reliable_graph.resilience import ConnectorRetry, VirtualClock

            clock = VirtualClock()
            tries = []

            async def fetch() -> str:
                tries.append(1)
                if len(tries) < 2:
                    raise TimeoutError("slow")
                return "chunks"

            retry = ConnectorRetry(initial_wait=0.5, asleep=clock.asleep)
            assert asyncio.run(retry.acall(fetch)) == "chunks" and clock.total == 0.5
            ```
        """
        retrying = tenacity.AsyncRetrying(sleep=self.asleep, **self._options())
        result: T = await retrying(fn, *args, **kwargs)
        return result
