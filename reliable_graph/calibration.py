"""Threshold calibration on held-out examples, with a finite-sample guarantee.

`calibrate(scores, labels, max_silent_failure=alpha)` chooses a step's threshold so that its
silent-failure rate (outputs accepted while wrong, as a share of all step executions) is at most
`alpha` with probability at least `1 - delta` over the draw of the calibration set. The method is
Learn then Test (Angelopoulos, Bates, Candès, Jordan and Lei, 2021) with fixed-sequence testing:
the thresholds are tested from the highest down, each with an exact binomial test of
"risk > alpha" (the p-value `P(Binomial(n, alpha) <= k)` for `k` silent failures among `n`
examples, equivalently the Clopper-Pearson upper bound), and the lowest threshold before the
first test that fails is returned; `silent_failure_bound` is its one-sided Clopper-Pearson bound.
The previous rule (the lowest threshold whose *empirical* rate meets the target) stays available
as `method="empirical"`; on a fresh sample it misses the target about half the time.

An example is one step execution as the router sees it: a score, or the scores of its attempts
(retries included) with a label for each. With attempts, a threshold's outcomes are exact: the
first attempt at or above it is accepted (`pass` at the first, `retry_pass` later), none within
`1 + max_retries` attempts escalates. With single scores, retries are assumed to be fresh draws.
`calibrate_pipeline` splits one end-to-end budget across the steps of a pipeline.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "CascadeCalibration",
    "Calibration",
    "PipelineCalibration",
    "UncertifiableTargetError",
    "binomial_upper_bound",
    "calibrate",
    "calibrate_cascade",
    "calibrate_pipeline",
    "calibrate_weighted",
    "examples_needed",
    "rates_at",
]

Method = Literal["ltt", "empirical"]


class UncertifiableTargetError(ValueError):
    """No threshold can be certified for the target on this many examples.

    `examples_needed` estimates how many labelled examples would do (None: no threshold of this
    evaluator reaches the target even empirically).

    Example:
        ```python
        from reliable_graph.calibration import UncertifiableTargetError, calibrate

        try:
            calibrate([0.9, 0.8, 0.2], [True, True, False], max_silent_failure=0.01)
        except UncertifiableTargetError as exc:
            assert exc.examples_needed == 299 and "299" in str(exc)
        ```
    """

    def __init__(self, message: str, *, examples_needed: int | None) -> None:
        super().__init__(message)
        self.examples_needed = examples_needed


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """A threshold and what to expect at it, measured on held-out examples.

    Example:
        ```python
        from reliable_graph.calibration import calibrate

        cal = calibrate([0.9, 0.8, 0.4, 0.3], [True, True, False, True], max_silent_failure=0.0,
                        method="empirical")
        assert cal.threshold == 0.8 and cal.pass_rate == 0.5 and cal.silent_failure_bound is None
        assert cal.to_dict()["n"] == 4
        ```
    """

    threshold: float
    """Outputs scoring at or above it pass; one of the held-out scores."""
    silent_failure: float
    """Empirical share of the held-out step executions accepted while wrong."""
    silent_failure_bound: float | None
    """The `1 - delta` upper confidence bound (Clopper-Pearson) of the silent-failure rate at the
    threshold: the guarantee (`method="ltt"`); None for `method="empirical"`."""
    precision: float
    """Share of accepted outputs labelled correct (1.0 when none is accepted)."""
    pass_rate: float
    """Share accepted at the first attempt."""
    retry_rate: float
    """Share rejected at the first attempt and retried (0 when `max_retries` is 0)."""
    escalation_rate: float
    """Share escalated to a human. With attempts given, measured; with single scores, the reject
    rate ** (1 + max_retries) (retries as fresh draws)."""
    n: int
    """The number of held-out examples (step executions)."""
    max_retries: int
    """The retries per step the rates assume."""
    target: str
    """The target the threshold was chosen for, e.g. `"silent_failure <= 0.01"`."""
    method: str
    """`ltt` (Learn then Test, fixed-sequence, exact binomial) or `empirical`."""
    delta: float | None
    """The guarantee's failure probability (`method="ltt"`)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of this calibration."""
        return asdict(self)


# -- the exact binomial tail ------------------------------------------------------------------


def _log_pmf(i: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if i == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if i == n else -math.inf
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)


