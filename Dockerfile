# The promptci step image: every pipeline pod runs `python -m hera.workflows.runner -e workflows.stages:<stage>`.
# Contents: Python 3.11 + the project (pip install .), git (plan diffs revisions), Node 20 + the pinned
# promptfoo from package-lock.json (npm ci --omit=optional), and the tiktoken encodings baked in so
# token counting never downloads anything. No secrets are baked in: they arrive as env from Secrets.
# Build: docker build -t ghcr.io/promptci/promptci-step:0.1.0 .   (then set PROMPTCI_IMAGE / re-dump)
ARG PYTHON_VERSION=3.11
ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS node

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TIKTOKEN_CACHE_DIR=/opt/promptci/tiktoken \
    PROMPTFOO_DISABLE_TELEMETRY=1 \
    PROMPTFOO_DISABLE_UPDATE=1 \
    NPM_CONFIG_UPDATE_NOTIFIER=false

RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# Node 20 from the official image (binary + bundled npm), without a second distro layer.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version | grep -q '^v20\.'

WORKDIR /opt/promptci
# The pinned promptfoo, exactly as locked.
COPY package.json package-lock.json ./
RUN npm ci --omit=optional && npm cache clean --force && node_modules/.bin/promptfoo --version

# The project itself.
COPY pyproject.toml README.md ./
COPY config ./config
COPY steps ./steps
COPY workflows ./workflows
# steps/promptfoo.py looks for node_modules next to the installed package; point it at the locked install.
RUN pip install . \
 && ln -s /opt/promptci/node_modules "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/node_modules" \
 && cd / && python -c "from pathlib import Path; from steps.tokens import seed_tiktoken_cache; print(seed_tiktoken_cache(Path('/opt/promptci/tiktoken')))" \
 && python -c "import tiktoken; tiktoken.get_encoding('o200k_base'); tiktoken.get_encoding('cl100k_base')" \
 && chmod -R a+rX /opt/promptci/tiktoken

RUN useradd --uid 10001 --create-home promptci
USER 10001
# The template's git input artifact checks the source repository out here (workingDir).
WORKDIR /work/src
ENTRYPOINT []
CMD ["python", "-m", "hera.workflows.runner", "--help"]
