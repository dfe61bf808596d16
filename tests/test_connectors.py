from __future__ import annotations

import asyncio
import inspect
import math
import random
import re
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import tenacity

from reliable_graph.resilience import ConnectorRetry, VirtualClock, connectors, observe_retries

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
REQUEST = httpx.Request("GET", "https://api.example.com/search")


def status_error(status: int, retry_after: str | None = None) -> httpx.HTTPStatusError:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    response = httpx.Response(status, headers=headers, request=REQUEST)
    return httpx.HTTPStatusError(f"HTTP {status}", request=REQUEST, response=response)


def read_timeout(message: str = "The read operation timed out") -> httpx.ReadTimeout:
    return httpx.ReadTimeout(message, request=REQUEST)


def _flaky(errors: list[BaseException], calls: list[int]) -> Callable[[], str]:
    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return fn


def test_connector_retry_honours_retry_after_then_backs_off() -> None:
    clock = VirtualClock()
    calls: list[int] = []
    fn = _flaky([status_error(429, "0.04"), read_timeout(), ConnectionResetError(104, "reset")], calls)
    retry = ConnectorRetry(initial_wait=0.01, backoff=2.0, jitter=False, sleep=clock.sleep)
    assert retry.call(fn) == "ok"
    assert len(calls) == 4
    # Retry-After 0.04 for the 429, then back-off 0.02 (retry 2) and 0.04 (retry 3).
    assert clock.waits == 3 and clock.total == pytest.approx(0.04 + 0.02 + 0.04)


def test_connector_retry_honours_retry_after_even_with_jitter() -> None:
    clock = VirtualClock()
    fn = _flaky([status_error(503, "0.3"), status_error(429, "0.7")], [])
    assert ConnectorRetry(initial_wait=0.01, sleep=clock.sleep).call(fn) == "ok"
    assert clock.total == pytest.approx(1.0)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(status_error(400), id="httpx-400"),
        pytest.param(status_error(401), id="httpx-401"),
        pytest.param(status_error(404), id="httpx-404"),
        pytest.param(status_error(422, "1"), id="httpx-422-with-retry-after"),
        pytest.param(PermissionError(13, "denied"), id="PermissionError"),
        pytest.param(KeyError("answer"), id="bug-KeyError"),
    ],
)
def test_connector_retry_permanent_error_propagates_at_once(error: BaseException) -> None:
    clock = VirtualClock()
    calls: list[int] = []
    fn = _flaky([error], calls)
    retry = ConnectorRetry(sleep=clock.sleep)
    with pytest.raises(type(error)) as raised:
        retry.call(fn)
    assert raised.value is error
    assert len(calls) == 1 and clock.waits == 0


def test_connector_retry_exhausted_reraises_last_error() -> None:
    clock = VirtualClock()
    calls: list[int] = []
    fn = _flaky([read_timeout(f"timeout {i}") for i in range(5)], calls)
    retry = ConnectorRetry(max_attempts=3, sleep=clock.sleep)
    with pytest.raises(httpx.ReadTimeout, match="timeout 2"):
        retry.call(fn)
    assert len(calls) == 3 and clock.waits == 2


def test_connector_retry_max_attempts_one_never_retries() -> None:
    calls: list[int] = []
    clock = VirtualClock()
    with pytest.raises(TimeoutError):
        ConnectorRetry(max_attempts=1, sleep=clock.sleep).call(_flaky([TimeoutError("slow")], calls))
    assert len(calls) == 1 and clock.waits == 0


def test_connector_retry_caps_waits_at_max_wait() -> None:
    retry = ConnectorRetry(initial_wait=1.0, max_wait=1.5)
    assert retry.wait_for(status_error(429, "30"), 1) == 1.5
    assert retry.wait_for(None, 4) == 1.5
    assert retry.wait_for(None, 1) == 1.0
    # and so are the waits actually taken, Retry-After and back-off alike
    clock = VirtualClock()
    fn = _flaky([status_error(429, "30"), read_timeout(), read_timeout(), read_timeout()], [])
    capped = ConnectorRetry(initial_wait=1.0, max_wait=1.5, jitter=False, sleep=clock.sleep)
    assert capped.call(fn) == "ok"
    assert clock.waits == 4 and clock.total == pytest.approx(1.5 + 1.5 + 1.5 + 1.5)


