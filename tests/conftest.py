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


@pytest.fixture
def s3_creds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials in the environment (where boto3 reads them), no other S3 settings."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_ENDPOINT_URL", "PROMPTCI_S3_BUCKET", "PROMPTCI_S3_PREFIX", "PROMPTCI_STORE_KIND"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def s3_endpoint(s3_creds: None):  # type: ignore[no-untyped-def]
    """Yield the URL of a real S3 protocol server (moto) on 127.0.0.1 with an empty bucket 'promptci'."""
    from tests.s3server import moto_s3

    with moto_s3() as url:
        yield url
