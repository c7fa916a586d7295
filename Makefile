# Two entry points for a fresh machine: `make demo` and `make test`.
# Both build .venv on demand from uv.lock, so a fresh clone gets exactly the
# versions the suite passed with; a stamp file skips the install until
# pyproject.toml, uv.lock or this Makefile changes. `make lock` refreshes the lock.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# uv is bootstrapped with pip at the version the lock holds (one source of truth).
UV_VERSION := $(shell awk '/^name = "uv"$$/ {getline; gsub(/"/, "", $$3); print $$3; exit}' uv.lock)
# Bytecode is compiled at install: every Ray worker, Spark Python worker and test
# subprocess is a new interpreter importing Ray, and where PYTHONDONTWRITEBYTECODE is
# set (as in many containers) each one would recompile ~500 modules from source
# (3.0 s of CPU per import of `patterns` instead of 0.9 s on the reference machine).
UV_ENV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1
# The project's own packages, compiled before any command that starts workers (for
# the same reason; compileall skips files whose bytecode is up to date).
OWN_CODE := patterns launcher tests examples benchmarks scripts
# The compatibility environment: the lowest Ray and PySpark 3.5 that pyproject.toml
# declares, pinned in requirements/compat.txt (`make lock-compat` recompiles it).
COMPAT     := .venv-compat
COMPAT_BIN := $(COMPAT)/bin
COMPAT_STAMP := $(COMPAT)/.installed
# What differs between versions, on the lowest ones (about 3 minutes): the version gates
# and schema mapping (tests/test_compat.py), then the Spark bridge's tests on Spark 3.5
# with Ray on Spark started by the launcher (embedded): DDL parsing, both transports,
# map_groups_with_actors, the driver collect and createDataFrame.
COMPAT_TESTS := tests/test_compat.py tests/test_spark_bridge.py tests/test_spark_bridge_cluster.py

.PHONY: demo test test-hosts test-compat compat-venv lock-compat test-fast bench docs docs-build lint typecheck lock soak clean check-java check-python venv bytecode

check-python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then :; else \
	  echo "error: Python 3.11 is needed ('$(PYTHON)' not found). Install it or run 'make PYTHON=/path/to/python3.11 ...'." >&2; exit 1; fi; }

check-java:
	@scripts/check_java.sh

$(STAMP): pyproject.toml uv.lock Makefile
	@$(MAKE) --no-print-directory check-python
	@PY=$$(command -v $(PYTHON) || command -v python3); \
	  [ -x $(BIN)/python ] || $$PY -m venv $(VENV)
	@[ -x $(BIN)/uv ] && [ "$$($(BIN)/uv --version | cut -d' ' -f2)" = "$(UV_VERSION)" ] || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV_ENV) $(BIN)/uv sync --frozen --all-extras --quiet
	@touch $(STAMP)

venv: $(STAMP)

compat-venv: $(COMPAT_STAMP)

$(COMPAT_STAMP): $(STAMP) requirements/compat.txt pyproject.toml
	@[ -x $(COMPAT_BIN)/python ] || $$(command -v $(PYTHON) || command -v python3) -m venv $(COMPAT)
	$(UV_ENV) $(BIN)/uv pip sync --quiet --python $(COMPAT_BIN)/python requirements/compat.txt
	$(UV_ENV) $(BIN)/uv pip install --quiet --no-deps --python $(COMPAT_BIN)/python -e .
	@touch $(COMPAT_STAMP)

lock-compat: $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 requirements/compat.in -o requirements/compat.txt

bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q $(OWN_CODE)

# Re-resolve every dependency within pyproject.toml's ranges and rewrite uv.lock.
lock: $(STAMP)
	$(UV_ENV) $(BIN)/uv lock --upgrade
	$(UV_ENV) $(BIN)/uv sync --frozen --all-extras --quiet
	@touch $(STAMP)

demo: check-java $(STAMP) bytecode
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
# scripts/make_test.sh runs lint and types, then the main suite, with the multi-host lab,
# the launch tests and the lowest-versions suite beside them (each part runs; any failure
# fails the target).
test: check-java $(STAMP) bytecode
	@scripts/make_test.sh

# The simulated multi-host lab (root): a pytest process of its own, beside the main suite,
# so its SIGTERM handler and namespaces never share a session with the other tests.
# --benchmark-disable: its JVMs run light, as the main suite's (conftest.py); a run that
# records benchmarks/results/hosts.json (RAP_HOSTS_RESULTS) leaves the JVM defaults.
test-hosts: check-java $(STAMP) bytecode
	$(BIN)/python -m pytest -m "" --benchmark-disable -p no:cacheprovider tests/hosts

# The lowest supported Ray and PySpark 3.5 (requirements/compat.txt) on COMPAT_TESTS.
test-compat: check-java $(COMPAT_STAMP) bytecode
	$(COMPAT_BIN)/python -m pytest -m "" --benchmark-disable -p no:cacheprovider $(COMPAT_TESTS)

# No Java, no Spark, no fault tests: the Ray-only tests on a plain local Ray (the inner
# loop; `make test` runs everything).
test-fast: $(STAMP) bytecode
	RAP_TEST_RAY=local $(BIN)/python -m pytest -m "not spark and not slow and not fault" --benchmark-disable

# 20 launch/shutdown cycles of the embedded cluster (about 25 minutes): nothing may pile up.
soak: check-java $(STAMP) bytecode
	$(BIN)/python scripts/soak.py --cycles 20

bench: check-java $(STAMP) bytecode
	$(BIN)/python -m benchmarks.run

docs: $(STAMP)
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) $(COMPAT) site .pytest_cache .ruff_cache .benchmarks
