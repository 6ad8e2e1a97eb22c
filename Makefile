# plait: run `make` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.deps-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install build demo test test-rust test-python test-ray test-all test-ft tsan tsan-python bench bench-results bench-smoke loadgen lint format clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "maturin>=1.7,<2" "pytest>=8" "pytest-timeout>=2.3" "ruff>=0.6" "mypy>=1.11" "cloudpickle>=3" "greenlet>=3" "numpy>=1.24" "requests>=2.31" "py-spy>=0.3" "dask[distributed]>=2024.1"
	touch $(STAMP)

install: $(STAMP) ## Create .venv with the build, test and lint tools
	@echo "venv ready: $(VENV)"

build: $(STAMP) ## Build the extension (release) into .venv
	$(VENV)/bin/maturin develop --release --quiet

demo: build ## Run the tour: each model against its stdlib peer
	$(PY) -m plait demo

test-rust: ## cargo test for the pure-Rust core and the load generator (debug and release)
	cargo test -p plait-core -p plait-loadgen --quiet
	cargo test -p plait-core -p plait-loadgen --release --quiet

test-python: build ## Run the pytest suite (conformance included)
	$(PY) -m pytest -q

test: test-rust test-python ## Build and run every test (cargo + pytest)

# The cluster-backend fault suite on Ray (pyproject's `ray` extra, ~300 MB: not in the test
# deps). It runs only if ray installs within RAY_INSTALL_TIMEOUT seconds; else a line says so.
RAY_INSTALL_TIMEOUT ?= 300

test-ray: build ## Install the `ray` extra (if it installs in time) and run the fault suite on Ray
	@if timeout $(RAY_INSTALL_TIMEOUT) $(PIP) install --quiet "ray>=2.9"; then \
		$(PY) -m pytest -q -m ray tests/test_backend_faults.py; \
	else echo "ray did not install within $(RAY_INSTALL_TIMEOUT) s: the Ray suite is skipped"; fi

# Extra interpreters for test-all, by path or name (e.g. PYTHONS="/opt/py/bin/python3.14").
PYTHONS ?=

test-all: $(STAMP) ## pytest on every other CPython >= 3.11 found (python3.X, pyenv, PYTHONS=...)
	PYTHON="$(PYTHON)" PYTHONS="$(PYTHONS)" VENV="$(VENV)" .ci/test-all

# The free-threaded interpreter is built from Debian's CPython 3.13 sources and cached outside the
# repository (PLAIT_FT_CACHE, default ~/.cache/plait-ft); see .ci/build-ft-python and .ci/test-ft.
test-ft: $(STAMP) ## pytest on a free-threaded CPython 3.13 with the GIL disabled (built once, cached), stress tests included
	PYTHON="$(PYTHON)" VENV="$(VENV)" .ci/test-ft

# plait-core's tests under ThreadSanitizer: nightly toolchain, std rebuilt with the sanitizer (the
# script adds rust-src if missing). Not in .ci/run: rebuilding std takes ~40 s of two cores (cold)
# for tests that run in ~2 s: too slow for the CI budget; run it after changing a primitive.
# Suppressions, each with its reason: .ci/tsan-suppressions.txt. See .ci/tsan.
tsan: ## plait-core's tests under ThreadSanitizer (nightly; not run by .ci/run)
	.ci/tsan

# The free-threading stress tests (tests/test_free_threading.py, tests/test_threads.py) under
# ThreadSanitizer, the binding and a free-threaded CPython 3.13 both instrumented: the interpreter
# is built once into ~/.cache/plait-ft/3.13t-tsan. Not in .ci/run: the first build takes ~10 min of
# two cores (interpreter) plus ~2-3 min (binding), and the tests run 5-20x slower; too slow for the
# CI budget. Run it after changing state the binding shares between threads. See .ci/tsan-python.
tsan-python: ## the free-threading stress tests under ThreadSanitizer, binding + CPython 3.13t (not run by .ci/run)
	.ci/tsan-python

# The peers the benchmarks compare against (pyproject's `bench` extra), installed by name: plait
# itself is already in the venv, editable, from `maturin develop`.
BENCH_PEERS = $(shell $(PY) -c 'import tomllib; print(" ".join(repr(d) for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')

# A peer that fails to install (no wheel, no compiler) is skipped: each benchmark prints a line
# for a peer it cannot import.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PIP) install --quiet $(BENCH_PEERS) || for p in $(BENCH_PEERS); do \
		$(PIP) install --quiet "$$p" || echo "bench peer $$p did not install: skipped"; done
	touch $(BENCH_STAMP)

BENCH_SCRIPTS = $(filter-out benchmarks/_%,$(wildcard benchmarks/*.py))

# The echo client of `plait bench aio` and `plait bench green` (found in target/release, or through
# PLAIT_LOADGEN=path; without it their echo cases are skipped with a line saying why).
loadgen: ## Build the benchmarks' native echo client (target/release/plait-loadgen)
	cargo build --release --quiet -p plait-loadgen

# `plait bench all`: every model in a child process, then one Markdown table of every line (BENCH_FLAGS
# for more, e.g. BENCH_FLAGS="--json out.json --plot ratios.png").
BENCH_FLAGS ?=

bench: build $(BENCH_STAMP) loadgen ## Run the benchmarks (plait bench all): plait beside its peers, same run
	$(PY) -m plait bench all $(BENCH_FLAGS)

# Where `make bench-results` writes. Take the figures on a quiet machine: the file records the load
# average before and after the run.
RESULTS ?= benchmarks/RESULTS.md

bench-results: build $(BENCH_STAMP) loadgen ## Run every benchmark script, write outputs, tables, machine, date, versions to benchmarks/RESULTS.md
	$(PY) benchmarks/_results.py --out $(RESULTS) $(BENCH_SCRIPTS)

# Every case of every script, once, at --quick sizes (PLAIT_BENCH_SMOKE=1, read by
# python/plait/bench/_common.py): the cases cannot rot. It runs them through the RESULTS.md generator into
# a temporary file, so the generator cannot rot either. It installs the peers as make bench does
# (their code paths rot too; ~10 s to install from pip's cache, ~1.5 min more to run); a peer that
# does not install is skipped with a line.
bench-smoke: build $(BENCH_STAMP) loadgen ## Run each benchmark once at tiny sizes: checks they run, measures nothing
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
		PLAIT_BENCH_SMOKE=1 $(PY) benchmarks/_results.py --out "$$out/RESULTS.md" $(BENCH_SCRIPTS)

lint: build ## clippy, rustfmt --check, ruff, mypy.stubtest
	cargo clippy --all-targets -- -D warnings
	cargo fmt --check
	$(VENV)/bin/ruff check python tests benchmarks examples
	$(VENV)/bin/ruff format --check python tests benchmarks examples
# stubtest of `plait` and every submodule: plait._plait, plait.threads, plait.processes, plait.aio,
# plait.exceptions, plait (listed beside `plait`, each would be built twice: mypy fails). Settings and
# allowlist: see .stubtest-mypy.ini and .stubtest-allowlist.
	$(PY) -m mypy.stubtest plait --mypy-config-file .stubtest-mypy.ini --allowlist .stubtest-allowlist

format: $(STAMP) ## Format Rust and Python sources
	cargo fmt
	$(VENV)/bin/ruff format python tests benchmarks examples
	$(VENV)/bin/ruff check --fix python tests benchmarks examples

clean: ## Remove build products and the venv
	cargo clean
	rm -rf $(VENV) .venv-3.* python/plait/*.so
