"""``promptci register``: create or update every WorkflowTemplate and the policy ConfigMap on the cluster."""

from __future__ import annotations

from pathlib import Path

import click

from config.problems import has_errors, render
from steps.exit_codes import ExitCode
from workflows.cli.options import (
    argo_options,
    argo_target,
    fail,
    repo_root_option,
    trusted_config_option,
    trusted_ref_option,
)
from workflows.cli.pipeline import template_settings_for


@click.command("register")
@argo_options
@click.option("--instanceid", "instance_id", help="the controller's instance id [env ARGO_INSTANCEID]; "
                                                  "promptci refuses one (see docs/pipelines.md)")
@repo_root_option("the checkout whose git history holds the trusted ref (default: current directory)")
@trusted_config_option
@trusted_ref_option
@click.option("--profile", default="cluster", show_default=True,
              help="config profile the step pods get on top of the trusted gates (config/profiles/): "
                   "where the store and the GitOps remote are")
def register_cmd(host: str | None, namespace: str | None, token: str | None, insecure: bool,
                 instance_id: str | None, repo_root: Path, config_path: Path | None, ref: str | None,
                 profile: str) -> None:
    """Create or update every WorkflowTemplate and the policy ConfigMap (what CI runs on the protected branch).

    The policy (``config/pipeline.yaml`` at the trusted ref, or --config) goes into the
    ConfigMap promptci-pipeline-config that every step pod mounts: the gates of a run never
    come from the revision it evaluates. The Kubernetes API: KUBE_API_SERVER + KUBE_TOKEN, or
    the pod's service account.
    """
    from hera.exceptions import HeraException

    from config.pipeline import ConfigError
    from config.policy import PolicyError, load_trusted, trusted_policy_text
    from config.profiles import apply_profile
    from steps.exit_codes import remote_exit_code
    from workflows.argo.client import (
        ArgoConfigError,
        KubeConfigError,
        apply_configmap,
        refuse_instance_id,
        register_templates,
    )
    from workflows.argo.lint import lint_manifest
    from workflows.argo.schema import SchemaError
    from workflows.cluster_config import pipeline_config_map
    from workflows.templates import compile_templates

    try:
        refuse_instance_id(instance_id)
    except ArgoConfigError as exc:
        fail([f"register: {exc}"], ExitCode.USAGE)
    target = argo_target(host, namespace, token, insecure)
    try:
        source = trusted_policy_text(repo_root, config_path, ref)[1]
        config = load_trusted(repo_root, config_path, ref)[0]
        apply_profile(config, profile)  # a bad profile stops here, before any request
    except PolicyError as exc:
        fail(exc.lines, ExitCode.USAGE)
    except ConfigError as exc:
        fail([f"register: profile {profile}: {exc}"], ExitCode.USAGE)
    manifests = compile_templates(template_settings_for(config))
    try:
        problems = [p for m in manifests for p in lint_manifest(m)]
    except SchemaError as exc:
        fail([f"register: {exc}"], ExitCode.USAGE)
    if has_errors(problems):
        fail([render(problems), "register: not registering templates that fail lint"], ExitCode.USAGE)
    try:
        action = apply_configmap(pipeline_config_map(apply_profile(config, profile), namespace=target.namespace,
                                                     source=source))
        click.echo(f"{action} ConfigMap {target.namespace}/promptci-pipeline-config from {source}")
        for name, action in register_templates(target, manifests):
            click.echo(f"{action} WorkflowTemplate {target.namespace}/{name}")
    except KubeConfigError as exc:
        fail([f"register: {exc}"], ExitCode.USAGE)
    except (HeraException, OSError) as exc:
        fail([f"register: {type(exc).__name__}: {exc}"], remote_exit_code(exc))


__all__ = ["register_cmd"]
