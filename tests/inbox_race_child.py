"""One reviewer process racing others to resolve the same escalation (see test_inbox.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from inbox_app import postgres_app, sqlite_app  # noqa: E402

from reliable_graph import AlreadyResolvedError, EscalationInbox  # noqa: E402


def main() -> None:
    backend, db, side_effects, escalation_id, reviewer, start_at = sys.argv[1:7]
    app = sqlite_app(Path(db), Path(side_effects)) if backend == "sqlite" else postgres_app(Path(side_effects))
    with app as (graph, store):
        inbox = EscalationInbox(store, graph=graph)
        while time.time() < float(start_at):  # start together
            time.sleep(0.001)
        try:
            inbox.resolve(escalation_id, {"action": "edit", "output": f"by {reviewer}"}, reviewer=reviewer)
            print("won")
        except AlreadyResolvedError as err:
            print(f"lost:{err.by}")


if __name__ == "__main__":
    main()
