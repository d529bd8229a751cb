# newswire: `make run` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/newswire.yaml

.PHONY: run once test bench browse demo lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the daemon on config/newswire.yaml (Ctrl-C stops it cleanly)
	$(BIN)/newswire --config $(CONFIG) daemon

once: $(STAMP)  ## one pass over the due feeds, for cron
	$(BIN)/newswire --config $(CONFIG) once

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest

bench: $(STAMP)  ## benchmarks; figures go in BENCHMARKS.md
	$(BIN)/python bench/run_all.py

browse: $(STAMP)  ## Datasette over the corpus
	$(BIN)/newswire --config $(CONFIG) serve

demo: $(STAMP)  ## watch it work offline: a local news site ingested into demo-data/
	$(BIN)/python -m pipeline.demo

lint: $(STAMP)  ## ruff, the type checker, and the layer contract (pyproject.toml)
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache .grimp_cache \
		.import_linter_cache
