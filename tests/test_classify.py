from __future__ import annotations

import asyncio
import concurrent.futures
import email.message
import http.client
import socket
import ssl
import urllib.error
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, TypedDict, cast

import aiohttp
import anthropic
import httpx
import httpx2
import openai
import pytest
import requests
import urllib3
from conftest import FROZEN_AT, Clock
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelRefusalError,
    ModelTimeoutError,
    OutputParserException,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphBubbleUp, GraphInterrupt, ParentCommand
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, RetryPolicy, interrupt
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL as YURL

from reliable_graph.resilience import (
    ConnectorRetry,
    ErrorClass,
    HTTPStatusFault,
    VirtualClock,
    classify_error,
    retry_after,
    retry_on,
)

URL = "https://api.example.com/v1/search"
HTTPX_REQUEST = httpx.Request("POST", URL)
HTTPX2_REQUEST = httpx2.Request("POST", URL)  # anthropic 2.x is built on httpx2, not httpx

STATUSES = (400, 401, 403, 404, 408, 409, 422, 425, 429, 500, 502, 503, 504)


def expected_kind(status: int) -> str:
    return "transient" if status in (408, 409, 425, 429) or status >= 500 else "permanent"


# -- real exceptions, built the way each client builds them -----------------------------------


def httpx_status(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    response = httpx.Response(status, headers=headers, request=HTTPX_REQUEST)
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    raise AssertionError(f"httpx did not raise for {status}")


def requests_status(status: int, headers: dict[str, str] | None = None) -> requests.exceptions.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.reason = HTTPStatus(status).phrase
    response.url = URL
    response.headers.update(headers or {})
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        return exc
    raise AssertionError(f"requests did not raise for {status}")


def openai_status(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    # The SDK's own status -> class mapping (RateLimitError, InternalServerError, ...).
    with openai.OpenAI(api_key="sk-test", base_url="https://api.invalid/v1", max_retries=0) as client:
        response = httpx.Response(status, headers=headers, request=HTTPX_REQUEST)
        return client._make_status_error(f"Error code: {status}", body=None, response=response)


def anthropic_status(status: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    with anthropic.Anthropic(api_key="sk-test", base_url="https://api.invalid", max_retries=0) as client:
        response = httpx2.Response(status, headers=headers, request=HTTPX2_REQUEST)
        return client._make_status_error(f"Error code: {status}", body=None, response=response)


def urllib_status(status: int, headers: dict[str, str] | None = None) -> urllib.error.HTTPError:
    hdrs = email.message.Message()
    for name, value in (headers or {}).items():
        hdrs[name] = value
    return urllib.error.HTTPError(URL, status, HTTPStatus(status).phrase, hdrs, None)


def aiohttp_status(status: int, headers: dict[str, str] | None = None) -> aiohttp.ClientResponseError:
    info = aiohttp.RequestInfo(YURL(URL), "POST", CIMultiDictProxy(CIMultiDict()), YURL(URL))
    return aiohttp.ClientResponseError(
        info, (), status=status, message=HTTPStatus(status).phrase, headers=CIMultiDictProxy(CIMultiDict(headers or {}))
    )


def raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        raise outer from inner
    except BaseException as exc:  # noqa: BLE001 - we want the raised object back
        return exc


def raised_while_handling(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:  # noqa: BLE001
            raise outer  # noqa: B904 - an implicit __context__ is the point
    except BaseException as exc:  # noqa: BLE001
        return exc


class ToolFailed(Exception):
    """A project's own wrapper exception, unknown to the classifier."""


def status_rows() -> Iterator[Any]:
    makers: dict[str, Callable[[int], BaseException]] = {
        "httpx": httpx_status,
        "requests": requests_status,
        "openai": openai_status,
        "anthropic": anthropic_status,
        "urllib": urllib_status,
        "aiohttp": aiohttp_status,
    }
    for client, make in makers.items():
        for status in STATUSES:
            exc = make(status)
            yield pytest.param(exc, expected_kind(status), status, id=f"{client}-{status}-{type(exc).__name__}")
    exc = anthropic_status(529)
    yield pytest.param(exc, "transient", 529, id=f"anthropic-529-{type(exc).__name__}")


def _ssl_error() -> ssl.SSLCertVerificationError:
    return ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")


_POOL = urllib3.HTTPSConnectionPool("api.example.com")
_CONN = urllib3.connection.HTTPSConnection("api.example.com")
_PREPARED = requests.Request("POST", URL).prepare()
_NEW_CONN = urllib3.exceptions.NewConnectionError(_CONN, "Failed to establish a new connection: [Errno 111] refused")
_MAX_RETRY = raised_from(urllib3.exceptions.MaxRetryError(_POOL, "/v1/search", _NEW_CONN), _NEW_CONN)

# (exception, expected kind)
CLASS_ROWS: list[tuple[str, BaseException, str]] = [
    # httpx
    ("httpx-ConnectTimeout", httpx.ConnectTimeout("timed out", request=HTTPX_REQUEST), "transient"),
    ("httpx-ReadTimeout", httpx.ReadTimeout("The read operation timed out", request=HTTPX_REQUEST), "transient"),
    ("httpx-WriteTimeout", httpx.WriteTimeout("timed out", request=HTTPX_REQUEST), "transient"),
    ("httpx-PoolTimeout", httpx.PoolTimeout("no connection", request=HTTPX_REQUEST), "transient"),
    ("httpx-ConnectError", httpx.ConnectError("[Errno 111] Connection refused", request=HTTPX_REQUEST), "transient"),
    ("httpx-ReadError", httpx.ReadError("[Errno 104] Connection reset by peer", request=HTTPX_REQUEST), "transient"),
    ("httpx-WriteError", httpx.WriteError("broken pipe", request=HTTPX_REQUEST), "transient"),
    ("httpx-RemoteProtocolError", httpx.RemoteProtocolError("peer closed", request=HTTPX_REQUEST), "transient"),
    ("httpx-ProxyError", httpx.ProxyError("proxy down", request=HTTPX_REQUEST), "transient"),
    ("httpx-UnsupportedProtocol", httpx.UnsupportedProtocol("ftp://", request=HTTPX_REQUEST), "permanent"),
    ("httpx-InvalidURL", httpx.InvalidURL("Invalid URL"), "permanent"),
    ("httpx-LocalProtocolError", httpx.LocalProtocolError("bad header", request=HTTPX_REQUEST), "permanent"),
    ("httpx-TooManyRedirects", httpx.TooManyRedirects("Exceeded 20 redirects", request=HTTPX_REQUEST), "permanent"),
    ("httpx-DecodingError", httpx.DecodingError("bad gzip", request=HTTPX_REQUEST), "permanent"),
    # requests (its ConnectionError wraps urllib3's MaxRetryError, as its adapter does)
    ("requests-ReadTimeout", requests.exceptions.ReadTimeout("Read timed out.", request=_PREPARED), "transient"),
    ("requests-ConnectTimeout", requests.exceptions.ConnectTimeout("timed out", request=_PREPARED), "transient"),
    ("requests-Timeout", requests.exceptions.Timeout("timed out"), "transient"),
    ("requests-ConnectionError", requests.exceptions.ConnectionError(_MAX_RETRY, request=_PREPARED), "transient"),
    ("requests-ChunkedEncodingError", requests.exceptions.ChunkedEncodingError("Connection broken"), "transient"),
    ("requests-ProxyError", requests.exceptions.ProxyError("Cannot connect to proxy"), "transient"),
    ("requests-SSLError", requests.exceptions.SSLError(_ssl_error(), request=_PREPARED), "permanent"),
    ("requests-MissingSchema", requests.exceptions.MissingSchema("Invalid URL 'x': No scheme"), "permanent"),
    ("requests-InvalidSchema", requests.exceptions.InvalidSchema("No connection adapters"), "permanent"),
    ("requests-InvalidURL", requests.exceptions.InvalidURL("Invalid URL"), "permanent"),
    ("requests-TooManyRedirects", requests.exceptions.TooManyRedirects("Exceeded 30 redirects."), "permanent"),
    # urllib3
    ("urllib3-ReadTimeoutError", urllib3.exceptions.ReadTimeoutError(_POOL, URL, "Read timed out."), "transient"),
    ("urllib3-ConnectTimeoutError", urllib3.exceptions.ConnectTimeoutError(_CONN, "timed out"), "transient"),
    ("urllib3-NewConnectionError", _NEW_CONN, "transient"),
    ("urllib3-MaxRetryError-from-NewConnectionError", _MAX_RETRY, "transient"),
    (
        "urllib3-ProtocolError",
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        "transient",
    ),
    ("urllib3-SSLError", urllib3.exceptions.SSLError("certificate verify failed"), "permanent"),
    # urllib (it raises URLError while handling the socket error)
    (
        "urllib-URLError-while-ConnectionRefusedError",
        raised_while_handling(urllib.error.URLError("refused"), ConnectionRefusedError(111, "Connection refused")),
        "transient",
    ),
    ("http.client-RemoteDisconnected", http.client.RemoteDisconnected("Remote end closed connection"), "transient"),
    ("http.client-IncompleteRead", http.client.IncompleteRead(b"partial", 10), "transient"),
    # aiohttp
    ("aiohttp-ServerTimeoutError", aiohttp.ServerTimeoutError("Timeout on reading data from socket"), "transient"),
    ("aiohttp-ConnectionTimeoutError", aiohttp.ConnectionTimeoutError("Connection timeout"), "transient"),
    ("aiohttp-ServerDisconnectedError", aiohttp.ServerDisconnectedError(), "transient"),
    ("aiohttp-ClientConnectionError", aiohttp.ClientConnectionError("dropped"), "transient"),
    ("aiohttp-ClientPayloadError", aiohttp.ClientPayloadError("Response payload is not completed"), "transient"),
    ("aiohttp-InvalidURL", aiohttp.InvalidURL("not a url"), "permanent"),
    # openai / anthropic
    ("openai-APITimeoutError", openai.APITimeoutError(request=HTTPX_REQUEST), "transient"),
    ("openai-APIConnectionError", openai.APIConnectionError(request=HTTPX_REQUEST), "transient"),
    (
        "openai-APIResponseValidationError",
        openai.APIResponseValidationError(httpx.Response(200, request=HTTPX_REQUEST), body={"bad": True}),
        "permanent",
    ),
    ("anthropic-APITimeoutError", anthropic.APITimeoutError(request=HTTPX2_REQUEST), "transient"),
    ("anthropic-APIConnectionError", anthropic.APIConnectionError(request=HTTPX2_REQUEST), "transient"),
    # langchain-core
    ("langchain-ModelRateLimitError", ModelRateLimitError("rate limited"), "transient"),
    ("langchain-ModelTimeoutError", ModelTimeoutError("timed out"), "transient"),
    ("langchain-ModelConnectionError", ModelConnectionError("unreachable"), "transient"),
    ("langchain-ModelAPIError", ModelAPIError("server error"), "transient"),
    ("langchain-ModelAuthenticationError", ModelAuthenticationError("bad key"), "permanent"),
    ("langchain-ModelPermissionDeniedError", ModelPermissionDeniedError("denied"), "permanent"),
    ("langchain-ModelInvalidRequestError", ModelInvalidRequestError("bad request"), "permanent"),
    ("langchain-ModelNotFoundError", ModelNotFoundError("no such model"), "permanent"),
    ("langchain-ContextOverflowError", ContextOverflowError("too many tokens"), "permanent"),
    ("langchain-ModelRefusalError", ModelRefusalError(), "permanent"),
    ("langchain-OutputParserException", OutputParserException("Invalid json output: {"), "transient"),
    # builtins
    ("builtin-TimeoutError", TimeoutError("read timed out"), "transient"),
    ("builtin-asyncio.TimeoutError", asyncio.TimeoutError(), "transient"),
    ("builtin-socket.timeout", socket.timeout("timed out"), "transient"),  # noqa: UP041 - the alias itself
    ("builtin-concurrent.futures.TimeoutError", concurrent.futures.TimeoutError(), "transient"),
    ("builtin-ConnectionResetError", ConnectionResetError(104, "Connection reset by peer"), "transient"),
    ("builtin-ConnectionRefusedError", ConnectionRefusedError(111, "Connection refused"), "transient"),
    ("builtin-ConnectionAbortedError", ConnectionAbortedError(103, "Software caused connection abort"), "transient"),
    ("builtin-BrokenPipeError", BrokenPipeError(32, "Broken pipe"), "transient"),
    ("builtin-PermissionError", PermissionError(13, "Permission denied"), "permanent"),
    ("builtin-FileNotFoundError", FileNotFoundError(2, "No such file"), "permanent"),
    ("builtin-NotImplementedError", NotImplementedError("later"), "permanent"),
    ("ssl-SSLCertVerificationError", _ssl_error(), "permanent"),
    ("builtin-HTTPStatusFault-429", HTTPStatusFault(429), "transient"),
    ("builtin-HTTPStatusFault-403", HTTPStatusFault(403), "permanent"),
    # plain bugs in the step: not a connector's error, surface them
    ("bug-KeyError", KeyError("answer"), "unknown"),
    ("bug-ValueError", ValueError("bad input"), "unknown"),
    ("bug-TypeError", TypeError("unsupported operand"), "unknown"),
    ("bug-AttributeError", AttributeError("no attribute 'x'"), "unknown"),
    ("bug-ZeroDivisionError", ZeroDivisionError("division by zero"), "unknown"),
    ("bug-RuntimeError", RuntimeError("boom"), "unknown"),
    ("bug-plain-OSError", OSError("something"), "unknown"),
]

CONTROL_ROWS: list[tuple[str, BaseException]] = [
    ("GraphInterrupt", GraphInterrupt()),
    ("GraphBubbleUp", GraphBubbleUp()),
    ("ParentCommand", ParentCommand(Command(graph=Command.PARENT, goto="elsewhere"))),
]


# -- the verdict table ----------------------------------------------------------------------


@pytest.mark.parametrize(("exc", "kind", "status"), list(status_rows()))
def test_http_status_verdict(exc: BaseException, kind: str, status: int) -> None:
    verdict = classify_error(exc)
    assert verdict.kind == kind
    assert verdict.status == status
    assert verdict.retryable is (kind == "transient")
    assert retry_on(exc) is (kind == "transient")
    assert verdict.error == type(exc).__name__


@pytest.mark.parametrize(("exc", "kind"), [pytest.param(e, k, id=i) for i, e, k in CLASS_ROWS])
def test_exception_class_verdict(exc: BaseException, kind: str) -> None:
    verdict = classify_error(exc)
    assert verdict.kind == kind
    assert verdict.retryable is (kind == "transient")
    assert retry_on(exc) is (kind == "transient")
    assert verdict.error == type(exc).__name__


@pytest.mark.parametrize("exc", [pytest.param(e, id=i) for i, e in CONTROL_ROWS])
def test_langgraph_control_flow_is_control(exc: BaseException) -> None:
    verdict = classify_error(exc)
    assert verdict.kind == "control" and not verdict.retryable
    assert retry_on(exc) is False


def test_real_anthropic_errors_carry_httpx2_objects() -> None:
    # Guards the table above: anthropic 2.x keeps an httpx2 (not httpx) response on its errors.
    exc = anthropic_status(429, {"Retry-After": "3"})
    assert isinstance(exc, anthropic.RateLimitError) and isinstance(exc.response, httpx2.Response)
    assert classify_error(exc).retry_after == 3.0
    assert type(anthropic_status(529)).__name__ == "OverloadedError"


# -- the cause chain --------------------------------------------------------------------------


def test_unknown_wrapper_raised_from_httpx_timeout_is_transient() -> None:
    exc = raised_from(ToolFailed("search tool failed"), httpx.ReadTimeout("slow", request=HTTPX_REQUEST))
    verdict = classify_error(exc)
    assert verdict.kind == "transient" and verdict.error == "ToolFailed"
    assert retry_on(exc)


def test_unknown_wrapper_follows_implicit_context_and_permanent_cause() -> None:
    assert classify_error(raised_while_handling(ToolFailed("x"), ConnectionResetError(104, "reset"))).kind == (
        "transient"
    )
    assert classify_error(raised_from(ToolFailed("x"), httpx_status(404))).kind == "permanent"
    assert classify_error(raised_from(ToolFailed("x"), requests_status(503))).kind == "transient"


def test_wrapper_raised_from_none_is_unknown() -> None:
    exc = raised_while_handling(ToolFailed("x"), TimeoutError("slow"))
    exc.__suppress_context__ = True  # what `raise ... from None` sets
    assert classify_error(exc).kind == "unknown"


def test_known_outer_class_wins_over_its_cause() -> None:
    exc = raised_from(ValueError("bad input"), TimeoutError("slow"))  # ValueError is unknown: the cause decides
    assert classify_error(exc).kind == "transient"
    exc = raised_from(httpx_status(400), TimeoutError("slow"))  # a status is read first
    assert classify_error(exc).kind == "permanent"


def test_wrapper_of_control_flow_is_not_control() -> None:
    exc = raised_from(ToolFailed("x"), GraphInterrupt())
    assert classify_error(exc).kind == "unknown"


def test_cyclic_cause_chain_terminates() -> None:
    a, b = ToolFailed("a"), ToolFailed("b")
    a.__cause__, b.__cause__ = b, a
    assert classify_error(a).kind == "unknown"


# -- retry_after ------------------------------------------------------------------------------


def http_date(delta: timedelta) -> str:
    """An HTTP date `delta` from the frozen clock's time (tests that use it freeze the clock)."""
    return format_datetime(FROZEN_AT + delta, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "2"}, 2.0, id="seconds"),
        pytest.param({"Retry-After": "0.25"}, 0.25, id="fractional-seconds"),
        pytest.param({"Retry-After": " 7 "}, 7.0, id="padded"),
        pytest.param({"Retry-After": "0"}, 0.0, id="zero"),
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="retry-after-ms"),
        pytest.param({"retry-after-ms": "250", "Retry-After": "9"}, 0.25, id="ms-wins-over-seconds"),
        pytest.param({"retry-after-ms": "soon", "Retry-After": "3"}, 3.0, id="junk-ms-falls-back"),
        pytest.param({"retry-after-ms": "-5", "Retry-After": "3"}, 3.0, id="negative-ms-falls-back"),
        pytest.param({"Retry-After": "soon"}, None, id="junk"),
        pytest.param({"Retry-After": ""}, None, id="empty"),
        pytest.param({"Retry-After": "-1"}, None, id="negative"),
        pytest.param({"Retry-After": "nan"}, None, id="nan"),
        pytest.param({"Retry-After": "inf"}, None, id="inf"),
        pytest.param({"Retry-After": http_date(timedelta(hours=-1))}, 0.0, id="http-date-in-the-past"),
        pytest.param({}, None, id="no-header"),
    ],
)
@pytest.mark.parametrize(
    "make",
    [httpx_status, requests_status, openai_status, anthropic_status, urllib_status, aiohttp_status],
    ids=["httpx", "requests", "openai", "anthropic", "urllib", "aiohttp"],
)
def test_retry_after_header(
    make: Callable[..., BaseException], headers: dict[str, str], expected: float | None, clock: Clock
) -> None:
    exc = make(429, headers)
    assert retry_after(exc) == expected
    assert classify_error(exc).retry_after == expected


