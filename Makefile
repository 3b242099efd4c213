# `make demo` and `make test` each build the environment from the committed lock
# (uv.lock) on a fresh machine, then run. Only PyPI is needed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PACKAGE_DIRS := nextbest live warehouse world features models training decisioning serving reporting simulation spark tests
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: setup demo test bench clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"

# Bytecode compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on the shared
# machine) every process would otherwise compile its libraries from source on each start:
# ~3 s of every CLI call, server and worker the tests start.
$(VENV)/.synced: $(UV) pyproject.toml uv.lock Makefile
	$(UV) sync --frozen --all-groups --all-extras --compile-bytecode
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/nextbest demo

# Our own modules compiled too (a second; the editable install is not byte-compiled by uv).
test: setup
	$(VENV)/bin/python -m compileall -q $(PACKAGE_DIRS)
	$(VENV)/bin/python -m pytest -n 2 --dist loadgroup

bench: setup
	for b in benchmarks/*.py; do $(VENV)/bin/python $$b; done

clean:
	rm -rf $(VENV) $(TOOLS) workspace
