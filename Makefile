# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test lint format clean

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
test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .homelab .pytest_cache build *.egg-info