def test_connector_retry_acall_uses_async_sleep() -> None:
    clock = VirtualClock()
    sync_clock = VirtualClock()
    tries: list[int] = []

    async def fetch(x: int) -> int:
        tries.append(x)
        if len(tries) < 3:
            raise TimeoutError("slow")
        return x * 2

    retry = ConnectorRetry(initial_wait=0.1, jitter=False, sleep=sync_clock.sleep, asleep=clock.asleep)
    assert asyncio.run(retry.acall(fetch, 21)) == 42
    assert clock.total == pytest.approx(0.1 + 0.2) and clock.waits == 2
    assert sync_clock.waits == 0


def test_connector_retry_passes_arguments() -> None:
    def join(a: str, b: str, *, sep: str) -> str:
        return f"{a}{sep}{b}"

    assert ConnectorRetry().call(join, "x", "y", sep="-") == "x-y"


def test_jittered_waits_lie_under_the_ceiling_and_vary() -> None:
    retry_seen: list[tuple[int, float]] = []
    retry = ConnectorRetry(max_attempts=6, initial_wait=0.1, backoff=2.0, max_wait=1.0, sleep=VirtualClock().sleep)
    assert retry.jitter is True  # the default
    for _ in range(40):  # 40 calls x 5 retries = 200 waits
        attempt = [0]

        def observe(exc: BaseException, wait: float, attempt: list[int] = attempt) -> None:
            attempt[0] += 1
            retry_seen.append((attempt[0], wait))

        jittered = ConnectorRetry(
            max_attempts=retry.max_attempts,
            initial_wait=retry.initial_wait,
            backoff=retry.backoff,
            max_wait=retry.max_wait,
            sleep=retry.sleep,
            on_retry=observe,
        )
        with pytest.raises(TimeoutError):
            jittered.call(_flaky([TimeoutError("slow") for _ in range(6)], []))
    assert len(retry_seen) == 200
    for number, wait in retry_seen:
        ceiling = retry.wait_for(None, number)
        assert 0.0 <= wait <= ceiling, (number, wait, ceiling)
    assert len({wait for _, wait in retry_seen}) > 100  # full jitter through tenacity, not a fixed schedule
    for number in range(1, 6):  # and each retry's waits spread over its range
        waits = [w for n, w in retry_seen if n == number]
        ceiling = retry.wait_for(None, number)
        assert len(set(waits)) == len(waits) == 40
        assert min(waits) < ceiling / 2 < max(waits)


def test_without_jitter_waits_follow_the_ceiling() -> None:
    seen: list[float] = []
    retry = ConnectorRetry(
        max_attempts=6,
        initial_wait=0.1,
        max_wait=1.0,
        jitter=False,
        sleep=VirtualClock().sleep,
        on_retry=lambda exc, wait: seen.append(wait),
    )
    with pytest.raises(TimeoutError):
        retry.call(_flaky([TimeoutError("slow") for _ in range(6)], []))
    assert seen == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    assert seen == pytest.approx([retry.wait_for(None, n) for n in range(1, 6)])


def test_on_retry_and_observe_retries_receive_each_retry() -> None:
    errors: list[BaseException] = [status_error(429, "0.5"), read_timeout(), ConnectionResetError(104, "reset")]
    expected = list(errors)
    from_hook: list[tuple[BaseException, float]] = []
    from_observer: list[tuple[BaseException, float]] = []
    retry = ConnectorRetry(
        initial_wait=0.1,
        jitter=False,
        sleep=VirtualClock().sleep,
        on_retry=lambda exc, wait: from_hook.append((exc, wait)),
    )
    with observe_retries(lambda exc, wait: from_observer.append((exc, wait))):
        assert retry.call(_flaky(errors, [])) == "ok"
    assert [exc for exc, _ in from_hook] == expected
    assert [wait for _, wait in from_hook] == pytest.approx([0.5, 0.2, 0.4])
    assert from_observer == from_hook
    # Once the block is left the observer hears nothing more.
    assert retry.call(_flaky([TimeoutError("slow")], [])) == "ok"
    assert len(from_observer) == 3 and len(from_hook) == 4


