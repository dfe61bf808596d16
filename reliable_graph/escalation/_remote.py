"""What `ServerInbox` asks a LangGraph Server: its store, its threads, a resume (through `langgraph_sdk`).

`langgraph_sdk` (and httpx) are imported on first use, so the package imports without them.
A server that cannot be reached is a `ConnectionError` naming the URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from reliable_graph.escalation.resume import escalations_of

PAGE = 100
"""Store items per request."""
THREAD_PAGE = 1000
"""Threads per request (the most `threads.search` gives)."""


def iso(moment: datetime) -> str:
    """`moment` as ISO 8601 UTC."""
    return moment.astimezone(timezone.utc).isoformat()


def when(text: Any) -> datetime | None:
    """An ISO 8601 time as an aware datetime (naive ones read as UTC), or None."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def waiting_in(state: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(interrupt id, escalation) for every escalation waiting in a thread state, subgraphs' included."""
    if not isinstance(state, Mapping):
        return
    for task in state.get("tasks") or ():
        for item in task.get("interrupts") or ():
            for esc in escalations_of(item.get("value")):
                yield str(item.get("id")), esc
        yield from waiting_in(task.get("state"))


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


class Remote:
    """One deployment, as the inbox uses it."""

    def __init__(self, url: str, *, api_key: str | None, timeout: float) -> None:
        self.url = url
        self._api_key = api_key
        self._timeout = timeout
        self._sdk: Any = None
        self._assistants: dict[str, str] = {}

    @property
    def client(self) -> Any:
        """The `langgraph_sdk` sync client (made on first use)."""
        if self._sdk is None:
            from langgraph_sdk import get_sync_client

            options: dict[str, Any] = {"url": self.url, "timeout": self._timeout}
            if self._api_key is not None:
                options["api_key"] = self._api_key
            self._sdk = get_sync_client(**options)
        return self._sdk

    def close(self) -> None:
        """Close the HTTP client (a new one is made if used again)."""
        if self._sdk is not None:
            self._sdk.close()
            self._sdk = None

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, a server that cannot be reached raised as a `ConnectionError` naming the URL."""
        import httpx

        try:
            return fn(*args, **kwargs)
        except httpx.TransportError as exc:
            msg = f"cannot reach LangGraph Server at {self.url}: {str(exc) or type(exc).__name__}"
            raise ConnectionError(msg) from None

    def info(self) -> dict[str, Any]:
        """The server's `/info`, asked once (the client's transport retries a refused connection for seconds).

        Raises:
            ConnectionError: nothing answers at the URL, or what answers is not a LangGraph Server.
        """
        import httpx

        headers = dict(self.client.http.client.headers)  # the SDK's: its API key, its user agent
        response = self.call(httpx.get, f"{self.url}/info", headers=headers, timeout=10.0)
        if response.status_code != 200:
            msg = f"{self.url} is not a LangGraph Server (GET /info answered {response.status_code})"
            raise ConnectionError(msg)
        try:
            info = response.json()
        except ValueError:
            info = None
        if not isinstance(info, dict):
            msg = f"{self.url} is not a LangGraph Server (GET /info did not answer a JSON object)"
            raise ConnectionError(msg)
        return info

    # -- the store ---------------------------------------------------------------------------------

    def search(self, namespace: Sequence[str], **options: Any) -> Iterator[dict[str, Any]]:
        """Every item under the namespace prefix, page by page (an item a page boundary moved is given once)."""
        offset = 0
        seen: set[tuple[tuple[str, ...], str]] = set()
        while True:
            page = self.call(self.client.store.search_items, list(namespace), limit=PAGE, offset=offset, **options)
            items = list((page or {}).get("items") or [])
            for item in items:
                key = (tuple(item.get("namespace") or ()), str(item["key"]))
                if key not in seen:
                    seen.add(key)
                    yield item
            if len(items) < PAGE:
                return
            offset += len(items)

    def get(self, namespace: Sequence[str], key: str) -> dict[str, Any] | None:
        """The value of one item, or None."""
        found = self.call(self.client.store.get_item, list(namespace), key)
        value = found.get("value") if isinstance(found, Mapping) else None
        return dict(value) if isinstance(value, Mapping) else None

    def put(self, namespace: Sequence[str], key: str, value: Mapping[str, Any]) -> None:
        """Write one item (not indexed for semantic search)."""
        self.call(self.client.store.put_item, list(namespace), key, dict(value), index=False)

    def delete(self, namespace: Sequence[str], key: str) -> None:
        """Delete one item (nothing happens if it is not there)."""
        self.call(self.client.store.delete_item, list(namespace), key)

    # -- threads -----------------------------------------------------------------------------------

    def thread(self, thread_id: str) -> dict[str, Any] | None:
        """The thread (status, metadata...), or None when the server has no such thread."""
        import httpx

        try:
            return dict(self.call(self.client.threads.get, thread_id))
        except httpx.HTTPStatusError as exc:
            if _status(exc) == 404:
                return None
            raise

    def threads(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every thread matching `filters` (`threads.search`'s), page by page."""
        offset = 0
        while True:
            page = list(self.call(self.client.threads.search, limit=THREAD_PAGE, offset=offset, **filters))
            yield from page
            if len(page) < THREAD_PAGE:
                return
            offset += len(page)

    def waiting(self, thread_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(interrupt id, escalation) for every escalation its thread waits on now."""
        return list(waiting_in(self.call(self.client.threads.get_state, thread_id, subgraphs=True)))

    def assistant(self, thread_id: str) -> str:
        """The graph (assistant) a thread runs, from its metadata."""
        if thread_id not in self._assistants:
            metadata = (self.thread(thread_id) or {}).get("metadata") or {}
            found = metadata.get("assistant_id") or metadata.get("graph_id")
            if not found:
                msg = f"thread {thread_id} names no graph in its metadata (graph_id, assistant_id): cannot resume it"
                raise ValueError(msg)
            self._assistants[thread_id] = str(found)
        return self._assistants[thread_id]

    def resume(self, thread_id: str, answer: Mapping[str, Any]) -> dict[str, Any] | None:
        """Resume the thread with `answer` in a run of its own and wait for it; None if another run holds it (409).

        The run is created with `multitask_strategy="reject"` (refused while any other run of the
        thread is pending or running) and `durability="sync"`. A failed run comes back as its
        error (read it with `_compat.run_error`).
        """
        import httpx

        try:
            out = self.call(
                self.client.runs.wait,
                thread_id,
                self.assistant(thread_id),
                command={"resume": dict(answer)},
                multitask_strategy="reject",
                durability="sync",
                raise_error=False,
            )
        except httpx.HTTPStatusError as exc:
            if _status(exc) == 409:
                return None
            raise
        return dict(out) if isinstance(out, Mapping) else {}
