"""The fork executor: local steps forked from one zygote that has already imported the stages.

A stage's start is mostly imports (0.3-0.9 CPU-s each: pydantic models, the store, the records); a
local run pays them once, in the zygote (workflows/runner/zygote.py), started as early as ``run`` can
so that its imports overlap the CLI's own work. :class:`ForkExecutor` honours the executor contract
(:class:`~workflows.runner.executors.StepRequest` in, :class:`~workflows.runner.executors.StepResult`
out) with the process executor's own preparation and outcome rules (:meth:`ProcessExecutor.prepare`,
:meth:`ProcessExecutor.finish`); only the start differs: a fork instead of an ``exec`` of
``python -P -m workflows.stage_entry``. Exit code, CPU-s (``wait4`` in the zygote), the deadline (the
process group killed, counted from the fork), cancellation and the runner token are the same.

An attempt runs through the process executor instead when the fork would not be the same process:
a command other than the stage entry, a working directory that does not exist (Popen's own error then),
interpreter start-up variables (:data:`STARTUP_ENV_NAMES`) or a variable the zygote's imports read that
differ from the zygote's (:meth:`ForkServer.forks_like`), or no live zygote.

:data:`LOCAL_EXECUTOR` is the one place the default of local runs is chosen (``promptci run`` and
:func:`workflows.runner.scheduler.run_template` both use :func:`local_executor`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from workflows.runner import lifecycle
from workflows.runner.executors import (
    Executor,
    Launch,
    ProcessExecutor,
    RunContext,
    StepRequest,
    group_deadline,
    python_path,
)
from workflows.runner.zygote import ALL_VARIABLES, ENTRY_MODULE, encode, read_message

LOCAL_EXECUTOR = "fork"
"""The executor of local runs when none is named: ``fork`` or ``process`` (``container`` is never a default)."""
STARTUP_ENV_PREFIXES = ("PYTHON", "LC_")
STARTUP_ENV_NAMES = ("LANG", "LANGUAGE")
"""What the interpreter reads once at start-up (flags, hash seed, stdio encoding and buffering, locale):
a step whose values differ from the zygote's is not forked."""


def startup_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return the variables of ``env`` the interpreter fixes at start-up (see :data:`STARTUP_ENV_NAMES`)."""
    return {k: v for k, v in env.items() if k.startswith(STARTUP_ENV_PREFIXES) or k in STARTUP_ENV_NAMES}


def entry_argv(launch: Launch) -> list[str] | None:
    """Return the stage entry's arguments when ``launch`` is ``python -P -m workflows.stage_entry ...``, else None."""
    if launch.command != [sys.executable, "-P"] or launch.args[:2] != ["-m", ENTRY_MODULE]:
        return None
    return launch.args[2:]


class ForkServer:
    """One zygote process, serving the attempts of one or more local runs of this runner.

    Started at once (its imports run while the caller goes on); :meth:`close` ends it and every step it
    forked. It carries the runner's token, so the reaping of a dead runner's processes finds it too.
    """

    def __init__(self, env: Mapping[str, str], cwd: Path, log: Path | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.env = dict(env)
        self.env[lifecycle.TOKEN_ENV] = lifecycle.runner_token()
        self.env["PYTHONPATH"] = python_path(env)
        self._control = ours
        self._lock = threading.Lock()
        self._cwd = str(cwd)
        self._read: dict[str, Any] | None = None
        self._cpu_taken = 0.0
        err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed right after the start
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "workflows.runner.zygote", str(theirs.fileno())],
                env=self.env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                pass_fds=[theirs.fileno()], start_new_session=True)
        finally:
            theirs.close()
            if log:
                err.close()  # type: ignore[union-attr]

    @property
    def pid(self) -> int:
        """The zygote's pid."""
        return self.proc.pid

    def alive(self) -> bool:
        """Return True while the zygote runs."""
        return self.proc.poll() is None

    def take_cpu_seconds(self) -> float | None:
        """Return the zygote's own CPU-s (its imports, its forks; not its children's) since the last call.

        The steps' CPU-s no longer include their imports: this is where that cost went. None when the zygote ended.
        """
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: proc(5) 14, 15
        taken, self._cpu_taken = total - self._cpu_taken, total
        return taken

    def imports_read(self) -> dict[str, Any] | None:
        """Return what the zygote's imports read (``{"env": [...], "cwd": bool}``, zygote.preload), waiting for them
        to end; None when the zygote ended first."""
        with self._lock:
            if self._read is None and self.alive():
                try:
                    message = self._control.recv(1 << 20)
                    self._read = json.loads(message) if message else None
                except (OSError, ValueError):
                    self._read = None
            return self._read

    def forks_like(self, env: Mapping[str, str], cwd: str) -> bool:
        """Return True when a step with ``env`` and ``cwd`` forked from this zygote is the process it would exec.

        The interpreter's start-up variables must be the zygote's, and so must every variable (and the working
        directory) a module read while the zygote imported: those values live on in the fork.
        """
        read = self.imports_read()
        if read is None or ALL_VARIABLES in read["env"] or (read["cwd"] and cwd != self._cwd):
            return False
        names = set(read["env"]) | set(startup_env(env)) | set(startup_env(self.env))
        return all(env.get(name) == self.env.get(name) for name in names)

    def start(self, argv: list[str], env: Mapping[str, str], cwd: str, out: int, err: int) -> socket.socket:
        """Hand one attempt to the zygote; return the attempt's socket (``{"pid"}``, then ``{"status", "cpu"}``).

        Raises OSError when the zygote cannot take it (it ended): nothing was started then.
        """
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                socket.send_fds(self._control, [b"run"], [theirs.fileno(), out, err])
            mine.sendall(encode({"argv": argv, "env": dict(env), "cwd": cwd}))
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        return mine

    def close(self) -> None:
        """End the zygote (it kills what it still runs) and reap it."""
        with contextlib.suppress(OSError):
            self._control.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            lifecycle.kill_group(self.proc.pid)
            self.proc.wait()


