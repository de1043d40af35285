# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test lint typecheck layers unit venv clean bench

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_RUN): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(STAMP_DEV): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@ $(STAMP_RUN)

venv: $(STAMP_DEV)

run: $(STAMP_RUN)
	$(BIN)/forecaster demo

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

layers: $(STAMP_DEV)
	$(BIN)/lint-imports

unit: $(STAMP_DEV)
	$(BIN)/python -m pytest -n 2 -q

test: lint typecheck layers unit

bench: $(STAMP_DEV)
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) .forecaster .pytest_cache .mypy_cache .ruff_cache
