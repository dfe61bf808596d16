"""Chaos testing for your own connectors: seeded faults around a callable, retriever, tool or chat model.

Wrap what your graph calls, then run the graph under a `FaultProfile`:

- `Chaos(profile, seed=...).wrap(target, name=...)` wraps a function (sync or async), a LangChain
  `Runnable` (a retriever, a chat model, anything with `invoke`/`ainvoke`; `bind_tools` and
  `with_structured_output` keep the faults) or a `StructuredTool` (it stays a tool).
- `inject_faults(target, name=...)` does the same for the process's active chaos: a no-op
  until `activate(...)` (or `reliable-graph chaos`) turns a profile on, so the wrapped
  connector can stay in the graph you ship.

Faults raise what the real clients raise: `httpx` (default), `requests`, `openai` or
`anthropic` errors carrying a status code and headers (HTTP 429 with a `Retry-After`, 5xx,
permanent 4xx), their timeouts and connection resets; `builtin` raises `TimeoutError`,
`ConnectionResetError` and an `HTTPStatusFault`. `latency` delays the call; `schema_drift`
corrupts the result (a missing field, a wrong type, truncated JSON or text). Each injected
exception carries `chaos_fault` (the fault's name). Draws are seeded per (seed, connector, key,
call index), so a run is reproducible; `counts` keeps calls and faults per connector.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from langchain_core.runnables import Runnable, RunnableConfig

from reliable_graph.resilience.connectors import finite_number

__all__ = [
    "FAULTS",
    "Chaos",
    "FaultProfile",
    "HTTPStatusFault",
    "activate",
    "active_chaos",
    "inject_faults",
]

FAULTS = ("permanent", "timeout", "rate_limit", "server_error", "connection_reset", "latency", "schema_drift")
"""The fault kinds, in the order a call's draw walks them."""

Client = Literal["httpx", "requests", "openai", "anthropic", "builtin"]
CLIENTS: tuple[str, ...] = ("httpx", "requests", "openai", "anthropic", "builtin")

_ERROR_FAULTS = frozenset({"permanent", "timeout", "rate_limit", "server_error", "connection_reset"})


class HTTPStatusFault(Exception):
    """The `builtin` client's HTTP error: a status code, headers and (for 429) `retry_after`.

    Example:
        ```python
        from reliable_graph.resilience import HTTPStatusFault, classify_error

        exc = HTTPStatusFault(429, headers={"Retry-After": "0.5"})
        assert classify_error(exc).kind == "transient" and classify_error(exc).retry_after == 0.5
        ```
    """

    def __init__(self, status_code: int, *, headers: Mapping[str, str] | None = None, message: str = "") -> None:
        super().__init__(message or f"HTTP {status_code}")
        self.status_code = status_code
        self.headers = dict(headers or {})


def _rate(value: Any, what: str) -> float:
    number = finite_number(value)
    if number is None:
        msg = f"{what} must be a number in [0, 1], got {str(value)[:40]!r}"
        raise ValueError(msg)
    if not 0.0 <= number <= 1.0:
        msg = f"{what} must be in [0, 1], got {str(value)[:40]!r}"
        raise ValueError(msg)
    return number


def _range(value: Any, what: str) -> tuple[float, float]:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(finite_number(v) is None for v in value)
        or not 0 <= float(value[0]) <= float(value[1])
    ):
        msg = f"{what} must be a pair (low, high) of seconds with 0 <= low <= high, got {str(value)[:60]}"
        raise ValueError(msg)
    return (float(value[0]), float(value[1]))


