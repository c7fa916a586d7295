# Two entry points for a fresh machine: `make demo` and `make test`.
# Both build .venv on demand from uv.lock, so a fresh clone gets exactly the
# versions the suite passed with; a stamp file skips the install until
# pyproject.toml or uv.lock changes. `make lock` refreshes the lock.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# uv is bootstrapped with pip at the version the lock holds (one source of truth).
UV_VERSION := $(shell awk '/^name = "uv"$$/ {getline; gsub(/"/, "", $$3); print $$3; exit}' uv.lock)
UV_ENV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never

.PHONY: demo test test-fast bench docs docs-build lint typecheck lock soak clean check-java check-python venv

check-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then :; else \
	  echo "error: Python 3.11 is needed ('$(PYTHON)' not found). Install it or run 'make PYTHON=/path/to/python3.11 ...'." >&2; exit 1; fi; }

check-java:
	@scripts/check_java.sh

$(STAMP): pyproject.toml uv.lock
	@$(MAKE) --no-print-directory check-python
	@PY=$$(command -v $(PYTHON) || command -v python3); \
	  [ -x $(BIN)/python ] || $$PY -m venv $(VENV)
	@[ -x $(BIN)/uv ] && [ "$$($(BIN)/uv --version | cut -d' ' -f2)" = "$(UV_VERSION)" ] || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV_ENV) $(BIN)/uv sync --frozen --all-extras --quiet
	@touch $(STAMP)

venv: $(STAMP)

# Re-resolve every dependency within pyproject.toml's ranges and rewrite uv.lock.
lock: $(STAMP)
	$(UV_ENV) $(BIN)/uv lock --upgrade
	$(UV_ENV) $(BIN)/uv sync --frozen --all-extras --quiet
	@touch $(STAMP)

demo: check-java $(STAMP)
	$(BIN)/actor-patterns demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# patterns/ and launcher/ ship py.typed: their annotations are a promise (config in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Everything that must pass: lint and format, types, unit + integration + fault tests,
# examples, benchmarks in smoke mode (correctness only, no timing), strict docs build.
test: check-java $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "" --benchmark-disable --durations=20
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# No Java, no Spark: the Ray-only tests on a plain local Ray (a quick inner loop).
test-fast: $(STAMP)
	RAP_TEST_RAY=local $(BIN)/python -m pytest -m "not spark and not slow" --benchmark-disable

# 20 launch/shutdown cycles of the embedded cluster (about 25 minutes): nothing may pile up.
soak: check-java $(STAMP)
	$(BIN)/python scripts/soak.py --cycles 20

bench: check-java $(STAMP)
	$(BIN)/python -m benchmarks.run

docs: $(STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache .benchmarks
