"""click commands for the promote stage: ``promote`` (by hand), ``rollback`` and ``status``.

Module-level ``click.Command`` objects, mounted on the ``workflows/submit.py``
group by the lead (``cli.add_command(promote_cmd)`` etc.). Exit codes: 0 done,
1 refused or failed (nothing promoted / rolled back), 2 bad input (config, results file).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel, TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table

from config.pipeline import ConfigError, PromptPipelineConfig, load_pipeline_config
from config.problems import render
from config.validation import problems_from_error
from config.yamlio import LoadError, load_file
from steps.contracts import BranchResult, EvalItem
from steps.gitops.env_status import StatusError, environment_status
from steps.gitops.rollback import RollbackError, rollback_artifact
from steps.promote import promote_run
from steps.stores.s3store import open_store
from steps.stores.store import ArtifactStore, LocalStore, StoreError

M = TypeVar("M", bound=BaseModel)


class BadInput(click.ClickException):
    """Bad config or input file: printed one line per problem, exit code 2."""

    exit_code = 2


def _load_config(path: Path | None, repo_root: Path) -> PromptPipelineConfig:
    """Return the pipeline config (``--config``, else ``{repo_root}/config/pipeline.yaml``, else the default)."""
    if path is None:
        candidate = repo_root / "config" / "pipeline.yaml"
        path = candidate if candidate.exists() else None
    try:
        return load_pipeline_config(path)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _load_records(path: Path, model: type[M]) -> list[M]:
    """Return the JSON/YAML list of ``model`` records in ``path``; one error line per bad field."""
    try:
        loaded = load_file(path)
    except LoadError as exc:
        raise BadInput(render(exc.problems)) from None
    try:
        return TypeAdapter(list[model]).validate_python(loaded.data)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise BadInput(render(problems_from_error(loaded, exc))) from None


def make_store(config: PromptPipelineConfig, repo_root: Path) -> ArtifactStore:
    """Return the artifact store the config names; a relative local root is relative to the repo root."""
    root = Path(os.environ.get("PROMPTCI_STORE_ROOT", config.store.root))
    if os.environ.get("PROMPTCI_STORE_KIND", config.store.kind) == "local":
        return LocalStore(root if root.is_absolute() else repo_root / root)
    try:
        return open_store(config.store)
    except StoreError as exc:
        raise BadInput(str(exc)) from None


_repo_root = click.option("--repo-root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                          show_default=True, help="source repository root (artifact paths are relative to it)")
_config = click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                       help="pipeline config (default: REPO_ROOT/config/pipeline.yaml)")
_workdir = click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
                        help="where to clone the GitOps repo (default: a temp dir, removed afterwards)")


@click.command("promote")
@click.option("--env", required=True, help="target environment (one of promotion.chain)")
@click.option("--results", "results_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="JSON list of BranchResult records (the eval fan-in)")
@click.option("--planned", "planned_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="JSON list of EvalItem records (what plan emitted)")
@_repo_root
@_config
@_workdir
@click.option("--run-id", default=None, help="pipeline run id (default: manual-<unix time>)")
@click.option("--run-link", default=None, help="URL of the pipeline run, recorded in the commit")
@click.option("--approve", is_flag=True, help="give the manual approval environments may require")
@click.option("--dry-run", is_flag=True, help="print the diff that would be committed; commit nothing")
@click.option("--source-revision", default="", help="source commit (default: HEAD of REPO_ROOT)")
@click.option("--source-timestamp", type=int, default=None,
              help="commit time of the source revision, unix seconds (default: from git)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def promote_cmd(env: str, results_path: Path, planned_path: Path, repo_root: Path, config_path: Path | None,
                workdir: Path | None, run_id: str | None, run_link: str | None, approve: bool, dry_run: bool,
                source_revision: str, source_timestamp: int | None, fmt: str) -> None:
    """Promote evaluated artifacts into ENV's GitOps directory (gates, commit, push, baselines)."""
    config = _load_config(config_path, repo_root)
    report = promote_run(_load_records(results_path, BranchResult), _load_records(planned_path, EvalItem),
                         env=env, repo_root=repo_root, run_id=run_id or f"manual-{int(time.time())}",
                         config=config, store=make_store(config, repo_root), approved=approve,
                         dry_run=dry_run, source_revision=source_revision, source_timestamp=source_timestamp,
                         run_link=run_link, workdir=workdir)
    click.echo(json.dumps(report.as_dict(), indent=2) if fmt == "json" else report.render())
    if not report.ok:
        raise SystemExit(1)


@click.command("rollback")
@click.argument("artifact")
@click.option("--env", required=True, help="environment to roll back in")
@click.option("--to", "to", default=None, metavar="VERSION|REVISION",
              help="artifact version, or GitOps commit sha (prefix), to restore; "
                   "default: the previous distinct content")
@_repo_root
@_config
@_workdir
def rollback_cmd(artifact: str, env: str, to: str | None, repo_root: Path, config_path: Path | None,
                 workdir: Path | None) -> None:
    """Restore ARTIFACT's earlier content in ENV by a new commit (history is never rewritten)."""
    config = _load_config(config_path, repo_root)
    try:
        result = rollback_artifact(artifact, env=env, config=config, repo_root=repo_root, to=to, workdir=workdir)
    except RollbackError as exc:
        click.echo(f"error: rollback of {artifact} in {env}: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(result.render())


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
@_config
@_workdir
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def status_cmd(repo_root: Path, config_path: Path | None, workdir: Path | None, fmt: str) -> None:
    """Show, for each artifact, the version and content hash live in each environment."""
    config = _load_config(config_path, repo_root)
    try:
        status = environment_status(config, repo_root, workdir)
    except StatusError as exc:
        click.echo(f"error: cannot read the GitOps repo: {exc}", err=True)
        raise SystemExit(1) from None
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
