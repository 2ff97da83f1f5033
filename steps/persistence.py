"""Refuse, inside a pod, a config whose state would die with the pod.

On a cluster every step is a separate pod and pods share no disk. A local store directory or a
GitOps repo given as a path would be written inside one pod and gone for the next: plan.json and
the branch results vanish (summary would say "no eval was planned") and promote would push into a
bare repo that dies with its pod. So a step that finds itself in a pod with such a config stops
with one line per setting, before doing anything, instead of silently losing state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from config.pipeline import PromptPipelineConfig
from config.settings import get_settings
from steps.gitops.gitops import is_local_url

# KUBERNETES_SERVICE_HOST: set by the kubelet in every container. ARGO_CONTAINER_NAME: set by the
# Argo controller in every container of a workflow pod (workflow/controller/workflowpod.go, the loop
# over pod.Spec.Containers appending common.EnvVarContainerName) and by the container executor.
POD_ENV = ("KUBERNETES_SERVICE_HOST", "ARGO_CONTAINER_NAME")
STORE_KIND_ENV = "PROMPTCI_STORE_KIND"
CLUSTER_PROFILE = "config/profiles/cluster.yaml"


def in_pod(env: Mapping[str, str] | None = None) -> bool:
    """Return True when this process runs in a pod (or in the container executor's stand-in for one)."""
    env = os.environ if env is None else env
    return any(env.get(name) for name in POD_ENV)


def unpersisted(config: PromptPipelineConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """Return one line per setting of ``config`` that keeps state on the local disk (empty: all shared)."""
    problems = []
    if (get_settings(env).store_kind or config.store.kind) == "local":
        problems.append(f"store.kind: 'local' (root '{config.store.root}') is a directory on this pod's disk "
                        f"and vanishes with it; use the cluster profile ({CLUSTER_PROFILE}): an S3 store")
    if is_local_url(config.gitops.repo_url):
        problems.append(f"gitops.repo_url: '{config.gitops.repo_url}' is a path on this pod's disk, so a "
                        f"promotion would die with the pod; use the cluster profile ({CLUSTER_PROFILE}): "
                        "a GitOps remote by URL")
    return problems


def pod_refusal(config: PromptPipelineConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """Return the lines that refuse ``config`` when running in a pod; empty when it may run here."""
    if not in_pod(env):
        return []
    lines = unpersisted(config, env)
    if lines:
        lines.append("refusing to run with a local-disk profile in a pod (state would not persist); "
                     "mount the cluster profile at $PROMPTCI_CONFIG (ConfigMap promptci-pipeline-config)")
    return lines
