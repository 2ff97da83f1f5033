"""Config profiles: the persistence settings of one place the pipeline runs, over config/pipeline.yaml.

A profile file (``config/profiles/<name>.yaml``) holds only ``store`` and ``gitops``: where state
lives and where promotions go. The gates (thresholds, promotion chain, approvals) stay in the
pipeline config, so a profile can never change what it takes to ship. ``local`` is the pipeline
config as it is (a store directory and a bare GitOps repo on this disk); ``cluster`` puts both in
services that every pod reaches (S3, a GitOps remote by URL).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from config.pipeline import GitOpsConfig, PromptPipelineConfig, StoreConfig, load_pipeline_config, load_validated

PROFILES_DIR = Path(__file__).parent
LOCAL = "local"


class ProfileOverlay(BaseModel):
    """The sections a profile may set; anything else in the file is an error naming its line."""

    model_config = ConfigDict(extra="forbid")

    store: StoreConfig
    gitops: GitOpsConfig


def profile_names() -> list[str]:
    """Return the known profiles: ``local`` plus one per ``config/profiles/*.yaml``, sorted."""
    return sorted({LOCAL, *(p.stem for p in PROFILES_DIR.glob("*.yaml"))})


def apply_profile(config: PromptPipelineConfig, name_or_path: str) -> PromptPipelineConfig:
    """Return ``config`` with the profile's ``store`` and ``gitops`` (``local``: ``config`` unchanged).

    ``name_or_path`` is a profile name (``local``, ``cluster``) or a profile file. Raises
    ConfigError (one problem per line, with file and line) for an unknown or invalid profile.
    """
    if name_or_path == LOCAL:
        return config
    path = Path(name_or_path) if name_or_path.endswith((".yaml", ".yml")) else \
        PROFILES_DIR / f"{name_or_path}.yaml"
    overlay, _ = load_validated(ProfileOverlay, path)
    return config.model_copy(update={"store": overlay.store, "gitops": overlay.gitops})


def load_profile(name_or_path: str, base: Path | str | None = None) -> PromptPipelineConfig:
    """Return the pipeline config at ``base`` (default config/pipeline.yaml) with the profile applied."""
    return apply_profile(load_pipeline_config(base), name_or_path)


def render_config(config: PromptPipelineConfig) -> str:
    """Return ``config`` as the YAML a pod reads at ``$PROMPTCI_CONFIG`` (every field explicit)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, default_flow_style=False)
