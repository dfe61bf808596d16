"""Calibration benchmark: does the guarantee hold, do audits see silent failures, does a pipeline budget work?

All draws come from the scenario world of docs/scenario.md (`draw_output_signals`): an output is
correct with 0.95 on good context and 0.62 on look-alike context; the router's score is 0 when
the rule-based validator flags the output, else the judge's confidence.

1. Coverage: 200 calibration sets of 1,000 first attempts each; `calibrate(max_silent_failure=
   0.01, delta=0.05)` (Learn then Test) and the empirical rule each pick a threshold; each
   threshold's true silent-failure rate is measured on 100,000 fresh draws. `coverage_*` is the
   share of sets whose threshold meets 1%: the guarantee promises >= 0.95.
2. Audits: 5,000 runs of the 10-step pipeline (gate, up to 3 retries on re-fetched context,
   escalation) at the calibrated thresholds; 2% of passing outputs are audited with their true
   label; `Report.silent_failures()` estimates the run's silent-failure rate (wrong outputs that
   passed, per run) with a 95% interval, compared with the true rate of the same runs; repeated
   `--audit-reps` times for its coverage.
3. Pipeline: `calibrate_pipeline` on whole runs as the router sees them (attempts with retries,
   from calibration seeds disjoint from the evaluation seeds) for a 1% end-to-end target, with
   the joint split (one shared threshold, certified on runs) and, for comparison, the union split
   (1%/10 per step); evaluated on `--eval-runs` fresh runs: silent failures, success without a
   human, model calls against the bare pipeline's 10.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import random
import sys
import time
from typing import Any

from reliable_graph.calibration import calibrate, calibrate_pipeline
from reliable_graph.demo import ScenarioParams, draw_output_signals
from reliable_graph.report import Report, StepStats

PARAMS = ScenarioParams()
ALPHA, DELTA = 0.01, 0.05
GATE_THRESHOLD, MAX_REFETCHES, MAX_RETRIES = 0.5, 2, 3


def first_attempt(rng: random.Random) -> tuple[float, bool]:
    """One output as the router first sees it: (score, correct)."""
    good = rng.random() < PARAMS.p_good_context
    s = draw_output_signals(rng, PARAMS, good_context=good)
    return (0.0 if s.validator_flag else s.judge_score), s.correct


def step_view(rng: random.Random) -> list[tuple[float, bool]] | None:
    """One step as the pipeline runs it: the gate (re-fetching up to twice), then up to 1 + 3 attempts,
    each retry on re-fetched context. None: the gate escalated (the router never saw the step)."""
    fetch = 0
    while True:
        good = rng.random() < (PARAMS.p_good_refetch if fetch else PARAMS.p_good_context)
        a, b = PARAMS.relevance_good if good else PARAMS.relevance_bad
        if rng.betavariate(a, b) >= GATE_THRESHOLD:
            break
        if fetch >= MAX_REFETCHES:
            return None
        fetch += 1
    attempts = []
    for attempt in range(1 + MAX_RETRIES):
        if attempt:
            good = rng.random() < PARAMS.p_good_refetch
        s = draw_output_signals(rng, PARAMS, good_context=good)
        attempts.append(((0.0 if s.validator_flag else s.judge_score), s.correct))
    return attempts


def coverage(sets: int, n: int, fresh_n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(f"coverage:{seed}")
    fresh = [first_attempt(rng) for _ in range(fresh_n)]
    wrong = sorted(s for s, ok in fresh if not ok)

    def risk(t: float) -> float:
        return (len(wrong) - bisect.bisect_left(wrong, t)) / fresh_n

    met = {"ltt": 0, "empirical": 0}
    risks: dict[str, list[float]] = {"ltt": [], "empirical": []}
    uncertified = 0
    for _ in range(sets):
        data = [first_attempt(rng) for _ in range(n)]
        scores, labels = [s for s, _ in data], [ok for _, ok in data]
        for method in ("ltt", "empirical"):
            try:
                t = calibrate(scores, labels, max_silent_failure=ALPHA, delta=DELTA, method=method).threshold  # type: ignore[arg-type]
            except ValueError:
                uncertified += method == "ltt"
                met[method] += 1  # accepting nothing meets any target
                continue
            r = risk(t)
            risks[method].append(r)
            met[method] += r <= ALPHA
    return {
        "coverage_guaranteed": met["ltt"] / sets,
        "coverage_empirical": met["empirical"] / sets,
        "mean_true_risk_guaranteed": sum(risks["ltt"]) / max(1, len(risks["ltt"])),
        "mean_true_risk_empirical": sum(risks["empirical"]) / max(1, len(risks["empirical"])),
        "uncertified_sets": uncertified,
        "sets": sets,
        "set_size": n,
        "fresh_draws": fresh_n,
    }


def run_pipeline(rng: random.Random, thresholds: dict[str, float], steps: int) -> dict[str, Any]:
    """One run: per step the gate, then the router at its threshold. Outcomes with hidden truth."""
    executions = []
    for i in range(steps):
        view = step_view(rng)
        if view is None:
            executions.append({"step": f"step_{i + 1:02d}", "outcome": "escalate", "calls": 0, "wrong": False})
            return {"status": "escalated", "executions": executions}
        t = thresholds[f"step_{i + 1:02d}"]
        for j, (score, ok) in enumerate(view):
            if score >= t:
                executions.append(
                    {
                        "step": f"step_{i + 1:02d}",
                        "outcome": "pass" if j == 0 else "retry_pass",
                        "calls": j + 1,
                        "wrong": not ok,
                    }
                )
                break
        else:
            executions.append({"step": f"step_{i + 1:02d}", "outcome": "escalate", "calls": len(view), "wrong": False})
            return {"status": "escalated", "executions": executions}
    silent = any(e["wrong"] for e in executions)
    return {"status": "silent_failure" if silent else "success", "executions": executions}


def pipeline(cal_runs: int, eval_runs: int, seed: int, split: str) -> dict[str, Any]:
    steps = PARAMS.steps
    rng = random.Random(f"pipeline-calibration:{seed}")
    names = [f"step_{i + 1:02d}" for i in range(steps)]
    data: dict[str, tuple[list[list[float]], list[list[bool]]]] = {name: ([], []) for name in names}
    for _ in range(cal_runs):  # whole runs, as the router sees each step (a gate escalation: no attempt passes)
        for name in names:
            view = step_view(rng) or [(0.0, True)] * (1 + MAX_RETRIES)
            data[name][0].append([sc for sc, _ in view])
            data[name][1].append([ok for _, ok in view])
    cal = calibrate_pipeline(data, max_silent_failure=ALPHA, max_retries=MAX_RETRIES, delta=DELTA, split=split)  # type: ignore[arg-type]
    thresholds = cal.thresholds()
    erng = random.Random(f"pipeline-evaluation:{seed}")
    counts = {"success": 0, "silent_failure": 0, "escalated": 0}
    calls = 0
    for _ in range(eval_runs):
        run = run_pipeline(erng, thresholds, steps)
        counts[run["status"]] += 1
        calls += sum(e["calls"] for e in run["executions"])
    return {
        "split": cal.split,
        "target_e2e_silent_failure": ALPHA,
        "delta": DELTA,
        "bound": cal.silent_failure_bound,
        "thresholds": {k: round(v, 4) for k, v in thresholds.items()},
        "calibration_runs": cal_runs,
        "evaluation_runs": eval_runs,
        "silent_failure": counts["silent_failure"] / eval_runs,
        "e2e_success_without_human": counts["success"] / eval_runs,
        "escalated": counts["escalated"] / eval_runs,
        "model_calls_per_run": calls / eval_runs,
        "model_calls_vs_bare": calls / eval_runs / steps,
    }


def audits(thresholds: dict[str, float], runs: int, rate: float, reps: int, seed: int) -> dict[str, Any]:
    covered = 0
    first: dict[str, Any] = {}
    for rep in range(reps):
        rng = random.Random(f"audits:{seed}:{rep}")
        outcomes: dict[str, dict[str, int]] = {}
        labels: dict[str, dict[str, int]] = {}
        silent_runs = wrong_passed = 0
        for _ in range(runs):
            run = run_pipeline(rng, thresholds, PARAMS.steps)
            silent_runs += run["status"] == "silent_failure"
            wrong_passed += sum(e["wrong"] for e in run["executions"])
            for e in run["executions"]:
                outcomes.setdefault(e["step"], {}).setdefault(e["outcome"], 0)
                outcomes[e["step"]][e["outcome"]] += 1
                if e["outcome"] in ("pass", "retry_pass") and rng.random() < rate:
                    lab = labels.setdefault(e["step"], {"labelled": 0, "wrong": 0})
                    lab["labelled"] += 1
                    lab["wrong"] += e["wrong"]
        report = Report(
            threads=runs,
            statuses={},
            steps=[StepStats(name=k, outcomes=v) for k, v in outcomes.items()],
            audits=labels,
        )
        est = report.silent_failures()[""]
        truth = wrong_passed / runs  # the estimand: wrong outputs that passed, per run
        covered += est.low <= truth <= est.high
        if rep == 0:
            first = {
                "true_rate": truth,
                "true_share_of_runs_with_one": silent_runs / runs,
                "estimate": est.rate,
                "interval": [est.low, est.high],
                "labelled": est.labelled,
                "wrong": est.wrong,
            }
    return {
        "audit_rate": rate,
        "runs": runs,
        "audit_interval_covers": first["interval"][0] <= first["true_rate"] <= first["interval"][1],
        "audit_ci_width": first["interval"][1] - first["interval"][0],
        "audit_first": first,
        "audit_coverage_over_reps": covered / reps,
        "audit_reps": reps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=int, default=200, help="calibration sets (default 200)")
    parser.add_argument("--set-size", type=int, default=1000, help="examples per set (default 1000)")
    parser.add_argument("--fresh", type=int, default=100_000, help="fresh draws checking each threshold")
    parser.add_argument("--cal-runs", type=int, default=10_000, help="pipeline calibration runs")
    parser.add_argument("--eval-runs", type=int, default=50_000, help="pipeline evaluation runs")
    parser.add_argument("--audit-runs", type=int, default=5000, help="runs per audit experiment")
    parser.add_argument("--audit-reps", type=int, default=100, help="audit experiments, for the coverage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    out: dict[str, Any] = {"alpha": ALPHA, "delta": DELTA}
    out.update(coverage(args.sets, args.set_size, args.fresh, args.seed))
    if not args.json:
        print(f"coverage done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out["pipeline"] = pipeline(args.cal_runs, args.eval_runs, args.seed, "joint")
    out["pipeline_union_split"] = pipeline(args.cal_runs, args.eval_runs, args.seed, "union")
    out.update(audits(out["pipeline"]["thresholds"], args.audit_runs, 0.02, args.audit_reps, args.seed))
    out["scenario"] = {
        **PARAMS.describe(),
        "gate_threshold": GATE_THRESHOLD,
        "max_refetches": MAX_REFETCHES,
        "max_retries": MAX_RETRIES,
    }
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(out))
        return 0
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
