# Two entry points for a fresh machine: `make demo` and `make test`.
# Both build .venv on demand; a stamp file skips the install when
# pyproject.toml has not changed since the last one.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench docs docs-build lint clean check-java check-python venv

check-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then :; else \
	  echo "error: Python 3.11 is needed ('$(PYTHON)' not found). Install it or run 'make PYTHON=/path/to/python3.11 ...'." >&2; exit 1; fi; }

check-java:
	@scripts/check_java.sh

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory check-python
	@PY=$$(command -v $(PYTHON) || command -v python3); \
	  [ -x $(BIN)/python ] || $$PY -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: check-java $(STAMP)
	$(BIN)/actor-patterns demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Everything that must pass: lint, unit + integration + fault tests, examples,
# benchmarks in smoke mode (correctness only, no timing), strict docs build.
test: check-java $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "" --benchmark-disable --durations=20
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not spark and not slow" --benchmark-disable

bench: check-java $(STAMP)
	$(BIN)/python -m benchmarks.run

docs: $(STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache .benchmarks
