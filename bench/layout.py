"""The pipeline's process layout, read from the compiled WorkflowTemplate (never hard-coded).

Which tasks the DAG has, which one fans out and over whose output, which templates are pods:
the benches ask these of the manifest ``submit.py run`` would execute, so they measure the
layout as it is (one eval branch per item, or one per shard) rather than as it was when they
were written.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TASK_OUTPUT = re.compile(r"\{\{\s*tasks\.([\w-]+)\.outputs\.parameters\.([\w-]+)\s*\}\}")


def compiled(artifact_type: str = "prompt") -> dict[str, Any]:
    """Return the manifest ``submit.py run`` executes for ``artifact_type`` (the project's settings)."""
    from config.artifacts import ArtifactType
    from workflows.templates import PipelineSettings, build_template

    return build_template(ArtifactType(artifact_type), PipelineSettings.load()).to_dict()


def templates(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the manifest's templates by name."""
    return {t["name"]: t for t in manifest["spec"]["templates"]}


def entry_tasks(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the tasks of the entrypoint DAG by name, in the manifest's order."""
    entry = templates(manifest)[manifest["spec"]["entrypoint"]]
    return {t["name"]: t for t in entry["dag"]["tasks"]}


def is_pod(template: Mapping[str, Any]) -> bool:
    """Return whether running ``template`` creates a pod (a script or container; not a suspend or DAG)."""
    return "script" in template or "container" in template


def fanout(manifest: Mapping[str, Any]) -> tuple[str, str, str]:
    """Return (fan-out task, the task whose output it fans out over, that output's name).

    Raises ValueError when the DAG has no ``withParam`` task over a task output.
    """
    for name, task in entry_tasks(manifest).items():
        m = TASK_OUTPUT.search(str(task.get("withParam", "")))
        if m:
            return name, m.group(1), m.group(2)
    raise ValueError("the pipeline DAG has no withParam task over a task's output")


def upstream(manifest: Mapping[str, Any], name: str) -> list[str]:
    """Return ``name`` and every task it depends on, transitively, in the manifest's order."""
    from workflows.runner.expr import depends_names

    tasks = entry_tasks(manifest)
    seen: set[str] = set()
    todo = [name]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        task = tasks[t]
        todo += depends_names(task["depends"]) if "depends" in task else list(task.get("dependencies", []))
    return [t for t in tasks if t in seen]


def truncated(manifest: Mapping[str, Any], keep: list[str]) -> dict[str, Any]:
    """Return ``manifest`` with only the tasks ``keep`` in its DAG, and no exit handler or metrics."""
    spec = json.loads(json.dumps(manifest["spec"]))
    entry = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])
    entry["dag"]["tasks"] = [t for t in entry["dag"]["tasks"] if t["name"] in keep]
    for key in ("onExit", "metrics"):
        spec.pop(key, None)
    return {**manifest, "spec": spec}


def pods(manifest: Mapping[str, Any], widths: Mapping[str, int]) -> dict[str, int]:
    """Return the pods each task (and the exit handler) would create on Argo.

    ``widths`` gives each fan-out task's width (the length of the list it fans out over);
    a suspend (approval) creates none, the exit handler one. Retries are not counted.
    """
    tpls = templates(manifest)
    out: dict[str, int] = {}
    for name, task in entry_tasks(manifest).items():
        if is_pod(tpls[task["template"]]):
            out[name] = widths[name] if ("withParam" in task or "withItems" in task) else 1
    exit_handler = manifest["spec"].get("onExit")
    if exit_handler and is_pod(tpls[exit_handler]):
        out[exit_handler] = 1
    return out


def stage_templates(manifest: Mapping[str, Any]) -> list[str]:
    """Return the names of the templates that run as pods (the stages), in the manifest's order."""
    return [name for name, t in templates(manifest).items() if is_pod(t)]
