"""End-to-end reliability from checkpoints: per-step outcomes, observed and predicted success.

Reads any LangGraph checkpointer through its public `list()` API, takes the latest root
checkpoint (`checkpoint_ns == ""`) of every thread and reads the library's `reliability`
record from it. The report knows only what was recorded: a silent failure (a wrong output that
passed every check) is by definition invisible to it, so "completed" here means "completed
without escalation", the sum of true successes and silent failures. Threads without a
`reliability` record (plain LangGraph runs) are counted apart, never mixed in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from reliable_graph._compat import channel_snapshot, pending_write_kinds
from reliable_graph.state import RELIABILITY_KEY, merge_reliability

__all__ = [
    "REFERENCE_RATES",
    "PassK",
    "Report",
    "SilentFailureEstimate",
    "StepStats",
    "clopper_pearson",
    "areliability_report",
    "chart_path",
    "format_report",
    "reliability_report",
    "write_chart",
]

OK_OUTCOMES = ("pass", "retry_pass", "approved", "edited")
OUTCOMES = ("pass", "retry_pass", "escalate", "approved", "edited", "terminated")
STATUSES = ("completed", "escalated", "dismissed", "terminated", "failed", "incomplete")
REFERENCE_RATES = (0.85, 0.90, 0.95, 0.99)
"""Per-step reliabilities of the chart's reference curves."""


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided Clopper-Pearson interval of a rate seen `k` times in `n`.

    Example:
        ```python
        from reliable_graph.report import clopper_pearson

        low, high = clopper_pearson(2, 100)
        assert low < 0.02 < high and abs(high - 0.0704) < 1e-3
        ```
    """
    from reliable_graph.calibration import binomial_upper_bound

    if n <= 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    high = binomial_upper_bound(k, n, tail)
    low = 0.0 if k == 0 else 1 - binomial_upper_bound(n - k, n, tail)
    return low, high


@dataclass(frozen=True, slots=True, kw_only=True)
class SilentFailureEstimate:
    """An estimated silent-failure rate with its interval, from reviewers' audit labels.

    Example:
        ```python
        from reliable_graph.report import SilentFailureEstimate

        est = SilentFailureEstimate(rate=0.01, low=0.002, high=0.03, labelled=100, wrong=1, passed=900,
                                    executions=1000, confidence=0.95)
        assert est.low <= est.rate <= est.high
        ```
    """

    rate: float
    """The estimate: the share of executions that passed while wrong."""
    low: float
    """The interval's lower end."""
    high: float
    """Its upper end."""
    labelled: int
    """Audits labelled."""
    wrong: int
    """Of which labelled wrong (edited or terminated)."""
    passed: int
    """Executions that passed (the audits' population)."""
    executions: int
    """Finished executions (the rate's denominator)."""
    confidence: float
    """The interval's confidence level."""


