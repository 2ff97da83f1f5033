"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Return a temp copy of the sample artifacts (prompts/, evals/, other types) to break at will."""
    for name in ("prompts", "evals", "model-configs", "rag-configs", "guardrails"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


@pytest.fixture(autouse=True)
def _offline_tiktoken(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every test seeds its own cache from the bundled files, never from a download.
    cache = tmp_path_factory.getbasetemp() / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    os.environ.setdefault("PROMPTFOO_DISABLE_TELEMETRY", "1")
