.DEFAULT_GOAL := help
PY ?= python

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## Install the package with dev tools (editable)
	$(PY) -m pip install -e '.[dev]'

up: ## Run everything locally on an embedded Valkey (API on :8000)
	agentic up

test: ## Run the test suite (embedded Valkey; AGENTIC_TEST_REDIS_URL for another server)
	$(PY) -m pytest -q

test-redis: ## The same suite against the machine's Redis on 127.0.0.1:6379 (db 15)
	AGENTIC_TEST_REDIS_URL=redis://127.0.0.1:6379/15 $(PY) -m pytest -q

lint: ## ruff + mypy --strict
	ruff check app worker tests
	ruff format --check app worker tests
	mypy

check: lint test ## What CI runs

diagram: ## Render docs/architecture.png from docs/architecture.py (needs Graphviz)
	$(PY) docs/architecture.py
