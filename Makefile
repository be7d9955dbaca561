# Two commands do everything on a fresh machine:
#   make demo   - set up the environment, then run the demo
#   make test   - set up the environment, then run the test suite (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hashsearch-setup
# Thread counts pinned for reproducible timings; tests use at most 2 threads.
export HASHSEARCH_NUM_THREADS ?= 2
export OMP_NUM_THREADS ?= 2

.PHONY: setup demo test test-all lint bench clean
setup: $(STAMP)

$(STAMP): pyproject.toml CMakeLists.txt scripts/setup.sh $(wildcard csrc/*)
	./scripts/setup.sh $(VENV)
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/hashsearch demo

# Lint and type checks first (seconds), then the suite.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	HASHSEARCH_REQUIRE_NATIVE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-all: $(STAMP)
	HASHSEARCH_REQUIRE_NATIVE=1 $(PY) -m pytest -q -m ""

# Quick benchmark subsets; see benchmarks/README.md for the full (slow) runs.
bench: $(STAMP)
	$(PY) -m pytest benchmarks/bench_engine.py benchmarks/bench_store.py --benchmark-only --benchmark-group-by=group

clean:
	rm -rf build dist .pytest_cache .benchmarks
