from __future__ import annotations

import asyncio
import inspect
import re
import textwrap

import pytest

from reliable_graph.demo import PermanentConnectorError, RateLimitError, TransientConnectorError
from reliable_graph.resilience import ConnectorRetry, VirtualClock, connectors

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _flaky(errors: list[BaseException], calls: list[int]) -> object:
    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn


def test_connector_retry_honours_retry_after_then_backs_off() -> None:
    clock = VirtualClock()
    calls: list[int] = []
    fn = _flaky([RateLimitError(0.04), TransientConnectorError("timeout"), TransientConnectorError("t")], calls)
    retry = ConnectorRetry(initial_wait=0.01, backoff=2.0, retry_on=(TransientConnectorError,), sleep=clock.sleep)
    assert retry.call(fn) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 4
    # Retry-After 0.04 for the 429, then back-off 0.02 (retry 2) and 0.04 (retry 3).
    assert clock.waits == 3 and clock.total == pytest.approx(0.04 + 0.02 + 0.04)


def test_connector_retry_permanent_error_propagates_at_once() -> None:
    clock = VirtualClock()
    calls: list[int] = []
    fn = _flaky([PermanentConnectorError("HTTP 400")], calls)
    retry = ConnectorRetry(retry_on=(TransientConnectorError,), sleep=clock.sleep)
    with pytest.raises(PermanentConnectorError):
        retry.call(fn)  # type: ignore[arg-type]
    assert len(calls) == 1 and clock.waits == 0


def test_connector_retry_exhausted_reraises_last_error() -> None:
    clock = VirtualClock()
    calls: list[int] = []
    fn = _flaky([TransientConnectorError(f"timeout {i}") for i in range(5)], calls)
    retry = ConnectorRetry(max_attempts=3, retry_on=(TransientConnectorError,), sleep=clock.sleep)
    with pytest.raises(TransientConnectorError, match="timeout 2"):
        retry.call(fn)  # type: ignore[arg-type]
    assert len(calls) == 3 and clock.waits == 2


def test_connector_retry_caps_waits_at_max_wait() -> None:
    retry = ConnectorRetry(initial_wait=1.0, max_wait=1.5)
    assert retry.wait_for(RateLimitError(30.0), 1) == 1.5
    assert retry.wait_for(None, 4) == 1.5


def test_connector_retry_acall_uses_async_sleep() -> None:
    clock = VirtualClock()
    tries: list[int] = []

    async def fetch(x: int) -> int:
        tries.append(x)
        if len(tries) < 3:
            raise TimeoutError("slow")
        return x * 2

    retry = ConnectorRetry(initial_wait=0.1, asleep=clock.asleep)
    assert asyncio.run(retry.acall(fetch, 21)) == 42
    assert clock.total == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_attempts": 0}, ValueError),
        ({"initial_wait": -1}, ValueError),
        ({"backoff": 0.5}, ValueError),
        ({"retry_on": (ValueError, "x")}, TypeError),
        ({"retry_on": ValueError}, TypeError),
    ],
)
def test_connector_retry_rejects_bad_configuration(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ConnectorRetry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", connectors.__all__)
def test_connectors_docstring_examples_run(name: str) -> None:
    obj = getattr(connectors, name)
    docs = [inspect.getdoc(obj) or ""]
    docs += [inspect.getdoc(m) or "" for m in vars(obj).values() if callable(m) and not m.__name__.startswith("_")]
    blocks = [b for d in docs for b in BLOCK.findall(d)]
    assert blocks, f"{name} has no example"
    for block in blocks:
        exec(compile(textwrap.dedent(block), f"<{name}>", "exec"), {"__name__": f"doc_{name}"})
