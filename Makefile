# campaign — make targets. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CAMPAIGN ?= spring.yaml
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test check format bench sandbox fuzz-sandbox clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its test extras

run: $(STAMP) ## Run a campaign: make run CAMPAIGN=spring.yaml (file in pipelines/)
	$(BIN)/campaign run pipelines/$(CAMPAIGN)

test: $(STAMP) ## Run the test suite
	$(BIN)/pytest $(PYTEST_ARGS)

check: $(STAMP) ## ruff format --check, ruff check, mypy, import contracts (lint-imports)
	$(BIN)/ruff format --check campaign tests benchmarks
	$(BIN)/ruff check campaign tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

format: $(STAMP) ## Apply ruff format and safe fixes
	$(BIN)/ruff format campaign tests benchmarks
	$(BIN)/ruff check --fix campaign tests benchmarks

# scale.py runs at 100,000 rows in `make bench` (3-17 min); its default is 1,000,000 rows.
# benchmarks/_*.py are helper modules, not scripts.
SCALE_ARGS ?= --rows 100000

bench: $(STAMP) ## Run the benchmark scripts and print their figures (scale.py: SCALE_ARGS)
	@failed=""; for script in benchmarks/[!_]*.py; do \
		args=""; if [ "$$script" = benchmarks/scale.py ]; then args="$(SCALE_ARGS)"; fi; \
		echo "== $$script $$args"; $(BIN)/python $$script $$args || failed="$$failed $$script"; \
	done; if [ -n "$$failed" ]; then echo "missed a target or failed:$$failed"; exit 1; fi

sandbox: $(STAMP) ## Serve the API emulator on 127.0.0.1:8787
	$(BIN)/campaign sandbox serve --port 8787

fuzz-sandbox: $(STAMP) ## Schemathesis against the sandbox with many examples
	SCHEMATHESIS_MAX_EXAMPLES=500 $(BIN)/pytest tests/sandbox/test_sandbox_schema.py $(PYTEST_ARGS)

clean: ## Remove .venv, caches, state and reports
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .campaign-state reports
