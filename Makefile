# One entry point for people and CI: `make demo`, `make test`, `make lint`, `make docs`.
VENV ?= .venv
PYTHON ?= python3
EXTRAS ?= dev
# The demo needs only the library and its chart: `make demo` installs just that, `make test` and
# `make lint` everything (EXTRAS). Each install has its own stamp, so `make demo` then `make test`
# in one checkout installs the rest.
DEMO_EXTRAS ?= chart
# PyTorch's CPU build, installed before the extras (an unpinned torch pulls a multi-GB CUDA build);
# empty to skip it (and install EXTRAS without `embeddings`)
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install install-demo demo test smoke lint docs bench

$(BIN)/python:
	@echo "== creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the demo's install: the library and its chart extra (no PyTorch, ragas, console, Postgres or test tools)
$(BIN)/.installed-demo: pyproject.toml | $(BIN)/python
	@echo "== installing reliable-graph[$(DEMO_EXTRAS)] into $(VENV) (what the demo needs)"
	$(BIN)/pip install --progress-bar off -e ".[$(DEMO_EXTRAS)]"
	touch $@

# every extra, the test and lint tools: what `make test` and `make lint` need
$(BIN)/.installed: pyproject.toml | $(BIN)/python
	@echo "== installing reliable-graph with every extra into $(VENV) (pip prints each package)"
	@if [ -n "$(TORCH)" ]; then \
		echo "== PyTorch's CPU build first (the embeddings extra; an unpinned torch could pull a multi-GB CUDA build)"; \
		$(BIN)/pip install --progress-bar off "$(TORCH)"; \
	fi
	$(BIN)/pip install --progress-bar off -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

install-demo: $(BIN)/.installed-demo

demo: install-demo
	$(BIN)/reliable-graph demo

test: install
	RAGAS_DO_NOT_TRACK=true $(BIN)/pytest

# the suite without the full matrix (marker `matrix`, tests/conftest.py): CI's run on the other Pythons
smoke: install
	RAGAS_DO_NOT_TRACK=true $(BIN)/pytest -m "not matrix"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# the documentation site (mkdocs.yml, docs/) into site/; --strict fails on any warning (a broken link,
# a docstring the API reference cannot render). NO_MKDOCS_2_WARNING quiets mkdocs-material's banner.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: install
	$(BIN)/python benchmarks/overhead.py
