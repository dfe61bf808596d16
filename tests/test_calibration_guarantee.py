"""Calibration with a finite-sample guarantee (Learn then Test, exact binomial), attempts, budgets."""

from __future__ import annotations

import bisect
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reliable_graph.calibration import (
    UncertifiableTargetError,
    binomial_upper_bound,
    calibrate,
    calibrate_pipeline,
    examples_needed,
    rates_at,
)

ALPHA, DELTA = 0.02, 0.1


def _draw(rng: random.Random, n: int) -> tuple[list[float], list[bool]]:
    labels = [rng.random() < 0.85 for _ in range(n)]
    return [rng.betavariate(9, 1.5) if ok else rng.betavariate(2, 4) for ok in labels], labels


def _true_risk(fresh: tuple[list[float], list[bool]]) -> Any:
    wrong = sorted(s for s, ok in zip(*fresh, strict=True) if not ok)
    n = len(fresh[0])

    def risk(threshold: float) -> float:
        return (len(wrong) - bisect.bisect_left(wrong, threshold)) / n

    return risk


def test_the_guarantee_holds_where_the_empirical_rule_misses_half_the_time() -> None:
    rng = random.Random(11)
    risk = _true_risk(_draw(rng, 200_000))
    sets = 100
    ltt_misses = empirical_misses = 0
    for _ in range(sets):
        scores, labels = _draw(rng, 600)
        ltt_misses += risk(calibrate(scores, labels, max_silent_failure=ALPHA, delta=DELTA).threshold) > ALPHA
        empirical = calibrate(scores, labels, max_silent_failure=ALPHA, method="empirical")
        empirical_misses += risk(empirical.threshold) > ALPHA
    # at most delta = 10% of sets may miss; 20 of 100 would be a 3-sigma excursion
    assert ltt_misses <= 20
    assert empirical_misses >= 25  # the old rule: about half


def test_bound_matches_clopper_pearson_and_binomial_test() -> None:
    assert binomial_upper_bound(0, 299, 0.05) == pytest.approx(1 - 0.05 ** (1 / 299), rel=1e-6)
    assert binomial_upper_bound(10, 10, 0.05) == 1.0
    assert examples_needed(0.01, 0.05) == math.ceil(math.log(0.05) / math.log(0.99))
    assert examples_needed(0.01, 0.05, rate=0.01) is None


def test_uncertifiable_target_says_how_many_examples_it_would_take() -> None:
    scores, labels = _draw(random.Random(2), 150)
    with pytest.raises(UncertifiableTargetError, match=r"cannot certify .* on 150 examples: about \d+ examples") as err:
        calibrate(scores, labels, max_silent_failure=0.01)
    assert err.value.examples_needed is not None and err.value.examples_needed > 150
    more = _draw(random.Random(2), err.value.examples_needed * 3)
    assert calibrate(*more, max_silent_failure=0.01).silent_failure_bound <= 0.01  # type: ignore[operator]


def test_attempts_give_exact_pass_retry_escalate_rates() -> None:
    scores = [[0.9], [0.4, 0.8], [0.3, 0.2], [0.6, 0.95]]
    labels = [[True], [False, True], [False, True], [False, True]]
    at = rates_at(scores, labels, 0.5)
    # ex1 pass; ex2 retry_pass; ex3 escalates; ex4 accepts its first attempt (0.6) while wrong
    assert (at.pass_rate, at.retry_rate, at.escalation_rate, at.silent_failure) == (0.5, 0.5, 0.25, 0.25)
    at = rates_at(scores, labels, 0.7)
    assert (at.pass_rate, at.escalation_rate, at.silent_failure) == (0.25, 0.25, 0.0)
    no_retry = rates_at(scores, labels, 0.7, max_retries=0)
    assert no_retry.escalation_rate == 0.75 and no_retry.retry_rate == 0.0