def binomial_cdf(k: int, n: int, p: float) -> float:
    """`P(Binomial(n, p) <= k)`, exact (log-space sum)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    logs = [_log_pmf(i, n, p) for i in range(k + 1)]
    top = max(logs)
    if top == -math.inf:
        return 0.0
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def binomial_upper_bound(k: int, n: int, delta: float) -> float:
    """The one-sided `1 - delta` Clopper-Pearson upper bound of a rate seen `k` times in `n`.

    Example:
        ```python
        from reliable_graph.calibration import binomial_upper_bound

        assert abs(binomial_upper_bound(0, 299, 0.05) - 0.00997) < 1e-4  # the "rule of three"
        assert binomial_upper_bound(5, 1000, 0.05) > 0.005
        ```
    """
    if n <= 0 or k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if binomial_cdf(k, n, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def examples_needed(alpha: float, delta: float, rate: float = 0.0) -> int | None:
    """How many examples certify `alpha` when the true silent-failure rate is `rate` (None: never).

    Example:
        ```python
        from reliable_graph.calibration import examples_needed

        assert examples_needed(0.01, 0.05) == 299  # even with no silent failure at all
        assert examples_needed(0.01, 0.05, rate=0.005) > 1000
        assert examples_needed(0.01, 0.05, rate=0.02) is None
        ```
    """
    if rate >= alpha:
        return None

    def ok(n: int) -> bool:
        return binomial_cdf(math.floor(rate * n), n, alpha) <= delta

    hi = 1
    while not ok(hi):
        hi *= 2
        if hi > 10**8:
            return None
    lo = hi // 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# -- inputs ----------------------------------------------------------------------------------


def _score_value(v: Any, where: str) -> float:
    from reliable_graph.evaluators.base import Score  # the evaluators package re-exports this module

    value = v.value if isinstance(v, Score) else v
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
        msg = f"score {where} is {value!r}: every score must be a number in [0, 1]"
        raise ValueError(msg)
    return float(value)


def _label(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    msg = f"label {where} is {v!r}: labels must be True/False (or 1/0), True for a correct output"
    raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class _Examples:
    attempts: list[list[tuple[float, bool]]]
    """Per example, its attempts (score, correct)."""
    sequences: bool
    """Attempts were given (else one score per example)."""


def _check(scores: Sequence[Any], labels: Sequence[Any]) -> _Examples:
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
    sequences = any(isinstance(v, (list, tuple)) for v in values)
    out: list[list[tuple[float, bool]]] = []
    for i, (v, t) in enumerate(zip(values, truths, strict=True)):
        if sequences:
            if not isinstance(v, (list, tuple)) or not isinstance(t, (list, tuple)) or len(v) != len(t) or not v:
                msg = (
                    f"example #{i}: with attempts, every example is a non-empty list of scores with a list "
                    "of as many labels"
                )
                raise ValueError(msg)
            pairs = enumerate(zip(v, t, strict=True))
            out.append([(_score_value(s, f"#{i}.{j}"), _label(b, f"#{i}.{j}")) for j, (s, b) in pairs])
        else:
            out.append([(_score_value(v, f"#{i}"), _label(t, f"#{i}"))])
    flat = [b for ex in out for _, b in ex]
    if all(flat) or not any(flat):
        kind = "correct" if flat[0] else "wrong"
        msg = (
            f"all {len(flat)} held-out examples are labelled {kind}: calibration needs both correct and "
            "wrong examples to tell them apart"
        )
        raise ValueError(msg)
    return _Examples(out, sequences)


def _check_retries(max_retries: Any) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        msg = f"max_retries must be a non-negative integer, got {max_retries!r}"
        raise ValueError(msg)
    return max_retries


def _unit(value: Any, what: str, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        msg = f"{what} must be a number in [0, 1], got {value!r}"
        raise ValueError(msg)
    if not (0.0 < value <= 1.0 if open_low else 0.0 <= value <= 1.0):
        msg = f"{what} must be a number in {'(0, 1]' if open_low else '[0, 1]'}, got {value!r}"
        raise ValueError(msg)
    return float(value)


# -- outcomes at every threshold, in one sweep --------------------------------------------------


@dataclass(slots=True)
class _Point:
    threshold: float
    first: int
    """Accepted at the first attempt."""
    later: int
    """Accepted at a retry."""
    wrong: int
    """Accepted while wrong."""


def _sweep(examples: _Examples, max_retries: int) -> list[_Point]:
    """The outcome counts at each distinct score, from the highest threshold down."""
    usable = [ex[: 1 + max_retries] if examples.sequences else ex for ex in examples.attempts]
    events = sorted(((s, i, j) for i, ex in enumerate(usable) for j, (s, _) in enumerate(ex)), reverse=True)
    accepted_at: list[int | None] = [None] * len(usable)
    first = later = wrong = 0
    points: list[_Point] = []
    k = 0
    while k < len(events):
        threshold = events[k][0]
        while k < len(events) and events[k][0] == threshold:
            _, i, j = events[k]
            k += 1
            current = accepted_at[i]
            if current is not None and current <= j:
                continue
            if current is not None:  # an earlier attempt now qualifies: it is accepted instead
                first -= current == 0
                later -= current > 0
                wrong -= not usable[i][current][1]
            accepted_at[i] = j
            first += j == 0
            later += j > 0
            wrong += not usable[i][j][1]
        points.append(_Point(threshold, first, later, wrong))
    return points


def _calibration(
    point: _Point, n: int, examples: _Examples, max_retries: int, target: str, method: str, delta: float | None
) -> Calibration:
    accepted = point.first + point.later
    if examples.sequences:
        retry_rate = (n - point.first) / n if max_retries > 0 else 0.0
        escalation = (n - accepted) / n
    else:
        reject = (n - accepted) / n
        retry_rate = reject if max_retries > 0 else 0.0
        escalation = reject ** (1 + max_retries)
    return Calibration(
        threshold=point.threshold,
        silent_failure=point.wrong / n,
        silent_failure_bound=None if delta is None else binomial_upper_bound(point.wrong, n, delta),
        precision=(accepted - point.wrong) / accepted if accepted else 1.0,
        pass_rate=point.first / n,
        retry_rate=retry_rate,
        escalation_rate=escalation,
        n=n,
        max_retries=max_retries,
        target=target,
        method=method,
        delta=delta,
    )


def rates_at(
    scores: Sequence[Any], labels: Sequence[Any], threshold: float, *, max_retries: int = 1, delta: float | None = None
) -> Calibration:
    """The silent-failure, precision, pass, retry and escalation rates of a given threshold.

    Use it to check a threshold on an evaluation set other than the one it was calibrated on;
    with `delta`, `silent_failure_bound` is the rate's `1 - delta` upper bound.

    Example:
        ```python
        from reliable_graph.calibration import rates_at

        r = rates_at([0.9, 0.6, 0.2, 0.7], [True, False, False, True], 0.65)
        assert r.silent_failure == 0.0 and r.pass_rate == 0.5 and r.escalation_rate == 0.25
        seq = rates_at([[0.5, 0.9], [0.8]], [[False, True], [True]], 0.7)  # retries as the router saw them
        assert seq.pass_rate == 0.5 and seq.retry_rate == 0.5 and seq.escalation_rate == 0.0
        ```
    """
    examples = _check(scores, labels)
    retries = _check_retries(max_retries)
    value = _unit(threshold, "threshold")
    if delta is not None:
        delta = _unit(delta, "delta", open_low=True)
    point = _Point(1.1, 0, 0, 0)
    for p in _sweep(examples, retries):
        if p.threshold < value:
            break
        point = p
    point = _Point(value, point.first, point.later, point.wrong)
    method = "ltt" if delta is not None else "empirical"
    return _calibration(point, len(examples.attempts), examples, retries, f"threshold = {value:g}", method, delta)


def calibrate(
    scores: Sequence[Any],
    labels: Sequence[Any],
    *,
    max_silent_failure: float | None = None,
    min_precision: float | None = None,
    max_retries: int = 1,
    delta: float = 0.05,
    method: Method | None = None,
) -> Calibration:
    """The lowest threshold that meets a target on held-out examples, and the rates at it.

    With `max_silent_failure=alpha` (and the default `method="ltt"`), the threshold's
    silent-failure rate is at most `alpha` with probability at least `1 - delta` over the draw of
    the calibration set: Learn then Test with fixed-sequence testing over the thresholds (from
    the highest down) and exact binomial p-values; see the module's doc. With
    `method="empirical"` it is the lowest threshold whose empirical rate meets the target (no
    guarantee). `min_precision` (the share of accepted outputs that are correct) is empirical only.

    Args:
        scores: Per example, the evaluator's score (a float in [0, 1] or a `Score`), or the scores
            of its attempts as the router saw them, retries included.
        labels: True when the output is correct (1/0 accepted); a list per example with attempts.
        max_silent_failure: The target silent-failure rate `alpha`, in [0, 1].
        min_precision: The lowest acceptable precision of accepted outputs (empirical).
        max_retries: Retries per step before escalating (the library's default is 1).
        delta: The guarantee's failure probability, in (0, 1].
        method: `ltt` (the default for `max_silent_failure`) or `empirical`.

    Returns:
        The threshold with its empirical silent-failure rate, its bound, precision and pass /
        retry / escalation rates.

    Raises:
        UncertifiableTargetError: no threshold is certified on this many examples (its message
            and `examples_needed` say how many would do).
        ValueError: empty or single-class labels, a length mismatch, a score outside [0, 1] or
            NaN, not exactly one target, or (empirical) no threshold meeting the target.

    Example:
        ```python
        import random
        from reliable_graph.calibration import calibrate

        rng = random.Random(0)
        labels = [rng.random() < 0.9 for _ in range(2000)]
        scores = [rng.betavariate(9, 1.5) if ok else rng.betavariate(2, 4) for ok in labels]
        cal = calibrate(scores, labels, max_silent_failure=0.01, delta=0.05)
        assert cal.silent_failure_bound <= 0.01 and cal.silent_failure < cal.silent_failure_bound
        loose = calibrate(scores, labels, max_silent_failure=0.01, method="empirical")
        assert loose.threshold <= cal.threshold  # the guarantee costs a stricter threshold
        ```
    """
    examples = _check(scores, labels)
    retries = _check_retries(max_retries)
    targets = {"max_silent_failure": max_silent_failure, "min_precision": min_precision}
    given = {k: v for k, v in targets.items() if v is not None}
    if len(given) != 1:
        msg = "calibrate needs exactly one target: max_silent_failure=... or min_precision=..."
        raise ValueError(msg)
    ((kind, goal_value),) = given.items()
    goal = _unit(goal_value, kind)
    if method is None:
        method = "ltt" if kind == "max_silent_failure" else "empirical"
    if method not in ("ltt", "empirical"):
        msg = f"method must be 'ltt' or 'empirical', got {method!r}"
        raise ValueError(msg)
    if method == "ltt" and kind != "max_silent_failure":
        msg = "the guarantee (method='ltt') is for max_silent_failure; use method='empirical' with min_precision"
        raise ValueError(msg)
    risk_delta = _unit(delta, "delta", open_low=True)
    n = len(examples.attempts)
    points = _sweep(examples, retries)
    if method == "ltt":
        target = f"silent_failure <= {goal:g} with probability >= {1 - risk_delta:g}"
        chosen: _Point | None = None
        for point in points:  # fixed sequence: from the highest threshold down, stop at the first failure
            if binomial_cdf(point.wrong, n, goal) > risk_delta:
                break
            chosen = point
        if chosen is None:
            best = min(point.wrong for point in points) / n
            needed = examples_needed(goal, risk_delta, best)
            if needed is not None:
                more = f"about {needed} examples would certify it if the evaluator's best rate stays {best:.4g}"
            elif goal == 0:
                more = "no number of examples certifies a rate of exactly 0 (a finite sample's bound is above 0)"
            elif best > goal:
                more = f"the evaluator's lowest silent-failure rate here is {best:.4g}, above the target"
            else:
                more = f"the evaluator's lowest silent-failure rate here is {best:.4g}, at the target (not below it)"
            msg = (
                f"cannot certify silent_failure <= {goal:g} with probability {1 - risk_delta:g} on {n} examples: "
                f"{more}; label more examples, relax the target or delta, or use method='empirical' (no guarantee)"
            )
            raise UncertifiableTargetError(msg, examples_needed=needed)
        return _calibration(chosen, n, examples, retries, target, "ltt", risk_delta)
    target = f"silent_failure <= {goal:g}" if kind == "max_silent_failure" else f"precision >= {goal:g}"
    candidates = [_calibration(p, n, examples, retries, target, "empirical", None) for p in points]
    eps = 1e-12
    if kind == "max_silent_failure":
        meeting = [c for c in candidates if c.silent_failure <= goal + eps]
        best_c = min(candidates, key=lambda c: c.silent_failure)
        achieved = f"the lowest silent-failure rate is {best_c.silent_failure:.4g}"
    else:
        meeting = [c for c in candidates if c.precision >= goal - eps]
        best_c = max(candidates, key=lambda c: c.precision)
        achieved = f"the highest precision is {best_c.precision:.4g}"
    if not meeting:
        msg = (
            f"no threshold meets {target} on these {n} held-out examples: {achieved}, at threshold "
            f"{best_c.threshold:g}; relax the target, improve the evaluator, or label more examples"
        )
        raise ValueError(msg)
    return min(meeting, key=lambda c: c.threshold)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineCalibration:
    """Per-step calibrations that together meet one end-to-end silent-failure target.

    Built by `calibrate_pipeline`.

    Example:
        ```python
        from reliable_graph.calibration import PipelineCalibration, rates_at

        step = rates_at([0.9, 0.2, 0.8], [True, False, True], 0.5, delta=0.05)
        cal = PipelineCalibration(steps={"a": step, "b": step}, max_silent_failure=0.5, delta=0.05,
                                  split="equal", silent_failure_bound=2 * step.silent_failure_bound)
        assert cal.thresholds() == {"a": 0.5, "b": 0.5} and cal.to_dict()["split"] == "equal"
        ```
    """

    steps: dict[str, Calibration]
    """The calibration of each step, at its share of the budget."""
    max_silent_failure: float
    """The run's target: the share of runs accepting at least one wrong output."""
    delta: float
    """The probability that the guarantee fails, for all the steps together."""
    split: str
    """How the budget was split."""
    silent_failure_bound: float
    """The run's bound: the sum of the steps' bounds (a union bound)."""

    def thresholds(self) -> dict[str, float]:
        """Each step's threshold."""
        return {name: c.threshold for name, c in self.steps.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "steps": {name: c.to_dict() for name, c in self.steps.items()},
            "max_silent_failure": self.max_silent_failure,
            "delta": self.delta,
            "split": self.split,
            "silent_failure_bound": self.silent_failure_bound,
        }


def _joint_sweep(steps: list[_Examples], max_retries: int) -> tuple[int, list[tuple[float, int]]]:
    """Runs silent at each shared threshold, from the highest down: (runs, [(threshold, silent runs)])."""
    n = len(steps[0].attempts)
    events = []
    for s, ex in enumerate(steps):
        for i, attempts in enumerate(ex.attempts):
            for j, (score, _) in enumerate(attempts[: 1 + max_retries]):
                events.append((score, s, i, j))
    events.sort(reverse=True)
    accepted: list[list[int | None]] = [[None] * n for _ in steps]
    wrong_steps = [0] * n  # per run, the steps accepting a wrong output
    silent = 0
    points: list[tuple[float, int]] = []
    k = 0
    while k < len(events):
        threshold = events[k][0]
        while k < len(events) and events[k][0] == threshold:
            _, s, i, j = events[k]
            k += 1
            current = accepted[s][i]
            if current is not None and current <= j:
                continue
            before = wrong_steps[i]
            if current is not None:
                wrong_steps[i] -= not steps[s].attempts[i][current][1]
            accepted[s][i] = j
            wrong_steps[i] += not steps[s].attempts[i][j][1]
            silent += (wrong_steps[i] > 0) - (before > 0)
        points.append((threshold, silent))
    return n, points


def calibrate_pipeline(
    data: Mapping[str, tuple[Sequence[Any], Sequence[Any]]],
    *,
    max_silent_failure: float,
    max_retries: int = 1,
    delta: float = 0.05,
    split: Literal["union", "joint"] = "union",
) -> PipelineCalibration:
    """Calibrate every step of a pipeline so that the run's silent-failure rate meets one target.

    A run fails silently when any of its steps accepts a wrong output. Two ways to split the
    budget:

    - `split="union"`: each of the `S` steps is calibrated on its own examples to
      `max_silent_failure / S` with failure probability `delta / S`; all the steps' guarantees
      hold together with probability at least `1 - delta`, and by the union bound the run's
      rate is at most the sum. Steps get their own thresholds; the split is conservative.
    - `split="joint"`: one threshold shared by every step, tested on whole runs: example `i`
      of every step is the same run (equal lengths, aligned), a run counts as a silent failure
      when any step accepts a wrong output (even if a later step escalates), and Learn then
      Test certifies the run-level rate directly at `max_silent_failure` and `delta`, with no
      union bound to pay.

    Args:
        data: Step name -> (scores, labels), as `calibrate` takes them (attempts allowed).
        max_silent_failure: The end-to-end target.
        max_retries: Retries per step.
        delta: The failure probability of the whole guarantee.
        split: `union` or `joint`.

    Example:
        ```python
        import random
        from reliable_graph.calibration import calibrate_pipeline

        rng = random.Random(1)

        def step_data(n: int) -> tuple[list[float], list[bool]]:
            labels = [rng.random() < 0.9 for _ in range(n)]
            return [rng.betavariate(9, 1.5) if ok else rng.betavariate(2, 4) for ok in labels], labels

        data = {f"step_{i}": step_data(4000) for i in range(3)}
        union = calibrate_pipeline(data, max_silent_failure=0.03)
        assert union.silent_failure_bound <= 0.03 and len(set(union.thresholds().values())) == 3
        joint = calibrate_pipeline(data, max_silent_failure=0.03, split="joint")
        assert joint.silent_failure_bound <= 0.03 and len(set(joint.thresholds().values())) == 1
        ```
    """
    if not isinstance(data, Mapping) or not data:
        msg = "calibrate_pipeline needs a mapping of step name -> (scores, labels)"
        raise ValueError(msg)
    if split not in ("union", "joint"):
        msg = f"split must be 'union' or 'joint', got {split!r}"
        raise ValueError(msg)
    alpha = _unit(max_silent_failure, "max_silent_failure")
    risk_delta = _unit(delta, "delta", open_low=True)
    retries = _check_retries(max_retries)
    s = len(data)
    for name, pair in data.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            msg = f"step {name!r}: give (scores, labels)"
            raise ValueError(msg)
    if split == "joint":
        return _joint(data, alpha, risk_delta, retries)
    steps: dict[str, Calibration] = {}
    for name, pair in data.items():
        try:
            steps[name] = calibrate(
                pair[0], pair[1], max_silent_failure=alpha / s, max_retries=retries, delta=risk_delta / s
            )
        except UncertifiableTargetError as exc:
            msg = f"step {name!r}: {exc}"
            raise UncertifiableTargetError(msg, examples_needed=exc.examples_needed) from None
    bound = math.fsum(c.silent_failure_bound or 0.0 for c in steps.values())
    how = f"union: each of {s} steps gets silent_failure <= {alpha / s:.4g} at delta {risk_delta / s:.4g}"
    return PipelineCalibration(
        steps=steps, max_silent_failure=alpha, delta=risk_delta, split=how, silent_failure_bound=bound
    )


def _joint(
    data: Mapping[str, tuple[Sequence[Any], Sequence[Any]]], alpha: float, risk_delta: float, retries: int
) -> PipelineCalibration:
    checked = {name: _check(pair[0], pair[1]) for name, pair in data.items()}
    lengths = {len(ex.attempts) for ex in checked.values()}
    if len(lengths) != 1:
        msg = f"split='joint' needs one example per run in every step (aligned): got lengths {sorted(lengths)}"
        raise ValueError(msg)
    n, points = _joint_sweep(list(checked.values()), retries)
    chosen: tuple[float, int] | None = None
    for point in points:
        if binomial_cdf(point[1], n, alpha) > risk_delta:
            break
        chosen = point
    if chosen is None:
        best = min(k for _, k in points) / n
        needed = examples_needed(alpha, risk_delta, best)
        msg = (
            f"cannot certify a run silent-failure rate <= {alpha:g} with probability {1 - risk_delta:g} on {n} runs"
            + (f": about {needed} runs would do" if needed is not None else ": no shared threshold gets there")
        )
        raise UncertifiableTargetError(msg, examples_needed=needed)
    threshold, silent = chosen
    bound = binomial_upper_bound(silent, n, risk_delta)
    target = f"run silent_failure <= {alpha:g} with probability >= {1 - risk_delta:g} (one shared threshold)"
    steps = {}
    for name, pair in data.items():
        at = rates_at(pair[0], pair[1], threshold, max_retries=retries)
        steps[name] = dataclasses.replace(at, target=target, method="ltt", delta=risk_delta, silent_failure_bound=None)
    how = f"joint: one threshold shared by the {len(data)} steps, certified on {n} whole runs (no union bound)"
    return PipelineCalibration(
        steps=steps, max_silent_failure=alpha, delta=risk_delta, split=how, silent_failure_bound=bound
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CascadeCalibration:
    """A `Cascade`'s band and router threshold for a silent-failure budget, and the frontier.

    Built by `calibrate_cascade`.

    Example:
        ```python
        from reliable_graph.calibration import CascadeCalibration

        cal = CascadeCalibration(band=(0.05, 0.8), threshold=0.7, expensive_share=0.4, silent_failure=0.004,
                                 silent_failure_bound=0.009, max_silent_failure=0.01, delta=0.05, frontier=[])
        assert cal.expensive_call_reduction == 0.6
        ```
    """

    band: tuple[float, float]
    """The chosen band: the expensive evaluator runs when `low <= cheap score < high`."""
    threshold: float
    """The router's threshold for the cascade's score."""
    expensive_share: float
    """Share of the calibration examples on which the expensive evaluator ran."""
    silent_failure: float
    """Empirical silent-failure rate on the calibration examples."""
    silent_failure_bound: float
    """Its certified upper bound (all bands tested together: Bonferroni)."""
    max_silent_failure: float
    """The budget."""
    delta: float
    """The guarantee's failure probability, for all the bands together."""
    frontier: list[dict[str, Any]]
    """Per candidate band: `high`, `threshold` (None: not certified), `expensive_share`,
    `silent_failure`, `bound`."""

    @property
    def expensive_call_reduction(self) -> float:
        """The share of expensive calls saved against always calling it."""
        return round(1 - self.expensive_share, 12)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {**asdict(self), "band": list(self.band), "expensive_call_reduction": self.expensive_call_reduction}


def calibrate_cascade(
    cheap_scores: Sequence[float],
    expensive_scores: Sequence[float],
    labels: Sequence[Any],
    *,
    max_silent_failure: float,
    low: float = 0.05,
    highs: Sequence[float] | None = None,
    delta: float = 0.05,
) -> CascadeCalibration:
    """Choose a `Cascade`'s band and its router's threshold for a silent-failure budget.

    Run the cheap evaluators (their lowest score) and the expensive one on every held-out
    example once; each candidate band `(low, high)` then gives the cascade's score offline
    (cheap below `low` or at/above `high`, else expensive). Every band gets a Learn then Test
    threshold at `delta / len(highs)` (Bonferroni over the bands, so that whichever band is
    chosen, its guarantee holds with probability `1 - delta`), kept only if `low <= threshold
    <= high` (a cheap decision then agrees with the router). The band chosen runs the expensive
    evaluator least. `frontier` lists every band: expensive calls against silent failure.

    Args:
        cheap_scores: Per example, the cheap evaluators' lowest score.
        expensive_scores: Per example, the expensive evaluator's score.
        labels: True when the output is correct.
        max_silent_failure: The budget.
        low: The band's lower edge (a cheap score below it fails without the expensive call).
        highs: Candidate upper edges (default 0.5, 0.55, ..., 1.0; 1.0 always calls it).
        delta: The guarantee's failure probability.

    Raises:
        UncertifiableTargetError: no band gets a certified threshold.

    Example:
        ```python
        import random
        from reliable_graph.calibration import calibrate_cascade

        rng = random.Random(3)
        labels = [rng.random() < 0.9 for _ in range(20000)]
        expensive = [rng.betavariate(9, 1.5) if ok else rng.betavariate(2, 4) for ok in labels]
        cheap = [min(1.0, max(0.0, e + rng.uniform(-0.1, 0.1))) if rng.random() < 0.9 else 0.0 for e in expensive]
        cal = calibrate_cascade(cheap, expensive, labels, max_silent_failure=0.02)
        assert cal.silent_failure_bound <= 0.02 and cal.band[0] <= cal.threshold <= cal.band[1]
        assert 0 < cal.expensive_share < 1 and len(cal.frontier) == 11
        ```
    """
    alpha = _unit(max_silent_failure, "max_silent_failure")
    risk_delta = _unit(delta, "delta", open_low=True)
    low_edge = _unit(low, "low")
    candidates = [round(0.5 + 0.05 * i, 2) for i in range(11)] if highs is None else list(highs)
    if not candidates or any(not (low_edge <= _unit(h, "each high") <= 1.0) for h in candidates):
        msg = f"highs must be non-empty, each in [low, 1], got {highs!r}"
        raise ValueError(msg)
    cheap = [_score_value(v, f"cheap #{i}") for i, v in enumerate(cheap_scores)]
    expensive = [_score_value(v, f"expensive #{i}") for i, v in enumerate(expensive_scores)]
    if not (len(cheap) == len(expensive) == len(labels)):
        msg = (
            "one cheap score, one expensive score and one label per example: "
            f"got {len(cheap)}, {len(expensive)}, {len(labels)}"
        )
        raise ValueError(msg)
    each = risk_delta / len(candidates)
    frontier: list[dict[str, Any]] = []
    best: tuple[float, float, Calibration] | None = None
    for high in sorted(candidates):
        scores = [c if (c < low_edge or c >= high) else e for c, e in zip(cheap, expensive, strict=True)]
        share = sum(1 for c in cheap if low_edge <= c < high) / len(cheap)
        point: dict[str, Any] = {"high": high, "expensive_share": share, "threshold": None}
        try:
            cal = calibrate(scores, labels, max_silent_failure=alpha, max_retries=0, delta=each)
        except UncertifiableTargetError:
            frontier.append(point)
            continue
        point.update(threshold=cal.threshold, silent_failure=cal.silent_failure, bound=cal.silent_failure_bound)
        frontier.append(point)
        if low_edge <= cal.threshold <= high and (best is None or share < best[1]):
            best = (high, share, cal)
    if best is None:
        msg = f"no band gets a threshold certified for silent_failure <= {alpha:g} on {len(cheap)} examples"
        raise UncertifiableTargetError(msg, examples_needed=examples_needed(alpha, each))
    high, share, cal = best
    return CascadeCalibration(
        band=(low_edge, high),
        threshold=cal.threshold,
        expensive_share=share,
        silent_failure=cal.silent_failure,
        silent_failure_bound=float(cal.silent_failure_bound or 0.0),
        max_silent_failure=alpha,
        delta=risk_delta,
        frontier=frontier,
    )


def calibrate_weighted(
    scores: Sequence[float],
    labels: Sequence[Any],
    weights: Sequence[float],
    *,
    max_silent_failure: float,
    delta: float = 0.05,
) -> Calibration:
    """The lowest threshold whose weighted silent-failure rate meets the target (labels from reviews).

    For labels that are not a uniform sample: each example stands for `weight` scored outputs
    (an audit drawn at rate `r` among passing outputs weighs `1 / r`; an escalation, labelled
    whenever it happens, weighs 1), so the weighted rate estimates the production rate at any
    threshold (inverse-probability weighting). `silent_failure_bound` is an approximate
    Clopper-Pearson bound on the effective sample size `(sum w)^2 / sum w^2`; the threshold is
    the lowest whose bound meets the target (fixed sequence from the top), or, when none does,
    the UncertifiableTargetError says how many effective examples it would take.

    Example:
        ```python
        from reliable_graph.calibration import calibrate_weighted

        # 2000 audits at rate 0.1 (weight 10) of outputs that passed at 0.75; 300 escalations below it
        scores = [0.75 + 0.0001 * i for i in range(2000)] + [0.3 + 0.001 * i for i in range(300)]
        labels = [i % 500 != 0 for i in range(2000)] + [i % 2 == 0 for i in range(300)]
        weights = [10.0] * 2000 + [1.0] * 300
        cal = calibrate_weighted(scores, labels, weights, max_silent_failure=0.01)
        assert cal.silent_failure_bound <= 0.01 and 0.3 < cal.threshold < 0.75  # escalations were often right
        ```
    """
    alpha = _unit(max_silent_failure, "max_silent_failure")
    risk_delta = _unit(delta, "delta", open_low=True)
    values = [_score_value(v, f"#{i}") for i, v in enumerate(scores)]
    truths = [_label(v, f"#{i}") for i, v in enumerate(labels)]
    ws = []
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            msg = f"weight #{i} is {w!r}: weights must be positive numbers"
            raise ValueError(msg)
        ws.append(float(w))
    if not (len(values) == len(truths) == len(ws)) or not values:
        msg = f"one score, label and weight per example, at least one: got {len(values)}, {len(truths)}, {len(ws)}"
        raise ValueError(msg)
    total = math.fsum(ws)
    n_eff = total**2 / math.fsum(w * w for w in ws)
    order = sorted(range(len(values)), key=lambda i: -values[i])
    wrong_w = 0.0
    accepted_w = 0.0
    chosen: tuple[float, float, float] | None = None
    i = 0
    best_rate = math.inf
    while i < len(order):
        threshold = values[order[i]]
        while i < len(order) and values[order[i]] == threshold:
            j = order[i]
            accepted_w += ws[j]
            wrong_w += ws[j] * (not truths[j])
            i += 1
        rate = wrong_w / total
        best_rate = min(best_rate, rate)
        k_eff = math.floor(rate * n_eff)
        bound = binomial_upper_bound(k_eff, max(1, round(n_eff)), risk_delta)
        if bound > alpha:
            break
        chosen = (threshold, rate, bound)
        chosen_accepted = accepted_w
    if chosen is None:
        needed = examples_needed(alpha, risk_delta, best_rate if math.isfinite(best_rate) else 0.0)
        msg = f"cannot meet silent_failure <= {alpha:g} from these reviews (effective sample size {n_eff:.0f})" + (
            f": about {needed} effective examples would do" if needed else ""
        )
        raise UncertifiableTargetError(msg, examples_needed=needed)
    threshold, rate, bound = chosen
    accepted_share = chosen_accepted / total
    return Calibration(
        threshold=threshold,
        silent_failure=rate,
        silent_failure_bound=bound,
        precision=1 - rate / accepted_share if accepted_share else 1.0,
        pass_rate=accepted_share,
        retry_rate=0.0,
        escalation_rate=1 - accepted_share,
        n=len(values),
        max_retries=0,
        target=f"silent_failure <= {alpha:g} (weighted reviews, approximate bound at {1 - risk_delta:g})",
        method="weighted",
        delta=risk_delta,
    )