def test_observe_retries_sees_async_retries_and_nests() -> None:
    outer: list[float] = []
    inner: list[float] = []
    errors: list[BaseException] = [TimeoutError("slow")]

    async def fetch() -> str:
        if errors:
            raise errors.pop()
        return "ok"

    clock = VirtualClock()
    retry = ConnectorRetry(initial_wait=0.25, jitter=False, asleep=clock.asleep)
    with observe_retries(lambda exc, wait: outer.append(wait)):
        with observe_retries(lambda exc, wait: inner.append(wait)):
            assert asyncio.run(retry.acall(fetch)) == "ok"
    assert outer == inner == [0.25] and clock.total == 0.25


def test_no_retry_no_callbacks() -> None:
    hook: list[float] = []
    observed: list[float] = []
    retry = ConnectorRetry(on_retry=lambda exc, wait: hook.append(wait))
    with observe_retries(lambda exc, wait: observed.append(wait)):
        assert retry.call(_flaky([], [])) == "ok"
        with pytest.raises(httpx.HTTPStatusError):
            retry.call(_flaky([status_error(404)], []))
    assert hook == observed == []


def test_retry_on_exception_classes() -> None:
    retry = ConnectorRetry(retry_on=(KeyError,), jitter=False, sleep=VirtualClock().sleep)
    calls: list[int] = []
    assert retry.call(_flaky([KeyError("flaky cache")], calls)) == "ok" and len(calls) == 2
    calls.clear()
    with pytest.raises(httpx.ReadTimeout):  # not in the tuple: the classifier is not consulted
        retry.call(_flaky([read_timeout()], calls))
    assert len(calls) == 1


def test_retry_on_predicate() -> None:
    seen: list[BaseException] = []

    def only_key_errors(exc: BaseException) -> bool:
        seen.append(exc)
        return isinstance(exc, KeyError)

    retry = ConnectorRetry(retry_on=only_key_errors, sleep=VirtualClock().sleep)
    calls: list[int] = []
    assert retry.call(_flaky([KeyError("a"), KeyError("b")], calls)) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(TimeoutError):
        retry.call(_flaky([TimeoutError("slow")], calls))
    assert len(calls) == 1 and len(seen) == 3
    assert ConnectorRetry(retry_on=only_key_errors).should_retry(KeyError("x"))


