# Two commands do all set-up: `make lab` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.efflab-installed
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
PORT ?= 8888

.PHONY: setup build lab test test-fast lint bench clean

setup: $(STAMP)

# Torch goes in first and alone, pinned, so nothing can drag in a CUDA build.
$(STAMP): constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -q torch==2.13.0
	$(PIP) -q -e '.[dev]'
	$(PY) -c "import torch, nbgrader, efflib, autograde; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

build: setup
	$(PY) -m autograde build

lab: build
	@echo "Starting JupyterLab on labs/ (Ctrl-C to stop); open the URL printed below."
	$(VENV)/bin/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) $(ROOT_FLAG) \
		--ServerApp.root_dir=labs

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: setup
	$(PY) -m pytest -m "not course"

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf build .pytest_cache gradebook.db
