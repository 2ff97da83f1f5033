"""Resume or stop a local run from another process: the local ``argo resume`` / ``argo stop``.

A running run keeps ``<run dir>/control/``:

* ``pid``: the runner's process id (the run is live while that process is and ``run.json``
  is not written yet);
* ``suspended.json``: the suspend nodes waiting right now;
* ``resume.json``: the nodes a ``resume`` released, written by :func:`request_resume`;
* ``stop``: written by :func:`request_stop`.

Argo's semantics (workflow/util/util.go ``ResumeWorkflow``): resume marks every suspend
node that is active *now* Succeeded; it does nothing to a suspend node reached later, and
resuming a run with none waiting is not an error. ``stop`` is the Stop shutdown strategy:
running steps are killed, nothing new starts, the exit handler still runs, the run fails.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from steps.atomic import atomic_write


class ControlError(Exception):
    """The run does not exist or is not running (one line, for the CLI)."""


class RunControl:
    """The control directory of one run (both sides: the runner and the CLI)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.dir = run_dir / "control"
        self._lock = threading.Lock()
        self._waiting: set[str] = set()

    # -- the runner's side ------------------------------------------------------

    def open(self) -> None:
        """Mark the run live (this process)."""
        atomic_write(self.dir / "pid", str(os.getpid()))

    def waiting(self, node: str, active: bool) -> None:
        """Add or remove a suspend node from ``suspended.json``."""
        with self._lock:
            (self._waiting.add if active else self._waiting.discard)(node)
            atomic_write(self.dir / "suspended.json", json.dumps(sorted(self._waiting)))

    def resumed(self, node: str) -> bool:
        """Return whether a ``resume`` released ``node``."""
        return node in _read_list(self.dir / "resume.json")

    def stop_requested(self) -> bool:
        """Return whether a ``stop`` was requested."""
        return (self.dir / "stop").exists()

    # -- the CLI's side ---------------------------------------------------------

    def live(self) -> bool:
        """Return whether the run is still running (its runner process is alive, no run.json yet)."""
        try:
            pid = int((self.dir / "pid").read_text())
        except (OSError, ValueError):
            return False
        if (self.run_dir / "run.json").exists():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _read_list(path: Path) -> list[str]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def _live_control(run_dir: Path) -> RunControl:
    control = RunControl(run_dir)
    if not run_dir.is_dir():
        raise ControlError(f"no local run at {run_dir}")
    if not control.live():
        raise ControlError(f"run {run_dir.name} is not running (see {run_dir / 'run.json'})")
    return control


def request_resume(run_dir: Path) -> list[str]:
    """Release every suspend node of a live run waiting now; return their names (may be empty).

    Raises ControlError when the run does not exist or is not running.
    """
    control = _live_control(run_dir)
    waiting = _read_list(control.dir / "suspended.json")
    released = sorted(set(_read_list(control.dir / "resume.json")) | set(waiting))
    atomic_write(control.dir / "resume.json", json.dumps(released))
    return waiting


def request_stop(run_dir: Path) -> None:
    """Ask a live run to stop (Argo's Stop strategy). Raises ControlError when it is not running."""
    control = _live_control(run_dir)
    atomic_write(control.dir / "stop", "Stop")
