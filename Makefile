# The verbs people type; CI (.ci/run) runs the same commands. `make` alone lists them.
VENV := .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help run test bench lint format install

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: install ## Run everything on this machine (API, workers, beat, embedded Redis)
	$(BIN)/mfa-pipeline up

test: ## Run the tests; prepares .venv, redis-server and PostgreSQL first (ARGS="..." for pytest)
	scripts/test $(ARGS)

bench: install ## Run the benchmarks
	$(BIN)/python -m bench.run

lint: install ## Check style, formatting and types (ruff, ruff format, mypy)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Format the code and apply ruff's safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

install: ## Create .venv and pip install -e '.[dev]' (again only when pyproject.toml changed)
	scripts/test --install-only
