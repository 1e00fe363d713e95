# swigapp developer entry points. `make demo` and `make test` set everything up on a
# fresh machine (a virtualenv in .venv) and then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: the CPU wheel; a looser requirement would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup demo test lint format clean weights benchmark

# cffconvert (checks CITATION.cff in the tests) pins jsonschema < 4, which would downgrade
# the jsonschema 4 that the rest uses; its validation runs on jsonschema 4, so it goes in
# without its dependencies (the others it needs, ruamel.yaml and pykwalify, are test extras).
CFFCONVERT ?= cffconvert==2.0.0

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps "$(CFFCONVERT)"
	touch $@

setup: $(VENV)/.installed

demo: setup
	rm -rf demo
	$(BIN)/swigapp-demo demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# pytest's console script (not `python -m pytest`, which would put the checkout's swigapp/
# first on sys.path, without swigapp.workflows). Exit code 5 means no test was collected.
test: lint
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

# Reproduce the shipped weights (about five hours on 2 CPU cores) and the benchmarks.
weights: setup
	BIN=$(BIN) scripts/train_weights.sh

benchmark: setup
	$(BIN)/python -m benchmarks.quality
	$(BIN)/python -m benchmarks.speed

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache *.egg-info
