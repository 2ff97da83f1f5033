"""``python workflows/submit.py``: dump, lint, register, submit or run the promptci pipelines.

Built on click. With no command and no Argo server configured (``ARGO_SERVER`` unset) it
runs the pipelines locally, like ``run``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

import click  # noqa: E402
import yaml  # noqa: E402

from config.artifacts import ArtifactType  # noqa: E402
from config.pipeline import ConfigError  # noqa: E402
from config.problems import Problem, has_errors, render  # noqa: E402
from steps.atomic import atomic_write  # noqa: E402

TYPES = [t.value for t in ArtifactType]


def _fail(lines: Iterable[str], code: int = 1) -> None:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)


def _settings(config_path: str | None) -> Any:
    from workflows.templates import PipelineSettings

    try:
        return PipelineSettings.load(config_path)
    except ConfigError as exc:
        _fail(p.format() for p in exc.problems)


def _settings_for(config: Any) -> Any:
    """Return template settings for an already loaded (trusted) pipeline config."""
    from workflows.templates import PipelineSettings

    settings = PipelineSettings.load(None)
    return settings.model_copy(update={"pipeline": config})


def _policy_configmap(root: Path, config_path: str | None, ref: str | None) -> dict[str, dict[str, str]]:
    """Return the policy ConfigMap a local run mounts where a cluster mounts the registered one.

    Its text is the trusted policy (``--config``, else the trusted ref's config/pipeline.yaml),
    never the checkout's own file, which the stages may only use to tighten it.
    """
    from config.policy import PolicyError, trusted_policy_text
    from workflows.templates import POLICY_CONFIGMAP

    try:
        text, _ = trusted_policy_text(root, config_path, ref)
    except PolicyError as exc:
        _fail(exc.lines, 2)
    return {POLICY_CONFIGMAP: {"pipeline.yaml": text}}


def _parse_params(values: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{v}' is not key=value", param_hint="-p")
        out[key.strip()] = value
    return out


def to_yaml(doc: Any) -> str:
    """Return the stable YAML form every dumped manifest uses (key order as built, block style)."""
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def dump_manifests(out: Path, settings: Any, profile: str = "cluster") -> list[Path]:
    """Write every WorkflowTemplate, the Argo Events manifests and the pipeline-config ConfigMap to ``out``.

    Returns the written files, sorted. One document per file, named ``<name>.yaml``
    (events and the ConfigMap: ``<kind>-<name>.yaml``), written atomically. The ConfigMap holds
    the pipeline config with ``profile`` applied (config/profiles/): what step pods read.
    Raises ConfigError for an invalid profile.
    """
    from config.profiles import apply_profile
    from workflows.cluster_config import pipeline_config_map
    from workflows.events import build_event_manifests, manifest_filename
    from workflows.templates import compile_templates

    files: list[tuple[str, Any]] = [(f"{m['metadata']['name']}.yaml", m) for m in compile_templates(settings)]
    files += [(manifest_filename(doc), doc) for doc in build_event_manifests(settings.pipeline)]
    config_map = pipeline_config_map(apply_profile(settings.pipeline, profile))
    files.append((manifest_filename(config_map), config_map))
    written = []
    for name, doc in files:
        atomic_write(out / name, to_yaml(doc))
        written.append(out / name)
    return sorted(written)


def lint_files(paths: Iterable[Path], schema: Path | None) -> list[Problem]:
    """Return the problems of every Argo manifest in the given files/directories.

    Workflows, WorkflowTemplates, ClusterWorkflowTemplates and CronWorkflows are linted; so is the
    Workflow each Sensor's ``argoWorkflow`` trigger submits, against the WorkflowTemplates found in
    the same paths. Other kinds (RBAC, ConfigMaps, EventSources) are not Argo Workflows' to check.
    """
    from config.yamlio import LoadError, parse_text
    from workflows.argo.lint import lint_manifest

    files: list[Path] = []
    for p in paths:
        files += sorted(x for x in p.rglob("*") if x.suffix in {".yaml", ".yml"}) if p.is_dir() else [p]
    problems: list[Problem] = []
    docs = []
    for f in files:
        for i, chunk in enumerate(f.read_text().split("\n---\n")):
            if not chunk.strip():
                continue
            try:
                loaded = parse_text(chunk, f"{f}" if i == 0 else f"{f}#{i}")
            except LoadError as exc:
                problems += exc.problems
                continue
            if isinstance(loaded.data, dict) and str(loaded.data.get("apiVersion", "")).startswith("argoproj.io/"):
                docs.append(loaded)
    known = {d.data["metadata"]["name"]: d.data for d in docs if d.data.get("kind") == "WorkflowTemplate"
             and isinstance(d.data.get("metadata"), dict) and isinstance(d.data["metadata"].get("name"), str)}
    for loaded in docs:
        doc = loaded.data
        if doc.get("kind") in {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}:
            problems += lint_manifest(doc, loaded=loaded, schema=schema, known_templates=known)
        elif doc.get("kind") == "Sensor" and isinstance(doc.get("spec"), dict):
            for j, trigger in enumerate(doc["spec"].get("triggers") or []):
                resource = _dig(trigger, "template", "argoWorkflow", "source", "resource")
                if isinstance(resource, dict) and resource.get("kind") == "Workflow":
                    at = ("spec", "triggers", j, "template", "argoWorkflow", "source", "resource")
                    problems += lint_manifest(resource, loaded=loaded, schema=schema, known_templates=known, at=at)
    return problems


def _dig(obj: Any, *keys: str) -> Any:
    """Return ``obj[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _target(host: str | None, namespace: str | None, token: str | None, insecure: bool) -> Any:
    from workflows.argo.client import ArgoConfigError, ArgoTarget

    try:
        return ArgoTarget.resolve(host, namespace, token, True if insecure else None)
    except ArgoConfigError as exc:
        _fail([str(exc)], 2)


def _argo_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--argo-server", "host", help="Argo Server URL [env ARGO_SERVER]"),
        click.option("--namespace", "-n", help="namespace [env ARGO_NAMESPACE, default argo]"),
        click.option("--token", help="bearer token [env ARGO_TOKEN]; prefer the env var, it is never printed"),
        click.option("--insecure-skip-verify", "insecure", is_flag=True,
                     help="do not verify the server's TLS certificate [env ARGO_INSECURE_SKIP_VERIFY]"),
    ]):
        f = opt(f)
    return f


