"""Executors: how one attempt of one script node runs, behind one small interface.

The scheduler (``scheduler.py``) decides *what* runs and *when*: DAG order, retries,
fan-out, deadlines of the workflow, phases. An :class:`Executor` runs *one attempt* of
one script node, the part Argo hands to a pod, and reports what the pod would report:
exit code, output parameters, stdout, logs, start and finish times.

* :class:`ProcessExecutor` runs the step as a subprocess of this interpreter (the template's
  command and args, as the pod runs them: ``python -P -m workflows.stage_entry ...``), the
  ``git`` input artifact mapped to the local checkout and every other container path into
  the attempt's directory.
* A container executor (workflows/runner/container.py, another change) runs the same
  request in a container as Argo's pod would.

The contract both honour is :class:`StepRequest` in, :class:`StepResult` out;
:func:`collect_outputs` and :func:`step_phase` are the rules they share.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from steps.atomic import atomic_write
from workflows.runner import lifecycle

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Cancellation(threading.Event):
    """Set when the run is over early (workflow deadline, ``stop``, Ctrl-C); ``reason`` says why.

    The reason is the node message Argo gives running steps (exec_control.go
    applyExecutionControl): "Step exceeded its deadline" or "workflow shutdown with strategy:  Stop".
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        """Set the event with ``reason`` (the first reason wins)."""
        if not self.is_set():
            self.reason = reason
        self.set()


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares; built once by the scheduler."""

    run_id: str
    run_dir: Path
    repo_root: Path
    env: Mapping[str, str]
    """The environment steps start from (``envFrom`` secrets are read from it locally)."""
    cancelled: Cancellation
    """Set when the run is cancelled (workflow deadline, stop, Ctrl-C); a step ending then is Failed."""
    deadline: float | None = None
    """``time.monotonic()`` value at which the workflow's activeDeadlineSeconds passes, if any."""
    volumes: Mapping[str, Path] = field(default_factory=dict)
    """Local directory of each ``spec.volumes`` entry (a ConfigMap's keys as files), by volume name."""


@dataclass(frozen=True)
class StepRequest:
    """One attempt of one script node, as the scheduler hands it to an executor."""

    node: str
    """The node's name (``eval(0)``), for logs and container names."""
    template: Mapping[str, Any]
    """The compiled template dict, with ``{{...}}`` in ``script.source``, ``command``, ``args`` and
    ``env`` values already resolved (Argo's controller resolves them before it creates the pod)."""
    inputs: Mapping[str, str]
    """The resolved input parameters, by name."""
    attempt_dir: Path
    """A fresh directory for this attempt: the executor writes ``stdout.txt`` and ``stderr.txt`` here."""
    context: RunContext
    capture_result: bool = True
    """Whether stdout becomes ``outputs.result``: only when the DAG references it (operator.go
    includeScriptOutput / hasOutputResultRef); see :func:`script_result`."""
    active_deadline_seconds: float | None = None
    """The pod's activeDeadlineSeconds: the template's, clamped to what is left of the workflow's
    (workflowpod.go). It counts from the pod's start, set-up (clone, image) included."""


@dataclass
class StepResult:
    """What the pod reports for one attempt."""

    phase: str
    """``Succeeded``, ``Failed`` or ``Error`` (:func:`step_phase`)."""
    message: str
    exit_code: int | None
    """The main container's exit code; None when the step never started."""
    outputs: dict[str, str]
    result: str | None
    """Stdout without its trailing newline, when the request asked for it."""
    stdout_path: Path
    stderr_path: Path
    started: float
    finished: float
    extra: dict[str, Any] = field(default_factory=dict)
    """Executor-specific facts worth recording (an image digest, a container id...)."""
    cpu_seconds: float | None = None
    """User + system CPU seconds of the attempt's processes (the step and the children it waited for);
    None when the executor cannot measure it cheaply."""


class Executor(Protocol):
    """Runs one attempt of a script node. One instance serves one run, from several threads."""

    def run(self, request: StepRequest) -> StepResult:
        """Run the attempt to its end and return what the pod would report."""
        ...

    def cancel(self) -> None:
        """Stop every attempt still running (the workflow deadline passed, or the user interrupted)."""
        ...


