# One command each: `make run` (set up, then the default DAG) and `make test` (set up, lint, then the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup run test lint bench rehearse clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert (3, 11, 4) <= sys.version_info[:3] < (3, 12), "Python 3.11.4 or a later 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

run: setup
	$(BIN)/snakemake --cores all

test: setup lint
	$(BIN)/python -m pytest

lint: setup  # style (ruff: lint and format) and the DAG's own linter, before any test runs
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint

bench: setup
	$(BIN)/snakemake bench --cores 1 --forcerun bench_task bench_ga  # target first: --forcerun takes several values; one job at a time

rehearse: setup  # config/paper.yaml's DAG at its real shapes, through SLURM on this machine (root): results/rehearsal/
	PYTHON=$(BIN)/python bash workflow/rehearse.sh

clean:
	rm -rf results/runs results/data results/cifar10 results/flow* results/lits results/exports results/tables figures/*.png logs benchmarks .snakemake