config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                             help="pipeline config (default: config/pipeline.yaml)")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """promptci pipelines: dump, lint, register and submit the Argo WorkflowTemplates, or run them locally.

    With no command and no Argo server configured (ARGO_SERVER unset), runs the pipelines locally.
    """
    if ctx.invoked_subcommand is None:
        if os.environ.get("ARGO_SERVER"):
            click.echo(ctx.get_help())
            click.echo("\nARGO_SERVER is set: choose `submit` (on Argo) or `run` (locally).", err=True)
            ctx.exit(2)
        ctx.invoke(run_cmd)


@cli.command("dump")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="directory to write the manifests to")
@click.option("--profile", default="cluster", show_default=True,
              help="config profile for the promptci-pipeline-config ConfigMap (a name in config/profiles/ "
                   "or a file)")
@config_option
def dump_cmd(out: Path, profile: str, config_path: str | None) -> None:
    """Write every WorkflowTemplate and the pipeline-config ConfigMap (one YAML file each) to --out."""
    try:
        paths = dump_manifests(out, _settings(config_path), profile)
    except ConfigError as exc:
        _fail(p.format() for p in exc.problems)
    for path in paths:
        click.echo(str(path))


@cli.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--schema", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Argo Workflows schema.json [env PROMPTCI_ARGO_SCHEMA; default: the packaged v4.1.2 schema]")
@config_option
def lint_cmd(paths: tuple[Path, ...], schema: Path | None, config_path: str | None) -> None:
    """Check templates offline like `argo lint`: references, cycles, names, variables, parameters, schema.

    Without PATHS, lints the templates as compiled from the code.
    """
    from workflows.argo.lint import lint_manifest
    from workflows.argo.schema import SchemaError
    from workflows.templates import compile_templates

    try:
        if paths:
            problems = lint_files(paths, schema)
        else:
            problems = [p for m in compile_templates(_settings(config_path))
                        for p in lint_manifest(m, schema=schema)]
    except SchemaError as exc:
        _fail([f"lint: {exc}"], 2)
    if problems:
        click.echo(render(problems))
    if has_errors(problems):
        sys.exit(1)
    click.echo("lint: ok")


