"""``promptci resume RUN_ID`` / ``promptci stop RUN_ID``: release a suspended approval step, or stop a run.

A local run (its directory under ``<repo-root>/.promptci/runs`` exists) is driven through its
control directory (``workflows/runner/control.py``). Otherwise the Argo Server is asked:
``PUT /api/v1/workflows/{namespace}/{name}/resume`` or ``.../stop`` with a
``WorkflowResumeRequest`` / ``WorkflowStopRequest`` body (paths and bodies as in
Argo's ``swagger.json``; tests check them against ../shared/schemas/argo-workflows).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import click

from steps.exit_codes import ExitCode, remote_exit_code
from workflows.cli.options import argo_options, argo_target, fail, repo_root_option
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


def control(action: Action, run_id: str, repo_root: Path, host: str | None, namespace: str | None,
            token: str | None, insecure: bool) -> None:
    """Resume or stop a local run (its directory exists) or, failing that, a workflow on the Argo Server.

    Exit 2 when there is neither; a failed request is one line (never a traceback) and exits as
    steps/exit_codes.py says: 1 refused by the server, 75 unreachable or busy.
    """
    run_dir = None if host else local_run_dir(repo_root.resolve(), run_id)
    if run_dir is None and not (host or os.environ.get("ARGO_SERVER")):
        fail([f"{action}: no local run '{run_id}' under {repo_root.resolve() / DEFAULT_RUNS_DIR} "
              "and no Argo server (--argo-server or ARGO_SERVER)"], ExitCode.USAGE)
    try:
        if run_dir is not None:
            click.echo(control_local(run_dir, action))
        else:
            click.echo(control_server(argo_target(host, namespace, token, insecure), run_id, action))
    except ControlError as exc:
        fail([f"{action}: {exc}"], ExitCode.USAGE)
    except Exception as exc:  # noqa: BLE001 - a server error is reported on one line, never a traceback
        from hera.exceptions import HeraException

        first = (str(exc).splitlines() or [""])[0]
        remote = isinstance(exc, HeraException | OSError)
        fail([f"{action}: {type(exc).__name__}: {first}"], remote_exit_code(exc) if remote else ExitCode.USAGE)


def _control_command(action: Action, summary: str) -> click.Command:
    """Return the ``resume`` or ``stop`` command (they differ only in the action)."""

    @click.command(action, help=summary)
    @click.argument("run_id")
    @repo_root_option("the checkout the local run runs in (default: current directory)")
    @argo_options
    def command(run_id: str, repo_root: Path, host: str | None, namespace: str | None, token: str | None,
                insecure: bool) -> None:
        control(action, run_id, repo_root, host, namespace, token, insecure)

    return command


resume_cmd = _control_command(
    "resume", "Resume the suspended step(s) of a run: a local run id, or a workflow on the Argo Server.")
stop_cmd = _control_command(
    "stop", "Stop a run as `argo stop` does: kill running steps, start nothing new, run the exit handler.")

__all__ = ["ControlError", "control", "control_local", "control_server", "local_run_dir", "resume_cmd", "stop_cmd"]
