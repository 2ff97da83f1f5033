"""Run the shared Argo schema checker (``../shared/tools/argo_schema_check.py``) from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """Return ``../shared``: beside this checkout, else beside the main checkout of a git worktree.

    ``$PROMPTCI_SHARED`` overrides both. The answer may not exist; callers fail on that, never skip.
    """
    if os.environ.get("PROMPTCI_SHARED"):
        return Path(os.environ["PROMPTCI_SHARED"])
    beside = REPO.parent / "shared"
    if beside.is_dir():
        return beside
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=REPO,
                            capture_output=True, text=True, check=False).stdout.strip()
    return Path(common).parent.parent / "shared" if common else beside


SHARED = shared_dir()


def schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    """Return the finished checker run over ``paths``; fail the test (never skip) when ../shared is absent."""
    tool = SHARED / "tools" / "argo_schema_check.py"
    if not tool.exists():
        pytest.fail(f"Argo schema checker not found at {tool}: put ../shared beside the repo")
    return subprocess.run([sys.executable, str(tool), str(SHARED / "schemas"), *map(str, paths)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
