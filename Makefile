# `make demo` and `make test` each build the environment from the committed lock
# (uv.lock) on a fresh machine, then run. Only PyPI is needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: setup demo test bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-groups --all-extras
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/nextbest demo

test: setup
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup

bench: setup
	for b in benchmarks/*.py; do $(VENV)/bin/python $$b; done

clean:
	rm -rf $(VENV) $(TOOLS) workspace
