# Two commands do all set-up: `make lab` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.efflab-installed
DEV_STAMP := $(VENV)/.efflab-dev-installed
PORT ?= 8888
# Off this machine, the public registry's torch for Linux is the CUDA build (GBs). Opt in
# to PyTorch's CPU wheels with: make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup setup-dev build lab test test-fast test-browser browser-setup lint bench grade clean

# Students need the runtime only; tests, lint and grading tools come with setup-dev.
setup: $(STAMP)
setup-dev: $(DEV_STAMP)

# Torch goes in first and alone, pinned, so nothing can drag in a CUDA build.
$(STAMP): constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) torch==2.13.0
	$(PIP) -q -e .
	$(PY) -c "import torch, nbgrader, efflib, autograde; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP) -q -e '.[dev]'
	touch $@

build: setup
	$(PY) -m autograde build

# Students work in work/ (git-ignored), copied once from labs/: `git pull` never touches it.
# make lab [PORT=8888] [FRESH=lab01_layers]  (FRESH: a new copy, the old one kept)
lab: setup
	$(PY) -m autograde lab --port=$(PORT) $(if $(FRESH),--fresh $(FRESH),)

test: setup-dev
	$(PY) -m pytest -n 2 --dist loadfile

# The browser test: playwright from the package registry, Chromium from Debian's
# (playwright cannot download its own browsers here).
browser-setup: setup-dev
	$(PIP) -q -e '.[dev,browser]'
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; \
	  else echo "Chromium is missing: sudo apt-get install chromium (or CHROMIUM=/path/to/chromium)"; exit 1; fi; }

test-browser: browser-setup
	EFFLAB_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -m browser tests/test_browser.py

test-fast: setup-dev
	$(PY) -m pytest -m "not course"

# make grade LAB=lab01_layers SUBMISSIONS=path/to/folder-or.zip [WORKERS=2]
grade: setup
	@test -n "$(LAB)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade LAB=lab01_layers SUBMISSIONS=folder-or.zip"; exit 2; }
	$(PY) -m autograde grade $(LAB) $(SUBMISSIONS) $(if $(WORKERS),--workers $(WORKERS),)

lint: setup-dev
	$(VENV)/bin/ruff check .

bench: setup-dev
	$(PY) bench/lab_times.py
	$(PY) bench/profiler_overhead.py
	$(PY) bench/quant_int8.py
	$(PY) bench/loops.py
	$(PY) bench/beyond_compression.py
	$(PY) bench/grade_speed.py
	$(PY) bench/grade_cluster.py

clean:
	rm -rf build .pytest_cache gradebook.db
