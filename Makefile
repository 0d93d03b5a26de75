# LesionLite — two commands on a fresh machine: `make demo` and `make test`; `make check` after every edit.
# `make demo` serves the shipped model (models/) from a venv without TensorFlow; `make demo-pipeline`
# runs the whole pipeline on synthetic data (train, export, benchmark, serve).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REQS := requirements/edge.txt requirements/evaluate.txt requirements/train.txt requirements/qat.txt requirements/dev.txt requirements/constraints.txt
# The serving venv: requirements/edge.txt only (what a Raspberry Pi installs), no TensorFlow.
SERVE_VENV := .venv-serve
SERVE_PY := $(SERVE_VENV)/bin/python
SERVE_STAMP := $(SERVE_VENV)/.installed
SHIPPED := models/ham10000
DEMO_DATA := demo-data
DEMO_RUN := runs/demo
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
# The on-device runtime the PWA self-hosts (LiteRT.js, bundled with esbuild from pinned npm packages).
WEB := pwa/web
VENDOR := pwa/static/vendor
VENDOR_STAMP := $(VENDOR)/build.json
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Every tier runs on two pytest-xdist workers; a file's tests stay on one worker, and the tests start
# in the order tests/conftest.py gives (the longest first), not xdist's (the biggest files first).
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(PYTEST_WORKERS) --no-loadscope-reorder

.PHONY: help setup web system-deps demo demo-pipeline demo-data demo-train demo-export check test test-fast lint bench clean

help:
	@echo "make demo   - set up a serving venv (no TensorFlow) and serve the shipped model on http://127.0.0.1:8000"
	@echo "make demo-pipeline - set up, make synthetic data, train, export, benchmark and serve that demo model"
	@echo "make check  - after every edit: ruff + the tests that need only the venv (35 s here; no apt, no npm)"
	@echo "make test-fast - before a commit: adds the API, CLI and browser tests on the random bundle (2.8 min here)"
	@echo "make test   - CI: set up (venv + Debian test packages when root) and run every test (13.8 min here from a fresh clone, caches warm)"
	@echo "make web    - build the PWA's on-device runtime (pwa/static/vendor/) from pwa/web/ with npm"
	@echo "make lint   - ruff"
	@echo "make clean  - remove the demo data and runs (keeps .venv and .cache)"

# (Re)install the venv whenever a requirements file changes.
$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	$(PY) -m pip install --quiet --no-deps -r requirements/qat.txt
	touch $@

