"""What tests of the bundled local model share: the check that it is installed."""

from __future__ import annotations

import os

import pytest

from steps.providers import local_model


def require_local_model() -> None:
    """Skip when the model or its server is not installed; FAIL in CI (``CI`` set), where it never skips."""
    missing = []
    try:
        local_model.model_path()
    except local_model.LocalModelError as exc:
        missing.append(str(exc))
    if not local_model.node_server_ready():
        missing.append(f"node-llama-cpp is not installed in {local_model.SERVER_DIR}")
    if missing:
        msg = "; ".join(missing) + " (run `make setup-local-model`)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
