# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NODE_DIR := tests/interop/node

.PHONY: run test lint typecheck venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamp records that the installed set matches pyproject.toml.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json
	cd $(NODE_DIR) && npm install --no-audit --no-fund --silent
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/wsio echo --host 127.0.0.1 --port 9001

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# The suite runs under coverage (branches, subprocesses included); the report fails below
# the threshold set in pyproject.toml.
test: $(VENV)/.installed $(NODE_DIR)/node_modules/.installed lint
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules
