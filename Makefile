# The commands of the README: `make up` (the main job: the local deployment), `make test`;
# `make demo` converts the synthetic sample only.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the hub's proxy (npm); plexhub finds it in <venv>/node without PATH
CHP := $(VENV)/node/node_modules/.bin/configurable-http-proxy

.PHONY: up demo test lint typecheck unit bench bench-smoke clean portal test-wheel labext

# the install also builds the JupyterLab extension (scripts/labext.py; Node.js + the npm registry)
LABEXT_SRC := $(wildcard extensions/lab/src/*.ts extensions/lab/style/*) \
	extensions/lab/package.json extensions/lab/yarn.lock
$(BIN)/.plexhub-dev: pyproject.toml ome_pipeline/_kernels.c scripts/labext.py $(LABEXT_SRC)
	$(PYTHON) -m venv $(VENV)
	@echo "== installing plexhub and its dependencies into $(VENV) (a few minutes the first time)"
	$(BIN)/pip install -q uv  # uv installs the ~250 packages several times faster than pip
	$(BIN)/uv pip install --python $(BIN)/python -e ".[dev]"
	touch $@

$(CHP):
	npm install --prefix $(VENV)/node --no-audit --no-fund --loglevel=error configurable-http-proxy@5

up: $(BIN)/.plexhub-dev $(CHP)
	$(BIN)/plexhub up

demo: $(BIN)/.plexhub-dev
	$(BIN)/plexhub demo

lint: $(BIN)/.plexhub-dev
	$(BIN)/ruff check .
	PYTHON=$(CURDIR)/$(BIN)/python scripts/lint_imports.sh

typecheck: $(BIN)/.plexhub-dev
	PYTHON=$(BIN)/python scripts/typecheck.sh

unit: $(BIN)/.plexhub-dev
	$(BIN)/pytest tests/unit -q

test: lint typecheck $(CHP) portal bench-smoke
	$(BIN)/pytest -q

# the wheel installed for real (not editable) in a fresh venv, and a subset of the tests run
# against that copy (scripts/test_wheel.sh says which and why)
test-wheel: $(BIN)/.plexhub-dev
	PYTHON=$(CURDIR)/$(BIN)/python scripts/test_wheel.sh

# the portal's OpenSeadragon (npm, pinned): fail when the committed copy in
# api/portal/static/vendor differs; `scripts/build_portal.sh` refreshes it
portal:
	scripts/build_portal.sh --check

# rebuild the JupyterLab extension (extensions/lab -> extensions/labextension) and install it
# into the venv's share/jupyter/labextensions/plexhub
labext: $(BIN)/.plexhub-dev
	$(BIN)/python scripts/labext.py
	$(BIN)/python -m pip install -q -e . --no-deps --no-build-isolation

bench: $(BIN)/.plexhub-dev
	$(BIN)/python bench/convert.py --quick

# the benches still run (every phase and program on tiny data, seconds per cell; not a
# measurement): a rename in the API or the pipeline cannot break them unnoticed
# (convert.py builds the peers' venvs under bench/out/venvs on first use: minutes, once)
# every code path of the benches on tiny data (exits non-zero on any error; not a measurement).
# The peers that need their own venvs (large_image; eubi, ngff-zarr, ome-zarr-py) are left out
# here: building those venvs costs ~15 minutes on a fresh machine. `make bench` runs them all.
bench-smoke: $(BIN)/.plexhub-dev
	$(BIN)/python bench/tiles.py --smoke --phases first parts cold warm static proxy
	$(BIN)/python bench/convert.py --smoke --tools plexhub floor

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