def test_default_retry_on_is_the_classifier() -> None:
    retry = ConnectorRetry()
    assert retry.should_retry(read_timeout()) and retry.should_retry(status_error(503))
    assert retry.should_retry(status_error(429)) and retry.should_retry(ConnectionResetError())
    assert not retry.should_retry(status_error(401)) and not retry.should_retry(ValueError("bug"))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_attempts": 0}, ValueError, "max_attempts"),
        ({"max_attempts": 1.5}, ValueError, "max_attempts"),
        ({"max_attempts": True}, ValueError, "max_attempts"),
        ({"initial_wait": -1}, ValueError, "initial_wait"),
        ({"initial_wait": math.nan}, ValueError, "initial_wait"),
        ({"initial_wait": "0.1"}, ValueError, "initial_wait"),
        ({"max_wait": -0.5}, ValueError, "max_wait"),
        ({"backoff": 0.5}, ValueError, "backoff"),
        ({"backoff": -2}, ValueError, "backoff"),
        ({"retry_on": (ValueError, "x")}, TypeError, "retry_on"),
        ({"retry_on": ValueError}, TypeError, "retry_on"),
        ({"retry_on": [ValueError]}, TypeError, "retry_on"),
        ({"retry_on": (int,)}, TypeError, "retry_on"),
        ({"retry_on": "TimeoutError"}, TypeError, "retry_on"),
        ({"jitter": 1}, TypeError, "jitter"),
        ({"jitter": "yes"}, TypeError, "jitter"),
        ({"jitter": None}, TypeError, "jitter"),
        ({"on_retry": "log"}, TypeError, "on_retry"),
        ({"on_retry": 3}, TypeError, "on_retry"),
        ({"sleep": 0.1}, TypeError, "sleep"),
        ({"asleep": None}, TypeError, "asleep"),
    ],
)
def test_connector_retry_rejects_bad_configuration(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ConnectorRetry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"retry_on": lambda exc: True}, id="retry_on-lambda"),
        pytest.param({"retry_on": callable}, id="retry_on-builtin-predicate"),
        pytest.param({"retry_on": (TimeoutError, ConnectionError)}, id="retry_on-tuple"),
        pytest.param({"retry_on": ()}, id="retry_on-empty-tuple"),
        pytest.param({"retry_on": None}, id="retry_on-None"),
        pytest.param({"jitter": False}, id="jitter-False"),
        pytest.param({"on_retry": print}, id="on_retry-callable"),
        pytest.param({"max_attempts": 1, "initial_wait": 0, "max_wait": 0, "backoff": 1}, id="edges"),
    ],
)
def test_connector_retry_accepts_good_configuration(kwargs: dict[str, object]) -> None:
    ConnectorRetry(**kwargs)  # type: ignore[arg-type]


class _NoTenacity:
    """Stands in for the tenacity module: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        msg = f"tenacity.{name} was used by a call that needed no retry"
        raise AssertionError(msg)


def test_a_call_that_needs_no_retry_never_enters_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connectors, "tenacity", _NoTenacity())
    retry = ConnectorRetry(sleep=VirtualClock().sleep)
    assert retry.call(lambda x: x * 2, 21) == 42
    with pytest.raises(httpx.HTTPStatusError):  # permanent: re-raised as is, unretried
        retry.call(_flaky([status_error(404)], []))

    async def double(x: int) -> int:
        return x * 2

    async def forbidden() -> None:
        raise status_error(403)

    assert asyncio.run(retry.acall(double, 21)) == 42
    with pytest.raises(httpx.HTTPStatusError):
        asyncio.run(retry.acall(forbidden))
    # and the stand-in does catch a use: a transient error needs tenacity
    with pytest.raises(AssertionError, match="tenacity"):
        retry.call(_flaky([read_timeout()], []))


# The same failures through `call`/`acall` and through tenacity from the first attempt (how every
# call was made before the first attempt ran directly): each scenario must give the same result,
# attempts, waits (jitter from the same seed), callbacks, observers and predicate calls.
SCENARIOS: dict[str, tuple[Callable[[], list[BaseException]], dict[str, Any]]] = {
    "retry-after-then-jittered-back-off": (
        lambda: [status_error(429, "0.2"), read_timeout(), ConnectionResetError(104, "reset")],
        {},
    ),
    "without-jitter": (lambda: [read_timeout(), status_error(503), read_timeout()], {"jitter": False}),
    "retries-spent": (lambda: [status_error(503) for _ in range(6)], {"max_attempts": 4}),
    "transient-then-permanent": (lambda: [read_timeout(), status_error(400)], {}),
    "one-attempt-only": (lambda: [read_timeout()], {"max_attempts": 1}),
    "permanent-at-once": (lambda: [status_error(404)], {}),
    "predicate": (lambda: [KeyError("a"), KeyError("b"), ValueError("c")], {"retry_on": "predicate"}),
    "no-error": (lambda: [], {}),
}


def _policy(options: dict[str, Any], record: dict[str, list[Any]]) -> ConnectorRetry:
    def sleep(seconds: float) -> None:
        record["sleeps"].append(seconds)

    async def asleep(seconds: float) -> None:
        record["sleeps"].append(seconds)

    def predicate(exc: BaseException) -> bool:
        record["predicate"].append(type(exc).__name__)
        return isinstance(exc, KeyError)

    kwargs = dict(options)
    if kwargs.get("retry_on") == "predicate":
        kwargs["retry_on"] = predicate
    return ConnectorRetry(
        initial_wait=0.1,
        sleep=sleep,
        asleep=asleep,
        on_retry=lambda exc, wait: record["hook"].append((type(exc).__name__, wait)),
        **kwargs,
    )


def _from_the_start(retry: ConnectorRetry, is_async: bool) -> Any:
    """`retry.call`/`acall` as tenacity from attempt 1, with the policy's own wait and callbacks."""
    options: dict[str, Any] = {
        "stop": tenacity.stop_after_attempt(retry.max_attempts),
        "wait": retry._wait,
        "retry": tenacity.retry_if_exception(retry.should_retry),
        "before_sleep": retry._before_sleep,
        "reraise": True,
    }
    if is_async:
        return tenacity.AsyncRetrying(sleep=retry.asleep, **options)
    return tenacity.Retrying(sleep=retry.sleep, **options)


