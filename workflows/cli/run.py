"""``promptci run``: run the pipelines locally by executing the compiled WorkflowTemplate(s).

The run command's options all live here (the runner part may change the ``--parallelism`` default).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from config.artifact_types import ArtifactType
from steps.exit_codes import ExitCode
from workflows.cli.options import (
    env_option,
    fail,
    params_option,
    parse_params,
    repo_root_option,
    trusted_config_option,
    trusted_ref_option,
)
from workflows.cli.pipeline import TYPES, policy_configmap, template_settings
from workflows.runner.forking import LOCAL_EXECUTOR, ForkServer, fork_server, local_executor

if TYPE_CHECKING:
    from steps.promptfoo_warm import WarmBroker


@click.command("run")
@click.argument("artifact_types", nargs=-1, type=click.Choice(TYPES))
@params_option
@env_option("environment to promote to (the target-environment parameter; default: the first of promotion.chain)")
@click.option("--approve", is_flag=True,
              help="approve manual-approval gates at once (without it a suspend waits for `resume RUN_ID`)")
@click.option("--no-cache", is_flag=True, help="re-run every eval branch (same as -p no-cache=true)")
@click.option("--parallelism", type=click.IntRange(1, 64), help="max concurrent steps (default: the cores)")
@click.option("--run-id", help="run id (default: generated); one directory per run under .promptci/runs")
@repo_root_option("the source checkout (default: current directory)")
@click.option("--executor", type=click.Choice(["fork", "process", "container"]), default=LOCAL_EXECUTOR,
              show_default=True,
              help="fork: each step forked on this checkout from one process that already imported the stages "
                   "(fastest); process: each step a new Python subprocess on this checkout; container: each step "
                   "in its own container from the step image, as its pod would run (make image first)")
@click.option("--configmaps-dir", type=click.Path(file_okay=False, path_type=Path),
              help="container executor: ConfigMaps as <dir>/<name>/<key> "
                   "[default: <repo-root>/.promptci/cluster/configmaps]")
@click.option("--secrets-dir", type=click.Path(file_okay=False, path_type=Path),
              help="container executor: Secrets as <dir>/<name>/<key> "
                   "[default: <repo-root>/.promptci/cluster/secrets]")
@trusted_config_option
@trusted_ref_option
def run_cmd(artifact_types: tuple[str, ...] = (), params: tuple[str, ...] = (), env: str | None = None,
            approve: bool = False, no_cache: bool = False, parallelism: int | None = None,
            run_id: str | None = None, repo_root: Path = Path("."), executor: str = LOCAL_EXECUTOR,
            configmaps_dir: Path | None = None, secrets_dir: Path | None = None, config_path: Path | None = None,
            ref: str | None = None) -> None:
    """Run pipelines locally by executing the compiled WorkflowTemplate(s).

    Without ARTIFACT_TYPES, runs every type whose artifact directory exists in the repo.
    With --executor container every step runs in a container that sees only what its pod would:
    a fresh clone of the committed revision, the Secrets and ConfigMaps of the two directories
    (docs/pipelines.md), and the services on this host (S3, GitOps remote, Pushgateway).
    Exit 1 when a pipeline failed (a check or gate rejected an artifact).
    """
    root = repo_root.resolve()
    # The child processes' environment; the mounted policy says what PROMPTCI_CONFIG would.
    child_env = {k: v for k, v in os.environ.items() if k != "PROMPTCI_CONFIG"}
    from steps.promptfoo import use_compile_cache
    from steps.promptfoo_warm import warm_for_run

    if executor != "container":  # a container is a pod: it starts once, with no compile cache to reuse
        use_compile_cache(child_env)
    # First of all, before this process imports pydantic: the fork server starts importing the stages, and one
    # warm promptfoo starts loading its module graph (the first eval's Node start, the critical path of a small
    # run). Both overlap the CLI's own work (settings, template), lint and validate. (The shard cap below is read
    # by neither at import: see ForkServer.forks_like, and steps/promptfoo_warm.py for promptfoo.)
    with fork_server(child_env, root) if executor == "fork" and root.is_dir() else nullcontext() as server, \
            warm_for_run(child_env, executor != "container") as warm:
        from workflows.runner.scheduler import default_parallelism

        # A shard per step slot here (steps/run_plan.shard_limit); a cluster runs its shards side by side as pods.
        child_env["PROMPTCI_EVAL_SHARDS_CAP"] = str(parallelism or default_parallelism())
        failed = _run_checked(artifact_types, params, env, approve, no_cache, parallelism, run_id, root,
                              executor, configmaps_dir, secrets_dir, config_path, ref, child_env, server,
                              warm)
    if failed:
        raise SystemExit(ExitCode.REJECTED)


def _run_checked(artifact_types: tuple[str, ...], params: tuple[str, ...], env: str | None, approve: bool,
                 no_cache: bool, parallelism: int | None, run_id: str | None, root: Path, executor: str,
                 configmaps_dir: Path | None, secrets_dir: Path | None, config_path: Path | None, ref: str | None,
                 child_env: dict[str, str], server: ForkServer | None,
                 warm: WarmBroker | None = None) -> list[str]:
    """Check the options, then run the chosen pipelines; return the failed types (exit 2 on bad usage)."""
    settings = template_settings(config_path)
    values = parse_params(params, env)
    if no_cache:
        values["no-cache"] = "true"
    chosen = list(artifact_types) or [t for t in TYPES if (root / settings.pipeline.artifact_dirs.get(
        t, ArtifactType(t).default_dir)).exists()]
    if not chosen:
        fail([f"run: no artifact directories found in {root}"], ExitCode.USAGE)
    if executor != "container" and (configmaps_dir or secrets_dir):
        raise click.BadParameter("only the container executor reads them", param_hint="--configmaps-dir/--secrets-dir")
    configmaps = policy_configmap(root, config_path, ref)
    from steps.providers.local_model import LocalModelError, serving_for_run

    try:  # PROMPTCI_PROVIDER=local: one model server for the whole run, stopped at its end
        with serving_for_run(child_env, root / ".promptci" / "local-model.log"):
            return _run_types(chosen, settings, values, root, run_id, approve, parallelism, child_env, configmaps,
                              lambda: _executor(executor, root, configmaps_dir, secrets_dir, server), warm)
    except LocalModelError as exc:
        fail([f"run: {exc}"], ExitCode.USAGE)


def _run_types(chosen: list[str], settings: Any, values: dict[str, str], root: Path, run_id: str | None,
               approve: bool, parallelism: int | None, env: dict[str, str], configmaps: Any,
               new_executor: Callable[[], Any], warm: WarmBroker | None = None) -> list[str]:
    """Run the pipeline of each artifact type in turn (a new executor for each run); return the failed types.

    ``warm``: the run's warm promptfoo broker (steps/promptfoo_warm.WarmBroker) or None; it hears every node's
    change, and its CPU-s go into each run's totals.
    """
    from workflows.runner.progress import print_summary
    from workflows.runner.scheduler import RunError, UnsupportedFeature, new_run_id, record_metrics, run_template
    from workflows.template_cache import cache_dir, compiled_template

    # What only the end of a run needs (metrics.prom through prometheus_client) is imported while the steps run.
    threading.Thread(target=importlib.import_module, args=("steps.metrics",), daemon=True).start()
    failed = []
    for i, t in enumerate(chosen):
        manifest = compiled_template(t, settings, cache_dir())
        rid = f"{run_id}-{t}" if run_id and len(chosen) > 1 else (run_id or f"{new_run_id()}-{t}")
        try:
            result = run_template(manifest, {"repo-url": str(root), **values}, repo_root=root, run_id=rid,
                                  approve=approve, parallelism=parallelism, progress=True, env=env,
                                  configmaps=configmaps, executor=new_executor(),
                                  on_event=warm.on_event if warm else None)
        except (RunError, UnsupportedFeature) as exc:  # the run could not start: bad parameters or template
            fail([f"run: {exc}"], ExitCode.USAGE)
        if warm is not None:
            result.promptfoo_cpu_seconds = warm.take_cpu_seconds()
        note = record_metrics(manifest, result)
        print_summary(result)
        _echo_reports(result)
        if note:
            click.echo(note, err=True)
        if not result.ok:
            failed.append(t)
        if i + 1 < len(chosen):
            click.echo()
    return failed


def _echo_reports(result: Any, tail: int = 25) -> None:
    """Print what the user needs after the table: promote's report, and why each failed task failed."""
    for node in result.nodes:
        if node.task not in ("promote", "summary") and node.status not in ("Failed", "Error"):
            continue
        if not node.dir:
            continue
        text = "".join((Path(node.dir) / name).read_text(errors="replace")
                       for name in ("stdout.txt", "stderr.txt") if (Path(node.dir) / name).is_file())
        lines = text.strip().splitlines()
        if lines:
            click.echo(f"--- {node.name} ({node.status}) ---")
            click.echo("\n".join(lines[-tail:]))


def _executor(kind: str, root: Path, configmaps_dir: Path | None, secrets_dir: Path | None,
              server: ForkServer | None) -> Any:
    """Return the executor ``run`` hands every step of one run to (``server``: the fork executor's zygote)."""
    if kind != "container":
        return local_executor(kind, server)
    from workflows.runner.container import DEFAULT_CONFIGMAPS_DIR, DEFAULT_SECRETS_DIR, ContainerExecutor

    return ContainerExecutor(configmaps_dir or root / DEFAULT_CONFIGMAPS_DIR, secrets_dir or root / DEFAULT_SECRETS_DIR)


__all__ = ["TYPES", "run_cmd"]
