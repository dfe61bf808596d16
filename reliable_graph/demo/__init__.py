"""The demo application: the simulated world of docs/scenario.md and the 10-step research pipeline.

`world` is the seeded world (retrieval, step model, validator, judge, flaky connectors),
`pipeline` the pipeline bare and with reliable-graph, `model` the same pipeline on a real chat
model. `reliable-graph demo` runs them.
"""

from reliable_graph.demo.model import build_model_pipeline, run_model_demo
from reliable_graph.demo.pipeline import (
    DEFAULT_CONNECTOR_RETRY,
    DEFAULT_RETRY_POLICY,
    DEMO_GRAPH,
    DemoThresholds,
    RunSummary,
    SimulatedConnectors,
    build_bare_pipeline,
    build_reliable_pipeline,
    calibrated_thresholds,
    demo_graph,
    research_input,
    research_pipeline,
    run_demo,
    summarize_run,
)
from reliable_graph.demo.world import (
    OutputSignals,
    ScenarioParams,
    SimulatedWorld,
    draw_output_signals,
)

__all__ = [
    "DEFAULT_CONNECTOR_RETRY",
    "DEFAULT_RETRY_POLICY",
    "DemoThresholds",
    "OutputSignals",
    "RunSummary",
    "ScenarioParams",
    "SimulatedConnectors",
    "SimulatedWorld",
    "build_bare_pipeline",
    "build_model_pipeline",
    "build_reliable_pipeline",
    "DEMO_GRAPH",
    "calibrated_thresholds",
    "demo_graph",
    "draw_output_signals",
    "research_input",
    "research_pipeline",
    "run_demo",
    "run_model_demo",
    "summarize_run",
]
