# zapstack — set-up contract: `make run` and `make test` create .venv if absent, install, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 30
SOAK_SECONDS ?= 300
STRESS_COUNT ?= 20
# The concurrency-heavy tests `make stress` repeats: the threaded producer, the
# verify pools and the verified-signature cache, ZapDB speculation and unwind, the
# consensus round and leg pool, and the engine's calls into one round racing on threads.
STRESS_TESTS := tests/producer tests/verify/test_parallel.py tests/verify/test_procpool.py \
	tests/verify/test_executor.py tests/verify/test_sigcache.py tests/zapdb/test_speculate.py \
	tests/zapdb/test_unwind.py tests/consensus/test_round.py tests/consensus/test_pool.py \
	tests/node/engine/test_aggregate.py::test_calls_into_one_round_never_overlap \
	tests/zapdb/test_lmdbfast.py tests/node/test_stateserve.py

.PHONY: run test lint bench fuzz fuzz-smoke soak stress vectors vectors-check clean install \
	explorer-shot

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard src/zapstack/zapdb/_*.c src/zapstack/zapdb/_*.h) \
		src/zapstack/crypto/ringtail/_ringfast.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/zap devnet

# What CI runs (.ci/run): lint and types, every vector file, a fuzz smoke, the suite.
test: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory vectors-check
	$(MAKE) --no-print-directory fuzz-smoke
	$(PY) -m pytest -q -n 2 -m "not soak" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench fuzz
	$(VENV)/bin/ruff format --check src tests bench fuzz
	$(VENV)/bin/mypy

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

fuzz: $(STAMP)
	@for f in fuzz/fuzz_*.py; do echo "== $$f"; $(PY) $$f --seconds $(FUZZ_SECONDS) || exit 1; done

# A short smoke of every fuzz target: FUZZ_SMOKE_SECONDS in total, split evenly.
fuzz-smoke: $(STAMP)
	@n=$$(ls fuzz/fuzz_*.py | wc -l); per=$$(( $(FUZZ_SMOKE_SECONDS) / n )); [ $$per -ge 1 ] || per=1; \
	for f in fuzz/fuzz_*.py; do echo "== $$f ($$per s)"; $(PY) $$f --seconds $$per || exit 1; done

soak: $(STAMP)
	$(PY) -m pytest -q -m soak tests
	$(VENV)/bin/zap soak --seconds $(SOAK_SECONDS)

# Repeat the concurrency-heavy tests STRESS_COUNT times on 2 workers (run it before
# closing any change that touches threads, tasks or pools).
stress: $(STAMP)
	$(PY) -m pytest -q -n 2 --count $(STRESS_COUNT) $(STRESS_TESTS)

vectors: $(STAMP)
	$(VENV)/bin/zap conformance generate vectors/pipeline
	$(VENV)/bin/zap conformance run vectors/pipeline/*.jsonl

# Run every checked-in vector file (no regeneration).
vectors-check: $(STAMP)
	$(VENV)/bin/zap conformance run vectors/pipeline/*.jsonl

# A one-validator node with its HTTP port, its /explorer rendered in headless Chromium
# (Debian's package, installed when absent): the DOM must show a block's four legs, and
# the screenshot is saved to EXPLORER_SHOT.
EXPLORER_SHOT ?= build/explorer.png
explorer-shot: $(STAMP)
	@test -x /usr/bin/chromium || apt-get install -y chromium || \
		(apt-get update && apt-get install -y chromium)
	ZAP_REQUIRE_CHROMIUM=1 ZAP_EXPLORER_SHOT=$(abspath $(EXPLORER_SHOT)) $(PY) -m pytest -q -s \
		tests/node/http/test_explorer.py::test_browser_renders_a_block_with_four_legs
	@echo "screenshot: $(abspath $(EXPLORER_SHOT))"

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
