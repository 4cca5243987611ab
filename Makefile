# Kairos: `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: help install run test test-unit lint migrate

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

install: ## Create the virtualenv and install pinned requirements
	./scripts/install.sh

run: install ## Run the whole system on the embedded default (SQLite, Celery over SQLite)
	./scripts/run.sh

test: install ## Run the whole suite on SQLite, then on PostgreSQL (starts services if needed; ARGS=... goes to pytest)
	./scripts/test.sh $(ARGS)

test-unit: ## Unit tests only (no services needed)
	$(PY) -m pytest -m "not integration and not browser and not slow"

lint: ## ruff check and format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

migrate: ## Apply database migrations
	$(VENV)/bin/flask --app webapp db upgrade