def _run_scenario(name: str, *, is_async: bool, direct: bool) -> dict[str, Any]:
    make_errors, options = SCENARIOS[name]
    errors = make_errors()
    raised = list(errors)
    record: dict[str, list[Any]] = {"sleeps": [], "hook": [], "observed": [], "predicate": [], "calls": []}
    retry = _policy(options, record)

    def fn(x: int) -> int:
        record["calls"].append(x)
        if errors:
            raise errors.pop(0)
        return x * 2

    async def afn(x: int) -> int:
        return fn(x)

    random.seed(1234)  # full jitter draws from `random`: the same seed must give the same waits
    outcome: Any
    with observe_retries(lambda exc, wait: record["observed"].append((type(exc).__name__, wait))):
        try:
            if is_async:
                runner: Callable[..., Awaitable[int]] = retry.acall if direct else _from_the_start(retry, True)
                outcome = asyncio.run(runner(afn, 21))
            else:
                outcome = retry.call(fn, 21) if direct else _from_the_start(retry, False)(fn, 21)
        except Exception as exc:  # which of the raised errors came out
            outcome = ("raised", raised.index(exc))
    return {"outcome": outcome, **record}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_retries_after_a_direct_first_attempt_are_those_of_tenacity_from_the_start(name: str, is_async: bool) -> None:
    direct = _run_scenario(name, is_async=is_async, direct=True)
    reference = _run_scenario(name, is_async=is_async, direct=False)
    assert direct == reference
    assert direct["hook"] == direct["observed"] and [w for _, w in direct["hook"]] == direct["sleeps"]
    if name == "retries-spent":  # the scenarios test what they say
        assert direct["outcome"] == ("raised", 3) and len(direct["calls"]) == 4 and len(direct["sleeps"]) == 3
    if name == "retry-after-then-jittered-back-off":
        assert direct["outcome"] == 42 and direct["sleeps"][0] == 0.2 and len(set(direct["sleeps"])) == 3
    if name == "predicate":
        assert direct["predicate"] == ["KeyError", "KeyError", "ValueError"] and direct["outcome"] == ("raised", 2)


# The documented classes and functions (constants such as DEFAULT_RETRY carry no example of their own).
DOCUMENTED = [
    name
    for name in connectors.__all__
    if inspect.isclass(getattr(connectors, name)) or inspect.isfunction(getattr(connectors, name))
]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_connectors_docstring_examples_run(name: str) -> None:
    obj = getattr(connectors, name)
    docs = [inspect.getdoc(obj) or ""]
    docs += [inspect.getdoc(m) or "" for m in vars(obj).values() if callable(m) and not m.__name__.startswith("_")]
    blocks = [b for d in docs for b in BLOCK.findall(d)]
    assert blocks, f"{name} has no example"
    for block in blocks:
        exec(compile(textwrap.dedent(block), f"<{name}>", "exec"), {"__name__": f"doc_{name}"})
