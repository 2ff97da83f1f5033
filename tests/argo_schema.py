"""Run the shared Argo schema checker (``../shared/tools/argo_schema_check.py``) from tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    """Return the finished checker run over ``paths``; skip the test when ../shared is absent."""
    tool = SHARED / "tools" / "argo_schema_check.py"
    if not tool.exists():
        pytest.skip(f"Argo schema checker not found at {tool} (../shared is absent)")
    return subprocess.run([sys.executable, str(tool), str(SHARED / "schemas"), *map(str, paths)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
