"""click commands for the promote stage: ``promote`` (by hand, by run id), ``rollback`` and ``status``.

Module-level ``click.Command`` objects, mounted on the ``promptci`` group (workflows/cli/main.py).
Exit codes (steps/exit_codes.py): 0 done, 1 refused (nothing promoted / rolled back), 2 bad input
(config, no signing key), 75 an infrastructure failure (store, GitOps remote): try again.

The policy is the trusted one (config/policy.py): ``--config``, else ``config/pipeline.yaml``
at ``--trusted-ref`` (default ``origin/main``, else ``main``), never the checkout's own file,
which may only tighten it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from config.pipeline import PromptPipelineConfig
from config.policy import PolicyError, PolicyLoosened, effective_policy, load_trusted
from config.settings import get_settings
from steps.exit_codes import ExitCode
from steps.gitops.env_status import StatusError, environment_status
from steps.gitops.rollback import RollbackError, rollback_artifact
from steps.promote import promote_run
from steps.signing import SignatureError, signing_key
from steps.stores.s3store import open_store
from steps.stores.store import ArtifactStore, LocalStore, StoreError
from workflows.cli.options import env_option, format_option, repo_root_option, trusted_config_option, trusted_ref_option


class BadInput(click.ClickException):
    """Bad config or input file: printed one line per problem, exit code 2."""

    exit_code = ExitCode.USAGE


def _load_config(path: Path | None, repo_root: Path, ref: str | None) -> PromptPipelineConfig:
    """Return the trusted pipeline config (``--config``, else the trusted ref's), for rollback and status."""
    try:
        return load_trusted(repo_root, path, ref)[0]
    except PolicyError as exc:
        raise BadInput(str(exc)) from None


def _policy(path: Path | None, repo_root: Path, ref: str | None) -> PromptPipelineConfig:
    """Return the policy promote applies: trusted, tightened by the checkout's own config if that only tightens."""
    try:
        policy = effective_policy(repo_root, path, ref)
    except PolicyLoosened as exc:  # a refusal, not a usage error: one line per field, exit 1
        for line in exc.lines:
            click.echo(line, err=True)
        raise SystemExit(ExitCode.REJECTED) from None
    except PolicyError as exc:
        raise BadInput(str(exc)) from None
    for line in policy.tightened + policy.ignored:
        click.echo(line, err=True)
    return policy.config


def _key(repo_root: Path) -> bytes:
    try:
        return signing_key(repo_root)
    except SignatureError as exc:
        raise BadInput(str(exc)) from None


def make_store(config: PromptPipelineConfig, repo_root: Path) -> ArtifactStore:
    """Return the artifact store the config names; a relative local root is relative to the repo root."""
    settings = get_settings()
    if (settings.store_kind or config.store.kind) == "local":
        root = settings.store_root or Path(config.store.root)
        return LocalStore(root if root.is_absolute() else repo_root / root)
    try:
        return open_store(config.store)
    except StoreError as exc:
        raise BadInput(str(exc)) from None


_repo_root = repo_root_option("source repository root (artifact paths are relative to it; default: current "
                              "directory)")
_workdir = click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
                        help="where to clone the GitOps repo (default: a temp dir, removed afterwards)")


@click.command("promote")
@click.option("--run-id", required=True, help="the pipeline run whose signed plan and eval records to promote")
@env_option("target environment (one of promotion.chain)", required=True)
@_repo_root
@trusted_config_option
@trusted_ref_option
@_workdir
@click.option("--run-link", default=None, help="URL of the pipeline run, recorded in the commit")
@click.option("--approve", is_flag=True, help="give the manual approval environments may require")
@click.option("--dry-run", is_flag=True, help="print the diff that would be committed; commit nothing")
@click.option("--source-revision", default="", help="evaluated source commit (default: HEAD of REPO_ROOT); "
              "its time is read from git")
