"""One error classifier: is a connector's exception worth retrying?

`classify_error(exc)` answers `transient` (retrying may succeed: timeouts, dropped connections,
HTTP 408/409/425/429/5xx), `permanent` (retrying cannot help: other HTTP 4xx, bad URLs, TLS
failures, authentication, a model's refusal or context overflow), `unknown` (not a connector
error this classifier knows: a bug in the step, which should surface) or `control` (LangGraph's
own control flow, `GraphInterrupt`, `GraphBubbleUp` and `ParentCommand`: never retried, never
caught). It knows the exceptions of the builtins, httpx, requests, urllib, aiohttp, openai,
anthropic and langchain-core without importing any of them: it reads an HTTP status wherever
those clients keep it (`status_code`, `response.status_code`, `status`, `code`) and otherwise
matches the exception's classes by module and name. An exception it does not know is judged
by its `__cause__` / `__context__` (a tool that wraps an `httpx` error stays transient).

`retry_on` is the same verdict as the predicate LangGraph's `RetryPolicy(retry_on=...)` takes:
LangGraph's default retries `requests`' HTTP 4xx and never its timeouts or connection errors.
`retry_after(exc)` reads a server's Retry-After (seconds, an HTTP date, or `retry-after-ms`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from langgraph.errors import GraphBubbleUp

__all__ = ["ErrorClass", "ErrorKind", "classify_error", "retry_after", "retry_on"]

ErrorKind = Literal["transient", "permanent", "unknown", "control"]

TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
"""HTTP statuses below 500 that retrying may fix; every 5xx is transient too."""

# (top-level module, class name) -> kind, matched along the exception's MRO (most derived first).
_BY_CLASS: dict[tuple[str, str], ErrorKind] = {
    # httpx
    ("httpx", "TimeoutException"): "transient",
    ("httpx", "NetworkError"): "transient",
    ("httpx", "RemoteProtocolError"): "transient",
    ("httpx", "ProxyError"): "transient",
    ("httpx", "LocalProtocolError"): "permanent",
    ("httpx", "UnsupportedProtocol"): "permanent",
    ("httpx", "InvalidURL"): "permanent",
    ("httpx", "TooManyRedirects"): "permanent",
    ("httpx", "DecodingError"): "permanent",
    # httpx2 (anthropic 2.x runs on it): the same classes
    ("httpx2", "TimeoutException"): "transient",
    ("httpx2", "NetworkError"): "transient",
    ("httpx2", "RemoteProtocolError"): "transient",
    ("httpx2", "ProxyError"): "transient",
    ("httpx2", "LocalProtocolError"): "permanent",
    ("httpx2", "UnsupportedProtocol"): "permanent",
    ("httpx2", "InvalidURL"): "permanent",
    ("httpx2", "TooManyRedirects"): "permanent",
    ("httpx2", "DecodingError"): "permanent",
    # requests
    ("requests", "SSLError"): "permanent",
    ("requests", "ProxyError"): "transient",
    ("requests", "Timeout"): "transient",
    ("requests", "ConnectionError"): "transient",
    ("requests", "ChunkedEncodingError"): "transient",
    ("requests", "InvalidURL"): "permanent",
    ("requests", "MissingSchema"): "permanent",
    ("requests", "InvalidSchema"): "permanent",
    ("requests", "InvalidHeader"): "permanent",
    ("requests", "URLRequired"): "permanent",
    ("requests", "TooManyRedirects"): "permanent",
    ("requests", "ContentDecodingError"): "permanent",
    # urllib3 (under requests)
    ("urllib3", "TimeoutError"): "transient",
    ("urllib3", "ProtocolError"): "transient",
    ("urllib3", "NewConnectionError"): "transient",
    ("urllib3", "SSLError"): "permanent",
    # aiohttp
    ("aiohttp", "ServerTimeoutError"): "transient",
    ("aiohttp", "ClientSSLError"): "permanent",
    ("aiohttp", "ClientConnectionError"): "transient",
    ("aiohttp", "ClientPayloadError"): "transient",
    ("aiohttp", "InvalidURL"): "permanent",
    # openai / anthropic (their status errors carry `status_code`, read first)
    ("openai", "APITimeoutError"): "transient",
    ("openai", "APIConnectionError"): "transient",
    ("openai", "APIResponseValidationError"): "permanent",
    ("openai", "ContentFilterFinishReasonError"): "permanent",
    ("openai", "LengthFinishReasonError"): "permanent",
    ("anthropic", "APITimeoutError"): "transient",
    ("anthropic", "APIConnectionError"): "transient",
    ("anthropic", "APIResponseValidationError"): "permanent",
    # langchain-core: a malformed model output may parse on the next sample
    ("langchain_core", "OutputParserException"): "transient",
    # builtins (asyncio's and concurrent.futures' TimeoutError are distinct classes on 3.10)
    ("asyncio", "TimeoutError"): "transient",
    ("concurrent", "TimeoutError"): "transient",
    ("builtins", "TimeoutError"): "transient",
    ("builtins", "ConnectionError"): "transient",
    ("builtins", "PermissionError"): "permanent",
    ("builtins", "FileNotFoundError"): "permanent",
    ("builtins", "NotImplementedError"): "permanent",
    ("http", "RemoteDisconnected"): "transient",
    ("http", "IncompleteRead"): "transient",
    ("ssl", "SSLCertVerificationError"): "permanent",
}


@dataclass(frozen=True, slots=True)
class ErrorClass:
    """The classifier's verdict on one exception.

    Example:
        ```python
        from reliable_graph.resilience import classify_error

        verdict = classify_error(TimeoutError("read timed out"))
        assert verdict.kind == "transient" and verdict.retryable and verdict.status is None
        assert "TimeoutError" in verdict.describe()
        ```
    """

    kind: ErrorKind
    """`transient`, `permanent`, `unknown` or `control`."""
    status: int | None
    """The HTTP status the exception carries, if any."""
    retry_after: float | None
    """The server's Retry-After in seconds, if it sent one."""
    error: str
    """The exception's class name."""
    message: str
    """The exception's message, cut to 200 characters."""

    @property
    def retryable(self) -> bool:
        """True for a transient error only."""
        return self.kind == "transient"

    def describe(self) -> str:
        """One line for a reason a reviewer reads: class, status, message."""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        message = f": {self.message}" if self.message else ""
        return f"{self.error}{status}{message}"


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 100 <= value <= 599 else None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, wherever its client keeps it."""
    for attr in ("status_code", "status", "http_status", "code"):
        with warnings.catch_warnings():  # aiohttp's `code` is a deprecated alias of `status`
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                found = _int(getattr(exc, attr, None))
            except Exception:  # noqa: BLE001 - a property that raises is no status
                found = None
        if found is not None:
            return found
    response = getattr(exc, "response", None)
    if response is not None:
        for attr in ("status_code", "status"):
            try:
                found = _int(getattr(response, attr, None))
            except Exception:  # noqa: BLE001 - a half-built response object must not break classification
                found = None
            if found is not None:
                return found
    return None


def _headers(exc: BaseException) -> Any:
    headers = getattr(exc, "headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) if response is not None else None
    return headers


def _header(headers: Any, name: str) -> str | None:
    getter = getattr(headers, "get", None)
    if not callable(getter):
        return None
    for key in (name, name.lower(), name.title()):
        try:
            value = getter(key)
        except Exception:  # noqa: BLE001 - a header mapping of the wrong shape means no hint
            return None
        if value is not None:
            return str(value)
    return None


def retry_after(exc: BaseException) -> float | None:
    """The wait a server asked for, in seconds, or None.

    Read from a numeric `retry_after` attribute, or the `retry-after-ms` / `Retry-After`
    header of the exception or its response (seconds, or an HTTP date).

    Example:
        ```python
        import httpx
        from reliable_graph.resilience import retry_after

        request = httpx.Request("GET", "https://api.example.com/search")
        response = httpx.Response(429, headers={"Retry-After": "2"}, request=request)
        exc = httpx.HTTPStatusError("429 Too Many Requests", request=request, response=response)
        assert retry_after(exc) == 2.0 and retry_after(ValueError("no hint")) is None
        ```
    """
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, (int, float)) and not isinstance(hint, bool) and math.isfinite(hint) and hint >= 0:
        return float(hint)
    headers = _headers(exc)
    if headers is None:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = _header(headers, "Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _by_class(exc: BaseException) -> ErrorKind | None:
    for cls in type(exc).__mro__:
        root = cls.__module__.split(".", 1)[0]
        found = _BY_CLASS.get((root, cls.__name__))
        if found is not None:
            return found
        retryable = getattr(cls, "is_retryable", None)
        if root == "langchain_core" and isinstance(retryable, bool):
            return "transient" if retryable else "permanent"  # langchain-core's ModelError family
    return None


def _decide(exc: BaseException, depth: int) -> tuple[ErrorKind, BaseException]:
    """The kind of `exc`, and the exception that decided it (`exc`, or one of its causes)."""
    if isinstance(exc, GraphBubbleUp):
        return "control", exc
    status = http_status(exc)
    if status is not None:
        if status in TRANSIENT_STATUS or status >= 500:
            return "transient", exc
        if 400 <= status < 500:
            return "permanent", exc
    found = _by_class(exc)
    if found is not None:
        return found, exc
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and depth < 5:
        inner, decided = _decide(cause, depth + 1)
        return ("unknown", exc) if inner == "control" else (inner, decided)
    return "unknown", exc


def classify_error(exc: BaseException) -> ErrorClass:
    """Classify `exc`: `transient`, `permanent`, `unknown` or `control` (see the module's doc).

    Example:
        ```python
        import httpx
        from langgraph.errors import GraphInterrupt
        from reliable_graph.resilience import classify_error

        request = httpx.Request("POST", "https://api.example.com/v1/chat")

        def status(code: int) -> httpx.HTTPStatusError:
            response = httpx.Response(code, request=request)
            return httpx.HTTPStatusError(f"HTTP {code}", request=request, response=response)

        assert classify_error(status(429)).kind == "transient"
        assert classify_error(status(503)).kind == "transient"
        assert classify_error(status(404)).kind == "permanent"
        assert classify_error(httpx.ConnectError("refused", request=request)).kind == "transient"
        assert classify_error(KeyError("answer")).kind == "unknown"
        assert classify_error(GraphInterrupt()).kind == "control"
        ```
    """
    kind, decided = _decide(exc, 0)
    text = str(exc)
    return ErrorClass(
        kind=kind,
        status=http_status(decided),
        retry_after=retry_after(decided) if kind == "transient" else None,
        error=type(exc).__name__,
        message=text if len(text) <= 200 else text[:197] + "...",
    )


def retry_on(exc: BaseException) -> bool:
    """True when `exc` is transient: the predicate for LangGraph's `RetryPolicy(retry_on=...)`.

    Never true for LangGraph's control flow (`GraphInterrupt`, `GraphBubbleUp`, `ParentCommand`).

    Example:
        ```python
        import requests
        from langgraph.types import RetryPolicy
        from reliable_graph.resilience import retry_on

        policy = RetryPolicy(retry_on=retry_on)
        assert retry_on(requests.exceptions.ReadTimeout("slow"))  # LangGraph's default does not retry it
        response = requests.Response()
        response.status_code = 401
        assert not retry_on(requests.exceptions.HTTPError("401", response=response))  # its default does
        ```
    """
    return _decide(exc, 0)[0] == "transient"
