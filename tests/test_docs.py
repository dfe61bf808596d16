"""The documentation site's python blocks run as written, and its pages and links hold together."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from test_docstrings import run_example

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
SKIP = re.compile(r"<!--\s*not run:\s*(?P<why>[^>]*?)\s*-->\s*$")
NEEDS_EMBEDDINGS_EXTRA = "LocalEmbeddings"
"""Blocks that load the local model of the `embeddings` extra (not installed where PyTorch's CPU build is not)."""


def blocks(text: str) -> list[tuple[int, str, str | None]]:
    """Every ```python block of a page: its line, its code, and why it is not run (None: it runs).

    A block is skipped only when the line just before it is an HTML comment `<!-- not run: WHY -->`.
    """
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        line = text.count("\n", 0, match.start()) + 1
        found.append((line, match.group(1), skip.group("why") if skip else None))
    return found


BLOCKS = [
    pytest.param(page, line, code, why, id=f"{page.relative_to(DOCS)}:{line}")
    for page in PAGES
    for line, code, why in blocks(page.read_text())
]


def test_docs_blocks_are_found_and_skips_say_why() -> None:
    opened = sum(line == "```python" for page in PAGES for line in page.read_text().splitlines())
    assert len(BLOCKS) == opened > 0  # every block opened is found, whole
    text = (
        "intro\n<!-- not run: needs a LangGraph server -->\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n"
    )
    assert blocks(text) == [(3, "raise SystemExit\n", "needs a LangGraph server"), (7, "x = 1\n", None)]
    skipped = [p for p in BLOCKS if p.values[3] is not None]
    assert len(skipped) <= 3, "keep skipped blocks rare"
    assert all(p.values[3] for p in skipped), "a skipped block says why"


@pytest.mark.parametrize(("page", "line", "code", "why"), BLOCKS)
def test_docs_example_runs(page: Path, line: int, code: str, why: str | None) -> None:
    if why is not None:
        pytest.skip(f"not run: {why}")
    if NEEDS_EMBEDDINGS_EXTRA in code:
        pytest.importorskip("sentence_transformers", reason="the embeddings extra is not installed here")
    name = re.sub(r"\W", "_", f"docs_{page.relative_to(DOCS).with_suffix('')}_{line}")
    run_example(textwrap.dedent(code), name)


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_docs_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = set(_nav_pages(config["nav"]))
    assert listed == {str(p.relative_to(DOCS)) for p in PAGES}


def test_docs_the_readme_links_to_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((?!https?://|#)([^)#\s]+)", readme)
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_docs_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_docs_pictures_come_from_the_shipped_example(tmp_path: Path) -> None:
    """docs/pictures.py makes the console's picture from examples/inbox.py, as a user runs it."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is not installed (CI installs Debian's chromium)")
    pytest.importorskip("playwright", reason="the test extra is not installed here")
    out = tmp_path / "console.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(DOCS / "pictures.py"), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "warranty: waiting for a reviewer" in done.stdout and done.stdout.strip().endswith(str(out))
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 1200 and height >= 900
    assert (
        "console.png" in (DOCS / "console.md").read_text()
        and "python docs/pictures.py" in (DOCS / "console.md").read_text()
    )