@format_option
def promote_cmd(run_id: str, env: str, repo_root: Path, config_path: Path | None, ref: str | None,
                workdir: Path | None, run_link: str | None, approve: bool, dry_run: bool, source_revision: str,
                fmt: str) -> None:
    """Promote run RUN_ID's evaluated artifacts into ENV's GitOps directory (gates, commit, push, baselines).

    The results are the run's signed records in the artifact store, as eval wrote them.
    """
    config = _policy(config_path, repo_root, ref)
    report = promote_run(run_id, env=env, repo_root=repo_root, config=config, store=make_store(config, repo_root),
                         key=_key(repo_root), approved=approve, dry_run=dry_run, source_revision=source_revision,
                         run_link=run_link, workdir=workdir)
    click.echo(json.dumps(report.as_dict(), indent=2) if fmt == "json" else report.render())
    if report.exit_code:
        raise SystemExit(report.exit_code)


@click.command("rollback")
@click.argument("artifact")
@env_option("environment to roll back in", required=True)
@click.option("--to", "to", default=None, metavar="VERSION|REVISION",
              help="artifact version, or GitOps commit sha (prefix), to restore; "
                   "default: the previous distinct content")
@_repo_root
@trusted_config_option
@trusted_ref_option
@_workdir
@format_option
def rollback_cmd(artifact: str, env: str, to: str | None, repo_root: Path, config_path: Path | None,
                 ref: str | None, workdir: Path | None, fmt: str) -> None:
    """Restore ARTIFACT's earlier content in ENV by a new commit (history is never rewritten).

    The restored content stays until a newer source revision is promoted; the environment's
    baseline follows it.
    """
    config = _load_config(config_path, repo_root, ref)
    try:
        key: bytes | None = signing_key(repo_root)
    except SignatureError as exc:
        key = None
        click.echo(f"note: the {env} baseline will not follow the rollback: {exc}", err=True)
    try:
        result = rollback_artifact(artifact, env=env, config=config, repo_root=repo_root, to=to, workdir=workdir,
                                   store=make_store(config, repo_root), key=key)
    except RollbackError as exc:
        code = ExitCode.TRANSIENT if exc.transient else ExitCode.REJECTED
        if fmt == "json":  # the same one line, as data on stdout
            click.echo(json.dumps({"artifact_id": artifact, "env": env, "error": str(exc), "exit_code": int(code)},
                                  indent=2))
        click.echo(f"error: rollback of {artifact} in {env}: {exc}", err=True)
        raise SystemExit(code) from None
    click.echo(json.dumps(result.as_dict(), indent=2) if fmt == "json" else result.render())
    if result.infra:
        raise SystemExit(ExitCode.TRANSIENT)


def status_table(data: dict[str, Any]) -> Table:
    """Return the rich table of ``EnvironmentStatus.as_dict()``: one row per artifact, a column per env."""
    table = Table(title="promptci: live artifacts per environment")
    table.add_column("artifact")
    for env in data["environments"]:
        table.add_column(env)
    for aid, envs in data["artifacts"].items():
        cells = [aid]
        for env in data["environments"]:
            live = envs.get(env)
            cells.append("-" if live is None else f"{live['version']} {live['content_hash'][:15]}")
        table.add_row(*cells)
    return table


@click.command("status")
@_repo_root
@trusted_config_option
@trusted_ref_option
@_workdir
@format_option
def status_cmd(repo_root: Path, config_path: Path | None, ref: str | None, workdir: Path | None,
               fmt: str) -> None:
    """Show, for each artifact, the version and content hash live in each environment."""
    config = _load_config(config_path, repo_root, ref)
    try:
        status = environment_status(config, repo_root, workdir)
    except StatusError as exc:
        click.echo(f"error: cannot read the GitOps repo: {exc}", err=True)
        raise SystemExit(ExitCode.TRANSIENT) from None
    data = status.as_dict()
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    if not data["artifacts"]:
        click.echo("nothing promoted yet")
        return
    console = Console(width=160, no_color=True, force_terminal=False)
    with console.capture() as cap:
        console.print(status_table(data))
    click.echo(cap.get().rstrip("\n"))


__all__ = ["promote_cmd", "rollback_cmd", "status_cmd", "make_store", "status_table"]
