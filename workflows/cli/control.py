"""``resume RUN_ID`` / ``stop RUN_ID``: release a suspended approval step, or stop a run.

A local run (its directory under ``<repo>/.promptci/runs`` exists) is driven through its
control directory (``workflows/runner/control.py``). Otherwise the Argo Server is asked:
``PUT /api/v1/workflows/{namespace}/{name}/resume`` or ``.../stop`` with a
``WorkflowResumeRequest`` / ``WorkflowStopRequest`` body (paths and bodies as in
Argo's ``swagger.json``; tests check them against ../shared/schemas/argo-workflows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from workflows.runner.control import ControlError, request_resume, request_stop
from workflows.runner.scheduler import DEFAULT_RUNS_DIR

Action = Literal["resume", "stop"]


def local_run_dir(repo: Path, run_id: str) -> Path | None:
    """Return the directory of local run ``run_id`` under ``repo``, or None when there is none."""
    if "/" in run_id or run_id in {"", ".", ".."}:
        return None
    path = (repo / DEFAULT_RUNS_DIR / run_id).resolve()
    return path if path.is_dir() else None


def control_local(run_dir: Path, action: Action) -> str:
    """Resume or stop a live local run; return what was done (one line). Raises ControlError."""
    if action == "stop":
        request_stop(run_dir)
        return f"run {run_dir.name}: stop requested (running steps are killed, the exit handler runs)"
    released = request_resume(run_dir)
    if not released:
        return f"run {run_dir.name}: no step is suspended right now; nothing resumed"
    return f"run {run_dir.name}: resumed {', '.join(released)}"


def control_server(target: Any, name: str, action: Action) -> str:
    """Resume or stop workflow ``name`` on the Argo Server; return what was done (one line).

    Raises whatever Hera raises for an HTTP error (the caller reports it on one line).
    """
    from hera.workflows.models import WorkflowResumeRequest, WorkflowStopRequest

    with target.service() as svc:
        if action == "resume":
            svc.resume_workflow(name, WorkflowResumeRequest(name=name, namespace=target.namespace),
                                namespace=target.namespace)
        else:
            svc.stop_workflow(name, WorkflowStopRequest(name=name, namespace=target.namespace),
                              namespace=target.namespace)
    return f"workflow {target.namespace}/{name}: {action} requested"


__all__ = ["ControlError", "control_local", "control_server", "local_run_dir"]