@pytest.mark.parametrize(
    "make",
    [httpx_status, requests_status, openai_status, anthropic_status],
    ids=["httpx", "requests", "openai", "anthropic"],
)
def test_retry_after_http_date_in_the_future(make: Callable[..., BaseException], clock: Clock) -> None:
    exc = make(503, {"Retry-After": http_date(timedelta(seconds=30))})
    assert retry_after(exc) == 30.0
    clock.advance(timedelta(seconds=12))
    assert retry_after(exc) == 18.0


class RateLimited(Exception):
    def __init__(self, hint: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__("HTTP 429")
        self.retry_after = hint
        if headers is not None:
            self.headers = headers


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(RateLimited(4), 4.0, id="int-attribute"),
        pytest.param(RateLimited(0.5), 0.5, id="float-attribute"),
        pytest.param(RateLimited(0), 0.0, id="zero-attribute"),
        pytest.param(RateLimited(-1), None, id="negative-attribute-ignored"),
        pytest.param(RateLimited(float("nan")), None, id="nan-attribute-ignored"),
        pytest.param(RateLimited(float("inf")), None, id="inf-attribute-ignored"),
        pytest.param(RateLimited(True), None, id="bool-attribute-ignored"),
        pytest.param(RateLimited("2"), None, id="string-attribute-ignored"),
        pytest.param(RateLimited(-1, {"Retry-After": "6"}), 6.0, id="bad-attribute-falls-back-to-header"),
        pytest.param(RateLimited(1, {"Retry-After": "6"}), 1.0, id="attribute-wins-over-header"),
        pytest.param(HTTPStatusFault(429, headers={"retry-after": "1.5"}), 1.5, id="lowercase-header-on-exception"),
        pytest.param(TimeoutError("slow"), None, id="no-hint"),
        pytest.param(ValueError("no hint"), None, id="unrelated"),
    ],
)
def test_retry_after_attribute(exc: BaseException, expected: float | None) -> None:
    assert retry_after(exc) == expected