@cli.command("register")
@_argo_options
@click.option("--instanceid", "instance_id", help="the controller's instance id [env ARGO_INSTANCEID]; "
                                                  "promptci refuses one (see docs/pipelines.md)")
@config_option
@click.option("--trusted-ref", "ref", default=None,
              help="ref the policy is read from without --config [env PROMPTCI_TRUSTED_REF; default origin/main, "
                   "else main]")
@click.option("--profile", default="cluster", show_default=True,
              help="config profile the step pods get on top of the trusted gates (config/profiles/): "
                   "where the store and the GitOps remote are")
def register_cmd(host: str | None, namespace: str | None, token: str | None, insecure: bool,
                 instance_id: str | None, config_path: str | None, ref: str | None, profile: str) -> None:
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
    from workflows.argo.client import (
        ArgoConfigError,
        KubeConfigError,
        apply_configmap,
        exit_code_for,
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
        _fail([f"register: {exc}"], 2)
    target = _target(host, namespace, token, insecure)
    try:
        source = trusted_policy_text(Path.cwd(), config_path, ref)[1]
        config = load_trusted(Path.cwd(), config_path, ref)[0]
        apply_profile(config, profile)  # a bad profile stops here, before any request
    except PolicyError as exc:
        _fail(exc.lines, 2)
    except ConfigError as exc:
        _fail([f"register: profile {profile}: {exc}"], 2)
    manifests = compile_templates(_settings_for(config))
    try:
        problems = [p for m in manifests for p in lint_manifest(m)]
    except SchemaError as exc:
        _fail([f"register: {exc}"], 2)
    if has_errors(problems):
        _fail([render(problems), "register: not registering templates that fail lint"])
    try:
        action = apply_configmap(pipeline_config_map(apply_profile(config, profile), namespace=target.namespace,
                                                     source=source))
        click.echo(f"{action} ConfigMap {target.namespace}/promptci-pipeline-config from {source}")
        for name, action in register_templates(target, manifests):
            click.echo(f"{action} WorkflowTemplate {target.namespace}/{name}")
    except KubeConfigError as exc:
        _fail([f"register: {exc}"], 2)
    except (HeraException, OSError) as exc:
        _fail([f"register: {type(exc).__name__}: {exc}"], exit_code_for(exc))


@cli.command("submit")
@click.argument("artifact_type", type=click.Choice(TYPES))
@click.option("-p", "--parameter", "params", multiple=True, help="workflow parameter key=value (repeatable)")
@click.option("--wait", is_flag=True, help="follow the workflow; exit non-zero unless it succeeded")
@click.option("--timeout", default=3600, show_default=True, help="seconds to wait with --wait")
@click.option("--interval", default=5.0, show_default=True, help="poll interval with --wait")
@_argo_options
@config_option
def submit_cmd(artifact_type: str, params: tuple[str, ...], wait: bool, timeout: int, interval: float,
               host: str | None, namespace: str | None, token: str | None, insecure: bool,
               config_path: str | None) -> None:
    """Create a Workflow from the promptci-ARTIFACT_TYPE WorkflowTemplate and print its UI link."""
    from hera.exceptions import HeraException

    from workflows.argo.client import exit_code_for, missing_parameters, submit_workflow, wait_for
    from workflows.templates import build_template

    values = _parse_params(params)
    manifest = build_template(ArtifactType(artifact_type), _settings(config_path)).to_dict()
    declared = [p["name"] for p in manifest["spec"]["arguments"]["parameters"]]
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise click.BadParameter(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(declared)}",
                                 param_hint="-p")
    missing = missing_parameters(manifest, values)
    if missing:
        raise click.BadParameter(f"{', '.join(missing)} has no default; pass " +
                                 " ".join(f"-p {m}=..." for m in missing), param_hint="-p")
    target = _target(host, namespace, token, insecure)
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
        _fail([f"submit: {type(exc).__name__}: {exc}"], exit_code_for(exc))
    click.echo(f"{name}: {phase}")
    if phase != "Succeeded":
        sys.exit(1)


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


