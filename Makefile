# One place that installs what the project needs, on a fresh machine too.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data

.PHONY: help setup-edge setup demo test test-fast lint bench browser pi-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup-edge: $(BIN)/python  ## the light edge install (no TensorFlow)
	$(BIN)/pip install --quiet -e .

setup: $(BIN)/python browser  ## everything: edge + training + test tools
	$(BIN)/pip install --quiet -e '.[train,dev]'

browser:  ## Debian's chromium for the web-page tests (needs root or sudo)
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium xvfb >/dev/null; }

demo: setup-edge  ## run edge-detect with the shipped default model
	$(BIN)/edge-detect --demo

test: setup  ## the whole test suite
	$(BIN)/ruff check .
	$(BIN)/pytest -q

test-fast: setup  ## unit tests only (no training runs, no browser)
	$(BIN)/pytest -q -m "not slow and not browser"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

pi-check: setup  ## the edge install and its answers on an emulated Raspberry Pi (root, ~30 min; not in test)
	$(BIN)/python bench/pi_check.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
