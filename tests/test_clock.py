"""The `clock` fixture freezes every place the library reads the wall clock."""

from __future__ import annotations

import pkgutil
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import CLOCK_READERS, FROZEN_AT, Clock

import reliable_graph
from reliable_graph.escalation import inbox

NOW_CALL = re.compile(r"\bdatetime\.(?:now|utcnow|today)\(|\bdate\.today\(|\btime\.time\(")
TIMING_ONLY = {
    "reliable_graph.resilience.runner",  # a chaos run's thread-id prefix: unique, never compared
}


def test_every_module_that_reads_the_clock_is_frozen_by_the_fixture() -> None:
    readers = set()
    for module in pkgutil.walk_packages(reliable_graph.__path__, "reliable_graph."):
        path = Path(reliable_graph.__path__[0], *module.name.split(".")[1:])
        source = path / "__init__.py" if module.ispkg else path.with_suffix(".py")
        if NOW_CALL.search(source.read_text(encoding="utf-8")):
            readers.add(module.name)
    assert readers - TIMING_ONLY == set(CLOCK_READERS)


def test_the_clock_is_frozen_and_moves_only_when_told(clock: Clock) -> None:
    assert inbox._utcnow() == FROZEN_AT == clock.at
    assert clock.advance(timedelta(minutes=15)) == inbox._utcnow() == datetime(2026, 12, 6, 0, 5, tzinfo=timezone.utc)
