# `make run` and `make test` set themselves up on first use: they create .venv
# with Python 3.12 (found on PATH or under pyenv) and install the pinned set.
SHELL := /bin/bash
# The first Python 3.12 that actually runs (a pyenv shim may exist but refuse).
PYTHON312 ?= $(shell for p in $$(command -v python3.12) $$(ls -1d $$HOME/.pyenv/versions/3.12.*/bin/python3.12 2>/dev/null); do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench clean

$(VENV)/.installed: pyproject.toml requirements.lock
	@if [ -z "$(PYTHON312)" ]; then echo "lsc needs Python 3.12 (python3.12 on PATH or under pyenv); set PYTHON312=/path/to/python3.12"; exit 1; fi
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m experiments.halfcheetah

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m benchmarks.rollout
	$(PY) -m benchmarks.pipeline --envs halfcheetah

clean:
	rm -rf $(VENV) runs
