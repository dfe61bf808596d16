"""One reviewer process racing others to resolve the same escalations on a LangGraph Server (test_server_inbox.py).

Arguments: the server's URL, the reviewer's name, the escalation ids as a JSON list. The process
reads each escalation first, prints `ready`, waits for a line on stdin (every reviewer starts
together), then tries to resolve every escalation in an order of its own with an edit naming
itself, printing one JSON line per escalation (`won`, or `lost:<winner>`), then one line with the
number of runs it sent that the server ran (a run that did not take the answer is a lost race).
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from reliable_graph import AlreadyResolvedError, ServerInbox

FIXED = datetime(2026, 12, 5, 23, 50, tzinfo=timezone.utc)
"""The inbox's clock here (its audit lines' time): no test reads the wall clock."""


def edited(original: Any, reviewer: str) -> Any:
    """An edit of `original` (text, a record or a list, like the example's outputs) naming the reviewer."""
    if isinstance(original, dict):
        return {**original, "source": f"by {reviewer}"}
    if isinstance(original, list):
        return [f"by {reviewer}"]
    return f"by {reviewer}"


def main() -> None:
    url, reviewer, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    order = list(ids)
    random.Random(reviewer).shuffle(order)
    with ServerInbox(url, clock=lambda: FIXED, wait=timedelta(minutes=5)) as inbox:
        outputs = {escalation_id: inbox.show(escalation_id).escalation.get("output") for escalation_id in order}
        runs = 0
        send = inbox._remote.resume

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal runs
            out = send(*args, **kwargs)
            runs += out is not None
            return out

        inbox._remote.resume = counted  # type: ignore[method-assign]
        print("ready", flush=True)
        sys.stdin.readline()
        for escalation_id in order:
            answer = {"action": "edit", "output": edited(outputs[escalation_id], reviewer)}
            try:
                inbox.resolve(escalation_id, answer, reviewer=reviewer)
                result = "won"
            except AlreadyResolvedError as err:
                result = f"lost:{err.by}"
            print(json.dumps({"id": escalation_id, "result": result}), flush=True)
        print(json.dumps({"runs": runs}), flush=True)


if __name__ == "__main__":
    main()
