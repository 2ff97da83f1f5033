"""``promptci submit``: create a Workflow from a registered WorkflowTemplate on the Argo Server."""

from __future__ import annotations

from pathlib import Path

import click

from config.artifacts import ArtifactType
from steps.exit_codes import ExitCode, remote_exit_code
from workflows.cli.options import (
    argo_options,
    argo_target,
    config_option,
    env_option,
    fail,
    params_option,
    parse_params,
)
from workflows.cli.pipeline import TYPES, template_settings


@click.command("submit")
@click.argument("artifact_type", type=click.Choice(TYPES))
@params_option
@env_option("environment to promote to (the target-environment parameter; default: the first of promotion.chain)")
@click.option("--wait", is_flag=True, help="follow the workflow; exit non-zero unless it succeeded")
@click.option("--timeout", default=3600, show_default=True, help="seconds to wait with --wait")
@click.option("--interval", default=5.0, show_default=True, help="poll interval with --wait")
@argo_options
@config_option
def submit_cmd(artifact_type: str, params: tuple[str, ...], env: str | None, wait: bool, timeout: int,
               interval: float, host: str | None, namespace: str | None, token: str | None, insecure: bool,
               config_path: Path | None) -> None:
    """Create a Workflow from the promptci-ARTIFACT_TYPE WorkflowTemplate and print its UI link."""
    from hera.exceptions import HeraException

    from workflows.argo.client import missing_parameters, submit_workflow, wait_for
    from workflows.templates import build_template

    values = parse_params(params, env)
    manifest = build_template(ArtifactType(artifact_type), template_settings(config_path)).to_dict()
    declared = [p["name"] for p in manifest["spec"]["arguments"]["parameters"]]
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise click.BadParameter(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(declared)}",
                                 param_hint="-p")
    missing = missing_parameters(manifest, values)
    if missing:
        raise click.BadParameter(f"{', '.join(missing)} has no default; pass " +
                                 " ".join(f"-p {m}=..." for m in missing), param_hint="-p")
    target = argo_target(host, namespace, token, insecure)
    try:
        name = submit_workflow(target, manifest["metadata"]["name"], values,
                               labels={"promptci.dev/artifact-type": artifact_type})
        click.echo(f"submitted {target.namespace}/{name}")
        click.echo(target.ui_link(name))
        if not wait:
            return
        phase = wait_for(target, name, timeout=timeout, interval=interval,
                         on_phase=lambda p: click.echo(f"  {name}: {p}", err=True))
    except (HeraException, OSError) as exc:
        fail([f"submit: {type(exc).__name__}: {exc}"], remote_exit_code(exc))
    click.echo(f"{name}: {phase}")
    if phase != "Succeeded":
        raise SystemExit(ExitCode.REJECTED)


__all__ = ["TYPES", "submit_cmd"]
