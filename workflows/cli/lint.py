"""``promptci lint``: check Argo manifests offline like ``argo lint`` (files, or the templates as compiled)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from config.problems import Problem, exit_code, render
from steps.exit_codes import ExitCode
from workflows.cli.options import config_option, fail, format_option
from workflows.cli.pipeline import template_settings


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


@click.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--schema", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Argo Workflows schema.json [env PROMPTCI_ARGO_SCHEMA; default: the packaged v4.1.2 schema]")
@config_option
@format_option
def lint_cmd(paths: tuple[Path, ...], schema: Path | None, config_path: Path | None, fmt: str) -> None:
    """Check templates offline like `argo lint`: references, cycles, names, variables, parameters, schema.

    Without PATHS, lints the templates as compiled from the code. Exit 1 on any error.
    """
    from workflows.argo.lint import lint_manifest
    from workflows.argo.schema import SchemaError
    from workflows.templates import compile_templates

    try:
        if paths:
            problems = lint_files(paths, schema)
        else:
            problems = [p for m in compile_templates(template_settings(config_path))
                        for p in lint_manifest(m, schema=schema)]
    except SchemaError as exc:
        fail([f"lint: {exc}"], ExitCode.USAGE)
    if fmt == "json":
        click.echo(render(problems, "json"))
    elif problems:
        click.echo(render(problems))
    code = exit_code(problems)
    if code:
        raise SystemExit(code)
    if fmt == "text":
        click.echo("lint: ok")


__all__ = ["lint_cmd", "lint_files"]
