"""Call a brittle connector (an API, a retriever, a model endpoint) with retries on transient errors.

A thin layer over tenacity (already a langchain-core dependency). What to retry is the error
classifier's call by default (`classify_error`: timeouts, dropped connections, HTTP
408/409/425/429/5xx); an HTTP 400-class error propagates at once, and LangGraph's control flow
(`GraphInterrupt`, `GraphBubbleUp`, `ParentCommand`) is never retried whatever `retry_on` says.
The back-off is exponential with full jitter (tenacity's `wait_random_exponential`); a server's
`Retry-After` is honoured instead when the exception carries one. The first attempt runs
directly: tenacity starts only at the first error worth retrying, so a call that succeeds costs
no more than the call itself. An injectable `sleep` lets tests and benchmarks sum the waits on
a `VirtualClock` instead of sleeping. Use LangGraph's `RetryPolicy(retry_on=retry_on)` instead
when a whole node should re-run.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity
from langgraph.errors import GraphBubbleUp
from tenacity import RetryCallState

from reliable_graph.resilience.classify import classify_error
from reliable_graph.resilience.classify import retry_after as server_retry_after
from reliable_graph.resilience.classify import retry_on as transient

__all__ = ["DEFAULT_RETRY", "ConnectorRetry", "VirtualClock", "observe_retries"]

T = TypeVar("T")

RetryObserver = Callable[[BaseException, float], None]
_observers: list[RetryObserver] = []
_observers_lock = threading.Lock()


@contextmanager
def observe_retries(observer: RetryObserver) -> Iterator[None]:
    """Call `observer(exc, wait)` before every retry any `ConnectorRetry` makes in this process.

    The chaos runner uses it to count retries and waits per fault type.

    Example:
        ```python
        from reliable_graph.resilience import ConnectorRetry, VirtualClock, observe_retries

        seen = []
        failures = [TimeoutError("slow")]

        def flaky() -> str:
            if failures:
                raise failures.pop()
            return "ok"

        with observe_retries(lambda exc, wait: seen.append(type(exc).__name__)):
            ConnectorRetry(sleep=VirtualClock().sleep).call(flaky)
        assert seen == ["TimeoutError"]
        ```
    """
    with _observers_lock:
        _observers.append(observer)
    try:
        yield
    finally:
        with _observers_lock:
            _observers.remove(observer)


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


def _hint(exc: BaseException) -> float | None:
    """The server's Retry-After of `exc` or of the cause that makes it transient."""
    return classify_error(exc).retry_after if server_retry_after(exc) is None else server_retry_after(exc)


def finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None (booleans, NaN, infinities, huge integers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _check_non_negative(value: Any, what: str) -> None:
    number = finite_number(value)
    if number is None or number < 0:
        msg = f"ConnectorRetry({what}=...) must be a non-negative number, got {value!r}"
        raise ValueError(msg)


RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorRetry:
    """How to retry a connector call: which errors, how many attempts, how long to wait.

    Which errors: by default the classifier's transient ones (`retry_on` in
    `reliable_graph.resilience`); or a tuple of exception classes, or a predicate. LangGraph's
    control-flow exceptions are never retried. How long: before retry *n* (1-based) a random
    wait in `[0, initial_wait * backoff ** (n - 1)]` capped at `max_wait` (full jitter,
    tenacity's `wait_random_exponential`; `jitter=False` waits the ceiling itself); when the
    exception carries a server's Retry-After (an attribute `retry_after`, or the header of its
    response), that is waited instead, capped at `max_wait`. After `max_attempts` failed
    attempts the last exception is re-raised unchanged.

    Example:
        ```python
        import httpx
        from reliable_graph.resilience import ConnectorRetry, VirtualClock

        request = httpx.Request("GET", "https://api.example.com/search")
        limited = httpx.Response(429, headers={"Retry-After": "0.2"}, request=request)
        failures = [httpx.HTTPStatusError("429", request=request, response=limited),
                    httpx.ReadTimeout("slow", request=request)]

        def flaky() -> str:
            if failures:
                raise failures.pop(0)
            return "ok"

        clock = VirtualClock()
        retry = ConnectorRetry(max_attempts=3, initial_wait=0.1, jitter=False, sleep=clock.sleep)
        assert retry.call(flaky) == "ok"
        assert clock.waits == 2 and abs(clock.total - 0.4) < 1e-9  # Retry-After 0.2, then 0.1 * 2 (retry 2)
        ```
    """

    max_attempts: int = 5
    """Attempts in all, the first included (at least 1)."""
    initial_wait: float = 0.1
    """Back-off ceiling before the first retry, in seconds."""
    backoff: float = 2.0
    """Multiplier of the back-off ceiling after each retry (at least 1)."""
    max_wait: float = 10.0
    """Cap on any single wait, Retry-After included, in seconds."""
    jitter: bool = True
    """Full jitter: wait a uniform random share of the back-off ceiling (spreads a herd of clients)."""
    retry_on: RetryOn | None = None
    """What to retry: None for the classifier's transient errors, exception classes, or a predicate."""
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    """The sync sleep (default `time.sleep`); a `VirtualClock().sleep` sums waits instead."""
    asleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    """The async sleep (default `asyncio.sleep`)."""
    on_retry: RetryObserver | None = field(default=None, repr=False)
    """Called as `on_retry(exc, wait)` before each retry (to log or count them)."""

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
        if not isinstance(self.jitter, bool):
            msg = f"ConnectorRetry(jitter=...) must be True or False, got {self.jitter!r}"
            raise TypeError(msg)
        spec = self.retry_on
        if spec is not None and not (
            (isinstance(spec, tuple) and all(isinstance(e, type) and issubclass(e, BaseException) for e in spec))
            or (callable(spec) and not isinstance(spec, type))
        ):
            msg = (
                "ConnectorRetry(retry_on=...) must be None (the classifier), a tuple of exception classes "
                f"or a predicate exc -> bool, got {spec!r}"
            )
            raise TypeError(msg)
        if not callable(self.sleep) or not callable(self.asleep):
            msg = "ConnectorRetry(sleep=..., asleep=...) must be callables taking seconds"
            raise TypeError(msg)
        if self.on_retry is not None and not callable(self.on_retry):
            msg = "ConnectorRetry(on_retry=...) must be a callable (exc, wait) -> None"
            raise TypeError(msg)

    def should_retry(self, exc: BaseException) -> bool:
        """Whether `exc` is worth another attempt under this policy (never LangGraph's control flow).

        Example:
            ```python
            from langgraph.errors import GraphInterrupt
            from reliable_graph.resilience import ConnectorRetry

            retry = ConnectorRetry()
            assert retry.should_retry(ConnectionResetError("reset by peer"))
            assert not retry.should_retry(ValueError("bad input"))
            assert not ConnectorRetry(retry_on=(Exception,)).should_retry(GraphInterrupt())
            ```
        """
        if isinstance(exc, GraphBubbleUp):
            return False
        spec = self.retry_on
        if spec is None:
            return transient(exc)
        if isinstance(spec, tuple):
            return isinstance(exc, spec)
        return bool(spec(exc))

    def wait_for(self, exc: BaseException | None, retry_number: int) -> float:
        """The wait ceiling before retry `retry_number` (1-based) after `exc`, in seconds.

        A server's Retry-After is the wait itself; otherwise this is the back-off ceiling, of
        which full jitter waits a uniform random share.

        Example:
            ```python
            from reliable_graph.resilience import ConnectorRetry

            retry = ConnectorRetry(initial_wait=0.1, backoff=2.0, max_wait=0.3)
            assert [retry.wait_for(None, n) for n in (1, 2, 3)] == [0.1, 0.2, 0.3]
            ```
        """
        hint = _hint(exc) if exc is not None else None
        if hint is not None:
            return float(min(hint, self.max_wait))
        return float(min(self.initial_wait * self.backoff ** (retry_number - 1), self.max_wait))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is not None and _hint(exc) is not None:
            return self.wait_for(exc, state.attempt_number)
        strategy = tenacity.wait_random_exponential if self.jitter else tenacity.wait_exponential
        wait = strategy(multiplier=self.initial_wait, max=self.max_wait, exp_base=self.backoff)
        return float(wait(state))

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if exc is None:
            return
        if self.on_retry is not None:
            self.on_retry(exc, wait)
        for observer in list(_observers):
            observer(exc, wait)

    def _retry(self, state: RetryCallState) -> bool:
        if state.attempt_number == 1:
            return True  # the first attempt's error, judged worth retrying before tenacity started
        exc = state.outcome.exception() if state.outcome is not None and state.outcome.failed else None
        return exc is not None and self.should_retry(exc)

    def _options(self) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.max_attempts),
            "wait": self._wait,
            "retry": self._retry,
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)`, retrying what `should_retry` accepts; re-raise the last error.

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
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            if not self.should_retry(exc):
                raise
            first = exc
        return self._after_failure(first, fn, *args, **kwargs)

    def _after_failure(self, first: BaseException, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Go on with a call whose first attempt (made directly) raised `first`, which `should_retry` accepts.

        Tenacity starts here, from that failure: the retries, waits and callbacks are those of a
        call made through tenacity from the start.
        """
        retrying = tenacity.Retrying(sleep=self.sleep, **self._options())
        return retrying(_resumed(fn, first), *args, **kwargs)

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

            retry = ConnectorRetry(initial_wait=0.5, jitter=False, asleep=clock.asleep)
            assert asyncio.run(retry.acall(fetch)) == "chunks" and clock.total == 0.5
            ```
        """
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            if not self.should_retry(exc):
                raise
            first = exc
        return await self._aafter_failure(first, fn, *args, **kwargs)

    async def _aafter_failure(
        self, first: BaseException, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any
    ) -> T:
        """Async twin of `_after_failure`, waiting with `asleep`."""
        retrying = tenacity.AsyncRetrying(sleep=self.asleep, **self._options())
        result: T = await retrying(_aresumed(fn, first), *args, **kwargs)
        return result


# The first attempt runs directly (a call that succeeds, or fails for good, never builds
# tenacity's machinery); once it fails with an error worth retrying, tenacity takes over from
# that failure: its attempt 1 re-raises the error already caught, so the predicate, the waits,
# the callbacks and the attempt count are exactly those of a call made through tenacity.


def _resumed(fn: Callable[..., T], first: BaseException) -> Callable[..., T]:
    pending = [first]

    def attempt(*args: Any, **kwargs: Any) -> T:
        if pending:
            raise pending.pop()
        return fn(*args, **kwargs)

    return attempt


def _aresumed(fn: Callable[..., Awaitable[T]], first: BaseException) -> Callable[..., Awaitable[T]]:
    pending = [first]

    async def attempt(*args: Any, **kwargs: Any) -> T:
        if pending:
            raise pending.pop()
        return await fn(*args, **kwargs)

    return attempt


DEFAULT_RETRY = ConnectorRetry()
"""The nodes' default retries (`reliable_step`, `Refetch`, `Retrieve`): the classifier's transient
errors, 5 attempts, full-jitter back-off from 0.1 s capped at 10 s, Retry-After honoured."""
