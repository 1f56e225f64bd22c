# soma-audit — developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration test-tui lint testenv testenv-down docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,tools,live]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/soma-audit --demo

lint: install
	$(VENV)/bin/ruff check soma_audit tests testenv

test: install lint testenv test-unit test-integration test-tui

test-unit: install
	$(PY) -m pytest -m "not integration and not tui and not reliability" tests/unit

test-integration: install testenv
	$(PY) -m pytest -m integration tests/integration

test-tui: install
	$(PY) -m pytest -m tui tests/tui

testenv: install
	$(PY) -m testenv up

testenv-down: install
	$(PY) -m testenv down

docs: install
	$(VENV)/bin/soma-audit checks --format markdown > docs/checks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist build