class ForkExecutor(ProcessExecutor):
    """Fork stage-entry steps from a :class:`ForkServer`; run anything else as the process executor does.

    With ``server`` the executor borrows it (the caller closes it); without, it starts its own on the
    first step it can fork and closes it in :meth:`close` (the scheduler calls it when the run ends).
    """

    def __init__(self, server: ForkServer | None = None) -> None:
        super().__init__()
        self._server = server
        self._owns_server = server is None
        self._context: RunContext | None = None
        self._forked: set[int] = set()
        self.forked_attempts = 0
        """How many attempts were forked (the rest ran as subprocesses)."""
        self.shared_cpu_seconds: float | None = None
        """Set by :meth:`close`: the zygote's own CPU-s during this run (the imports the steps shared)."""

    def prepare(self, request: StepRequest) -> Launch:
        """The process executor's preparation; notes the run's environment, which a zygote of its own starts with."""
        self._context = request.context
        return super().prepare(request)

    def _server_for(self, launch: Launch) -> ForkServer | None:
        """Return the live zygote to fork ``launch`` from, or None when it must run as a subprocess.

        Without a borrowed one, the first step that can be forked starts this executor's own (a run of inline
        scripts never starts one).
        """
        with self._lock:
            if self._server is None and self._owns_server and self._context is not None:
                self._server = ForkServer(self._context.env, self._context.repo_root)
        server = self._server
        if server is None or not server.alive() or not server.forks_like(launch.env, launch.cwd):
            return None
        return server

    def spawn_and_wait(self, launch: Launch, out: int, err: int) -> tuple[int | None, bool, float | None]:
        """Fork the step from the zygote and wait for it (the process executor's way when it cannot)."""
        argv = entry_argv(launch)
        server = self._server_for(launch) if argv is not None and os.path.isdir(launch.cwd) else None
        if server is None:
            return super().spawn_and_wait(launch, out, err)
        try:
            conn = server.start(argv or [], launch.env, launch.cwd, out, err)
        except OSError:
            return super().spawn_and_wait(launch, out, err)  # the zygote ended: nothing was started
        with conn:
            started = read_message(conn)
            if started is None:  # the zygote ended before it forked: nothing was started
                return super().spawn_and_wait(launch, out, err)
            pid = int(started["pid"])
            with self._lock:
                self._forked.add(pid)
                self.forked_attempts += 1
            try:
                with group_deadline(pid, launch.timeout) as expired:
                    ended = read_message(conn)
            finally:
                lifecycle.kill_group(pid)  # nothing the step started outlives it (as with a pod)
                with self._lock:
                    self._forked.discard(pid)
        if ended is None:  # the zygote ended while the step ran (the step died with it)
            return None, expired.is_set(), None
        return os.waitstatus_to_exitcode(int(ended["status"])), expired.is_set(), float(ended["cpu"])

    def cancel(self) -> None:
        """Kill every step's process group, then what else carries this runner's token (the zygote excepted)."""
        with self._lock:
            for pid in list(self._forked):
                lifecycle.kill_group(pid)
            for proc in list(self._procs):
                lifecycle.kill_group(proc.pid)
        zygote = self._server.pid if self._server is not None else None
        lifecycle.kill_processes([pid for pid in lifecycle.processes_with_token(self._token) if pid != zygote])

    def close(self) -> None:
        """Note the zygote's CPU-s of this run; end the zygote if this executor started it (else its owner does)."""
        if self._server is not None:
            self.shared_cpu_seconds = self._server.take_cpu_seconds()
            if self._owns_server:
                self._server.close()


@contextlib.contextmanager
def fork_server(env: Mapping[str, str], cwd: Path) -> Iterator[ForkServer]:
    """Start a zygote for the runs of the block (its imports overlap the block's work); end it after them.

    ``promptci run`` wraps all its runs in it; a bench measuring the stages' start gives every run of the
    block ``ForkExecutor(server)`` (the zygote's own CPU-s: ``server.take_cpu_seconds()``).
    """
    server = ForkServer(env, cwd)
    try:
        yield server
    finally:
        server.close()


def local_executor(kind: str = LOCAL_EXECUTOR, server: ForkServer | None = None) -> Executor:
    """Return a new executor of ``kind`` (``fork`` or ``process``) for one local run."""
    if kind == "fork":
        return ForkExecutor(server)
    if kind == "process":
        return ProcessExecutor()
    raise ValueError(f"no local executor '{kind}' (fork or process)")


__all__ = ["LOCAL_EXECUTOR", "ForkExecutor", "ForkServer", "fork_server", "local_executor", "startup_env"]
