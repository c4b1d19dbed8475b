# A student's targets: `make lab`. The course's Makefile includes this file, and the
# student edition (python -m autograde student-edition) ships it as its whole Makefile.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.efflab-installed
PORT ?= 8888
# Off this machine, the public registry's torch for Linux is the CUDA build (GBs). Opt in
# to PyTorch's CPU wheels with: make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: setup lab

# Students need the runtime only.
setup: $(STAMP)

# Torch goes in first and alone, pinned, so nothing can drag in a CUDA build.
$(STAMP): constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) torch==2.13.0
	$(PIP) -q -e .
	$(PY) -c "import torch, nbgrader, efflib, autograde; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

# Students work in work/ (git-ignored), copied once from labs/: `git pull` never touches it.
# make lab [PORT=8888] [FRESH=lab01_layers] [WORK=folder]  (FRESH: a new copy, the old one
# kept; WORK: another work folder). Ctrl-C stops it.
lab: setup
	$(PY) -m autograde lab --port=$(PORT) $(if $(FRESH),--fresh $(FRESH),) $(if $(WORK),--work $(WORK),)
