# zapstack — set-up contract: `make run` and `make test` create .venv if absent, install, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FUZZ_SECONDS ?= 60
SOAK_SECONDS ?= 300

.PHONY: run test lint bench fuzz soak vectors clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/zap devnet

test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not soak" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench fuzz
	$(VENV)/bin/ruff format --check src tests bench fuzz
	$(VENV)/bin/mypy

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

fuzz: $(STAMP)
	@for f in fuzz/fuzz_*.py; do echo "== $$f"; $(PY) $$f --seconds $(FUZZ_SECONDS) || exit 1; done

soak: $(STAMP)
	$(VENV)/bin/zap soak --seconds $(SOAK_SECONDS)

vectors: $(STAMP)
	$(VENV)/bin/zap conformance generate vectors/pipeline
	$(VENV)/bin/zap conformance run vectors/pipeline/*.jsonl

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
