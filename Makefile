# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test typecheck test-fast lint format clean screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[control,agent]'
	touch $@

$(DEV_STAMP): setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[control,agent,dev]'
	touch $@ $(RUN_STAMP)

## run: start control on SQLite plus a local agent; prints URLs and keys
run: $(RUN_STAMP)
	$(PY) -m control.quickstart

## test: the whole suite (SQLite and PostgreSQL, real sshd/prometheus where installed)
test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

## test-fast: the unit and api lanes only (no sshd, PostgreSQL or other processes; < 1 min)
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -m "unit or api" $(PYTEST_ARGS)

## lint: ruff's checks and its formatting, unchanged
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## typecheck: mypy on control/ and exporter_agent/ (strict on the domain wings)
typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

## screenshots: PNGs of the console's fleet, server and approvals pages from a demo fleet
## (docs/images/; needs Debian's chromium, or CHROMIUM=/path/to/chromium)
screenshots: $(DEV_STAMP)
	$(PY) docs/screenshots.py

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .homelab .pytest_cache build *.egg-info
