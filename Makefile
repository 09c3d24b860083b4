# The two commands of the README: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/.plexhub-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/.plexhub-dev
	$(BIN)/plexhub demo

lint: $(BIN)/.plexhub-dev
	$(BIN)/ruff check .

typecheck: $(BIN)/.plexhub-dev
	PYTHON=$(BIN)/python scripts/typecheck.sh

unit: $(BIN)/.plexhub-dev
	$(BIN)/pytest tests/unit -q

test: lint typecheck
	$(BIN)/pytest -q

bench: $(BIN)/.plexhub-dev
	$(BIN)/python bench/convert.py --quick

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
