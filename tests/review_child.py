"""A reviewer (or an operator's reconcile) in its own process, SIGKILLed at a named crash point.

    python review_child.py resolve   BACKEND WHERE SHAPE EFFECTS CRASH_POINT CLOCK ESCALATION_ID REVIEWER
    python review_child.py reconcile BACKEND WHERE SHAPE EFFECTS CRASH_POINT CLOCK

CRASH_POINT is one of `CrashPoint.ALL`, or `none`. CLOCK is `mono` (a frozen date, T0, plus the
machine's monotonic clock, which every process shares) or an ISO 8601 instant (frozen there).
Prints `done` when the call returned without being killed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from review_app import app  # noqa: E402

from reliable_graph import EscalationInbox  # noqa: E402
from reliable_graph.escalation.protocol import on_crash_point  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LEASE = timedelta(seconds=2)
"""The resolution lease of the children: short, so the parent's reconcile can take over soon after a kill."""


def clock_of(spec: str) -> Any:
    if spec == "mono":
        return lambda: T0 + timedelta(seconds=time.monotonic())
    frozen = datetime.fromisoformat(spec)
    return lambda: frozen


def main() -> None:
    mode, backend, where, shape, effects, point, clock = sys.argv[1:8]

    def hook(reached: str) -> None:
        if reached == point:
            os.kill(os.getpid(), signal.SIGKILL)

    on_crash_point(hook)
    with app(shape, backend, where, effects=Path(effects)) as (graph, store):
        inbox = EscalationInbox(store, graph=graph, clock=clock_of(clock), resolution_lease=LEASE)
        if mode == "resolve":
            escalation_id, reviewer = sys.argv[8:10]
            item = inbox.show(escalation_id)
            task = str(item.escalation["output"][0]).split("=", 1)[0]
            inbox.resolve(escalation_id, {"action": "edit", "output": [f"{task}=edited"]}, reviewer=reviewer)
        else:
            inbox.reconcile()
    print("done", flush=True)


if __name__ == "__main__":
    main()
