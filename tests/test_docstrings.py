"""Every public name documents itself with an example, and every example runs."""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
import types

import pytest

import reliable_graph
import reliable_graph.escalation
import reliable_graph.escalation.protocol
import reliable_graph.evaluators
import reliable_graph.nodes
import reliable_graph.resilience

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
CONSTANTS = {"RELIABILITY_KEY", "FAULTS", "DECISIONS", "INBOX_NAMESPACE", "Action", "Format", "Mode", "STATUSES"}
"""Constants and type aliases: documented where they are defined, nothing to run."""
STATUSES = {"APPLIED", "CLAIMED", "DIRECT", "DISMISSED", "EXPIRED", "FINAL", "OPEN", "PENDING", "RESOLVED"}
STATUSES |= {"RESOLVING", "SUPERSEDED"}


def _public() -> dict[str, object]:
    names: dict[str, object] = {}
    for module in (
        reliable_graph,
        reliable_graph.escalation,
        reliable_graph.escalation.protocol,
        reliable_graph.evaluators,
        reliable_graph.nodes,
        reliable_graph.resilience,
    ):
        for name in module.__all__:
            if name not in CONSTANTS | STATUSES:
                names[name] = getattr(module, name)
    return names


PUBLIC = _public()


NEEDS_EMBEDDINGS_EXTRA = {"LocalEmbeddings"}
"""Examples that load the local model of the `embeddings` extra (not installed where PyTorch's CPU build is not)."""


def _embeddings_extra() -> bool:
    import importlib.util

    return importlib.util.find_spec("sentence_transformers") is not None


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_has_runnable_example(name: str) -> None:
    doc = inspect.getdoc(PUBLIC[name]) or ""
    blocks = BLOCK.findall(doc)
    assert "Example:" in doc and blocks, f"{name} has no Example: with a python block"
    if name in NEEDS_EMBEDDINGS_EXTRA and not _embeddings_extra():
        pytest.skip("the embeddings extra (sentence-transformers, torch) is not installed here")
    for block in blocks:
        run_example(textwrap.dedent(block), f"doc_{name}")


def run_example(code: str, module_name: str) -> None:
    """Run `code` as the body of a fresh module (dataclasses need a real module)."""
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module
    try:
        exec(compile(code, f"<{module_name}>", "exec"), module.__dict__)
    finally:
        del sys.modules[module_name]


@pytest.mark.parametrize(
    "module",
    [
        "reliable_graph.demo.pipeline",
        "reliable_graph.demo.model",
        "reliable_graph.demo.world",
        "reliable_graph.cli.app",
        "reliable_graph.cli.calibrate",
        "reliable_graph.cli.report",
        "reliable_graph.resilience.connectors",
        "reliable_graph.resilience.classify",
        "reliable_graph.resilience.chaos",
        "reliable_graph.calibration",
    ],
)
def test_module_examples_run(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants document themselves with a string under them
        doc = inspect.getdoc(obj) or ""
        for block in BLOCK.findall(doc):
            run_example(textwrap.dedent(block), f"doc_{module.replace('.', '_')}_{name}")
