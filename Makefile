# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: deps system-deps venv test unit lab lab-deps lint demo bench clean showcase

deps: system-deps venv

system-deps:
	@tools/install-system-deps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# the distribution was called `exposure` before: one owner of the `exposure` command
	$(BIN)/pip uninstall --quiet --yes exposure 2>/dev/null || true
	$(BIN)/pip install --quiet -e '.[dev,fleet]'
	touch $(STAMP)

# Everything CI runs: lint, unit tests, then lab tests against real daemons in namespaces.
test: deps lint unit lab

lint: venv
	$(BIN)/ruff check scanner tests bench tools
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest -q tests/unit

# Lab servers that come from npm and PyPI rather than Debian, kept out of the project's venv.
LAB_CACHE := .lab-cache
NODE_RED := $(LAB_CACHE)/npm/node_modules/.package-lock.json
ESPHOME := $(LAB_CACHE)/esphome-venv/.installed
HOME_ASSISTANT := $(LAB_CACHE)/ha-venv/.installed
# Python 3.11: HA 2024.1.6, the last release for it (tests/lab/ha-requirements.txt).
HA_PYTHON ?= python3.11
JUPYTER := $(LAB_CACHE)/jupyter-venv/.installed
OCTOPRINT := $(LAB_CACHE)/octoprint-venv/.installed
# Wheels of the runtime dependencies (no dev extra) and of the build backend: the install test
# (tests/lab/test_install.py) installs the tool into a fresh venv from them, offline.
WHEELS := $(LAB_CACHE)/wheels/.complete

lab-deps: $(NODE_RED) $(ESPHOME) $(HOME_ASSISTANT) $(JUPYTER) $(OCTOPRINT) $(WHEELS)

$(NODE_RED): tests/lab/npm/package.json tests/lab/npm/package-lock.json
	mkdir -p $(LAB_CACHE)/npm
	cp tests/lab/npm/package.json tests/lab/npm/package-lock.json $(LAB_CACHE)/npm/
	npm ci --prefix $(LAB_CACHE)/npm --no-audit --no-fund --loglevel=error

$(WHEELS): pyproject.toml
	rm -rf $(LAB_CACHE)/wheels
	$(BIN)/pip wheel --quiet --wheel-dir $(LAB_CACHE)/wheels . 'setuptools>=68' wheel
	touch $(WHEELS)

$(ESPHOME):
	$(PYTHON) -m venv $(LAB_CACHE)/esphome-venv
	$(LAB_CACHE)/esphome-venv/bin/pip install --quiet 'esphome==2026.6.5'
	touch $(ESPHOME)

$(JUPYTER):
	$(PYTHON) -m venv $(LAB_CACHE)/jupyter-venv
	$(LAB_CACHE)/jupyter-venv/bin/pip install --quiet 'jupyter-server==2.21.1'
	touch $(JUPYTER)

$(OCTOPRINT):
	$(PYTHON) -m venv $(LAB_CACHE)/octoprint-venv
	$(LAB_CACHE)/octoprint-venv/bin/pip install --quiet 'octoprint==1.11.8'
	touch $(OCTOPRINT)

$(HOME_ASSISTANT): tests/lab/ha-requirements.txt
	rm -rf $(LAB_CACHE)/ha-venv
	$(HA_PYTHON) -m venv $(LAB_CACHE)/ha-venv
	$(LAB_CACHE)/ha-venv/bin/pip install --quiet -r tests/lab/ha-requirements.txt
	touch $(HOME_ASSISTANT)

lab: deps lab-deps
	$(BIN)/python -m pytest -q tests/lab

# Start the lab, scan it from its `scan` namespace, print the report, tear the lab down.
# The lab's own CA is trusted with --ca-file, as a user would trust their private CA; the demo
# keeps nothing in your scan history and exits 0 whatever it finds.
demo: deps
	$(BIN)/python -m tests.lab run -- bash -c '$(BIN)/exposure scan home.lab --rate 20000 \
	    --timeout 0.5 --ports top,2222 --ca-file "$$EXPOSURE_LAB_CA" --no-store --fail-on never'
	@echo "Other formats: add --format html -o report.html (or markdown, sarif, json)."

# Full-range discovery side by side with nmap, the whole lab home, TLS grading speed, then
# 64 addresses on a fleet of 1 and 2 workers next to the single-process scan.
bench: deps
	$(BIN)/python -m bench
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.tls
	$(BIN)/python -m bench.fleet

# The issue-14 closing note: terminal (tmux, 100 columns), HTML screenshot, JSON summary and the
# bad-input table of a lab home with a critical and several high findings (OUT=directory).
OUT ?= showcase
showcase: deps lab-deps
	$(BIN)/python -m tests.lab.showcase $(OUT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