@cli.command("run")
@click.argument("artifact_types", nargs=-1, type=click.Choice(TYPES))
@click.option("-p", "--parameter", "params", multiple=True, help="workflow parameter key=value (repeatable)")
@click.option("--approve", is_flag=True,
              help="approve manual-approval gates at once (without it a suspend waits for `resume RUN_ID`)")
@click.option("--no-cache", is_flag=True, help="re-run every eval branch (same as -p no-cache=true)")
@click.option("--parallelism", type=click.IntRange(1, 64), help="max concurrent steps (default: the cores)")
@click.option("--run-id", help="run id (default: generated); one directory per run under .promptci/runs")
@click.option("--repo", "repo", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
              help="the source checkout (default: current directory)")
@click.option("--executor", type=click.Choice(["process", "container"]), default="process", show_default=True,
              help="process: each step a subprocess on this checkout (fast); container: each step in its own "
                   "container from the step image, as its pod would run (make image first)")
@click.option("--configmaps-dir", type=click.Path(file_okay=False, path_type=Path),
              help="container executor: ConfigMaps as <dir>/<name>/<key> "
                   "[default: <repo>/.promptci/cluster/configmaps]")
@click.option("--secrets-dir", type=click.Path(file_okay=False, path_type=Path),
              help="container executor: Secrets as <dir>/<name>/<key> [default: <repo>/.promptci/cluster/secrets]")
@config_option
@click.option("--trusted-ref", "trusted_ref", default=None,
              help="ref the policy is read from without --config [env PROMPTCI_TRUSTED_REF; default origin/main, "
                   "else main]")
def run_cmd(artifact_types: tuple[str, ...] = (), params: tuple[str, ...] = (), approve: bool = False,
            no_cache: bool = False, parallelism: int | None = None, run_id: str | None = None,
            repo: Path = Path("."), executor: str = "process", configmaps_dir: Path | None = None,
            secrets_dir: Path | None = None, config_path: str | None = None,
            trusted_ref: str | None = None) -> None:
    """Run pipelines locally by executing the compiled WorkflowTemplate(s).

    Without ARTIFACT_TYPES, runs every type whose artifact directory exists in the repo.
    With --executor container every step runs in a container that sees only what its pod would:
    a fresh clone of the committed revision, the Secrets and ConfigMaps of the two directories
    (docs/pipelines.md), and the services on this host (S3, GitOps remote, Pushgateway).
    """
    settings = _settings(config_path)
    values = _parse_params(params)
    if no_cache:
        values["no-cache"] = "true"
    root = repo.resolve()
    chosen = list(artifact_types) or [t for t in TYPES if (root / settings.pipeline.artifact_dirs.get(
        t, ArtifactType(t).default_dir)).exists()]
    if not chosen:
        _fail([f"run: no artifact directories found in {root}"])
    configmaps = _policy_configmap(root, config_path, trusted_ref)
    env = {k: v for k, v in os.environ.items() if k != "PROMPTCI_CONFIG"}  # the mounted policy says it
    from steps.providers.local_model import LocalModelError, serving_for_run

    try:  # PROMPTCI_PROVIDER=local: one model server for the whole run, stopped at its end
        with serving_for_run(env, root / ".promptci" / "local-model.log"):
            failed = _run_types(chosen, settings, values, root, run_id, approve, parallelism, env, configmaps,
                                lambda: _executor(executor, root, configmaps_dir, secrets_dir))
    except LocalModelError as exc:
        _fail([f"run: {exc}"], 2)
    if failed:
        sys.exit(1)


