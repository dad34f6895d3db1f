# Two front doors (see README): `make demo` and `make test`. Each one creates the virtual environment and installs
# the pinned Python and npm dependencies itself, so it works on its own on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Node.js: CI runs NODE_VERSION (the workflows' node-version; tests/infra/test_workflows.py keeps them equal). jsii
# supports Node 22 and 24; Node 20 is past its end of life (on a machine that still has it, jsii's warning is
# silenced below, and synth still works).
NODE_VERSION := 22
export CDK_DISABLE_CLI_TELEMETRY := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install demo test test-fast lint synth bench clean peer chromium

$(BIN)/.installed: pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e '.[sandbox,dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed node_modules/.installed

demo: install
	$(BIN)/confluence-submit sandbox

test: install lint chromium
	$(BIN)/pytest -n 2 --durations=15
	$(BIN)/python tests/peer/run.py

# The local loop: lint, then every test but the slow end-to-end ones (marked `slow`).
test-fast: install lint
	$(BIN)/pytest -n 2 -m 'not slow'

# moto's own tests/test_batch (sdist of the pinned moto, downloaded once into .cache/) against the emulator
peer: install
	$(BIN)/python tests/peer/run.py

# ruff's rules, its formatting, and mypy (strict on the pure core: see [tool.mypy] in pyproject.toml)
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# No AWS configuration needed: app.py takes the allowed region (cdk.json) when nothing names one.
synth: install
	cdk synth -q --no-notices

bench: install
	$(BIN)/python bench/synth.py
	$(BIN)/python bench/submit.py --quick

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .ruff_cache .cache

# The report page is checked in a real headless browser (tests/integration/test_ledger_ops.py): Debian's chromium.
# Installed when missing and possible (root with apt-get); otherwise that one test skips and says why.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	    || echo "chromium could not be installed: the report's browser test will skip"; \
	  else echo "chromium is not installed (needs root and apt-get): the report's browser test will skip"; fi; }