def test_retry_after_only_reported_on_transient_verdicts() -> None:
    exc = httpx_status(403, {"Retry-After": "5"})
    assert retry_after(exc) == 5.0
    assert classify_error(exc).retry_after is None


def test_retry_after_survives_a_headers_mapping_that_raises() -> None:
    class BadHeaders:
        def get(self, key: str) -> str:
            raise RuntimeError("broken mapping")

    exc = HTTPStatusFault(429)
    exc.headers = BadHeaders()  # type: ignore[assignment]
    assert retry_after(exc) is None
    assert classify_error(exc).kind == "transient" and classify_error(exc).retry_after is None


# -- ErrorClass.describe ------------------------------------------------------------------------


def test_describe_names_class_status_and_message() -> None:
    verdict = classify_error(httpx_status(429))
    text = verdict.describe()
    assert text.startswith("HTTPStatusError (HTTP 429): ") and "429" in text and URL in text
    assert classify_error(requests_status(503)).describe().startswith("HTTPError (HTTP 503): 503 Server Error")
    assert classify_error(TimeoutError("read timed out")).describe() == "TimeoutError: read timed out"
    assert classify_error(ValueError()).describe() == "ValueError"


def test_describe_cuts_long_messages() -> None:
    verdict = classify_error(RuntimeError("x" * 500))
    assert len(verdict.message) == 200 and verdict.message.endswith("...")
    assert verdict == ErrorClass(
        kind="unknown", status=None, retry_after=None, error="RuntimeError", message="x" * 197 + "..."
    )


# -- control flow is never retried ------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(lambda clock: ConnectorRetry(sleep=clock.sleep, asleep=clock.asleep), id="classifier"),
        pytest.param(
            lambda clock: ConnectorRetry(retry_on=(Exception,), sleep=clock.sleep, asleep=clock.asleep),
            id="retry_on-Exception",
        ),
        pytest.param(
            lambda clock: ConnectorRetry(retry_on=lambda exc: True, sleep=clock.sleep, asleep=clock.asleep),
            id="retry_on-always",
        ),
    ],
)
@pytest.mark.parametrize("exc", [pytest.param(e, id=i) for i, e in CONTROL_ROWS])
def test_connector_retry_reraises_control_flow_at_once(
    policy: Callable[[VirtualClock], ConnectorRetry], exc: BaseException
) -> None:
    clock = VirtualClock()
    retry = policy(clock)
    assert not retry.should_retry(exc)
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise exc

    async def afn() -> None:
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)) as raised:
        retry.call(fn)
    assert raised.value is exc
    with pytest.raises(type(exc)):
        asyncio.run(retry.acall(afn))
    assert len(calls) == 2 and clock.waits == 0


# -- end to end with LangGraph ----------------------------------------------------------------


class State(TypedDict, total=False):
    question: str
    answer: str


def thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


@pytest.mark.parametrize(
    "retry",
    [
        pytest.param(ConnectorRetry(sleep=VirtualClock().sleep), id="classifier"),
        pytest.param(ConnectorRetry(retry_on=(Exception,), sleep=VirtualClock().sleep), id="retry_on-Exception"),
    ],
)
def test_interrupt_inside_connector_retry_reaches_langgraph(retry: ConnectorRetry) -> None:
    calls: list[int] = []

    def ask_a_human() -> str:
        calls.append(1)
        return cast(str, interrupt("need a human"))

    def node(state: State) -> dict[str, Any]:
        return {"answer": retry.call(ask_a_human)}

    builder: StateGraph[State, None, State, State] = StateGraph(State)
    builder.add_node(
        "step",
        node,
        retry_policy=RetryPolicy(retry_on=retry_on, initial_interval=0.001, jitter=False, max_attempts=3),
    )
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    config = thread("interrupt")

    out = graph.invoke({"question": "q"}, config)
    assert "__interrupt__" in out
    assert [i.value for i in out["__interrupt__"]] == ["need a human"]
    assert len(calls) == 1  # neither ConnectorRetry nor the RetryPolicy re-ran it

    out = graph.invoke(Command(resume="ok"), config)
    assert "__interrupt__" not in out and out["answer"] == "ok"
    assert len(calls) == 2  # the node re-ran once on resume, and interrupt() returned the resumed value


