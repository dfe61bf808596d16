"""Evaluators: what the gate and the router score with.

Every evaluator returns a `Score` (a value in [0, 1], a reason, its name, details).
"""

from reliable_graph.calibration import Calibration, calibrate, rates_at
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
from reliable_graph.evaluators.cascade import Cascade
from reliable_graph.evaluators.completeness import Completeness
from reliable_graph.evaluators.deterministic import AllOf, Predicate, RegexMatch, RequiredFields, SchemaValid
from reliable_graph.evaluators.embedding import EmbeddingRelevance
from reliable_graph.evaluators.freshness import Freshness
from reliable_graph.evaluators.llm_judge import JudgeVerdict, LLMJudge
from reliable_graph.evaluators.local import LocalEmbeddings
from reliable_graph.evaluators.ragas import (
    RagasMetric,
    ragas_context_precision,
    ragas_context_recall,
    ragas_context_relevance,
    ragas_faithfulness,
    ragas_llm,
    ragas_response_groundedness,
)
from reliable_graph.evaluators.relevance import LexicalRelevance

__all__ = [
    "AllOf",
    "BaseEvaluator",
    "Calibration",
    "Cascade",
    "Chunk",
    "Completeness",
    "EmbeddingRelevance",
    "EvalInput",
    "Evaluator",
    "Freshness",
    "JudgeVerdict",
    "LLMJudge",
    "LexicalRelevance",
    "LocalEmbeddings",
    "Predicate",
    "RagasMetric",
    "RegexMatch",
    "RequiredFields",
    "SchemaValid",
    "Score",
    "arun_evaluator",
    "as_chunk",
    "as_chunks",
    "calibrate",
    "ragas_context_precision",
    "ragas_context_recall",
    "ragas_context_relevance",
    "ragas_faithfulness",
    "ragas_llm",
    "ragas_response_groundedness",
    "rates_at",
    "run_evaluator",
]
