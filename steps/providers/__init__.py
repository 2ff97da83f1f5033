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

from collections.abc import Mapping
from typing import Literal

from config.settings import Settings, SettingsError, get_settings

PROVIDER_ENV = "PROMPTCI_PROVIDER"
RECORD_ENV = "PROMPTCI_RECORD"
Mode = Literal["recorded", "live", "record", "local"]
MODES = ("recorded", "live", "local")


class ProviderConfigError(Exception):
    """The provider setting or the model cannot be turned into a promptfoo provider."""


def recording(env: Mapping[str, str] | None = None) -> bool:
    """Return whether live answers are written as recordings (``PROMPTCI_RECORD=1``)."""
    return _settings(env).record


def _settings(env: Mapping[str, str] | None) -> Settings:
    """Return the settings of ``env`` (default: this process's); a bad value is a ProviderConfigError."""
    try:
        return get_settings(env)
    except SettingsError as exc:
        raise ProviderConfigError(str(exc)) from None


def provider_mode(env: Mapping[str, str] | None = None) -> Mode:
    """Return the run's provider mode from the environment; raise ProviderConfigError on an unknown value.

    ``record`` (from ``PROMPTCI_RECORD=1``) is the live provider plus writing
    recordings. With ``PROMPTCI_PROVIDER=local`` the mode stays ``local``:
    ``effective_mode`` decides per model, and records only what the local model answers.
    """
    value = (_settings(env).provider or "recorded").strip().lower() or "recorded"
    if value not in MODES:
        raise ProviderConfigError(f"{PROVIDER_ENV}={value!r}: expected one of {', '.join(MODES)}")
    if value == "local":
        return "local"
    if recording(env):
        return "record"
    return value  # type: ignore[return-value]


def effective_mode(mode: Mode, provider: str, env: Mapping[str, str] | None = None) -> Mode:
    """Return how a branch whose catalog model has ``provider`` runs in the run's ``mode``.

    Only ``local`` differs: the bundled model's prompts call it live (``record``
    with ``PROMPTCI_RECORD=1``); every other branch replays its recordings.
    """
    if mode != "local":
        return mode
    if provider == "local":
        return "record" if recording(env) else "live"
    return "recorded"