def _graph(body: Callable[[], str], policy: RetryPolicy) -> Any:
    def node(state: State) -> dict[str, Any]:
        return {"answer": body()}

    builder: StateGraph[State, None, State, State] = StateGraph(State)
    builder.add_node("step", node, retry_policy=policy)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile()


def _failing(errors: list[BaseException], calls: list[int]) -> Callable[[], str]:
    def body() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return body


OUR_POLICY = RetryPolicy(retry_on=retry_on, initial_interval=0.001, jitter=False, max_attempts=3)


def _read_timeout() -> BaseException:
    return httpx.ReadTimeout("The read operation timed out", request=HTTPX_REQUEST)


def _requests_connection_error() -> BaseException:
    return requests.exceptions.ConnectionError(_MAX_RETRY, request=_PREPARED)


@pytest.mark.parametrize(
    "make", [_read_timeout, _requests_connection_error], ids=["httpx-ReadTimeout", "requests-ConnectionError"]
)
def test_retry_policy_with_our_retry_on_retries_transient_errors(make: Callable[[], BaseException]) -> None:
    calls: list[int] = []
    graph = _graph(_failing([make(), make()], calls), OUR_POLICY)
    assert graph.invoke({"question": "q"})["answer"] == "ok"
    assert len(calls) == 3


