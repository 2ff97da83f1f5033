"""The fork server ("zygote") of local runs: the stages' imports paid once, one forked child per attempt.

``python -P -m workflows.runner.zygote CONTROL_FD`` (started by :class:`workflows.runner.forking.ForkServer`)
imports :data:`PRELOAD` (the stage entry, the stage bodies and the modules their functions import), then
serves requests on the control socket, a ``SOCK_SEQPACKET`` socket whose peer only the runner holds:

* its first message, once the imports are done, says what they read (:func:`preload`);
* a request is one message carrying three descriptors (SCM_RIGHTS): the attempt's own stream socket,
  the attempt's ``stdout.txt`` and ``stderr.txt``, opened by the runner as the process executor opens
  them. The attempt socket then carries the request: a 4-byte big-endian length and a JSON object
  ``{"argv": [...], "env": {...}, "cwd": "..."}``; ``argv`` is the pod command's arguments after
  ``python -P -m workflows.stage_entry``.
* the zygote forks; it answers ``{"pid": N}`` on the attempt socket at once, and
  ``{"status": wait status, "cpu": user + system CPU-s}`` when the child ended (``os.wait4``: the
  child and every process it waited for, as the process executor measures a step).
* the runner closing an attempt socket before the end kills that child's process group; the runner
  closing the control socket (it ended, or died: the kernel closes it) kills every child's group and
  ends the zygote. So nothing outlives the runner, even on SIGKILL.

The child is what ``subprocess.Popen(argv, env=env, cwd=cwd, stdin=DEVNULL, start_new_session=True)``
of ``python -P -m workflows.stage_entry ARGS`` would be, after the imports: its own session and
process group, ``os.environ`` replaced by the step's (and the C environment with it, so promptfoo
inherits exactly that), ``cwd``, stdin ``/dev/null``, stdout/stderr to the attempt's files, every other
descriptor closed (``close_fds``), default signal dispositions, ``PR_SET_PDEATHSIG`` (it dies with the
zygote), and Python's own exit: threads joined, ``atexit`` handlers run, streams flushed, the
``SystemExit`` code as the exit status.

What this relies on: a value read at import, or fixed at the interpreter's start (``PYTHON*``, the locale),
stays the zygote's in every child. So the zygote notes every variable (and whether the working directory)
its imports read, and :class:`workflows.runner.forking.ForkExecutor` forks only a step whose values of
those are the zygote's; any other runs through the process executor (tests/workflows/test_fork_executor.py
checks that no variable a template sets per step is among them).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import traceback
from typing import Any

ENTRY_MODULE = "workflows.stage_entry"
PRELOAD = (
    ENTRY_MODULE,
    "workflows.stage_bodies.check", "workflows.stage_bodies.plan", "workflows.stage_bodies.evaluate",
    "workflows.stage_bodies.promote", "workflows.stage_bodies.summary",
    # What the bodies import inside their functions (seen under -X importtime in a samples run).
    "steps.lint", "steps.validate", "steps.run_plan", "steps.eval", "steps.records", "steps.reports",
    "steps.signing", "steps.stores.s3store", "steps.stores.store", "steps.persistence", "steps.promote",
    "config.policy", "config.settings", "steps.contracts", "steps.plan", "steps.tokens",
    "config.formats.dotprompt", "config.formats.prompty", "tiktoken.load",
)
"""Modules imported once in the zygote. A module that fails to import here is left out: the child imports
it itself, and fails there exactly as a fresh process would. Not ``steps.rag.retriever``: only a rag-config's
eval needs it, and its numpy (~0.1 CPU-s) would be paid by every run while the warm promptfoo loads."""
HEADER = struct.Struct(">I")
PR_SET_PDEATHSIG = 1


def encode(message: dict[str, Any]) -> bytes:
    """Return ``message`` framed for an attempt socket (length, then JSON)."""
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def read_message(sock: socket.socket) -> dict[str, Any] | None:
    """Return the next framed message on ``sock``, or None when the peer closed it first."""
    head = _read_exactly(sock, HEADER.size)
    if head is None:
        return None
    body = _read_exactly(sock, HEADER.unpack(head)[0])
    return None if body is None else json.loads(body)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


ALL_VARIABLES = "*"


class _WatchedEnviron(os._Environ):
    """``os.environ`` while the zygote imports: every name read is noted (``*`` for a read of them all)."""

    reads: set[str] = set()

    def __getitem__(self, key: str) -> str:  # also get(), getenv(), `in`: Mapping's go through it
        _WatchedEnviron.reads.add(key)
        return str(super().__getitem__(key))

    def __iter__(self) -> Any:  # copy(), items(), dict(os.environ)
        _WatchedEnviron.reads.add(ALL_VARIABLES)
        return super().__iter__()


def preload() -> dict[str, Any]:
    """Import :data:`PRELOAD`; return what the imports read: ``{"env": [names], "cwd": bool, "failed": [...]}``.

    The environment variables and the working directory a module reads at import keep the zygote's values
    in every forked step; the runner forks a step only when its values of them are the zygote's
    (:meth:`workflows.runner.forking.ForkExecutor`). Modules that could not be imported are ``failed``
    (the children import them themselves). Reads by C code (``getenv``) are not seen.
    """
    failed = []
    real_cwd, cwd_read = os.getcwd, []

    def watched_cwd() -> str:
        cwd_read.append(True)
        return real_cwd()

    _WatchedEnviron.reads = set()
    os.environ.__class__ = _WatchedEnviron  # the same object: whoever keeps a reference keeps the real one
    os.getcwd = watched_cwd
    try:
        for name in PRELOAD:
            try:
                __import__(name)
            except Exception:  # noqa: BLE001 - the child meets the same error on its own import
                failed.append(name)
    finally:
        os.environ.__class__ = os._Environ
        os.getcwd = real_cwd
    return {"env": sorted(_WatchedEnviron.reads), "cwd": bool(cwd_read), "failed": failed}


def exit_status(code: object) -> int:
    """Return the exit status of ``SystemExit(code)``, as Python's own exit computes it (printing a message)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _set_pdeathsig() -> None:
    """Ask the kernel to SIGKILL this process when its parent (the zygote) ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _become_step(request: dict[str, Any], out_fd: int, err_fd: int, zygote: int) -> None:
    """In the forked child: become the step's process (session, signals, descriptors, env, cwd)."""
    os.setsid()
    _set_pdeathsig()
    if os.getppid() != zygote:  # the zygote ended between the fork and the prctl
        os._exit(128 + signal.SIGKILL)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # what a fresh interpreter installs
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # likewise
    devnull = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((devnull, 0), (out_fd, 1), (err_fd, 2)):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
    os.environ.clear()
    os.environ.update(request["env"])  # putenv: the C environment too, what promptfoo inherits
    os.chdir(request["cwd"])
    tempfile.tempdir = None  # computed from $TMPDIR on first use, in the step


