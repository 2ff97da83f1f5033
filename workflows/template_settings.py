"""The cluster-side settings of the generated WorkflowTemplates, apart from their builder (and from Hera).

What :func:`workflows.templates.build_template` is built from, beside the artifact type: a command that
only needs the settings (or the compiled template from the cache, workflows/template_cache.py) does not
import Hera for them. ``workflows.templates`` re-exports both classes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from config.pipeline import PromptPipelineConfig, load_pipeline_config
from config.settings import get_settings


class StageSettings(BaseModel):
    """Pod settings of one stage."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(default=None, description="overrides PipelineSettings.image")
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str | None = "1"
    memory_limit: str | None = "512Mi"
    deadline_seconds: int = Field(default=600, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    service_account: str | None = Field(default=None, description="overrides the workflow's")
    secrets: list[str] = Field(default_factory=list,
                               description="Kubernetes Secrets mounted as env (envFrom, optional)")


def _default_stages() -> dict[str, StageSettings]:
    return {
        "lint": StageSettings(deadline_seconds=300),
        # validate plans the run: it settles cache hits and writes the signed plan to the store (eval, promote and
        # summary read it there), so it needs the store's keys. promptci-signing holds PROMPTCI_SIGNING_KEY:
        # validate and eval sign what they store, promote verifies.
        "validate": StageSettings(deadline_seconds=600, memory_limit="1Gi",
                                  secrets=["promptci-store", "promptci-signing"]),
        # One eval pod runs a whole shard (up to ~items / eval.max_shards items), hence the longer deadline.
        "eval": StageSettings(cpu_request="500m", memory_request="1Gi", cpu_limit="2", memory_limit="2Gi",
                              deadline_seconds=3600,
                              secrets=["promptci-provider-keys", "promptci-store", "promptci-signing"]),
        "promote": StageSettings(deadline_seconds=600, service_account="promptci-promoter",
                                 secrets=["promptci-gitops", "promptci-store", "promptci-signing"]),
        "summary": StageSettings(deadline_seconds=300, secrets=["promptci-store"]),
    }


class PipelineSettings(BaseModel):
    """Cluster-side settings of the generated templates (not of the pipeline's quality gates)."""

    model_config = ConfigDict(extra="forbid")

    image: str = "ghcr.io/promptci/promptci-step:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "promptci"
    artifact_repository_configmap: str = "artifact-repositories"
    artifact_repository_key: str = "promptci"
    git_credentials_secret: str | None = Field(
        default=None, description="Secret with 'username'/'password' keys for a private source repo")
    workflow_deadline_seconds: int = Field(default=7200, gt=0)
    ttl_after_success_seconds: int = 86400
    ttl_after_failure_seconds: int = 604800
    parallelism: int = Field(default=8, gt=0, description="pods of one workflow at a time")
    backoff: str = "10s"
    ui_base_url: str | None = Field(default=None, description="Argo UI base URL, for links in reports")
    stages: dict[str, StageSettings] = Field(default_factory=_default_stages)
    pipeline: PromptPipelineConfig = Field(default_factory=PromptPipelineConfig)

    @classmethod
    def load(cls, config_path: str | None = None) -> PipelineSettings:
        """Return settings for the repo's pipeline config, with the image from ``$PROMPTCI_IMAGE``.

        Raises ConfigError (one problem per line) when the pipeline config is invalid.
        """
        kwargs: dict[str, Any] = {"pipeline": load_pipeline_config(config_path)}
        image = get_settings().image
        if image:
            kwargs["image"] = image
        return cls(**kwargs)

    def stage(self, name: str) -> StageSettings:
        """Return the settings of stage ``name`` (defaults when not configured)."""
        return self.stages.get(name) or StageSettings()
