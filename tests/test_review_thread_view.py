"""Reading where a thread stands: a task LangGraph counts as finished is finished, whatever a racing run left beside it.

Two raw resumes racing on a fan-out can each stop without advancing the superstep (one on
`ConcurrentResumeError`, one on an interrupt it raised before the other run's answer landed),
leaving every task of the superstep with its output and a leftover error or interrupt. LangGraph
treats a task with an output write as done (it never runs it again) and `get_state` shows no
`next`, yet nothing runs the deferred fan-in: `reconcile()` must see the thread as runnable.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from reliable_graph import ConcurrentResumeError
from reliable_graph.escalation.protocol import read_thread

RACE = ConcurrentResumeError(escalation_id="e-c", thread_id="t1", holder="the run that continued from checkpoint c9")


def interrupt(escalation_id: str) -> Any:
    escalation = {"id": escalation_id, "step": "item", "task": "item", "confidence": 0.2, "threshold": 0.9}
    return SimpleNamespace(id=f"i-{escalation_id}", value={**escalation, "reason": "r", "output": "x"})


def task(*, result: Any = None, error: BaseException | None = None, interrupts: tuple[Any, ...] = ()) -> Any:
    return SimpleNamespace(result=result, error=error, interrupts=interrupts, state=None)


def snapshot(*tasks: Any) -> Any:
    return SimpleNamespace(config={"configurable": {"checkpoint_id": "c1"}}, tasks=tasks, values={"results": []})


class Graph:
    def __init__(self, snap: Any) -> None:
        self.snap = snap

    def get_state(self, config: Any, subgraphs: bool = False) -> Any:
        return self.snap


def test_every_task_finished_beside_a_racing_runs_error_and_interrupt_is_runnable() -> None:
    snap = snapshot(
        task(result={"results": ["item:a=edited"]}, interrupts=(interrupt("e-a"),)),  # answered by the winner
        task(result={"results": ["item:b=ok"]}),
        task(result={"results": ["item:c=edited"]}, error=RACE),  # the loser stopped, the winner finished
    )
    view = read_thread(Graph(snap), {"configurable": {"thread_id": "t1"}})
    assert view.runnable and not view.at_rest
    assert not view.failed and view.pending == {}


def test_a_task_that_only_failed_or_only_waits_is_not_finished() -> None:
    failed = read_thread(Graph(snapshot(task(result={}), task(error=RACE))), {})
    assert failed.failed and not failed.runnable
    waiting = read_thread(Graph(snapshot(task(result={}), task(interrupts=(interrupt("e-c"),)))), {})
    assert waiting.pending == {"e-c": "i-e-c"} and waiting.interrupted and not waiting.runnable
