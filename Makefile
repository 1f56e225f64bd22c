# soma-audit — developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration test-tui test-reliability reliability-report lint testenv testenv-down docs clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,tools,live]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/soma-audit --demo

lint: install
	$(VENV)/bin/ruff check soma_audit tests testenv bench
	$(VENV)/bin/lint-imports

test: install lint testenv test-unit test-integration test-tui test-reliability

test-unit: install
	$(PY) -m pytest -m "not integration and not tui and not reliability" tests/unit

test-integration: install testenv
	$(PY) -m pytest -m integration tests/integration

test-tui: install
	$(PY) -m pytest -m tui tests/tui

# Read-only promise, hostile input, no leaks (docs/reliability.md); writes
# tests/reliability/results.json, from which `make reliability-report` writes the doc.
test-reliability: install testenv
	$(PY) -m pytest -m reliability tests/reliability

reliability-report: install
	$(PY) -m tests.reliability.report

testenv: install
	$(PY) -m testenv up

testenv-down: install
	$(PY) -m testenv down

# The size series (each size on its own API server and storage, seeded once and reused)
# against a raw-LIST baseline, Polaris and Popeye; rendering; fleets behind Toxiproxy; each
# kept change before/after; the verdict check; then regenerates docs/performance.md.
# Asserts no time.
bench: install testenv
	$(PY) bench/run.py
	$(PY) bench/rendering.py
	$(PY) bench/fleet.py
	$(PY) bench/levers.py
	$(PY) bench/verdicts.py bench
	$(PY) bench/docs.py

docs: install
	$(VENV)/bin/soma-audit checks --format markdown > docs/checks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist build
