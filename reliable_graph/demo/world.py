"""The fixed simulated world the demo and the benchmarks run against (docs/scenario.md).

No LLM is reachable where the library is tested, so a seeded world stands in for retrieval,
the step model, the deterministic validator, the judge and flaky connectors. Every draw is
keyed by (seed, run, step, what, index), so a run is reproducible across processes (crash
and resume included) and independent of the order runs execute in. The library's real
nodes, thresholds, retries, re-fetches and escalations run on top of it; the connectors'
faults come from the library's chaos module (`ScenarioParams.fault_profile`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from reliable_graph.resilience import FaultProfile

__all__ = [
    "OutputSignals",
    "ScenarioParams",
    "SimulatedWorld",
    "draw_output_signals",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioParams:
    """The world's parameters; the defaults are docs/scenario.md's, exactly.

    Example:
        ```python
        from reliable_graph.demo import ScenarioParams

        p = ScenarioParams()
        assert round(p.raw_step_reliability(), 4) == 0.9005
        assert ScenarioParams(raw_p=0.99).raw_step_reliability() == 0.99
        ```
    """

    steps: int = 10
    """Steps in a run."""
    p_good_context: float = 0.85
    """First fetch: probability that the context is good."""
    p_good_refetch: float = 0.95
    """A re-fetch with an enriched query: probability that the context is good."""
    relevance_good: tuple[float, float] = (8.0, 2.0)
    """Beta parameters of the gate's relevance signal for good context."""
    relevance_bad: tuple[float, float] = (2.0, 5.0)
    """Beta parameters of the gate's relevance signal for bad context."""
    p_correct_good: float = 0.95
    """An output is correct with this probability on good context."""
    p_correct_bad: float = 0.62
    """An output is correct with this probability on bad context."""
    validator_flags_wrong: float = 0.60
    """The deterministic validator flags a wrong output with this probability."""
    validator_flags_correct: float = 0.01
    """The deterministic validator flags a correct output with this probability."""
    judge_correct: tuple[float, float] = (9.0, 1.5)
    """Beta parameters of the judge's confidence for a correct output."""
    judge_wrong: tuple[float, float] = (2.0, 4.0)
    """Beta parameters of the judge's confidence for a wrong output."""
    fault_rate: float = 0.0
    """`f`: a model or retrieval call fails transiently with this probability."""
    permanent_fault_rate: float = 0.002
    """When `f > 0`, a call also fails permanently (HTTP 400-class) with this probability."""
    retry_after: tuple[float, float] = (0.01, 0.05)
    """Range of a rate limit's Retry-After, in seconds."""
    raw_p: float | None = None
    """Compounding benchmark: outputs are correct with this probability whatever the context."""

    def raw_step_reliability(self) -> float:
        """The bare per-step success probability these parameters imply."""
        if self.raw_p is not None:
            return self.raw_p
        good = self.p_good_context
        return good * self.p_correct_good + (1 - good) * self.p_correct_bad

    def describe(self) -> dict[str, Any]:
        """The parameters as a dict, to print with every result."""
        return asdict(self)

    def fault_profile(self) -> FaultProfile:
        """The connectors' faults as a `FaultProfile` (the library's chaos module injects them).

        Each model or retrieval call fails transiently with probability `fault_rate` (half HTTP
        429 with a Retry-After in `retry_after`, half timeouts) and, when `fault_rate > 0`,
        permanently (HTTP 400) with probability `permanent_fault_rate`; httpx's exception types.

        Example:
            ```python
            from reliable_graph.demo import ScenarioParams

            profile = ScenarioParams(fault_rate=0.3).fault_profile()
            assert profile.faults == {"permanent": 0.002, "rate_limit": 0.15, "timeout": 0.15}
            assert ScenarioParams().fault_profile().rate == 0
            ```
        """
        f = self.fault_rate
        if f <= 0:
            return FaultProfile(retry_after=self.retry_after)
        faults = {"permanent": self.permanent_fault_rate, "rate_limit": f / 2, "timeout": f / 2}
        return FaultProfile(faults=faults, retry_after=self.retry_after, client="httpx")


