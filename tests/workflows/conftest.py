"""Fixtures of the workflow tests."""

from __future__ import annotations

import pytest

from tests.workflows.containers import build_step_image


@pytest.fixture(scope="session")
def step_image() -> str:
    """Return the step image's name after building it once for the session (``make image``, cached layers)."""
    return build_step_image()