def collect_outputs(template: Mapping[str, Any],
                    locate: Callable[[str], Path]) -> tuple[dict[str, str], list[str]]:
    """Return (output parameters, missing outputs) of a finished attempt.

    ``locate`` maps a container path (``valueFrom.path``, an artifact ``path``) to where
    the executor can read it. A missing parameter falls back to its ``default``; a missing
    parameter without one, or a missing non-optional artifact, is listed as missing.
    """
    declared = template.get("outputs") or {}
    outputs: dict[str, str] = {}
    missing = []
    for p in declared.get("parameters", []):
        path = locate(p["valueFrom"]["path"])
        if path.is_file():
            outputs[p["name"]] = path.read_text()
        elif "default" in p["valueFrom"] or "default" in p:
            outputs[p["name"]] = str(p["valueFrom"].get("default", p.get("default")))
        else:
            missing.append(f"output parameter '{p['name']}'")
    for a in declared.get("artifacts", []):
        if not locate(a["path"]).exists() and not a.get("optional"):
            missing.append(f"output artifact '{a['name']}'")
    return outputs, missing


MAX_RESULT_BYTES = 256 * (1 << 10)


def script_result(stdout: bytes) -> str:
    """Return ``outputs.result`` from a step's stdout (executor.go CaptureScriptResult).

    One trailing newline is trimmed; only the last 256 kB are kept.
    """
    if stdout.endswith(b"\n"):
        stdout = stdout[:-1]
    return stdout[-MAX_RESULT_BYTES:].decode(errors="replace")


def step_phase(code: int, *, deadline_hit: bool, timeout: float | None, cancelled: str | None,
               missing: list[str]) -> tuple[str, str]:
    """Return (phase, message) of an attempt that ran and exited with ``code``.

    ``cancelled`` is the run's cancellation reason when it was cancelled while the step ran.
    """
    if deadline_hit:
        return "Failed", f"activeDeadlineSeconds ({timeout:g}s) exceeded"
    if cancelled:
        return "Failed", cancelled
    if code != 0:
        return "Failed", f"exit code {code}"
    if missing:
        return "Error", "step did not produce " + ", ".join(missing)
    return "Succeeded", ""


def python_path(env: Mapping[str, str]) -> str:
    """Return the ``PYTHONPATH`` a local step gets: the project first (its code is what runs), then ``env``'s."""
    return os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)


class PathMapper:
    """Map container paths to local ones: git input artifacts to the checkout, volume mounts to the
    run's volume directories, the rest per attempt."""

    def __init__(self, tpl: Mapping[str, Any], repo_root: Path, fs_root: Path,
                 volumes: Mapping[str, Path] | None = None):
        self.mounts = [(PurePosixPath(a["path"]), repo_root)
                       for a in (tpl.get("inputs") or {}).get("artifacts", []) if "git" in a]
        self.mounts += [(PurePosixPath(m["mountPath"]), (volumes or {})[m["name"]])
                        for m in (tpl.get("script") or {}).get("volumeMounts", [])]
        self.fs_root = fs_root

    def map(self, container_path: str) -> str:
        p = PurePosixPath(container_path)
        for mount, local in self.mounts:
            if p == mount or mount in p.parents:
                return str(local / p.relative_to(mount))
        return str(self.fs_root / p.relative_to("/"))


@dataclass(frozen=True)
class Launch:
    """How one attempt starts: what :meth:`ProcessExecutor.prepare` decided from the request."""

    command: list[str]
    """The template's command, ``python`` replaced by this interpreter."""
    args: list[str]
    """The template's args, then the script file."""
    env: dict[str, str]
    cwd: str
    stdout: Path
    stderr: Path
    mapper: PathMapper
    timeout: float | None


