"""Model providers for the eval stage: the offline recorded provider and the live catalog mapping.

Which one a run uses is one setting, the environment variable
``PROMPTCI_PROVIDER`` (``recorded``, the default, or ``live``); ``PROMPTCI_RECORD=1``
runs live and writes what the model answered as recordings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

PROVIDER_ENV = "PROMPTCI_PROVIDER"
RECORD_ENV = "PROMPTCI_RECORD"
Mode = Literal["recorded", "live", "record"]


class ProviderConfigError(Exception):
    """The provider setting or the model cannot be turned into a promptfoo provider."""


def provider_mode(env: Mapping[str, str] | None = None) -> Mode:
    """Return the provider mode from the environment; raise ProviderConfigError on an unknown value.

    ``record`` (from ``PROMPTCI_RECORD=1``) wins over ``PROMPTCI_PROVIDER``: it
    is the live provider plus writing recordings.
    """
    env = os.environ if env is None else env
    if env.get(RECORD_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return "record"
    value = env.get(PROVIDER_ENV, "recorded").strip().lower() or "recorded"
    if value not in {"recorded", "live"}:
        raise ProviderConfigError(f"{PROVIDER_ENV}={value!r}: expected 'recorded' or 'live'")
    return "recorded" if value == "recorded" else "live"
