"""The demo pipeline with a real chat model (`reliable-graph demo --model provider:model`).

Retrieval still comes from the simulated world (there is no corpus to search), but every
step's output is written by the model and judged by it (`LLMJudge`). Correctness is unknown
without the world's hidden truth, so this mode reports outcomes, not end-to-end success.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph

from reliable_graph import (
    AllOf,
    HumanEscalation,
    Predicate,
    as_chunks,
    reliable_step,
    step_outcomes,
    task_records,
    validate_graph,
)
from reliable_graph.demo.pipeline import PipelineState, sqlite_saver, step_name
from reliable_graph.demo.world import ScenarioParams, SimulatedWorld
from reliable_graph.evaluators import LLMJudge

__all__ = ["build_model_pipeline", "run_model_demo"]

RUBRIC = "The answer addresses the question and is supported by the context; it does not invent facts."


def build_model_pipeline(
    model: Any, world: SimulatedWorld, *, threshold: float = 0.7
) -> StateGraph[Any, Any, Any, Any]:
    """The research pipeline whose steps call `model` and are judged by it.

    Example:
        ```python
        from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        from langchain_core.messages import AIMessage
        from langgraph.checkpoint.memory import InMemorySaver
        from reliable_graph.demo import build_model_pipeline
        from reliable_graph.demo import ScenarioParams, SimulatedWorld

        class Fake(FakeMessagesListChatModel):
            def bind_tools(self, tools, **kwargs):
                return self.bind(**kwargs)

        call = {"name": "JudgeVerdict", "args": {"score": 0.9, "reason": "ok"}, "id": "1"}
        verdict = AIMessage(content="", tool_calls=[call])
        model = Fake(responses=[AIMessage(content="an answer"), verdict])
        world = SimulatedWorld(ScenarioParams(steps=1), seed=0)
        graph = build_model_pipeline(model, world).compile(checkpointer=InMemorySaver())
        out = graph.invoke({"run": 0, "question": "q"}, {"configurable": {"thread_id": "1"}})
        assert out["reliability"]["tasks"]["step_01"]["outcome"] == "pass"
        ```
    """
    builder = StateGraph(PipelineState)
    steps = world.params.steps
    evaluator = AllOf(
        evaluators=[
            Predicate(fn=lambda out: bool(str(out.get("answer", "")).strip()), name="non_empty"),
            LLMJudge(model=model, rubric=RUBRIC),
        ]
    )

    def make(i: int) -> tuple[Any, Any]:
        name = step_name(i)

        def refetch(query: str, state: Any) -> list[dict[str, Any]]:
            record: Any = task_records(state).get(name, {})
            refetches = int(record.get("refetches", 0))
            return world.retrieve(run=state["run"], step=i, fetch=1 + refetches)

        def generate(state: PipelineState) -> dict[str, Any]:
            context = state.get("context") or world.retrieve(run=state["run"], step=i, fetch=0)
            texts = "\n".join(c.text for c in as_chunks(context))
            reply = model.invoke(
                [
                    SystemMessage("Answer the research question using only the context."),
                    HumanMessage(f"Question: {state['question']} (part {i})\nContext:\n{texts}"),
                ]
            )
            output = {"step": i, "answer": reply.text}
            return {"output": output, "answers": {name: output}, "context": context}

        generate.__name__ = name
        return refetch, generate

    for i in range(1, steps + 1):
        refetch, generate = make(i)
        after = step_name(i + 1) if i < steps else END
        builder.add_node(
            reliable_step(
                generate,
                evaluator=evaluator,
                threshold=threshold,
                refetch=refetch,
                merge="replace",
                pass_to=after,
            )
        )
    builder.add_node(HumanEscalation())
    builder.add_edge(START, step_name(1))
    return builder


def run_model_demo(
    model: Any, *, runs: int, db: Path, params: ScenarioParams | None = None, out: TextIO | None = None
) -> int:
    """Run the model pipeline `runs` times on SQLite and print the step outcomes.

    `model` is a chat model or a `provider:model` string for `init_chat_model`.

    Example:
        ```python
        import io, tempfile
        from pathlib import Path
        from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
        from langchain_core.messages import AIMessage
        from reliable_graph.demo import run_model_demo
        from reliable_graph.demo import ScenarioParams

        class Fake(FakeMessagesListChatModel):
            def bind_tools(self, tools, **kwargs):
                return self.bind(**kwargs)

        call = {"name": "JudgeVerdict", "args": {"score": 0.9, "reason": "ok"}, "id": "1"}
        verdict = AIMessage(content="", tool_calls=[call])
        buf = io.StringIO()
        with tempfile.TemporaryDirectory() as d:
            code = run_model_demo(Fake(responses=[AIMessage(content="answer"), verdict]), runs=2,
                                  db=Path(d) / "m.sqlite", params=ScenarioParams(steps=2), out=buf)
        assert code == 0 and '"pass": 4' in buf.getvalue()
        ```
    """
    out = out or sys.stdout
    if isinstance(model, str):
        from langchain.chat_models import init_chat_model

        model = init_chat_model(model)
    params = params or ScenarioParams()
    world = SimulatedWorld(params, seed=0)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    outcomes: Counter[str] = Counter()
    with sqlite_saver(db) as saver:
        graph = validate_graph(build_model_pipeline(model, world).compile(checkpointer=saver))
        for run in range(runs):
            config: Any = {"configurable": {"thread_id": f"model-{run:05d}"}}
            values = graph.invoke({"run": run, "question": "research question"}, config, durability="sync")
            outcomes.update(step_outcomes(values).values())
    out.write(json.dumps({"runs": runs, "step_outcomes": dict(outcomes)}) + "\n")
    return 0