@dataclass(frozen=True, slots=True)
class OutputSignals:
    """The hidden truth of one output and the two signals a pipeline sees about it."""

    correct: bool
    validator_flag: bool
    judge_score: float


def draw_output_signals(rng: random.Random, params: ScenarioParams, *, good_context: bool) -> OutputSignals:
    """Draw one output's correctness, validator flag and judge score.

    Example:
        ```python
        import random
        from reliable_graph.demo import ScenarioParams, draw_output_signals

        s = draw_output_signals(random.Random(1), ScenarioParams(), good_context=True)
        assert isinstance(s.correct, bool) and 0.0 <= s.judge_score <= 1.0
        ```
    """
    if params.raw_p is not None:
        p_correct = params.raw_p
    else:
        p_correct = params.p_correct_good if good_context else params.p_correct_bad
    correct = rng.random() < p_correct
    flag_p = params.validator_flags_correct if correct else params.validator_flags_wrong
    validator_flag = rng.random() < flag_p
    a, b = params.judge_correct if correct else params.judge_wrong
    return OutputSignals(correct, validator_flag, rng.betavariate(a, b))


@dataclass
class SimulatedWorld:
    """One seeded world: retrieval, the step model and the connectors' faults.

    Draws depend only on (seed, run, step, kind, index), never on call order.

    Example:
        ```python
        from reliable_graph.demo import ScenarioParams, SimulatedWorld

        world = SimulatedWorld(ScenarioParams(), seed=7)
        ctx = world.retrieve(run=0, step=1, fetch=0)
        out = world.generate(run=0, step=1, attempt=1, context=ctx)
        assert out == world.generate(run=0, step=1, attempt=1, context=ctx)  # reproducible
        assert set(out["_sim"]) == {"correct", "validator_flag", "judge_score", "good_context"}
        ```
    """

    params: ScenarioParams
    seed: int
    calls: dict[str, int] = field(default_factory=lambda: {"model": 0, "retrieval": 0, "judge": 0})
    """Calls answered by this object, by kind (faulted calls never reach it: the chaos module
    counts those)."""

    def rng(self, run: int, step: int, kind: str, index: int) -> random.Random:
        """The generator of one draw."""
        return random.Random(f"{self.seed}:{run}:{step}:{kind}:{index}")

    def retrieve(self, *, run: int, step: int, fetch: int) -> list[dict[str, Any]]:
        """Context for a step: fetch 0 is the first fetch, later ones are enriched re-fetches."""
        self.calls["retrieval"] += 1
        rng = self.rng(run, step, "fetch", fetch)
        good = rng.random() < (self.params.p_good_refetch if fetch > 0 else self.params.p_good_context)
        a, b = self.params.relevance_good if good else self.params.relevance_bad
        relevance = rng.betavariate(a, b)
        quality = "on-point" if good else "look-alike"
        return [
            {
                "text": f"step {step} fetch {fetch}: {quality} evidence",
                "metadata": {"step": step, "fetch": fetch, "good": good, "relevance": relevance},
            }
        ]

    def generate(self, *, run: int, step: int, attempt: int, context: Any) -> dict[str, Any]:
        """The step model's output for one attempt, with its hidden truth under `_sim`."""
        self.calls["model"] += 1
        good_context = any(_chunk_good(c) for c in (context or []))
        signals = draw_output_signals(self.rng(run, step, "output", attempt), self.params, good_context=good_context)
        return {
            "step": step,
            "answer": f"answer to step {step} (attempt {attempt})",
            "_sim": {
                "correct": signals.correct,
                "validator_flag": signals.validator_flag,
                "judge_score": signals.judge_score,
                "good_context": good_context,
            },
        }


def _chunk_good(chunk: Any) -> bool:
    metadata = chunk.get("metadata", {}) if isinstance(chunk, dict) else getattr(chunk, "metadata", {})
    return bool(metadata.get("good"))
