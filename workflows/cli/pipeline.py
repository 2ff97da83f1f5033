"""What several commands load: the template settings of a pipeline config, and the trusted policy's ConfigMap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.artifact_types import ArtifactType
from steps.exit_codes import ExitCode
from workflows.cli.options import fail

TYPES = [t.value for t in ArtifactType]  # the pipelines, one per artifact type


def template_settings(config_path: Path | None) -> Any:
    """Return the WorkflowTemplate settings of ``config_path`` (default config/pipeline.yaml); exit 2 when invalid."""
    from config.pipeline import ConfigError
    from workflows.template_settings import PipelineSettings

    try:
        return PipelineSettings.load(str(config_path) if config_path else None)
    except ConfigError as exc:
        fail((p.format() for p in exc.problems), ExitCode.USAGE)


def template_settings_for(config: Any) -> Any:
    """Return template settings for an already loaded (trusted) pipeline config."""
    from workflows.template_settings import PipelineSettings

    return PipelineSettings.load(None).model_copy(update={"pipeline": config})


def policy_configmap(root: Path, config_path: Path | None, ref: str | None) -> dict[str, dict[str, str]]:
    """Return the policy ConfigMap a local run mounts where a cluster mounts the registered one.

    Its text is the trusted policy (``--config``, else the trusted ref's config/pipeline.yaml),
    never the checkout's own file, which the stages may only use to tighten it. Exit 2 when it
    cannot be read.
    """
    from config.policy import PolicyError, trusted_policy_text
    from workflows.cluster_config import CONFIG_MAP_NAME as POLICY_CONFIGMAP

    try:
        text, _ = trusted_policy_text(root, config_path, ref)
    except PolicyError as exc:
        fail(exc.lines, ExitCode.USAGE)
    return {POLICY_CONFIGMAP: {"pipeline.yaml": text}}


__all__ = ["TYPES", "policy_configmap", "template_settings", "template_settings_for"]
