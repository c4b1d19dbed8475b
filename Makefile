# Two commands do all set-up: `make lab` and `make test`.
include student.mk

DEV_STAMP := $(VENV)/.efflab-dev-installed

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup-dev build test test-fast test-browser browser-setup test-hub hub-install \
	hub-setup hub lint bench grade formgrader export student-edition clean

# Tests, lint and grading tools come with setup-dev; students need setup only (student.mk).
setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) -q -e '.[dev]'
	touch $@

build: setup
	$(PY) -m autograde build

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

# The hub test: a real JupyterHub with local accounts it creates and removes (root only,
# as CI runs), driven in the same Chromium.
test-hub: browser-setup hub-install
	EFFLAB_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -m hub tests/test_hub.py

test-fast: setup-dev
	$(PY) -m pytest -m "not course and not browser"

# The instructor's day: grade, grade reflections by hand, export. GRADING is the folder that
# holds one grading folder per lab (default: grading/), the same option in all three.
# make grade LAB=lab01_layers SUBMISSIONS=path/to/folder-or.zip [WORKERS=2] [GRADING=dir]
grade: setup
	@test -n "$(LAB)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade LAB=lab01_layers SUBMISSIONS=folder-or.zip"; exit 2; }
	$(PY) -m autograde grade $(LAB) $(SUBMISSIONS) $(if $(WORKERS),--workers $(WORKERS),) $(if $(GRADING),--grading $(GRADING),)

# make formgrader LAB=lab01_layers [GRADING=dir] [PORT=8889]
formgrader: setup
	@test -n "$(LAB)" || { echo "usage: make formgrader LAB=lab01_layers"; exit 2; }
	$(PY) -m autograde formgrader $(LAB) $(if $(GRADING),--grading $(GRADING),) $(if $(PORT),--port $(PORT),)

# make export [LABS="lab01_layers lab02_metrics"] [GRADING=dir]
export: setup
	$(PY) -m autograde export $(LABS) $(if $(GRADING),--grading $(GRADING),)

# make student-edition OUT=../course-students [LABS="lab01_layers lab02_metrics"]
student-edition: setup
	@test -n "$(OUT)" || { echo "usage: make student-edition OUT=folder [LABS=\"lab01_layers ...\"]"; exit 2; }
	$(PY) -m autograde student-edition $(OUT) $(if $(LABS),--labs $(LABS),)

# A course on this machine's JupyterHub (as root; docs/instructors.md):
# make hub-setup HUB=/srv/efflab INSTRUCTOR=prof STUDENTS="alice bob" [LABS="lab01_layers"]
# make hub HUB=/srv/efflab [HUB_PORT=8000]
hub-install: setup
	$(PIP) -q -e '.[hub]'

hub-setup: hub-install
	@test -n "$(HUB)" -a -n "$(INSTRUCTOR)" -a -n "$(STUDENTS)" || { echo "usage: make hub-setup HUB=/srv/efflab INSTRUCTOR=prof STUDENTS=\"alice bob\""; exit 2; }
	$(PY) -m autograde hub setup $(HUB) --instructor $(INSTRUCTOR) --students $(STUDENTS) $(if $(LABS),--labs $(LABS),)

hub: hub-install
	@test -n "$(HUB)" || { echo "usage: make hub HUB=/srv/efflab [HUB_PORT=8000]"; exit 2; }
	$(PY) -m autograde hub serve $(HUB) --port $(or $(HUB_PORT),8000)

lint: setup-dev
	$(VENV)/bin/ruff check .

bench: setup-dev
	$(PY) bench/lab_times.py
	$(PY) bench/profiler_overhead.py
	$(PY) bench/quant_int8.py
	$(PY) bench/loops.py
	$(PY) bench/beyond_compression.py
	$(PY) bench/latency_price.py
	$(PY) bench/deployment.py
	$(PY) bench/grade_speed.py
	$(PY) bench/grade_cluster.py

clean:
	rm -rf build .pytest_cache gradebook.db
