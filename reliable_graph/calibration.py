"""Threshold calibration on held-out examples: the lowest threshold that meets a target."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Calibration", "calibrate", "rates_at"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """A threshold and what to expect at it, measured on held-out examples.

    Example:
        ```python
        from reliable_graph.calibration import calibrate

        cal = calibrate([0.9, 0.8, 0.4, 0.3], [True, True, False, True], max_silent_failure=0.0)
        assert cal.threshold == 0.8 and cal.pass_rate == 0.5
        assert cal.to_dict()["n"] == 4
        ```
    """

    threshold: float
    """Outputs scoring at or above it pass; one of the held-out scores."""
    silent_failure: float
    """Share of ALL held-out examples accepted (score >= threshold) while labelled wrong."""
    precision: float
    """Share of accepted examples labelled correct (1.0 when none is accepted)."""
    pass_rate: float
    """Share of examples accepted at the first attempt."""
    retry_rate: float
    """Share of examples rejected at the first attempt and retried (0 when `max_retries` is 0)."""
    escalation_rate: float
    """Expected share escalated to a human: the reject rate ** (1 + max_retries), assuming
    independent attempts (a retry is a fresh draw, as after a re-fetch)."""
    n: int
    """The number of held-out examples."""
    max_retries: int
    """The retries per step the rates assume."""
    target: str
    """The target the threshold was chosen for, e.g. `"silent_failure <= 0.01"`."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of this calibration."""
        return asdict(self)


def _check(scores: Sequence[Any], labels: Sequence[Any]) -> tuple[list[float], list[bool]]:
    if isinstance(scores, (str, bytes)) or isinstance(labels, (str, bytes)):
        msg = "scores and labels must be sequences, not strings"
        raise TypeError(msg)
    values, truths = list(scores), list(labels)
    if len(values) != len(truths):
        msg = f"calibration needs one label per score: got {len(values)} scores and {len(truths)} labels"
        raise ValueError(msg)
    if not values:
        msg = "calibration needs held-out examples: the labelled set is empty"
        raise ValueError(msg)
    # Imported here, not at the top: `reliable_graph.evaluators` re-exports this module, so a
    # module-level import would be circular whenever this module is imported first.
    from reliable_graph.evaluators.base import Score

    checked: list[float] = []
    for i, s in enumerate(values):
        v = s.value if isinstance(s, Score) else s
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or not 0.0 <= v <= 1.0:
            msg = f"score #{i} is {v!r}: every score must be a number in [0, 1]"
            raise ValueError(msg)
        checked.append(float(v))
    bools: list[bool] = []
    for i, label in enumerate(truths):
        if isinstance(label, bool):
            bools.append(label)
        elif isinstance(label, int) and label in (0, 1):
            bools.append(bool(label))
        else:
            msg = f"label #{i} is {label!r}: labels must be True/False (or 1/0), True for a correct output"
            raise ValueError(msg)
    if all(bools) or not any(bools):
        kind = "correct" if bools[0] else "wrong"
        msg = (
            f"all {len(bools)} held-out examples are labelled {kind}: calibration needs both correct and "
            "wrong examples to tell them apart"
        )
        raise ValueError(msg)
    return checked, bools


def _check_retries(max_retries: Any) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        msg = f"max_retries must be a non-negative integer, got {max_retries!r}"
        raise ValueError(msg)
    return max_retries


def _rates(threshold: float, accepted: int, accepted_wrong: int, n: int, max_retries: int, target: str) -> Calibration:
    reject = (n - accepted) / n
    return Calibration(
        threshold=threshold,
        silent_failure=accepted_wrong / n,
        precision=(accepted - accepted_wrong) / accepted if accepted else 1.0,
        pass_rate=accepted / n,
        retry_rate=reject if max_retries > 0 else 0.0,
        escalation_rate=reject ** (1 + max_retries),
        n=n,
        max_retries=max_retries,
        target=target,
    )


