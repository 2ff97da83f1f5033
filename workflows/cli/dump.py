"""``promptci dump``: write every WorkflowTemplate, the Argo Events manifests and the config ConfigMap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from steps.atomic import atomic_write
from steps.exit_codes import ExitCode
from workflows.cli.options import config_option, fail
from workflows.cli.pipeline import template_settings


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


@click.command("dump")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="directory to write the manifests to")
@click.option("--profile", default="cluster", show_default=True,
              help="config profile for the promptci-pipeline-config ConfigMap (a name in config/profiles/ "
                   "or a file)")
@config_option
def dump_cmd(out: Path, profile: str, config_path: Path | None) -> None:
    """Write every WorkflowTemplate and the pipeline-config ConfigMap (one YAML file each) to --out."""
    from config.pipeline import ConfigError

    try:
        paths = dump_manifests(out, template_settings(config_path), profile)
    except ConfigError as exc:
        fail((p.format() for p in exc.problems), ExitCode.USAGE)
    for path in paths:
        click.echo(str(path))


__all__ = ["dump_cmd", "dump_manifests", "to_yaml"]