def _run_types(chosen: list[str], settings: Any, values: dict[str, str], root: Path, run_id: str | None,
               approve: bool, parallelism: int | None, env: dict[str, str], configmaps: Any,
               new_executor: Callable[[], Any]) -> list[str]:
    """Run the pipeline of each artifact type in turn (a new executor for each run); return the failed types."""
    from workflows.runner.progress import print_summary
    from workflows.runner.scheduler import RunError, UnsupportedFeature, new_run_id, record_metrics, run_template
    from workflows.templates import build_template

    failed = []
    for i, t in enumerate(chosen):
        manifest = build_template(ArtifactType(t), settings).to_dict()
        rid = f"{run_id}-{t}" if run_id and len(chosen) > 1 else (run_id or f"{new_run_id()}-{t}")
        try:
            result = run_template(manifest, {"repo-url": str(root), **values}, repo_root=root, run_id=rid,
                                  approve=approve, parallelism=parallelism, progress=True, env=env,
                                  configmaps=configmaps,
                                  executor=new_executor())
        except (RunError, UnsupportedFeature) as exc:
            _fail([f"run: {exc}"])
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


def _executor(kind: str, root: Path, configmaps_dir: Path | None, secrets_dir: Path | None) -> Any:
    """Return the executor ``run`` hands every step to (None: the scheduler's default process executor)."""
    if kind == "process":
        if configmaps_dir or secrets_dir:
            raise click.BadParameter("only the container executor reads them",
                                     param_hint="--configmaps-dir/--secrets-dir")
        return None
    from workflows.runner.container import DEFAULT_CONFIGMAPS_DIR, DEFAULT_SECRETS_DIR, ContainerExecutor

    return ContainerExecutor(configmaps_dir or root / DEFAULT_CONFIGMAPS_DIR, secrets_dir or root / DEFAULT_SECRETS_DIR)


def _control(action: str, run_id: str, repo: Path, host: str | None, namespace: str | None, token: str | None,
             insecure: bool) -> None:
    """Resume or stop a local run (its directory exists) or, failing that, a workflow on the Argo Server."""
    from workflows.cli.control import ControlError, control_local, control_server, local_run_dir

    run_dir = None if host else local_run_dir(repo.resolve(), run_id)
    if run_dir is None and not (host or os.environ.get("ARGO_SERVER")):
        _fail([f"{action}: no local run '{run_id}' under {repo.resolve() / '.promptci' / 'runs'} "
               "and no Argo server (--argo-server or ARGO_SERVER)"], 2)
    try:
        if run_dir is not None:
            click.echo(control_local(run_dir, action))  # type: ignore[arg-type]
        else:
            click.echo(control_server(_target(host, namespace, token, insecure), run_id, action))  # type: ignore[arg-type]
    except ControlError as exc:
        _fail([f"{action}: {exc}"], 2)
    except Exception as exc:  # noqa: BLE001 - a server error is reported on one line, never a traceback
        first = (str(exc).splitlines() or [""])[0]
        _fail([f"{action}: {type(exc).__name__}: {first}"], 2)


def _control_command(action: str, summary: str) -> None:
    """Add the ``resume`` or ``stop`` command (they differ only in the action)."""

    @cli.command(action, help=summary)
    @click.argument("run_id")
    @click.option("--repo", "repo", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
                  help="the checkout the local run runs in (default: current directory)")
    @_argo_options
    def command(run_id: str, repo: Path, host: str | None, namespace: str | None, token: str | None,
                insecure: bool) -> None:
        _control(action, run_id, repo, host, namespace, token, insecure)


_control_command("resume", "Resume the suspended step(s) of a run: a local run id, or a workflow on the Argo Server.")
_control_command("stop", "Stop a run as `argo stop` does: kill running steps, start nothing new, run the exit handler.")


def _mount_commands() -> None:
    """Add the promote (promote, rollback, status) and trigger (serve) commands to the group."""
    from workflows.cli.promote import promote_cmd, rollback_cmd, status_cmd
    from workflows.cli.serve import serve

    for cmd in (promote_cmd, rollback_cmd, status_cmd, serve):
        cli.add_command(cmd)


_mount_commands()

if __name__ == "__main__":
    cli()
