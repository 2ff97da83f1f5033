"""Model providers for the eval stage: the offline recorded provider, the live catalog mapping, the local model.

Which one a run uses is one setting, the environment variable
``PROMPTCI_PROVIDER``:

* ``recorded`` (the default): every prompt is answered from ``recordings/``;
* ``live``: every prompt calls its catalog model (a ``local`` model on the bundled server);
* ``local``: prompts whose catalog model is ``provider: local`` call the bundled small
  model over HTTP, through the same OpenAI-compatible provider as a real API; every
  other prompt is answered from its recordings, as in ``recorded``.

``PROMPTCI_RECORD=1`` also writes what the live calls answered as recordings
(with ``recorded`` or unset it means ``live``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

PROVIDER_ENV = "PROMPTCI_PROVIDER"
RECORD_ENV = "PROMPTCI_RECORD"
Mode = Literal["recorded", "live", "local"]
MODES = ("recorded", "live", "local")


class ProviderConfigError(Exception):
    """The provider setting or the model cannot be turned into a promptfoo provider."""


def recording(env: Mapping[str, str] | None = None) -> bool:
    """Return whether live answers are written as recordings (``PROMPTCI_RECORD=1``)."""
    env = os.environ if env is None else env
    return env.get(RECORD_ENV, "").strip().lower() in {"1", "true", "yes"}


def provider_mode(env: Mapping[str, str] | None = None) -> Mode:
    """Return the provider mode from the environment; raise ProviderConfigError on an unknown value.

    Recording needs live answers, so ``PROMPTCI_RECORD=1`` with ``recorded`` (or
    nothing) set is ``live``; with ``local`` it stays ``local``.
    """
    env = os.environ if env is None else env
    value = env.get(PROVIDER_ENV, "recorded").strip().lower() or "recorded"
    if value not in MODES:
        raise ProviderConfigError(f"{PROVIDER_ENV}={value!r}: expected one of {', '.join(MODES)}")
    if value == "recorded" and recording(env):
        return "live"
    return value  # type: ignore[return-value]


def answered_live(mode: Mode, provider: str) -> bool:
    """Return whether a prompt whose catalog model has ``provider`` calls a model in ``mode``."""
    return mode == "live" or (mode == "local" and provider == "local")