class ProcessExecutor:
    """Run a script node as a subprocess of this interpreter, on the local checkout.

    ``python`` is this interpreter, the project is on ``PYTHONPATH``, the ``git`` input
    artifact is the checkout itself (``context.repo_root``) and every other absolute path
    maps under ``attempt_dir/fs``. ``request.active_deadline_seconds`` kills the step, counted
    from the process start (the pod start: a process has no set-up before it).
    Each step runs in its own process group, killed when the step ends or the run is cancelled;
    it dies with the runner (lifecycle.pdeathsig_prefix) and carries the runner's token (reaping).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._token = lifecycle.runner_token()
        self._prefix = lifecycle.pdeathsig_prefix()

    def cancel(self) -> None:
        """Kill every running step's process group, then anything else still carrying this runner's token."""
        with self._lock:
            for proc in list(self._procs):
                lifecycle.kill_group(proc.pid)
        lifecycle.kill_processes(list(lifecycle.processes_with_token(self._token)))

    def run(self, request: StepRequest) -> StepResult:
        """Run the attempt; return its StepResult (phase Error when the step cannot start)."""
        launch = self.prepare(request)
        started = time.time()
        with open(launch.stdout, "wb") as out, open(launch.stderr, "wb") as err:
            try:
                waited = self.spawn_and_wait(launch, out.fileno(), err.fileno())
            except OSError as exc:
                return StepResult(phase="Error", message=f"cannot start step: {exc}", exit_code=None,
                                  outputs={}, result=None, stdout_path=launch.stdout, stderr_path=launch.stderr,
                                  started=started, finished=time.time())
        return self.finish(request, launch, waited, started)

    def prepare(self, request: StepRequest) -> Launch:
        """Return how the attempt starts (argv, env, cwd, files), its script file written."""
        tpl, ctx, attempt_dir = request.template, request.context, request.attempt_dir
        script = tpl["script"]
        mapper = PathMapper(tpl, ctx.repo_root, attempt_dir / "fs", ctx.volumes)
        attempt_dir.mkdir(parents=True, exist_ok=True)
        source_file = attempt_dir / "script"
        atomic_write(source_file, script.get("source", ""))
        command = list(script.get("command", ["python"]))
        if command and command[0] in {"python", "python3"}:
            command[0] = sys.executable  # the same environment the project is installed in
        env = dict(ctx.env)
        env[lifecycle.TOKEN_ENV] = self._token  # inherited by every descendant: found and reaped by it
        for e in script.get("env", []):
            value = str(e.get("value", ""))
            env[e["name"]] = mapper.map(value) if value.startswith("/") else value
        env["PYTHONPATH"] = python_path(env)
        cwd = mapper.map(script["workingDir"]) if script.get("workingDir") else str(ctx.repo_root)
        return Launch(command=command, args=[*script.get("args", []), str(source_file)], env=env, cwd=cwd,
                      stdout=attempt_dir / "stdout.txt", stderr=attempt_dir / "stderr.txt", mapper=mapper,
                      timeout=request.active_deadline_seconds)

    def spawn_and_wait(self, launch: Launch, out: int, err: int) -> tuple[int | None, bool, float | None]:
        """Start the step as a subprocess and wait for it; return (exit code, deadline hit, CPU-s).

        Raises OSError when it cannot start.
        """
        command = launch.command
        if command and shutil.which(command[0], path=launch.env.get("PATH")) is None:  # setpriv would exec it
            raise FileNotFoundError(f"No such file or directory: '{command[0]}'")
        # Its own process group (a session), like a pod's processes: killed as one. No stdin, as in a pod.
        proc = subprocess.Popen(self._prefix + command + launch.args, cwd=launch.cwd, env=launch.env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        with self._lock:
            self._procs.add(proc)
        try:
            return wait_with_usage(proc, launch.timeout)
        finally:
            lifecycle.kill_group(proc.pid)  # nothing the step started outlives it (as with a pod)
            with self._lock:
                self._procs.discard(proc)

    def finish(self, request: StepRequest, launch: Launch, waited: tuple[int | None, bool, float | None],
               started: float) -> StepResult:
        """Return the StepResult of an attempt that ran: its outputs read, its phase decided.

        An exit code of None means the step was lost (its process could not be waited for): phase Error.
        """
        code, deadline_hit, cpu = waited
        finished = time.time()
        if code is None:
            return StepResult(phase="Error", message="step lost: the fork server ended before the step did",
                              exit_code=None, outputs={}, result=None, stdout_path=launch.stdout,
                              stderr_path=launch.stderr, started=started, finished=finished, cpu_seconds=cpu)
        ctx = request.context
        result = script_result(launch.stdout.read_bytes()) if request.capture_result else None
        outputs, missing = collect_outputs(request.template, lambda p: Path(launch.mapper.map(p)))
        phase, message = step_phase(code, deadline_hit=deadline_hit, timeout=launch.timeout,
                                    cancelled=ctx.cancelled.reason if ctx.cancelled.is_set() else None,
                                    missing=missing)
        return StepResult(phase=phase, message=message, exit_code=code, outputs=outputs, result=result,
                          stdout_path=launch.stdout, stderr_path=launch.stderr, started=started, finished=finished,
                          cpu_seconds=cpu)


def wait_with_usage(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[int, bool, float]:
    """Wait for ``proc``; return (exit code, whether ``timeout`` killed it, CPU seconds it used).

    ``os.wait4`` reaps the step and reports its resource usage, which includes every child the
    step waited for (promptfoo's node process under the Python step): the CPU-s of the attempt
    at no cost. A timer kills the step's process group when ``timeout`` passes, as
    ``Popen.wait(timeout)`` followed by a kill did. The exit code is Popen's: ``-N`` for signal N.
    """
    with group_deadline(proc.pid, timeout) as expired:
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return proc.returncode, expired.is_set(), usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def group_deadline(pgid: int, timeout: float | None) -> Iterator[threading.Event]:
    """Kill process group ``pgid`` if ``timeout`` seconds pass before the block ends; yield the event set then.

    A step's deadline, for every executor that waits for a step's process group (a subprocess, a fork).
    """
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        lifecycle.kill_group(pgid)

    timer = threading.Timer(timeout, expire) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield expired
    finally:
        if timer is not None:
            timer.cancel()
