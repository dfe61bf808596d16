import math
import random

import pytest

from reliable_graph import Score
from reliable_graph.calibration import Calibration, calibrate, rates_at

SCORES = [0.95, 0.9, 0.85, 0.7, 0.6, 0.4, 0.3, 0.2]
LABELS = [True, True, True, False, True, False, False, True]


def test_calibration_silent_failure_target_lowest_threshold() -> None:
    cal = calibrate(SCORES, LABELS, max_silent_failure=0.125, method="empirical")
    # t=0.6 accepts 5 with one wrong (1/8); t=0.4 accepts a second wrong (2/8).
    assert cal.threshold == 0.6 and cal.silent_failure == 0.125
    assert cal.pass_rate == 5 / 8 and cal.retry_rate == 3 / 8
    assert cal.escalation_rate == pytest.approx((3 / 8) ** 2)
    assert cal.precision == 0.8 and cal.n == 8 and cal.max_retries == 1
    assert cal.target == "silent_failure <= 0.125"


def test_calibration_precision_target() -> None:
    cal = calibrate(SCORES, LABELS, min_precision=0.8)
    assert cal.threshold == 0.6 and cal.precision == 0.8 and cal.target == "precision >= 0.8"


def test_calibration_silent_failure_is_share_of_all_examples() -> None:
    cal = rates_at(SCORES, LABELS, 0.0)
    assert cal.silent_failure == 3 / 8 and cal.pass_rate == 1.0 and cal.escalation_rate == 0.0


def test_calibration_max_retries_changes_escalation() -> None:
    none = calibrate(SCORES, LABELS, max_silent_failure=0.0, max_retries=0, method="empirical")
    two = calibrate(SCORES, LABELS, max_silent_failure=0.0, max_retries=2, method="empirical")
    assert none.threshold == two.threshold == 0.85
    assert none.retry_rate == 0.0 and none.escalation_rate == pytest.approx(5 / 8)
    assert two.escalation_rate == pytest.approx((5 / 8) ** 3)


def test_calibration_accepts_scores_and_int_labels() -> None:
    scores = [Score(value=v, reason="r", evaluator="e") for v in SCORES]
    cal = calibrate(scores, [int(x) for x in LABELS], max_silent_failure=0.0, method="empirical")
    assert cal.threshold == 0.85 and isinstance(cal, Calibration)
    assert cal.to_dict()["threshold"] == 0.85


def test_calibration_ties_share_a_threshold() -> None:
    cal = calibrate([0.5, 0.5, 0.5, 0.9], [True, False, True, True], max_silent_failure=0.0, method="empirical")
    assert cal.threshold == 0.9 and cal.pass_rate == 0.25


def test_calibration_meets_target_on_large_set() -> None:
    rng = random.Random(3)
    labels = [rng.random() < 0.9 for _ in range(5000)]
    scores = [rng.betavariate(9, 1.5) if ok else rng.betavariate(2, 4) for ok in labels]
    cal = calibrate(scores, labels, max_silent_failure=0.01, method="empirical")
    assert cal.silent_failure <= 0.01
    below = max(s for s in scores if s < cal.threshold)
    assert rates_at(scores, labels, below).silent_failure > 0.01  # the lowest such threshold
    guaranteed = calibrate(scores, labels, max_silent_failure=0.01)
    assert guaranteed.method == "ltt" and guaranteed.threshold > cal.threshold
    assert guaranteed.silent_failure_bound is not None and guaranteed.silent_failure_bound <= 0.01


@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        ([], [], "empty"),
        ([0.5, 0.6], [True], "2 scores and 1 labels"),
        ([0.5, 0.6], [True, True], "all 2 held-out examples are labelled correct"),
        ([0.5, 0.6], [False, False], "labelled wrong"),
        ([0.5, 1.2], [True, False], r"score #1 is 1.2.*\[0, 1\]"),
        ([0.5, math.nan], [True, False], "score #1 is nan"),
        ([0.5, -0.1], [True, False], "score #1"),
        ([0.5, "high"], [True, False], "score #1"),
        ([0.5, 0.6], [True, "yes"], "label #1 is 'yes'"),
        ([0.5, 0.6], [True, 2], "label #1 is 2"),
    ],
)
def test_calibration_bad_input_is_clear_error(scores: list[object], labels: list[object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        calibrate(scores, labels, max_silent_failure=0.01)


def test_calibration_no_threshold_meets_target() -> None:
    with pytest.raises(ValueError, match=r"no threshold meets silent_failure <= 0 .*lowest silent-failure rate is 0.5"):
        calibrate([0.9, 0.1], [False, True], max_silent_failure=0.0, method="empirical")
    with pytest.raises(ValueError, match="highest precision is 0.6667, at threshold 0.1"):
        calibrate([0.9, 0.9, 0.1], [False, True, True], min_precision=0.9)


def test_calibration_target_errors() -> None:
    with pytest.raises(ValueError, match="exactly one target"):
        calibrate(SCORES, LABELS)
    with pytest.raises(ValueError, match="exactly one target"):
        calibrate(SCORES, LABELS, max_silent_failure=0.1, min_precision=0.9)
    with pytest.raises(ValueError, match=r"max_silent_failure must be a number in \[0, 1\]"):
        calibrate(SCORES, LABELS, max_silent_failure=2)
    with pytest.raises(ValueError, match="max_retries"):
        calibrate(SCORES, LABELS, max_silent_failure=0.1, max_retries=-1)
    with pytest.raises(ValueError, match="threshold"):
        rates_at(SCORES, LABELS, 1.5)