PASS_K_MAX = 8
"""The largest k `Report.pass_k()` reports unless told otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PassK:
    """pass^k on one fixed set of tasks: the chance that all k runs of a task succeed without a human.

    For a task run n times with c successes, C(c, k) / C(n, k) is the unbiased estimate of that
    chance (tau-bench's); pass^k is its mean over the tasks kept. Every k is computed on the same
    tasks (those run at least `k_max` times), so pass^k never rises with k.

    Example:
        ```python
        from reliable_graph.report import PassK

        p = PassK(values={1: 0.75, 2: 0.5}, k_max=2, tasks=2, runs=4, left_out=1)
        assert p.to_dict()["values"] == {"1": 0.75, "2": 0.5}
        assert p.describe().endswith("on 2 task(s) run at least 2 times (4 runs; 1 task(s) run fewer times "
                                     "left out): k=1 75.0%, k=2 50.0%")
        ```
    """

    values: dict[int, float]
    """pass^k for k = 1 .. `k_max`."""
    k_max: int
    """The largest k: every task kept ran at least this many times."""
    tasks: int
    """Tasks kept."""
    runs: int
    """Their runs, all counted."""
    left_out: int = 0
    """Tasks left out: they ran fewer than `k_max` times."""

    def describe(self) -> str:
        """One line: which tasks, then pass^k for each k."""
        left = f"; {self.left_out} task(s) run fewer times left out" if self.left_out else ""
        return (
            f"pass^k (all k runs of a task succeed without a human) on {self.tasks} task(s) run at least "
            f"{self.k_max} times ({self.runs} runs{left}): "
            + ", ".join(f"k={k} {v:.1%}" for k, v in self.values.items())
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (the keys of `values` as strings)."""
        return {
            "values": {str(k): v for k, v in self.values.items()},
            "k_max": self.k_max,
            "tasks": self.tasks,
            "runs": self.runs,
            "left_out": self.left_out,
        }


def _pass_k(task_runs: Mapping[str, list[bool]], k_max: int | None) -> PassK | None:
    runs = [v for v in task_runs.values() if v]
    if k_max is not None:
        if isinstance(k_max, bool) or not isinstance(k_max, int) or k_max < 1:
            msg = f"k_max must be a positive integer or None, got {k_max!r}"
            raise ValueError(msg)
        kept = [v for v in runs if len(v) >= k_max]
        if not kept:
            most = max((len(v) for v in runs), default=0)
            msg = f"no task ran {k_max} times (the most runs of one task: {most}): nothing to compute pass^{k_max} on"
            raise ValueError(msg)
    else:
        kept = [v for v in runs if len(v) >= 2]  # a task run once says nothing about repeated runs
        if not kept:
            return None
        k_max = min(PASS_K_MAX, min(len(v) for v in kept))
    values = {
        k: sum(math.comb(sum(v), k) / math.comb(len(v), k) for v in kept) / len(kept) for k in range(1, k_max + 1)
    }
    return PassK(values=values, k_max=k_max, tasks=len(kept), runs=sum(map(len, kept)), left_out=len(runs) - len(kept))


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStats:
    """One step's recorded outcomes across threads.

    Example:
        ```python
        from reliable_graph.report import StepStats

        s = StepStats(name="draft", outcomes={"pass": 8, "retry_pass": 1, "escalate": 1})
        assert s.finished == 10 and s.success_rate == 0.9
        ```
    """

    name: str
    """The step's name."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """Threads per outcome: `pass`, `retry_pass`, `escalate`, `approved`, `edited`, `terminated`."""
    decisions: dict[str, int] = field(default_factory=dict)
    """Reviewers' decisions on this step, per action."""
    unfinished: int = 0
    """Threads that recorded the step without an outcome yet (mid-retry, crashed, re-running)."""
    attempts: int = 0
    """Scored attempts recorded on this step, across threads."""

    @property
    def finished(self) -> int:
        """Threads where the step has an outcome."""
        return sum(self.outcomes.values())

    @property
    def success_rate(self) -> float | None:
        """Effective success: share of finished threads with pass, retry_pass, approved or edited."""
        if not self.finished:
            return None
        return sum(self.outcomes.get(o, 0) for o in OK_OUTCOMES) / self.finished

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict, rates included."""
        return {**asdict(self), "finished": self.finished, "success_rate": self.success_rate}


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The reliability of a pipeline measured from its checkpoints.

    Example:
        ```python
        from reliable_graph.report import Report, StepStats

        r = Report(threads=4, statuses={"completed": 3, "escalated": 1}, retry_pass_threads=1,
                   steps=[StepStats(name="a", outcomes={"pass": 4}),
                          StepStats(name="b", outcomes={"pass": 3, "escalate": 1})])
        assert r.observed_e2e_success == 0.75 and r.predicted_e2e_success == 0.75
        assert r.escalated == 0.25 and r.to_dict()["steps"]["b"]["success_rate"] == 0.75
        ```
    """

    threads: int
    """Threads with a reliable-graph record (the denominator of every fraction)."""
    statuses: dict[str, int]
    """Threads per status: `completed` (every recorded step ended pass/retry_pass/approved/edited,
    none pending), `escalated` (a review pending), `dismissed` (an escalation closed outside the
    library with no decision, e.g. Agent Inbox's "Mark as Resolved"), `terminated`, `failed` (the
    latest task raised), `incomplete` (a step without outcome, or fewer steps than expected)."""
    steps: list[StepStats]
    """Per-step statistics, in order of first appearance."""
    retry_pass_threads: int = 0
    """Threads where at least one step ended `retry_pass`."""
    other_threads: int = 0
    """Threads without a reliable-graph record (plain LangGraph runs): not counted above."""
    source: str = ""
    """What was read (e.g. the database's path)."""
    completed_after_review: int = 0
    """Completed threads in which a reviewer decided at least one step (counted in `completed`)."""
    task_runs: dict[str, list[bool]] = field(default_factory=dict)
    """With `task_key`: per task (the key's value), whether each of its runs succeeded without a human."""
    audits: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per step, the inbox's audit labels (`EscalationInbox.audit_labels()`), when given."""
    without_task_key: int = 0
    """With `task_key`: threads (with a record) whose state lacks the key, left out of `task_runs`."""

    def _fraction(self, n: int) -> float:
        return n / self.threads if self.threads else 0.0

    @property
    def observed_e2e_success(self) -> float:
        """Share of threads completed without escalation (true successes plus silent failures)."""
        return self._fraction(self.statuses.get("completed", 0))

    @property
    def success_without_human(self) -> float:
        """Share of threads completed with no reviewer's decision (true successes plus silent failures)."""
        return self._fraction(self.statuses.get("completed", 0) - self.completed_after_review)

    @property
    def success_after_review(self) -> float:
        """Share of threads completed after a reviewer decided at least one step."""
        return self._fraction(self.completed_after_review)

    def pass_k(self, k_max: int | None = None) -> PassK | None:
        """pass^k on a fixed set of tasks, for k = 1 .. k_max (needs `task_key`).

        With `k_max`, the tasks run at least `k_max` times are kept (a `ValueError` when there
        is none). Without it, the tasks run at least twice are kept and `k_max` is the fewest
        runs among them, at most `PASS_K_MAX`; None when no task ran twice. Each pass^k is the
        mean over the kept tasks of C(c, k) / C(n, k), as tau-bench defines it.

        Example:
            ```python
            from reliable_graph.report import Report

            r = Report(threads=7, statuses={}, steps=[],
                       task_runs={"a": [True, True, False], "b": [True, False, False], "c": [True]})
            p = r.pass_k()
            assert (p.k_max, p.tasks, p.left_out) == (3, 2, 1)
            assert p.values == {1: 0.5, 2: 1 / 6, 3: 0.0}
            ```
        """
        return _pass_k(self.task_runs, k_max)

    def silent_failures(self, confidence: float = 0.95) -> dict[str, SilentFailureEstimate]:
        """Estimated silent-failure rates from the audits, per step and for the run (key `""`).

        A step's rate is the share of its finished executions that passed while wrong: the pass
        share (measured on every execution) times the share of its audited passing outputs
        labelled wrong, with a Clopper-Pearson interval at `confidence`. The run's figure is the
        expected number of wrong outputs that passed, per run (at least the share of runs with
        one, and close to it when they are rare): the passing executions per run times the
        share of all audits labelled wrong. Audits sample every passing execution at the same
        rate, so the pooled share is unbiased whatever the steps.
        """
        found: dict[str, SilentFailureEstimate] = {}
        steps = [s for s in self.steps if self.audits.get(s.name, {}).get("labelled")]
        if not steps:
            return found

        def estimate(k: int, n: int, passed: int, executions: int, per: int) -> SilentFailureEstimate:
            scale = passed / per if per else 0.0
            low, high = clopper_pearson(k, n, confidence)
            return SilentFailureEstimate(
                rate=scale * k / n,
                low=scale * low,
                high=scale * high,
                labelled=n,
                wrong=k,
                passed=passed,
                executions=executions,
                confidence=confidence,
            )

        for s in steps:
            labels = self.audits[s.name]
            passed = s.outcomes.get("pass", 0) + s.outcomes.get("retry_pass", 0)
            found[s.name] = estimate(labels["wrong"], labels["labelled"], passed, s.finished, s.finished)
        passed = sum(s.outcomes.get("pass", 0) + s.outcomes.get("retry_pass", 0) for s in self.steps)
        n = sum(int(self.audits.get(s.name, {}).get("labelled", 0)) for s in self.steps)
        k = sum(int(self.audits.get(s.name, {}).get("wrong", 0)) for s in self.steps)
        found[""] = estimate(k, n, passed, self.threads, self.threads)
        return found

    @property
    def escalated(self) -> float:
        """Share of threads waiting on a human review."""
        return self._fraction(self.statuses.get("escalated", 0))

    @property
    def retry_pass(self) -> float:
        """Share of threads with at least one `retry_pass` step."""
        return self._fraction(self.retry_pass_threads)

    @property
    def predicted_e2e_success(self) -> float | None:
        """The product of the per-step success rates (what compounding predicts)."""
        rates = [s.success_rate for s in self.steps if s.success_rate is not None]
        return math.prod(rates) if rates else None

    @property
    def per_step_rate(self) -> float | None:
        """The geometric mean of the per-step rates: the chart's observed curve is this ** steps."""
        predicted = self.predicted_e2e_success
        n = sum(1 for s in self.steps if s.success_rate is not None)
        return predicted ** (1 / n) if predicted is not None and n else None

    def to_dict(self, *, pass_k_max: int | None = None) -> dict[str, Any]:
        """The report as one JSON-friendly object (what `reliable-graph report --json` prints).

        `pass_k_max` is `pass_k`'s `k_max`.
        """
        pass_k = self.pass_k(pass_k_max)
        return {
            "source": self.source,
            "threads": self.threads,
            "other_threads": self.other_threads,
            "statuses": {s: self.statuses.get(s, 0) for s in STATUSES},
            "observed_e2e_success": self.observed_e2e_success,
            "predicted_e2e_success": self.predicted_e2e_success,
            "per_step_rate": self.per_step_rate,
            "escalated": self.escalated,
            "retry_pass": self.retry_pass,
            "success_without_human": self.success_without_human,
            "success_after_review": self.success_after_review,
            "pass_k": pass_k.to_dict()["values"] if pass_k else {},
            "pass_k_tasks": (
                {k: v for k, v in pass_k.to_dict().items() if k != "values"} | {"without_key": self.without_task_key}
                if pass_k
                else None
            ),
            "silent_failure_estimates": {(name or "run"): asdict(est) for name, est in self.silent_failures().items()},
            "steps": {s.name: s.to_dict() for s in self.steps},
            "note": (
                "observed_e2e_success counts threads completed without escalation; silent failures "
                "(wrong outputs that passed every check) are invisible in checkpoints and are included; "
                "audits (audit_rate=...) estimate them"
            ),
        }


class _Accumulator:
    def __init__(self, expected_steps: int | None, task_key: str | None = None) -> None:
        self.expected_steps = expected_steps
        self.task_key = task_key
        self.tasks: dict[str, list[bool]] = {}
        self.without_key = 0
        self.keys: set[str] = set()
        self.reviewed = 0
        self.threads = 0
        self.other = 0
        self.statuses: dict[str, int] = {}
        self.retry_pass = 0
        self.steps: dict[str, dict[str, Any]] = {}

    def add(self, values: Mapping[str, Any], *, errored: bool, waiting: bool) -> None:
        record = values.get(RELIABILITY_KEY)
        if not isinstance(record, Mapping):
            self.other += 1
            return
        self.threads += 1
        tasks: Mapping[str, Any] = record.get("tasks") or {}
        unfinished = False
        any_retry_pass = False
        for rec in tasks.values():
            name = rec.get("path") or rec.get("step")
            stats = self.steps.setdefault(name, {"outcomes": {}, "decisions": {}, "unfinished": 0, "attempts": 0})
            outcome = rec.get("outcome")
            stats["attempts"] += len(rec.get("attempts") or [])
            decision = (rec.get("decision") or {}).get("action")
            if decision:
                stats["decisions"][decision] = stats["decisions"].get(decision, 0) + 1
            if outcome:
                stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1
                any_retry_pass |= outcome == "retry_pass"
            else:
                stats["unfinished"] += 1
                unfinished = True
        self.retry_pass += any_retry_pass
        outcomes = [rec.get("outcome") for rec in tasks.values()]
        in_review = any(rec.get("pending") == "review" for rec in tasks.values())
        if "terminated" in outcomes:
            status = "terminated"
        elif waiting:
            status = "escalated"
        elif in_review:
            status = "dismissed"
        elif errored:
            status = "failed"
        elif unfinished or any(o not in OK_OUTCOMES for o in outcomes):
            status = "incomplete"
        elif self.expected_steps is not None and len({r.get("step") for r in tasks.values()}) < self.expected_steps:
            status = "incomplete"
        else:
            status = "completed"
        self.statuses[status] = self.statuses.get(status, 0) + 1
        human = any(rec.get("decision") for rec in tasks.values())
        self.reviewed += status == "completed" and human
        if self.task_key is not None and self.task_key in values:
            key = repr(values[self.task_key])
            self.tasks.setdefault(key, []).append(status == "completed" and not human)
        elif self.task_key is not None:
            self.without_key += 1
            self.keys.update(str(k) for k in values if k != RELIABILITY_KEY)

    def check_task_key(self) -> None:
        """Refuse a `task_key` that no thread's state has: it would give no pass^k, silently."""
        if self.task_key is None or self.tasks or not self.threads:
            return
        seen = ", ".join(sorted(self.keys)[:20]) or "none"
        msg = f"no thread's state has the key {self.task_key!r} (the keys it has: {seen})"
        raise ValueError(msg)

    def report(self, source: str) -> Report:
        return Report(
            threads=self.threads,
            other_threads=self.other,
            statuses=self.statuses,
            retry_pass_threads=self.retry_pass,
            steps=[StepStats(name=name, **stats) for name, stats in self.steps.items()],
            source=source,
            completed_after_review=self.reviewed,
            task_runs={k: v for k, v in self.tasks.items()},
            without_task_key=self.without_key,
        )


class _Threads:
    """Root checkpoints grouped by thread, to rebuild each thread's latest `reliability` value.

    The `reliability` channel may store only deltas (LangGraph's `DeltaChannel`): its value is
    rebuilt by folding, through the reducer, the writes of every checkpoint on the latest
    checkpoint's lineage (and any snapshot the channel stored), using only the saver's `list`.
    """

    def __init__(self) -> None:
        self.by_thread: dict[str, dict[str, CheckpointTuple]] = {}

    def add(self, item: CheckpointTuple) -> None:
        configurable = item.config.get("configurable", {})
        if configurable.get("checkpoint_ns", "") != "":
            return
        thread = str(configurable.get("thread_id"))
        self.by_thread.setdefault(thread, {})[str(item.checkpoint["id"])] = item

    def values(self) -> Iterable[tuple[Mapping[str, Any], bool, bool]]:
        for items in self.by_thread.values():
            latest = items[max(items)]
            kinds = pending_write_kinds(latest.pending_writes)
            values = dict(latest.checkpoint.get("channel_values") or {})
            record = channel_snapshot(values.get(RELIABILITY_KEY))
            lineage: list[CheckpointTuple] = []
            node: CheckpointTuple | None = latest
            while node is not None:
                lineage.append(node)
                parent = (node.parent_config or {}).get("configurable", {}).get("checkpoint_id")
                node = items.get(str(parent)) if parent else None
            found = record is not None
            for item in reversed(lineage):
                snapshot = channel_snapshot((item.checkpoint.get("channel_values") or {}).get(RELIABILITY_KEY))
                writes = [w[2] for w in item.pending_writes or () if w[1] == RELIABILITY_KEY]
                if snapshot is not None or writes:
                    found = True
                    record = merge_reliability(merge_reliability(record, snapshot), list(writes))
            if found:
                values[RELIABILITY_KEY] = record
            else:
                values.pop(RELIABILITY_KEY, None)
            yield values, "error" in kinds, "interrupt" in kinds


def _sdk_threads(threads: Iterable[Mapping[str, Any]]) -> Iterable[tuple[Mapping[str, Any], bool, bool]]:
    """(values, errored, waiting) of each thread the LangGraph SDK listed."""
    for thread in threads:
        if not isinstance(thread, Mapping) or "thread_id" not in thread:
            msg = f"reliability_report takes a checkpointer or the SDK's threads (dicts with thread_id), got {thread!r}"
            raise TypeError(msg)
        interrupts = thread.get("interrupts") or {}
        waiting = thread.get("status") == "interrupted" or (
            any(interrupts.values()) if isinstance(interrupts, Mapping) else bool(interrupts)
        )
        yield dict(thread.get("values") or {}), thread.get("status") == "error", waiting


def _check_expected(expected_steps: int | None) -> None:
    if expected_steps is not None and (isinstance(expected_steps, bool) or expected_steps < 1):
        msg = f"expected_steps must be a positive integer or None, got {expected_steps!r}"
        raise ValueError(msg)


def reliability_report(
    checkpointer: BaseCheckpointSaver[Any] | Iterable[Mapping[str, Any]],
    *,
    expected_steps: int | None = None,
    source: str = "",
    task_key: str | None = None,
    audits: Mapping[str, Mapping[str, int]] | None = None,
) -> Report:
    """Compute the report across every thread of `checkpointer` (latest root checkpoint each).

    Args:
        checkpointer: Any LangGraph checkpointer (`SqliteSaver`, `InMemorySaver`, Postgres...),
            or the threads of a LangGraph Server deployment as the SDK lists them
            (`client.threads.search(...)`, each with its `values` and `status`).
        expected_steps: When given, a thread that recorded fewer steps is `incomplete`, not
            `completed` (the checkpoints alone cannot tell a finished run from one stopped
            between steps).
        source: A label for the report (e.g. the database's path).
        task_key: A state key naming the task a thread ran (e.g. `"question"`): threads with the
            same value are repeated runs of one task, for `pass^k`.
        audits: The inbox's audit labels (`EscalationInbox.audit_labels()`), to estimate silent
            failures (`Report.silent_failures()`).

    Returns:
        The `Report`.

    Raises:
        ValueError: `task_key` is in no thread's state (threads with a record were found), or
            `expected_steps` is not a positive integer.

    Example:
        ```python
        from langgraph.checkpoint.memory import InMemorySaver
        from reliable_graph.demo import ScenarioParams, SimulatedWorld, build_reliable_pipeline
        from reliable_graph.report import reliability_report

        saver = InMemorySaver()
        graph = build_reliable_pipeline(SimulatedWorld(ScenarioParams(steps=3), seed=1)).compile(
            checkpointer=saver)
        for run in range(4):
            graph.invoke({"run": run, "question": "q"}, {"configurable": {"thread_id": str(run)}})
        report = reliability_report(saver, expected_steps=3)
        assert report.threads == 4 and [s.name for s in report.steps][0] == "step_01"
        assert sum(report.statuses.values()) == 4
        # a LangGraph Server deployment's threads, as `client.threads.search(...)` returns them
        threads = [{"thread_id": str(run), "status": "idle", "values": graph.get_state(
            {"configurable": {"thread_id": str(run)}}).values} for run in range(4)]
        assert reliability_report(threads, expected_steps=3).statuses == report.statuses
        ```
    """
    _check_expected(expected_steps)
    acc = _Accumulator(expected_steps, task_key)
    if isinstance(checkpointer, BaseCheckpointSaver):
        threads = _Threads()
        for item in checkpointer.list(None):
            threads.add(item)
        found: Iterable[tuple[Mapping[str, Any], bool, bool]] = threads.values()
    else:
        found = _sdk_threads(checkpointer)
    for values, errored, waiting in found:
        acc.add(values, errored=errored, waiting=waiting)
    acc.check_task_key()
    return dataclasses.replace(acc.report(source), audits={k: dict(v) for k, v in (audits or {}).items()})


async def areliability_report(
    checkpointer: BaseCheckpointSaver[Any],
    *,
    expected_steps: int | None = None,
    source: str = "",
    task_key: str | None = None,
    audits: Mapping[str, Mapping[str, int]] | None = None,
) -> Report:
    """Async twin of `reliability_report`, for async checkpointers (`AsyncSqliteSaver`...).

    Example:
        ```python
        import asyncio
        from langgraph.checkpoint.memory import InMemorySaver
        from reliable_graph.report import areliability_report

        report = asyncio.run(areliability_report(InMemorySaver()))
        assert report.threads == 0 and report.predicted_e2e_success is None
        ```
    """
    _check_expected(expected_steps)
    acc = _Accumulator(expected_steps, task_key)
    threads = _Threads()
    async for item in checkpointer.alist(None):
        threads.add(item)
    for values, errored, waiting in threads.values():
        acc.add(values, errored=errored, waiting=waiting)
    acc.check_task_key()
    return dataclasses.replace(acc.report(source), audits={k: dict(v) for k, v in (audits or {}).items()})


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def format_report(report: Report, *, pass_k_max: int | None = None) -> str:
    """The report as a table: one row per step, then the end-to-end figures.

    Example:
        ```python
        from reliable_graph.report import Report, StepStats, format_report

        r = Report(threads=2, statuses={"completed": 2}, steps=[StepStats(name="a", outcomes={"pass": 2})])
        text = format_report(r)
        assert "observed end-to-end success" in text and "100.0%" in text
        ```
    """
    header = f"{'step':<16}" + "".join(f"{o:>11}" for o in OUTCOMES) + f"{'unfinished':>11}{'success':>9}"
    lines = [f"reliability report: {report.source or 'checkpointer'}", header, "-" * len(header)]
    for s in report.steps:
        cells = "".join(f"{s.outcomes.get(o, 0):>11}" for o in OUTCOMES)
        lines.append(f"{s.name:<16}{cells}{s.unfinished:>11}{_pct(s.success_rate):>9}")
        if s.decisions:
            decided = ", ".join(f"{k} {v}" for k, v in sorted(s.decisions.items()))
            lines.append(f"{'':<16}review decisions: {decided}")
    statuses = ", ".join(f"{k} {report.statuses.get(k, 0)}" for k in STATUSES)
    lines += [
        "",
        f"threads: {report.threads} reliable-graph ({statuses})",
        f"observed end-to-end success (completed without escalation): {_pct(report.observed_e2e_success)}",
        f"  of which without any human decision:                       {_pct(report.success_without_human)}",
        f"  after a reviewer decided a step:                           {_pct(report.success_after_review)}",
        f"predicted by multiplying per-step rates:                     {_pct(report.predicted_e2e_success)}",
        f"per-step rate (geometric mean):                              {_pct(report.per_step_rate)}",
        f"escalated (pending review): {_pct(report.escalated)}; threads with a retry_pass: {_pct(report.retry_pass)}",
    ]
    estimates = report.silent_failures()
    if estimates:
        lines.append("silent failures estimated from audits (passed while wrong, 95% interval):")
        for name, est in estimates.items():
            label = name or "per run (wrong outputs passed)"
            lines.append(
                f"  {label:<28} {est.rate:.2%} [{est.low:.2%}, {est.high:.2%}] from {est.labelled} labelled audits"
                f" ({est.wrong} wrong)"
            )
    else:
        lines += [
            "silent failures (wrong outputs that passed every check) cannot be seen in checkpoints;",
            "they are inside the observed success (audit_rate=... on the steps lets reviewers estimate them).",
        ]
    pass_k = report.pass_k(pass_k_max)
    if pass_k:
        lines.append(pass_k.describe())
    if report.other_threads:
        lines.append(
            f"note: {report.other_threads} thread(s) without a reliable-graph record (plain LangGraph) were ignored."
        )
    return "\n".join(lines)


CHART_NAME = "reliability.png"
"""The chart's file name when `write_chart` is given a directory."""


def chart_path(path: str | Path) -> Path:
    """Where `write_chart` writes for `path`: `CHART_NAME` inside a directory, `.png` added to a name without a suffix.

    Example:
        ```python
        import tempfile
        from pathlib import Path
        from reliable_graph.report import chart_path

        with tempfile.TemporaryDirectory() as d:
            assert chart_path(d) == Path(d) / "reliability.png"
            assert chart_path(Path(d) / "run1") == Path(d) / "run1.png"
            assert chart_path(Path(d) / "run1.svg") == Path(d) / "run1.svg"
        ```
    """
    out = Path(path)
    if out.is_dir():
        return out / CHART_NAME
    return out if out.suffix else out.with_name(f"{out.name}.png")


def write_chart(report: Report, path: str | Path) -> Path:
    """Write the compounding chart: end-to-end success against the number of steps.

    Draws the reference curves p ** n for p in 85/90/95/99%, the curve of the observed per-step
    rate (geometric mean), and marks the observed end-to-end success at the pipeline's step
    count. Needs matplotlib (`pip install "reliable-graph[chart]"`).

    Args:
        report: A report with at least one finished step.
        path: The image file to write (`.png`, `.svg`, `.pdf`; `.png` when it has no suffix), or
            a directory to write `reliability.png` in (see `chart_path`).

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: the report has no finished step to chart.

    Example:
        ```python
        import tempfile
        from pathlib import Path
        from reliable_graph.report import Report, StepStats, write_chart

        r = Report(threads=10, statuses={"completed": 8, "escalated": 2},
                   steps=[StepStats(name=f"s{i}", outcomes={"pass": 10}) for i in range(4)])
        with tempfile.TemporaryDirectory() as d:
            out = write_chart(r, Path(d) / "chart.png")
            assert out.stat().st_size > 1000
        ```
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = 'write_chart needs matplotlib: pip install "reliable-graph[chart]"'
        raise ImportError(msg) from exc
    rate = report.per_step_rate
    n = sum(1 for s in report.steps if s.success_rate is not None)
    if rate is None or n == 0:
        msg = "the report has no finished step to chart"
        raise ValueError(msg)
    max_steps = max(20, 2 * n)
    xs = list(range(1, max_steps + 1))
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for p in REFERENCE_RATES:
        ax.plot(xs, [p**k for k in xs], linestyle="--", linewidth=1, label=f"{p:.0%} per step")
    ax.plot(xs, [rate**k for k in xs], color="black", linewidth=2, label=f"observed per-step rate {rate:.1%}")
    ax.scatter(
        [n], [report.observed_e2e_success], color="red", zorder=5, label=f"observed: {report.observed_e2e_success:.1%}"
    )
    ax.set_xlabel("number of steps")
    ax.set_ylabel("end-to-end success")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(1, max_steps)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.set_title(f"Compounding: {report.threads} threads, {n} steps")
    ax.legend(fontsize=8)
    out = chart_path(path)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    return out