def rates_at(scores: Sequence[Any], labels: Sequence[Any], threshold: float, *, max_retries: int = 1) -> Calibration:
    """The silent-failure, precision, pass, retry and escalation rates of a given threshold.

    Use it to check a threshold on an evaluation set other than the one it was calibrated on.

    Args:
        scores: The evaluator's scores (floats in [0, 1] or `Score`s), one per example.
        labels: True when the example's output is correct, one per example.
        threshold: The threshold to measure, in [0, 1].
        max_retries: Retries per step before escalating.

    Raises:
        ValueError: as `calibrate`, or a threshold outside [0, 1].

    Example:
        ```python
        from reliable_graph.calibration import rates_at

        r = rates_at([0.9, 0.6, 0.2, 0.7], [True, False, False, True], 0.65)
        assert r.silent_failure == 0.0 and r.pass_rate == 0.5 and r.escalation_rate == 0.25
        ```
    """
    values, truths = _check(scores, labels)
    retries = _check_retries(max_retries)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        msg = f"threshold must be a number in [0, 1], got {threshold!r}"
        raise ValueError(msg)
    accepted = [t for v, t in zip(values, truths, strict=True) if v >= threshold]
    wrong = sum(1 for t in accepted if not t)
    return _rates(float(threshold), len(accepted), wrong, len(values), retries, f"threshold = {threshold:g}")


def calibrate(
    scores: Sequence[Any],
    labels: Sequence[Any],
    *,
    max_silent_failure: float | None = None,
    min_precision: float | None = None,
    max_retries: int = 1,
) -> Calibration:
    """The lowest threshold that meets a target on held-out examples, and the rates at it.

    Give exactly one target. `max_silent_failure` bounds the share of ALL examples that are
    accepted (score >= threshold) while wrong; `min_precision` bounds the share of accepted
    examples that are correct. The lowest threshold meeting the target passes the most outputs,
    hence escalates the fewest. The threshold is one of the held-out scores. Escalation assumes
    independent attempts: the reject rate ** (1 + max_retries).

    Args:
        scores: The evaluator's scores (floats in [0, 1] or `Score`s), one per example.
        labels: True when the example's output is correct (1/0 accepted), one per example.
        max_silent_failure: The highest acceptable silent-failure rate, in [0, 1].
        min_precision: The lowest acceptable precision of accepted outputs, in [0, 1].
        max_retries: Retries per step before escalating (the library's default is 1).

    Returns:
        The threshold with its silent-failure rate, precision and pass / retry / escalation rates.

    Raises:
        ValueError: empty or single-class labels, a length mismatch, a score outside [0, 1] or
            NaN, not exactly one target, or no threshold meeting the target.

    Example:
        ```python
        from reliable_graph.calibration import calibrate

        scores = [0.95, 0.9, 0.85, 0.7, 0.6, 0.4, 0.3, 0.2]
        labels = [True, True, True, False, True, False, False, True]
        cal = calibrate(scores, labels, max_silent_failure=0.0)
        assert cal.threshold == 0.85 and cal.pass_rate == 3 / 8
        assert calibrate(scores, labels, min_precision=0.75).threshold == 0.6
        ```
    """
    values, truths = _check(scores, labels)
    retries = _check_retries(max_retries)
    targets = {"max_silent_failure": max_silent_failure, "min_precision": min_precision}
    given = {k: v for k, v in targets.items() if v is not None}
    if len(given) != 1:
        msg = "calibrate needs exactly one target: max_silent_failure=... or min_precision=..."
        raise ValueError(msg)
    ((kind, goal),) = given.items()
    if isinstance(goal, bool) or not isinstance(goal, (int, float)) or not 0.0 <= goal <= 1.0:
        msg = f"{kind} must be a number in [0, 1], got {goal!r}"
        raise ValueError(msg)
    target = f"silent_failure <= {goal:g}" if kind == "max_silent_failure" else f"precision >= {goal:g}"
    n = len(values)
    # Sweep the distinct scores from the highest down: accepted counts only grow.
    pairs = sorted(zip(values, truths, strict=True), reverse=True)
    candidates: list[Calibration] = []
    accepted = wrong = 0
    i = 0
    while i < n:
        threshold = pairs[i][0]
        while i < n and pairs[i][0] == threshold:
            accepted += 1
            wrong += not pairs[i][1]
            i += 1
        candidates.append(_rates(threshold, accepted, wrong, n, retries, target))
    eps = 1e-12
    if kind == "max_silent_failure":
        meeting = [c for c in candidates if c.silent_failure <= goal + eps]
        best = min(candidates, key=lambda c: c.silent_failure)
        achieved = f"the lowest silent-failure rate is {best.silent_failure:.4g}"
    else:
        meeting = [c for c in candidates if c.precision >= goal - eps]
        best = max(candidates, key=lambda c: c.precision)
        achieved = f"the highest precision is {best.precision:.4g}"
    if not meeting:
        msg = (
            f"no threshold meets {target} on these {n} held-out examples: {achieved}, at threshold "
            f"{best.threshold:g}; relax the target, improve the evaluator, or label more examples"
        )
        raise ValueError(msg)
    return min(meeting, key=lambda c: c.threshold)
