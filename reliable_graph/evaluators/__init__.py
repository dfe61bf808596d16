"""Evaluators: what the gate and the router score with.

Every evaluator returns a `Score` (a value in [0, 1], a reason, its name, details).
"""

from reliable_graph.evaluators.base import (
    BaseEvaluator,
    Chunk,
    EvalInput,
    Evaluator,
    Score,
    arun_evaluator,
    as_chunk,
    as_chunks,
    run_evaluator,
)
from reliable_graph.evaluators.completeness import Completeness
from reliable_graph.evaluators.deterministic import AllOf, Predicate, RegexMatch, RequiredFields, SchemaValid
from reliable_graph.evaluators.freshness import Freshness
from reliable_graph.evaluators.relevance import LexicalRelevance

__all__ = [
    "AllOf",
    "BaseEvaluator",
    "Chunk",
    "Completeness",
    "EvalInput",
    "Evaluator",
    "Freshness",
    "LexicalRelevance",
    "Predicate",
    "RegexMatch",
    "RequiredFields",
    "SchemaValid",
    "Score",
    "arun_evaluator",
    "as_chunk",
    "as_chunks",
    "run_evaluator",
]
