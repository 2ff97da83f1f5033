# The promptci step image: every pipeline pod runs `python -P -m hera.workflows.runner -e workflows.stages:<stage>`.
#
# Contents: Python 3.11 with the project installed into a venv (/opt/promptci/venv, never run from the
# checkout), git (plan diffs revisions), Node 22 + the pinned promptfoo from package-lock.json, and the
# tiktoken encodings baked in so token counting never downloads anything. No secrets are baked in:
# they arrive as env from Secrets. Runs as the non-root user 10001.
#
# Users:        docker build -t ghcr.io/promptci/promptci-step:0.1.0 .
# These hosts:  make image   (Podman; the base is bootstrapped from the Debian mirror, see docs/install.md)
#
# Rules kept here (tests/deploy/test_dockerfile.py checks them): the only FROM is ${BASE_IMAGE}; Node comes
# from the npm registry's node-linux-<arch> package (digest-pinned in image/node-runtime.json); no heredocs
# (buildah 1.28).
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

# --- Node 22 and the pinned promptfoo (the same base: no second registry) -----------------------
FROM ${BASE_IMAGE} AS node
# npm pinned by digest: the version that wrote package-lock.json (npm 10 rejects that lockfile).
# Node: node-linux-<arch> from the npm registry at the version and integrity of image/node-runtime.json
# (the pin `make setup` uses too), checked against promptfoo's engines.node in package-lock.json.
ARG NPM_VERSION=11.19.1
ARG NPM_INTEGRITY=sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==
WORKDIR /opt/promptci
COPY package.json package-lock.json ./
COPY image/fetch_npm_tarball.py image/node_runtime.py image/node-runtime.json ./image/
RUN python3 image/node_runtime.py node /opt/node --fetch \
 && python3 image/fetch_npm_tarball.py \
      "https://registry.npmjs.org/npm/-/npm-${NPM_VERSION}.tgz" "${NPM_INTEGRITY}" /opt/node/lib/node_modules/npm \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /opt/node/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /opt/node/bin/npx \
 && /opt/node/bin/node --version | grep -q '^v22\.'
# Node trusts only its bundled CAs; the system bundle also holds any TLS-inspecting proxy's CA that the
# build host mounts over it (make image does), so npm reaches the registry through such a proxy too.
ENV PATH=/opt/node/bin:$PATH \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    NPM_CONFIG_UPDATE_NOTIFIER=false
# --omit=optional keeps promptfoo's optional integrations out (285 MB, not 2.5 GB); then the libsql binding
# of this platform, from the lockfile (every platform's is pinned there as an optional dependency).
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=optional --no-audit --no-fund --loglevel=error \
 && python3 image/node_runtime.py bindings . \
 && node_modules/.bin/promptfoo --version

# --- the project's dependency list, alone: the slow pip layer below reruns only when it changes ------
FROM ${BASE_IMAGE} AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt

# --- the step image ----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/promptci/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/promptci \
    TIKTOKEN_CACHE_DIR=/opt/promptci/tiktoken \
    PROMPTCI_PROMPTFOO_HOME=/opt/promptci \
    PROMPTFOO_DISABLE_TELEMETRY=1 \
    PROMPTFOO_DISABLE_UPDATE=1 \
    NPM_CONFIG_UPDATE_NOTIFIER=false

# git, unless the base already has it (the bootstrapped local base does; python:3.11-slim does not).
RUN if ! command -v git >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi

COPY --from=node /opt/node/bin/node /usr/local/bin/node
COPY --from=node /opt/node/lib/node_modules/npm /usr/local/lib/node_modules/npm
COPY --from=node /opt/promptci/node_modules /opt/promptci/node_modules
COPY package.json package-lock.json /opt/promptci/
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version | grep -q '^v22\.'

# The dependencies first (a layer that changes only with the dependency list), then the project itself.
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/promptci/venv \
 && /opt/promptci/venv/bin/pip install -q "setuptools>=68" wheel -r /tmp/requirements.txt
COPY pyproject.toml README.md /opt/promptci/src/
COPY config /opt/promptci/src/config
COPY steps /opt/promptci/src/steps
COPY workflows /opt/promptci/src/workflows
RUN pip install -q --no-deps --no-build-isolation /opt/promptci/src \
 && rm -rf /opt/promptci/src \
 && cd / && python -c "from pathlib import Path; from steps.tokens import seed_tiktoken_cache; print(seed_tiktoken_cache(Path('/opt/promptci/tiktoken')))" \
 && python -c "import tiktoken; tiktoken.get_encoding('o200k_base'); tiktoken.get_encoding('cl100k_base')" \
 && chmod -R a+rX /opt/promptci/tiktoken \
 && python -c "from steps.promptfoo import default_command, installed_version; print('promptfoo', installed_version(), default_command())"

RUN useradd --uid 10001 --user-group --home-dir /home/promptci --create-home promptci \
 && mkdir -p /work/src
USER 10001
# The template's git input artifact checks the source repository out here (workingDir).
WORKDIR /work/src
ENTRYPOINT []
CMD ["python", "-P", "-m", "hera.workflows.runner", "--help"]
