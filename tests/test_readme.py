"""The README's python blocks run as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from test_docstrings import run_example

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    if "LocalEmbeddings" in BLOCKS[index]:
        pytest.importorskip("sentence_transformers", reason="the embeddings extra is not installed here")
    run_example(textwrap.dedent(BLOCKS[index]), f"readme_block_{index}")