def test_calibrating_on_attempts_accounts_for_retries() -> None:
    rng = random.Random(5)
    scores, labels = [], []
    for _ in range(4000):
        attempt_scores, attempt_labels = [], []
        for _ in range(2):
            ok = rng.random() < 0.8
            attempt_labels.append(ok)
            attempt_scores.append(rng.betavariate(9, 1.5) if ok else rng.betavariate(2, 4))
        scores.append(attempt_scores)
        labels.append(attempt_labels)
    on_attempts = calibrate(scores, labels, max_silent_failure=0.02)
    first_only = calibrate([s[0] for s in scores], [lb[0] for lb in labels], max_silent_failure=0.02)
    # a retry gives a wrong output another chance to pass: the step needs a stricter threshold
    assert on_attempts.threshold >= first_only.threshold
    assert rates_at(scores, labels, on_attempts.threshold).silent_failure <= 0.02


def test_pipeline_budget_splits_alpha_and_delta() -> None:
    rng = random.Random(9)
    data = {f"s{i}": _draw(rng, 5000) for i in range(4)}
    cal = calibrate_pipeline(data, max_silent_failure=0.04, delta=0.1)
    assert set(cal.steps) == set(data) and cal.silent_failure_bound <= 0.04
    assert all(c.delta == pytest.approx(0.025) and "0.01" in c.target for c in cal.steps.values())
    assert cal.split.startswith("union") and cal.to_dict()["steps"]["s0"]["method"] == "ltt"
    with pytest.raises(UncertifiableTargetError, match="step 's0'"):
        calibrate_pipeline({"s0": _draw(rng, 100)}, max_silent_failure=0.001)
    with pytest.raises(ValueError, match="mapping"):
        calibrate_pipeline({}, max_silent_failure=0.1)


def test_method_and_delta_are_checked() -> None:
    scores, labels = _draw(random.Random(1), 50)
    with pytest.raises(ValueError, match="method must be"):
        calibrate(scores, labels, max_silent_failure=0.1, method="bayes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        calibrate(scores, labels, max_silent_failure=0.1, delta=0)
    with pytest.raises(ValueError, match="for max_silent_failure"):
        calibrate(scores, labels, min_precision=0.9, method="ltt")
    with pytest.raises(ValueError, match="example #1"):
        calibrate([[0.5], 0.4], [[True], False], max_silent_failure=0.1)


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.floats(0, 1), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(scores=st.lists(JUNK, max_size=6), labels=st.lists(JUNK, max_size=6), alpha=JUNK)
def test_junk_input_is_rejected_cleanly(scores: list[Any], labels: list[Any], alpha: Any) -> None:
    try:
        cal = calibrate(scores, labels, max_silent_failure=alpha)
    except (ValueError, TypeError):
        return
    assert 0.0 <= cal.threshold <= 1.0 and cal.silent_failure_bound is not None


def test_joint_split_certifies_the_run_without_a_union_bound() -> None:
    rng = random.Random(12)
    data = {f"s{i}": _draw(rng, 6000) for i in range(3)}
    joint = calibrate_pipeline(data, max_silent_failure=0.05, split="joint", max_retries=0)
    union = calibrate_pipeline(data, max_silent_failure=0.05, split="union", max_retries=0)
    assert joint.silent_failure_bound <= 0.05 and joint.split.startswith("joint")
    # one threshold, no union bound to pay: lower than the strictest union threshold
    (shared,) = set(joint.thresholds().values())
    assert shared <= max(union.thresholds().values())
    # the run-level rate the joint split certifies, measured directly on the same runs
    silent = sum(any(data[s][0][i] >= shared and not data[s][1][i] for s in data) for i in range(6000)) / 6000
    assert silent <= joint.silent_failure_bound
    with pytest.raises(ValueError, match="aligned"):
        calibrate_pipeline({"a": _draw(rng, 100), "b": _draw(rng, 90)}, max_silent_failure=0.5, split="joint")
    with pytest.raises(ValueError, match="split must be"):
        calibrate_pipeline(data, max_silent_failure=0.05, split="half")  # type: ignore[arg-type]