PRESETS = ("none", "scenario", "flaky", "rate_limited", "outage", "drift")
"""Named profiles; `rate` scales each (see `FaultProfile.preset`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultProfile:
    """Which faults hit a call, how often, and what they look like.

    `faults` maps fault kinds (`FAULTS`) to per-call probabilities (their sum at most 1): one
    uniform draw per call picks at most one fault.

    Example:
        ```python
        from reliable_graph.resilience import FaultProfile

        profile = FaultProfile(faults={"timeout": 0.1, "rate_limit": 0.1}, client="requests")
        assert profile.rate == 0.2
        assert FaultProfile.preset("scenario", rate=0.3).faults == {
            "permanent": 0.002, "rate_limit": 0.15, "timeout": 0.15}
        assert FaultProfile.parse('{"faults": {"server_error": 0.05}}').faults == {"server_error": 0.05}
        ```
    """

    faults: Mapping[str, float] = field(default_factory=dict)
    """Fault kind -> per-call probability."""
    client: Client = "httpx"
    """Whose exception types to raise: `httpx`, `requests`, `openai`, `anthropic` or `builtin`."""
    retry_after: tuple[float, float] = (0.01, 0.05)
    """Range of a 429's Retry-After, in seconds."""
    latency: tuple[float, float] = (0.05, 0.5)
    """Range of an injected delay, in seconds."""
    server_status: int = 503
    """The status of a `server_error` (5xx)."""
    permanent_status: int = 400
    """The status of a `permanent` fault (4xx other than 408/409/425/429)."""

    def __post_init__(self) -> None:
        if not isinstance(self.faults, Mapping):
            msg = f"FaultProfile(faults=...) must map fault kinds to probabilities, got {type(self.faults).__name__}"
            raise TypeError(msg)
        unknown = sorted(str(k) for k in self.faults if k not in FAULTS)
        if unknown:
            msg = f"FaultProfile: unknown fault kind(s) {unknown}; known: {', '.join(FAULTS)}"
            raise ValueError(msg)
        clean = {k: _rate(v, f"FaultProfile(faults[{k!r}])") for k, v in self.faults.items()}
        if math.fsum(clean.values()) > 1.0:
            msg = f"FaultProfile: the fault probabilities sum to {math.fsum(clean.values()):.6f}, more than 1"
            raise ValueError(msg)
        object.__setattr__(self, "faults", {k: clean[k] for k in FAULTS if clean.get(k)})
        if self.client not in CLIENTS:
            msg = f"FaultProfile(client=...) must be one of {', '.join(CLIENTS)}, got {self.client!r}"
            raise ValueError(msg)
        if self.client in ("openai", "anthropic"):
            try:
                importlib.import_module(self.client)
            except ImportError:
                msg = f"FaultProfile(client={self.client!r}) raises {self.client}'s errors: pip install {self.client}"
                raise ValueError(msg) from None
        object.__setattr__(self, "retry_after", _range(self.retry_after, "FaultProfile(retry_after=...)"))
        object.__setattr__(self, "latency", _range(self.latency, "FaultProfile(latency=...)"))
        checks: tuple[tuple[str, Any, Callable[[int], bool]], ...] = (
            ("server_status", self.server_status, lambda s: 500 <= s <= 599),
            ("permanent_status", self.permanent_status, lambda s: 400 <= s <= 499 and s not in (408, 409, 425, 429)),
        )
        for name, value, ok in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not ok(value):
                msg = f"FaultProfile({name}=...) is out of range: {value!r}"
                raise ValueError(msg)

    @property
    def rate(self) -> float:
        """The probability that a call is faulted at all."""
        return min(1.0, round(math.fsum(self.faults.values()), 12))

    @classmethod
    def preset(cls, name: str, *, rate: float = 0.3, client: Client = "httpx") -> FaultProfile:
        """A named profile at fault rate `rate`.

        - `none`: no faults.
        - `scenario`: the demo world's (docs/scenario.md): half 429s, half timeouts, plus a
          permanent HTTP 400 with probability 0.002 per call.
        - `flaky`: timeouts 30%, 429s 25%, 503s 20%, connection resets 15%, latency 10% of
          `rate`, plus permanent 400s at 0.002.
        - `rate_limited`: 429s only. `outage`: 503s and connection resets. `drift`: schema drift.

        Example:
            ```python
            from reliable_graph.resilience import FaultProfile

            assert FaultProfile.preset("none").rate == 0
            assert abs(FaultProfile.preset("flaky", rate=0.3).rate - 0.302) < 1e-9
            ```
        """
        f = _rate(rate, "rate")
        shapes: dict[str, dict[str, float]] = {
            "none": {},
            "scenario": {"permanent": 0.002, "rate_limit": f / 2, "timeout": f / 2},
            "flaky": {
                "permanent": 0.002,
                "timeout": 0.3 * f,
                "rate_limit": 0.25 * f,
                "server_error": 0.2 * f,
                "connection_reset": 0.15 * f,
                "latency": 0.1 * f,
            },
            "rate_limited": {"rate_limit": f},
            "outage": {"server_error": f / 2, "connection_reset": f / 2},
            "drift": {"schema_drift": f},
        }
        if name not in shapes:
            msg = f"unknown fault profile {name!r}: use one of {', '.join(PRESETS)}, a JSON object or a .json file"
            raise ValueError(msg)
        if name == "scenario" and f == 0:
            return cls(client=client)
        return cls(faults=shapes[name], client=client)

    @classmethod
    def parse(cls, spec: str, *, rate: float = 0.3) -> FaultProfile:
        """A profile from a preset name, a JSON object, or the path of a JSON file.

        Example:
            ```python
            from reliable_graph.resilience import FaultProfile

            assert FaultProfile.parse("outage", rate=0.2).faults == {"server_error": 0.1, "connection_reset": 0.1}
            ```
        """
        if not isinstance(spec, str) or not spec.strip():
            msg = "a fault profile is a preset name, a JSON object or the path of a JSON file"
            raise ValueError(msg)
        text = spec.strip()
        if text in PRESETS:
            return cls.preset(text, rate=rate)
        if not text.startswith(("{", "[")):
            unknown = (
                f"unknown fault profile {spec[:60]!r}: use one of {', '.join(PRESETS)}, a JSON object or a .json file"
            )
            try:
                path = Path(text)
                if not path.is_file():
                    raise ValueError(unknown)
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"{unknown} ({type(exc).__name__})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"the fault profile is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            raise ValueError(msg) from None
        except RecursionError:
            msg = "the fault profile's JSON is nested too deeply"
            raise ValueError(msg) from None
        if not isinstance(data, dict):
            msg = 'a JSON fault profile must be an object such as {"faults": {"timeout": 0.1}}'
            raise ValueError(msg)
        allowed = {"faults", "client", "retry_after", "latency", "server_status", "permanent_status"}
        extra = sorted(set(data) - allowed)
        if extra:
            msg = f"unknown key(s) {extra} in the fault profile; allowed: {sorted(allowed)}"
            raise ValueError(msg)
        for key in ("retry_after", "latency"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    def describe(self) -> dict[str, Any]:
        """The profile as JSON, to print beside any figure measured under it."""
        return {
            "faults": dict(self.faults),
            "client": self.client,
            "retry_after": list(self.retry_after),
            "latency": list(self.latency),
            "server_status": self.server_status,
            "permanent_status": self.permanent_status,
        }

    def draw(self, rng: random.Random) -> str | None:
        """The fault of one call (or None), from one uniform draw."""
        if not self.faults:
            return None
        u = rng.random()
        acc = 0.0
        for kind, p in self.faults.items():
            acc += p
            if u < acc:
                return kind
        return None


# -- the exceptions real clients raise ------------------------------------------------------


def _status_text(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def make_fault_error(kind: str, profile: FaultProfile, rng: random.Random, connector: str) -> BaseException:
    """The exception a real client of `profile.client` raises for fault `kind`."""
    client = profile.client
    status = {"rate_limit": 429, "server_error": profile.server_status, "permanent": profile.permanent_status}.get(kind)
    headers = {"Retry-After": f"{rng.uniform(*profile.retry_after):.3f}"} if kind == "rate_limit" else {}
    url = f"https://chaos.invalid/{connector}"
    message = (
        f"{status} {_status_text(status)} for url '{url}' (injected)" if status else f"{kind} on {connector} (injected)"
    )
    exc: BaseException
    if client in ("httpx", "openai", "anthropic"):
        import httpx

        http: Any = httpx
        if client == "anthropic":
            base = importlib.import_module("anthropic._base_client")
            http = getattr(base, "httpx2", None) or httpx  # anthropic 2.x runs on httpx2, 0.x on httpx
        request = http.Request("POST", url)
        response = http.Response(status, headers=headers, request=request) if status else None
        if client == "httpx":
            if kind == "timeout":
                exc = httpx.ReadTimeout("The read operation timed out (injected)", request=request)
            elif kind == "connection_reset":
                exc = httpx.ReadError("[Errno 104] Connection reset by peer (injected)", request=request)
            else:
                exc = httpx.HTTPStatusError(message, request=request, response=cast(httpx.Response, response))
        else:
            sdk: Any = importlib.import_module(client)
            if kind == "timeout":
                exc = sdk.APITimeoutError(request=request)
            elif kind == "connection_reset":
                exc = sdk.APIConnectionError(message="Connection reset by peer (injected)", request=request)
            else:
                code = cast(int, status)
                by_status = {
                    429: sdk.RateLimitError,
                    400: sdk.BadRequestError,
                    503: getattr(sdk, "ServiceUnavailableError", sdk.InternalServerError),
                    529: getattr(sdk, "OverloadedError", sdk.InternalServerError),
                }
                cls = by_status.get(code, sdk.InternalServerError if code >= 500 else sdk.APIStatusError)
                exc = cls(message, response=response, body=None)
    elif client == "requests":
        import requests

        if kind == "timeout":
            exc = requests.exceptions.ReadTimeout("Read timed out. (injected)")
        elif kind == "connection_reset":
            exc = requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer (injected)"))
        else:
            resp = requests.Response()
            resp.status_code = cast(int, status)
            resp.url = url
            resp.headers.update(headers)
            exc = requests.exceptions.HTTPError(message, response=resp)
    else:
        if kind == "timeout":
            exc = TimeoutError(f"{connector} timed out (injected)")
        elif kind == "connection_reset":
            exc = ConnectionResetError(104, f"Connection reset by peer: {connector} (injected)")
        else:
            exc = HTTPStatusFault(cast(int, status), headers=headers, message=message)
    exc.chaos_fault = kind  # type: ignore[attr-defined]
    return exc


# -- schema drift ----------------------------------------------------------------------------


def drift(value: Any, rng: random.Random) -> Any:
    """`value` with its schema broken: a missing field, a wrong type, truncated JSON or text.

    Example:
        ```python
        import random
        from reliable_graph.resilience.chaos import drift

        out = drift({"title": "t", "year": 2024}, random.Random(0))
        assert out != {"title": "t", "year": 2024}
        assert drift('{"a": 1, "b": 2}', random.Random(0)) != '{"a": 1, "b": 2}'
        ```
    """
    from langchain_core.documents import Document
    from langchain_core.messages import AIMessage, BaseMessage

    if isinstance(value, AIMessage) and value.tool_calls:
        calls: list[dict[str, Any]] = [dict(c) for c in value.tool_calls]
        args = dict(calls[0].get("args") or {})
        if args:
            args.pop(rng.choice(sorted(args)))
        calls[0]["args"] = args
        return value.model_copy(update={"tool_calls": calls})
    if isinstance(value, BaseMessage):
        return value.model_copy(update={"content": drift(value.content, rng)})
    if isinstance(value, Document):
        if value.metadata and rng.random() < 0.5:
            metadata = dict(value.metadata)
            metadata.pop(rng.choice(sorted(metadata)))
            return value.model_copy(update={"metadata": metadata})
        return value.model_copy(update={"page_content": value.page_content[: len(value.page_content) // 2]})
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return drift(dump(), rng)  # a pydantic model comes back as a dict: a wrong type, and drifted
    if isinstance(value, dict):
        if not value:
            return None
        key = rng.choice(sorted(value, key=str))
        out = dict(value)
        if rng.random() < 0.5:
            del out[key]  # a missing field
        else:
            old = out[key]
            out[key] = str(old) if not isinstance(old, str) else len(old)  # a wrong type
        return out
    if isinstance(value, str):
        if not value:
            return None
        return value[: max(0, len(value) // 2 - 1)]  # truncated JSON or text
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        items = list(value)
        index = rng.randrange(len(items))
        items[index] = drift(items[index], rng)
        return items
    return None if value is not None else {}


# -- the injector ----------------------------------------------------------------------------


@dataclass
class _Counts:
    calls: int = 0
    faults: dict[str, int] = field(default_factory=dict)


class Chaos:
    """A seeded fault injector: wrap connectors, count what they were hit with.

    Args:
        profile: A `FaultProfile`, or a preset name / JSON accepted by `FaultProfile.parse`.
        seed: Seeds every draw (with the connector's name, the call's key and its index).
        sleep: How `latency` waits in sync code (default real sleeps; a `VirtualClock` sums them).
        asleep: How `latency` waits in async code (default real sleeps; a `VirtualClock` sums them).

    Example:
        ```python
        from reliable_graph.resilience import Chaos, ConnectorRetry, FaultProfile, VirtualClock

        chaos = Chaos(FaultProfile(faults={"timeout": 0.5}), seed=3)
        search = chaos.wrap(lambda query: [f"chunk about {query}"], name="search")
        retry = ConnectorRetry(max_attempts=20, sleep=VirtualClock().sleep)
        assert retry.call(search, "tides") == ["chunk about tides"]
        counts = chaos.counts()["search"]
        assert counts["calls"] == counts["faults"].get("timeout", 0) + 1
        ```
    """

    def __init__(
        self,
        profile: FaultProfile | str | None = None,
        *,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        count: bool = True,
    ) -> None:  # count=False: a silent pass-through (no faults, no counters)
        if profile is None:
            profile = FaultProfile()
        elif isinstance(profile, str):
            profile = FaultProfile.parse(profile)
        elif not isinstance(profile, FaultProfile):
            msg = f"Chaos(profile=...) must be a FaultProfile or a preset name, got {type(profile).__name__}"
            raise TypeError(msg)
        if isinstance(seed, bool) or not isinstance(seed, int):
            msg = f"Chaos(seed=...) must be an integer, got {seed!r}"
            raise TypeError(msg)
        self.profile = profile
        self.seed = seed
        self.sleep = sleep
        self.asleep = asleep
        self._count = count or bool(profile.faults)
        self._counts: dict[str, _Counts] = {}
        self._indexes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # -- drawing ---------------------------------------------------------------------------

    def _draw(self, connector: str, key: str) -> tuple[str | None, random.Random | None]:
        if not self._count:
            return None, None
        with self._lock:
            index = self._indexes.get((connector, key), 0)
            self._indexes[(connector, key)] = index + 1
            counts = self._counts.setdefault(connector, _Counts())
            counts.calls += 1
            rng = random.Random(f"{self.seed}:{connector}:{key}:{index}")
            kind = self.profile.draw(rng)
            if kind is not None:
                counts.faults[kind] = counts.faults.get(kind, 0) + 1
        return kind, rng

    def before(self, connector: str, key: str = "") -> tuple[str | None, random.Random | None]:
        """Draw a call's fault: raise it, or wait its latency (sync); return it for drift."""
        kind, rng = self._draw(connector, key)
        if kind in _ERROR_FAULTS and rng is not None:
            raise make_fault_error(kind, self.profile, rng, connector)
        if kind == "latency" and rng is not None:
            self.sleep(rng.uniform(*self.profile.latency))
        return kind, rng

    async def abefore(self, connector: str, key: str = "") -> tuple[str | None, random.Random | None]:
        """Async twin of `before`."""
        kind, rng = self._draw(connector, key)
        if kind in _ERROR_FAULTS and rng is not None:
            raise make_fault_error(kind, self.profile, rng, connector)
        if kind == "latency" and rng is not None:
            await self.asleep(rng.uniform(*self.profile.latency))
        return kind, rng

    @staticmethod
    def after(kind: str | None, rng: random.Random | None, result: Any) -> Any:
        """The call's result, drifted when its fault is `schema_drift`."""
        return drift(result, rng) if kind == "schema_drift" and rng is not None else result

    # -- bookkeeping -----------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, Any]]:
        """Calls and injected faults per connector: `{name: {"calls": n, "faults": {kind: n}}}`."""
        with self._lock:
            return {name: {"calls": c.calls, "faults": dict(c.faults)} for name, c in self._counts.items()}

    def reset(self) -> None:
        """Forget counts and call indexes (a new session with the same seed draws the same faults)."""
        with self._lock:
            self._counts.clear()
            self._indexes.clear()

    # -- wrapping --------------------------------------------------------------------------

    def wrap(self, target: Any, *, name: str | None = None, key: Callable[..., Any] | None = None) -> Any:
        """`target` with this injector's faults before (and drift after) every call.

        Args:
            target: A function (sync or async), a `StructuredTool`, or any LangChain `Runnable`.
            name: The connector's name in `counts()` (default: the target's name).
            key: `key(*args, **kwargs) -> str` keying the draws (e.g. by run and step), so
                that a call's fault does not depend on the calls made before it elsewhere.
        """
        return _wrap(lambda: self, target, name=name, key=key)


def _connector_name(target: Any, name: str | None) -> str:
    if name is not None:
        if not isinstance(name, str) or not name:
            msg = f"the connector's name must be a non-empty string, got {name!r}"
            raise ValueError(msg)
        return name
    if isinstance(target, Runnable):
        return target.get_name()
    found = getattr(target, "__name__", None)
    if not found or found == "<lambda>":
        msg = "name=... is needed to wrap a connector without a usable __name__ (a lambda)"
        raise ValueError(msg)
    return str(found)


def _wrap(resolve: Callable[[], Chaos], target: Any, *, name: str | None, key: Callable[..., Any] | None) -> Any:
    connector = _connector_name(target, name)
    if key is not None and not callable(key):
        msg = f"key must be a callable (*args, **kwargs) -> str, got {type(key).__name__}"
        raise TypeError(msg)

    def key_of(*args: Any, **kwargs: Any) -> str:
        return "" if key is None else str(key(*args, **kwargs))

    from langchain_core.tools import StructuredTool

    if isinstance(target, StructuredTool):
        update: dict[str, Any] = {}
        if target.func is not None:
            update["func"] = _wrap(resolve, target.func, name=connector, key=key)
        if target.coroutine is not None:
            update["coroutine"] = _wrap(resolve, target.coroutine, name=connector, key=key)
        return target.model_copy(update=update)
    if isinstance(target, Runnable):
        return ChaosRunnable(target, resolve=resolve, connector=connector, key=key_of)
    if not callable(target):
        msg = f"can only inject faults into a callable or a LangChain Runnable, got {type(target).__name__}"
        raise TypeError(msg)
    if inspect.iscoroutinefunction(target):

        @functools.wraps(target)
        async def awrapped(*args: Any, **kwargs: Any) -> Any:
            chaos = resolve()
            kind, rng = await chaos.abefore(connector, key_of(*args, **kwargs))
            return chaos.after(kind, rng, await target(*args, **kwargs))

        return awrapped

    @functools.wraps(target)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        chaos = resolve()
        kind, rng = chaos.before(connector, key_of(*args, **kwargs))
        return chaos.after(kind, rng, target(*args, **kwargs))

    return wrapped


class ChaosRunnable(Runnable[Any, Any]):
    """A `Runnable` with faults before each `invoke`/`ainvoke`; other attributes pass through.

    Methods that return a new Runnable (`bind_tools`, `with_structured_output`, `bind`...) return
    it wrapped with the same faults and counters.
    """

    def __init__(
        self,
        inner: Runnable[Any, Any],
        *,
        resolve: Callable[[], Chaos],
        connector: str,
        key: Callable[..., str],
    ) -> None:
        self.inner = inner
        self._resolve = resolve
        self.connector = connector
        self._key = key
        self.name = inner.get_name()

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Inject this call's fault, then call the wrapped Runnable."""
        chaos = self._resolve()
        kind, rng = chaos.before(self.connector, self._key(input))
        return chaos.after(kind, rng, self.inner.invoke(input, config, **kwargs))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        """Async twin of `invoke`."""
        chaos = self._resolve()
        kind, rng = await chaos.abefore(self.connector, self._key(input))
        return chaos.after(kind, rng, await self.inner.ainvoke(input, config, **kwargs))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("inner", "_resolve", "connector", "_key"):
            raise AttributeError(attr)
        found = getattr(self.inner, attr)
        if not callable(found) or isinstance(found, type):
            return found

        @functools.wraps(found)
        def passthrough(*args: Any, **kwargs: Any) -> Any:
            result = found(*args, **kwargs)
            if isinstance(result, Runnable) and result is not self.inner:
                return ChaosRunnable(result, resolve=self._resolve, connector=self.connector, key=self._key)
            return result

        return passthrough


# -- the process's active chaos (what `reliable-graph chaos` turns on) ------------------------

_active: list[Chaos] = []
_passthrough = Chaos(count=False)


def active_chaos() -> Chaos:
    """The chaos `inject_faults` connectors use now: the innermost `activate`, else no faults.

    Example:
        ```python
        from reliable_graph.resilience import active_chaos

        assert active_chaos().profile.rate == 0
        ```
    """
    return _active[-1] if _active else _passthrough


@contextmanager
def activate(profile: FaultProfile | str | Chaos, *, seed: int = 0) -> Iterator[Chaos]:
    """Turn faults on for every `inject_faults` connector in this process, for the `with` block.

    Example:
        ```python
        from reliable_graph.resilience import activate, inject_faults

        def search(query: str) -> list[str]:
            return [query]

        search = inject_faults(search)
        assert search("q") == ["q"]  # no active chaos: a pass-through
        with activate('{"faults": {"timeout": 1.0}}') as chaos:
            try:
                search("q")
            except Exception as exc:
                assert type(exc).__name__ == "ReadTimeout" and exc.chaos_fault == "timeout"
        assert chaos.counts()["search"] == {"calls": 1, "faults": {"timeout": 1}}
        ```
    """
    chaos = profile if isinstance(profile, Chaos) else Chaos(profile, seed=seed)
    _active.append(chaos)
    try:
        yield chaos
    finally:
        _active.remove(chaos)


def inject_faults(target: Any, *, name: str | None = None, key: Callable[..., Any] | None = None) -> Any:
    """`target` wrapped with the active chaos's faults (none until `activate` or the chaos CLI).

    The connector can stay wrapped in the graph you ship: with no active chaos a call only
    counts and passes through. See `Chaos.wrap` for the arguments.

    Example:
        ```python
        from reliable_graph.resilience import inject_faults

        async def fetch(url: str) -> str:
            return "page"

        fetch = inject_faults(fetch)
        import asyncio
        assert asyncio.run(fetch("https://example.com")) == "page"
        ```
    """
    return _wrap(active_chaos, target, name=name, key=key)