def test_retry_policy_with_our_retry_on_does_not_retry_a_401() -> None:
    calls: list[int] = []
    graph = _graph(_failing([requests_status(401)], calls), OUR_POLICY)
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        graph.invoke({"question": "q"})
    assert raised.value.response is not None and raised.value.response.status_code == 401
    assert len(calls) == 1


def _default_retry_on() -> Callable[[Exception], bool]:
    default = RetryPolicy().retry_on
    assert callable(default) and not isinstance(default, type)
    return default


def test_langgraph_default_retry_on_contrast() -> None:
    default = _default_retry_on()
    unauthorized = requests_status(401)
    # LangGraph's default retries requests' HTTP 401: it tests `if exc.response`, and a
    # requests.Response is falsy for any 4xx/5xx (`Response.__bool__` is `.ok`), so every
    # requests.HTTPError counts as "no response" and is retried. Ours does not.
    assert default(unauthorized) is True and retry_on(unauthorized) is False
    # requests' ConnectionError and timeouts derive from OSError (not builtins.ConnectionError):
    # LangGraph's default never retries them. Ours does.
    for exc in (_requests_connection_error(), requests.exceptions.ReadTimeout("Read timed out.")):
        assert isinstance(exc, Exception)
        assert default(exc) is False and retry_on(exc) is True
    # The builtin TimeoutError is an OSError too: not retried by the default.
    assert default(TimeoutError("slow")) is False and retry_on(TimeoutError("slow")) is True
    # httpx.ReadTimeout: the installed LangGraph (1.2.x) DOES retry it by default, because
    # httpx's exceptions are none of the builtin classes its default refuses, so they fall
    # through to "retry". Both agree here; the contrast is requests' errors and TimeoutError.
    read_timeout = _read_timeout()
    assert isinstance(read_timeout, Exception)
    assert default(read_timeout) is True and retry_on(read_timeout) is True
    # And both refuse an httpx 404 (the default retries httpx statuses 5xx only).
    assert default(httpx_status(404)) is False and retry_on(httpx_status(404)) is False
    # A plain bug: neither retries it.
    assert default(KeyError("answer")) is False and retry_on(KeyError("answer")) is False