def _run_step(argv: list[str]) -> int:
    """Run the stage entry as ``python -m`` would with ``argv``; return the exit status after Python's exit.

    The entry's module is already imported (its top level only defines): its ``main`` is what its
    ``__main__`` block calls, with ``sys.argv`` as ``-m`` sets it (the module's file, then the arguments).
    """
    entry = sys.modules.get(ENTRY_MODULE) or importlib.import_module(ENTRY_MODULE)
    sys.argv = [str(entry.__file__), *argv]
    try:
        entry.main()
        code = 0
    except SystemExit as exc:
        code = exit_status(exc.code)
    except BaseException:  # noqa: BLE001 - the interpreter's own last resort: traceback, status 1
        traceback.print_exc()
        code = 1
    import atexit
    import threading

    with contextlib.suppress(Exception):
        threading._shutdown()  # type: ignore[attr-defined]  # Py_FinalizeEx: join non-daemon threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # Python's status when flushing stdout fails at exit
    return code


def child(request: dict[str, Any], out_fd: int, err_fd: int, zygote: int) -> None:
    """The forked child's whole life: never returns (``os._exit``)."""
    try:
        _become_step(request, out_fd, err_fd, zygote)
        code = _run_step(list(request["argv"]))
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the zygote
        with contextlib.suppress(Exception):
            traceback.print_exc()
        code = 2
    os._exit(code)


class Zygote:
    """The serving loop: requests on the control socket, children's ends from SIGCHLD."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.attempts: dict[int, socket.socket] = {}
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears of each child
        self.selector.register(control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "children")

    def serve(self) -> None:
        """Serve until the runner closes the control socket; then kill every child's group."""
        try:
            while True:
                for key, _ in self.selector.select():
                    if key.data == "control":
                        if not self._accept():
                            return
                    elif key.data == "children":
                        with contextlib.suppress(OSError):
                            os.read(self.wake_r, 4096)
                        self._reap()
                    else:
                        self._abandoned(key.data)
        finally:
            for pid in list(self.attempts):
                _kill_group(pid)

    def _accept(self) -> bool:
        """Start the attempt the runner sent; return False when the runner is gone."""
        try:
            msg, fds, _, _ = socket.recv_fds(self.control, 16, 3)
        except OSError:
            return False
        if not msg and not fds:
            return False
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return True
        conn = socket.socket(fileno=fds[0])
        try:
            conn.settimeout(30)
            request = read_message(conn)
            conn.settimeout(None)
        except (OSError, ValueError):
            request = None
        if request is None:
            conn.close()
            os.close(fds[1])
            os.close(fds[2])
            return True
        pid = os.fork()
        if pid == 0:
            child(request, fds[1], fds[2], os.getppid())
        os.close(fds[1])
        os.close(fds[2])
        self.attempts[pid] = conn
        self.selector.register(conn, selectors.EVENT_READ, pid)
        self._send(pid, {"pid": pid})
        return True

    def _abandoned(self, pid: int) -> None:
        """The runner closed (or wrote to) an attempt socket early: kill that child's group."""
        conn = self.attempts.get(pid)
        if conn is not None:
            self.selector.unregister(conn)
            _kill_group(pid)

    def _reap(self) -> None:
        """Report every ended child to its attempt socket."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._send(pid, {"status": status, "cpu": usage.ru_utime + usage.ru_stime}, last=True)

    def _send(self, pid: int, message: dict[str, Any], last: bool = False) -> None:
        conn = self.attempts.get(pid)
        if conn is None:
            return
        with contextlib.suppress(OSError):
            conn.sendall(encode(message))
        if last:
            del self.attempts[pid]
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            conn.close()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    """Preload, then serve the control socket whose descriptor is the one argument."""
    args = sys.argv[1:] if argv is None else argv
    control = socket.socket(fileno=int(args[0]))
    read = preload()
    control.send(json.dumps(read).encode())  # the runner's first start waits for it
    Zygote(control).serve()
    os._exit(0)  # nothing to flush or finalise: the runner waits for this exit, so it is immediate


if __name__ == "__main__":
    main()