# npm ci installs exactly package-lock.json; build.mjs bundles, copies the wasm and precompresses
# (brotli at maximum quality: about a minute, once per lock change). The result is kept in the
# machine's cache under the hash of its four inputs, so another clone copies it instead.
CACHE_DIR := $(or $(LESIONLITE_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lesionlite)
WEB_INPUTS := $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/build.mjs $(WEB)/entry.js
WEB_CACHE = $(CACHE_DIR)/web/$(shell cat $(WEB_INPUTS) | sha256sum | cut -c1-16)
$(VENDOR_STAMP): $(WEB_INPUTS)
	@if [ -f $(WEB_CACHE)/build.json ]; then \
		echo "web: the on-device runtime built from these inputs is in $(WEB_CACHE)"; \
		rm -rf $(VENDOR) && mkdir -p $(VENDOR) && cp -a $(WEB_CACHE)/. $(VENDOR)/ && touch $(VENDOR_STAMP); \
	else \
		command -v npm >/dev/null || { echo "npm is missing: as root run 'make system-deps' (or apt-get install nodejs npm)"; exit 1; }; \
		(cd $(WEB) && npm ci --no-audit --no-fund --ignore-scripts) && node $(WEB)/build.mjs && \
		mkdir -p $(CACHE_DIR)/web && tmp=$$(mktemp -d $(CACHE_DIR)/web/tmp.XXXXXX) && cp -a $(VENDOR)/. $$tmp/ && \
		{ mv -T $$tmp $(WEB_CACHE) 2>/dev/null || rm -rf $$tmp; }; \
	fi

web: $(VENDOR_STAMP)

setup: $(STAMP) web

# Debian packages the tests need (Chromium for the PWA, mmdebstrap + qemu-user for the Pi).
system-deps:
	bash scripts/install-system-deps.sh

demo-data: setup
	test -f $(DEMO_DATA)/HAM10000_metadata.csv || $(PY) -m training.synthetic $(DEMO_DATA) --images 1400 --seed 7

# Trains only when the run has no metrics yet; an interrupted run resumes from its last epoch.
$(DEMO_RUN)/metrics.json: | demo-data
	$(PY) -m training --data $(DEMO_DATA) --out $(DEMO_RUN) --config demo

$(DEMO_RUN)/bundle/manifest.json: $(DEMO_RUN)/metrics.json
	$(PY) -m export $(DEMO_RUN)

demo-train: $(DEMO_RUN)/metrics.json
	@$(PY) -m training.evaluate $(DEMO_RUN) --summary

demo-export: demo-train $(DEMO_RUN)/bundle/manifest.json

# Results go next to the run (runs/demo/bench/); bench/ is the benchmark code.
bench: demo-export
	$(PY) -m bench edge $(DEMO_RUN)/bundle --data $(DEMO_DATA) --split $(DEMO_RUN)/split.csv --threads 1,2 \
		--json $(DEMO_RUN)/bench/edge.json --png $(DEMO_RUN)/bench/edge.png --keras-baseline
	@# The same variants on the phone's path (LiteRT.js in Chromium), where Chromium is installed.
	if command -v chromium >/dev/null; then $(PY) -m bench browser $(DEMO_RUN)/bundle --variants int8 float32 \
		--json $(DEMO_RUN)/bench/browser.json; else echo "bench browser skipped: no chromium (make system-deps)"; fi

$(SERVE_STAMP): requirements/edge.txt requirements/constraints.txt
	test -x $(SERVE_PY) || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_PY) -m pip install --quiet -r requirements/edge.txt -c requirements/constraints.txt
	touch $@

demo: $(SERVE_STAMP) web
	@echo "Serving LesionLite's shipped model ($(SHIPPED)) from $(SERVE_VENV) (no TensorFlow)."
	$(SERVE_PY) -m pwa --bundle $(SHIPPED) --host $(DEMO_HOST) --port $(DEMO_PORT)

demo-pipeline: bench
	@echo "Serving the synthetic demo model (not for real photos: it has never seen a real lesion): open http://127.0.0.1:8000 ; Ctrl-C stops it."
	$(PY) -m pwa --bundle $(DEMO_RUN)/bundle --host 127.0.0.1 --port 8000

# The tiers (docs/tests.md), chosen by the markers tests/conftest.py gives each test.
# check: no TensorFlow (blocked: a test that needs it fails), no browser, emulator, npm build or
# built bundle, so it needs the venv only and no system-deps or web step.
check: $(STAMP)
	$(PY) -m ruff check .
	$(PYTEST) -m check

# Adds the API, CLI, Classifier and browser tests, against the random bundle (built by TensorFlow
# once per bundle schema version and cached); no trained model, no emulator, and not the training
# unit tests that load TensorFlow themselves (`tf`: make test runs them).
test-fast: system-deps setup
	$(PY) -m ruff check .
	$(PYTEST) -m "not (tf or trained or slow or pi)"

# The random bundles are keyed by the code that builds them too (tests/conftest.py), so CI tests
# what today's code exports; the test fixtures are cached across clones (tests/shared_cache.py).
test: export LESIONLITE_EXACT_FIXTURES = 1
test: system-deps setup
	$(PY) -m ruff check .
	$(PYTEST) --durations=25

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(DEMO_DATA) runs $(SERVE_VENV)
