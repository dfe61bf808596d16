# One entry point for people and CI: `make demo`, `make test`, `make lint`.
VENV ?= .venv
PYTHON ?= python3
EXTRAS ?= dev
# PyTorch's CPU build, installed before the extras (an unpinned torch pulls a multi-GB CUDA build);
# empty to skip it (and install EXTRAS without `embeddings`)
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install demo test lint bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "== creating $(VENV) and installing reliable-graph with every extra (pip prints each package)"
	$(BIN)/pip install --quiet --upgrade pip
	@if [ -n "$(TORCH)" ]; then \
		echo "== PyTorch's CPU build first (the embeddings extra; an unpinned torch could pull a multi-GB CUDA build)"; \
		$(BIN)/pip install --progress-bar off "$(TORCH)"; \
	fi
	$(BIN)/pip install --progress-bar off -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/reliable-graph demo

test: install
	RAGAS_DO_NOT_TRACK=true $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/overhead.py
