"""The runner's lifecycle: nothing a run started outlives it, whatever way the runner ends.

* Every step process carries the runner's *token* (``pid:starttime`` of the runner, in
  ``$PROMPTCI_RUNNER_TOKEN``, inherited by every descendant, promptfoo included) and runs in its own
  process group; the process executor kills the group when the step ends or the run is cancelled.
* Every container carries the token as the label ``promptci.runner`` and the run id as ``promptci.run``.
* SIGTERM is turned into the same cancellation as Ctrl-C (:func:`terminate_as_interrupt`).
* SIGKILL cannot be caught: the direct child dies with the runner (``setpriv --pdeathsig KILL``,
  when util-linux has it), and the next run reaps the rest (:func:`reap_strays`): processes and
  containers whose runner token is dead, and run directories left without a ``run.json``.

The token includes the process start time so a recycled pid is never mistaken for a live runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from steps.atomic import atomic_write

TOKEN_ENV = "PROMPTCI_RUNNER_TOKEN"
RUNNER_LABEL = "promptci.runner"
RUN_LABEL = "promptci.run"
STATE_FILE = "runner.json"
RESULT_FILE = "run.json"


def _start_time(pid: int) -> str | None:
    """Return the start time (clock ticks since boot) of ``pid``, or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), counted after "comm"


def runner_token(pid: int | None = None) -> str:
    """Return ``pid:starttime`` identifying this (or ``pid``'s) process for as long as it lives."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}"


def token_alive(token: str) -> bool:
    """Return True when the process that ``token`` names is still running (and is the same process)."""
    pid, _, start = token.partition(":")
    return pid.isdigit() and _start_time(int(pid)) == start


def pdeathsig_prefix() -> list[str]:
    """Return the argv prefix that kills a child when the runner dies (empty when setpriv is absent)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def processes_with_token(token: str | None = None) -> dict[int, str]:
    """Return ``{pid: token}`` of every process carrying a runner token (only ``token``'s when given)."""
    found = {}
    marker = TOKEN_ENV.encode() + b"="
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        for var in environ.split(b"\0"):
            if var.startswith(marker):
                value = var[len(marker):].decode(errors="replace")
                if token is None or value == token:
                    found[int(entry.name)] = value
                break
    return found


def kill_processes(pids: list[int]) -> None:
    """SIGKILL each pid (gone ones are fine)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid`` (an empty group is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def podman_available() -> bool:
    """Return True when podman is installed (containers can exist to be reaped)."""
    return shutil.which("podman") is not None


def containers_with_label(label: str, value: str | None = None) -> dict[str, str]:
    """Return ``{container id: label value}`` of every container (running or not) with ``label``."""
    if not podman_available():
        return {}
    flt = f"label={label}" + (f"={value}" if value is not None else "")
    out = subprocess.run(["podman", "ps", "-a", "--filter", flt, "--format",
                          "{{.ID}} {{index .Labels \"" + label + "\"}}"],
                         capture_output=True, text=True, check=False, timeout=60)
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def remove_containers(ids: list[str]) -> None:
    """Force-remove the containers ``ids`` (kill if running); missing ones are fine."""
    if ids:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], capture_output=True, check=False, timeout=120)


def write_state(run_dir: Path, run_id: str, executor: str, containers: bool) -> None:
    """Record in ``run_dir`` which runner owns the run (removed when the run ends cleanly)."""
    atomic_write(run_dir / STATE_FILE, json.dumps({"run_id": run_id, "token": runner_token(),
                                                   "executor": executor, "containers": containers,
                                                   "started": time.time()}))


def clear_state(run_dir: Path) -> None:
    """Remove the ownership record of a run that ended (its ``run.json`` is written)."""
    with contextlib.suppress(FileNotFoundError):
        (run_dir / STATE_FILE).unlink()


def reap_containers() -> list[str]:
    """Remove every container (on this machine) whose runner is dead; return what was done."""
    dead = [cid for cid, t in containers_with_label(RUNNER_LABEL).items() if not token_alive(t)]
    remove_containers(dead)
    return [f"removed {len(dead)} stray container(s) of dead runner(s)"] if dead else []


def reap_strays(runs_dir: Path | None, containers: bool = False) -> list[str]:
    """Clean up after runners that died without doing so (SIGKILL, power loss); return what was done.

    Kills every process whose runner token is dead (on this whole machine: tokens of live
    runners are never touched); with ``containers`` (a container run is starting) removes every
    container whose runner is dead, and in any case those of a dead container run in ``runs_dir``;
    gives every run in ``runs_dir`` whose runner is dead and that has no ``run.json`` one with
    status ``Error``, so no run is left half recorded.
    """
    done = []
    stray = {pid: t for pid, t in processes_with_token().items() if not token_alive(t)}
    if stray:
        kill_processes(list(stray))
        done.append(f"killed {len(stray)} stray step process(es) of dead runner(s)")
    if containers:
        done += reap_containers()
    for state in sorted(runs_dir.glob(f"*/{STATE_FILE}")) if runs_dir and runs_dir.is_dir() else []:
        try:
            owner = json.loads(state.read_text())
        except (OSError, ValueError):
            owner = {}
        if token_alive(str(owner.get("token", ""))):
            continue
        run_dir = state.parent
        if owner.get("containers"):
            left = list(containers_with_label(RUN_LABEL, run_dir.name))
            remove_containers(left)
            done += [f"removed {len(left)} container(s) of run {run_dir.name}"] if left else []
        if not (run_dir / RESULT_FILE).exists():
            atomic_write(run_dir / RESULT_FILE, json.dumps({
                "run_id": run_dir.name, "status": "Error", "nodes": [], "tasks": {},
                "message": f"interrupted: the runner ({owner.get('token', '?')}) died before the run ended; "
                           f"reaped by runner {runner_token()}"}, indent=2))
            done.append(f"marked run {run_dir.name} as interrupted")
        clear_state(run_dir)
    return done


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so the run cancels and records itself like on Ctrl-C."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
