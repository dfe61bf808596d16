"""The 10-step research pipeline, bare and with reliable-graph (the demo as a script).

    python examples/research_pipeline.py --runs 200 --seed 7
    python examples/research_pipeline.py --model openai:gpt-4o-mini   # a real chat model

The pipeline itself is `reliable_graph.demo.build_reliable_pipeline`: per step a retrieval,
a `ContextGate` with a `Refetch` loop, and a `reliable_step` scored by the deterministic
validator then the judge, all escalating to one `HumanEscalation` node.
"""

from __future__ import annotations

import sys

from reliable_graph.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["demo", *sys.argv[1:]]))