def test_langgraph_default_policy_retries_a_401_end_to_end() -> None:
    # The same 401 as above, under LangGraph's default predicate: the node re-runs (3 calls).
    calls: list[int] = []
    default_policy = RetryPolicy(initial_interval=0.001, jitter=False, max_attempts=3)
    graph = _graph(_failing([requests_status(401) for _ in range(3)], calls), default_policy)
    with pytest.raises(requests.exceptions.HTTPError):
        graph.invoke({"question": "q"})
    assert len(calls) == 3


def test_httpx2_errors_classify_like_httpx() -> None:
    httpx2 = pytest.importorskip("httpx2")
    request = httpx2.Request("GET", "https://api.example.com")
    assert classify_error(httpx2.ReadTimeout("t", request=request)).kind == "transient"
    assert classify_error(httpx2.ConnectError("refused", request=request)).kind == "transient"
    assert classify_error(httpx2.UnsupportedProtocol("ftp", request=request)).kind == "permanent"


def test_aiohttp_status_zero_classifies_without_a_deprecation_warning() -> None:
    import warnings

    aiohttp = pytest.importorskip("aiohttp")
    info = aiohttp.RequestInfo(url=aiohttp.client.URL("https://x"), method="GET", headers={}, real_url=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert classify_error(aiohttp.ContentTypeError(info, ())).kind in ("unknown", "transient")


def test_wrapped_rate_limit_keeps_the_servers_retry_after() -> None:
    import httpx

    request = httpx.Request("GET", "https://api.example.com")
    response = httpx.Response(429, headers={"Retry-After": "3"}, request=request)
    try:
        try:
            raise httpx.HTTPStatusError("429", request=request, response=response)
        except httpx.HTTPStatusError as inner:
            raise RuntimeError("the tool failed") from inner
    except RuntimeError as outer:
        verdict = classify_error(outer)
    assert verdict.kind == "transient" and verdict.status == 429 and verdict.retry_after == 3.0
