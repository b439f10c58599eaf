# MINT Portal: `make run` starts everything, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# The database-behaviour tests run a second time against this server (PostgreSQL 15 on loopback
# here and in CI), where claims use SKIP LOCKED and the token refresh a row lock; tests marked
# `postgres` run only there.
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
POSTGRES_TESTS := tests/test_models.py tests/test_services.py tests/test_delivery.py tests/test_worker_processes.py \
	tests/test_guards.py tests/test_schedules.py tests/test_imports.py tests/test_exports.py \
	tests/test_bulk_retry.py tests/test_shift.py

.PHONY: run test lint format bench clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# A development .env (DEBUG=1: throwaway secret key, the built-in sandbox) so that `make run`
# and every `manage.py` command in this checkout work without configuration. An existing .env
# is never touched; production uses its own (see .env.example and docs/deploy.md).
.env:
	printf '# Made by `make run` for development on this machine; see .env.example.\nDEBUG=1\n' > $@
	@echo "Wrote .env for development (DEBUG=1)."

run: $(VENV)/.installed .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py run_portal

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_POSTGRES_URL) $(VENV)/bin/pytest $(POSTGRES_TESTS)
	$(VENV)/bin/pytest -m "not postgres"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) staticfiles test-artifacts .pytest_cache .ruff_cache
