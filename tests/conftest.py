import importlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

import pytest

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
if "PYTEST_XDG_CACHE_HOME" not in os.environ:  # the demo's calibration cache: this run's own, never the user's
    import tempfile

    os.environ["XDG_CACHE_HOME"] = os.environ["PYTEST_XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="rg-test-cache-")

from hypothesis import settings  # noqa: E402

settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
"""The property tests draw the same examples on every run (CI never fails on a draw it did not make before);
`HYPOTHESIS_PROFILE=explore pytest` draws new ones, to look for bugs."""

MATRIX_MODULES = frozenset(
    {
        "test_review_matrix",  # every escalation path x shape x backend x store x reviewers
        "test_review_kills",  # a process SIGKILLed at every crash point, both backends
        "test_answers_property",  # generated answers along every path
        "test_shapes_postgres",  # the shapes on Postgres
        "test_server",  # the real `langgraph dev` server
        "test_server_inbox",
        "test_server_ui",  # the stock UIs' requests against the server
        "test_chaos_runner",  # chaos runs with SIGKILLs
        "test_benchmarks_smoke",  # every benchmark script, small
    }
)
"""The modules of the full matrix (marker `matrix`): CI runs them on one Python; `make smoke` leaves them out."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in MATRIX_MODULES:
            item.add_marker(pytest.mark.matrix)


FROZEN_AT = datetime(2026, 12, 5, 23, 50, tzinfo=timezone.utc)
"""Where the `clock` fixture starts: ten minutes to midnight UTC, so a date that changes within hours shows."""

CLOCK_READERS = (
    "reliable_graph.nodes._task",  # an escalation's created_at
    "reliable_graph.escalation.inbox",  # claims, leases, deadlines, sweeps
    "reliable_graph.escalation.protocol",  # a direct answer's claim, a continuation's claim, the default clock
    "reliable_graph.server",  # when "Mark as Resolved" dismissed an escalation
    "reliable_graph.console._format",  # a claim shown as lapsed
    "reliable_graph.resilience.classify",  # a Retry-After HTTP date
    "reliable_graph.evaluators.freshness",  # Freshness's default clock
)
"""The library's modules that read the wall clock (`datetime.now`); tests/test_clock.py keeps this list whole."""


@dataclass
class Clock:
    """The time the library reads under the `clock` fixture: fixed until moved."""

    at: datetime

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """Freeze the library's clock at `FROZEN_AT` (move it with `clock.advance(...)`)."""
    state = Clock(FROZEN_AT)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return state.at.astimezone(tz) if tz is not None else state.at.replace(tzinfo=None)

    for name in CLOCK_READERS:
        monkeypatch.setattr(importlib.import_module(name), "datetime", Frozen)
    yield state


POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_db() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped after), so runs never see each other's rows."""
    import psycopg

    name = f"rg_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
