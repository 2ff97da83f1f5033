"""A warm promptfoo for a local run: Node's load of promptfoo overlaps the Python work before the eval.

promptfoo's own start (~2.7 s, the Node ESM loader resolving its graph) is most of a small eval. A
``promptci run`` starts a *broker* (:func:`warm_for_run`, beside the local model server) that at once
starts ONE warm shim (``promptfoo_warm_shim.mjs``: ``node`` with promptfoo's module graph loaded, its
CLI not run) while the CLI, lint and validate run. The first eval that asks gets it (:func:`run_warm`,
called by ``steps.promptfoo.run_promptfoo``); later evals run cold, as before: a second pre-started
Node would compete for the same cores with the eval on the critical path.

The job is exactly ``node <entry> <args>`` with the eval's env (replaced whole), cwd and argv. The shim
DECLINES it (and the eval runs cold, the same command as without a broker) when anything promptfoo's
modules read while loading differs from the job's: env keys read at import, Node's start-up keys,
colour flags, a ``.env`` in the cwd (see the shim's header, which cites promptfoo's dist). promptfoo's
state dir is the shim's own (``state/`` under the broker's temp dir, emptied and removed as the cold
path does): its config dir is read at import. What a user sees is the same: promptfoo's stdout and
stderr land in the same two files (copied when the job ends), the exit code is the shim's (``-N`` for a
signal), a timeout or an interrupted step kills the shim's process group, and a step that dies makes
the broker kill it. Nothing outlives the run: the broker kills every shim when the run ends, a shim
dies with the runner (``setpriv --pdeathsig``) and carries its lifecycle token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from steps import promptfoo

log = logging.getLogger(__name__)

SHIM = Path(__file__).with_name("promptfoo_warm_shim.mjs")
BROKER_ENV = "PROMPTCI_PROMPTFOO_BROKER"
OFF = "off"
READY_TIMEOUT_S = 120.0  # a shim still loading is waited for (it is ahead of a cold start) up to this
CONNECT_TIMEOUT_S = 5.0
KILL_GRACE_S = 5.0
AFTER_EVAL = ("promote", "summary")  # tasks of workflows/templates.py that run after every eval


@dataclass
class WarmResult:
    """How a warm job ended: Popen-style exit code (``-N``: signal N), and whether the timeout killed it."""

    returncode: int | None
    timed_out: bool


class _Channel:
    """JSON lines over a connected Unix socket; ``recv`` can wait with a timeout (no buffered-file pitfalls)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """Return the next JSON object; None at EOF or on a bad line; raise TimeoutError after ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.sock], [], [], wait)[0]:
                raise TimeoutError
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None


class _Shim:
    """One warm shim process: its own session, listening socket, stdout/stderr files and state dir."""

    def __init__(self, root: Path, node: str, entry: str, env: dict[str, str], prefix: list[str]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="shim-", dir=root))
        self.state = self.dir / "state"
        self.stdout, self.stderr = self.dir / "stdout", self.dir / "stderr"
        cwd = self.dir / "cwd"  # empty: no .env for dotenv.config() at import
        cwd.mkdir()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.dir / "shim.sock"))
        self.listener.listen(1)
        self.cpu_seconds: float | None = None  # once it ended (see _note_cpu)
        self.cpu_taken = False
        shim_env = promptfoo.promptfoo_env(self.dir, base=env, state=self.state)
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen([*prefix, node, str(SHIM), entry, str(self.dir / "shim.sock")], cwd=cwd,
                                         env=shim_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True)

    def connect(self, timeout_s: float) -> socket.socket | None:
        """Return the shim's connection once its preload is done; None when it died or took too long."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.poll() is None:
            ready, _, _ = select.select([self.listener], [], [], 0.1)
            if ready:
                conn, _ = self.listener.accept()
                return conn
        return None

    def poll(self) -> int | None:
        """Return the shim's exit code once it ended (None while it runs), its CPU-s noted before it is reaped."""
        self._note_cpu(wait=False)
        return self.proc.poll()

    def kill(self) -> None:
        """SIGKILL the shim's process group and wait (bounded) until it is gone, its CPU-s noted first."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._note_cpu(wait=True)
        promptfoo.kill_group(self.proc, grace_s=KILL_GRACE_S)

    def _note_cpu(self, wait: bool) -> None:
        """Note the shim's CPU-s (its own and its reaped children's: proc(5) utime, stime, cutime, cstime) once it
        has exited: only its zombie still has them, so this looks (``WNOWAIT``) before anyone reaps it."""
        if self.cpu_seconds is not None:
            return
        try:
            if os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT | (0 if wait else os.WNOHANG)) is None:
                return  # still running
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (ChildProcessError, OSError):
            return  # already reaped: nothing left to read
        self.cpu_seconds = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def remove(self) -> None:
        self.kill()
        self.listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class WarmBroker:
    """The run's broker: a Unix socket that hands its one pre-started shim to the first eval that asks."""

    def __init__(self, env: dict[str, str], node: str, entry: str, prefix: list[str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="promptci-warm-"))
        self.address = str(self.root / "broker.sock")
        self.node, self.entry = node, entry
        self._lock = threading.Lock()
        self._shims: list[_Shim] = [_Shim(self.root, node, entry, env, prefix)]
        self._spare: _Shim | None = self._shims[0]
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(16)
        self._stopping = threading.Event()
        self.served = 0  # jobs a shim accepted (ran warm)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="promptfoo-warm-broker", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), name="promptfoo-warm-job", daemon=True)
            self._threads.append(t)
            t.start()

    def _take(self, req: dict[str, Any]) -> _Shim | None:
        """Return the spare shim for a client running the same node and entry, or None (run cold)."""
        with self._lock:
            shim = self._spare
            if shim is None or self._stopping.is_set() or [req.get("node"), req.get("entry")] != [
                    self.node, self.entry]:
                return None
            self._spare = None
            return shim

    def _serve(self, conn: socket.socket) -> None:
        """One client: claim → {state} → job → {pid} (or {cold}) → wait or kill → {returncode}."""
        with conn:
            ch = _Channel(conn)
            req = ch.recv()
            shim = self._take(req) if req else None
            if shim is None:
                with contextlib.suppress(OSError):
                    ch.send({"cold": "no warm promptfoo left"})
                return
            try:
                self._run(ch, shim)
            except OSError:
                pass  # the client went away: the shim is killed below
            finally:
                shim.kill()

    def _run(self, ch: _Channel, shim: _Shim) -> None:
        ch.send({"state": str(shim.state)})
        job = ch.recv()
        if job is None:
            return
        shim_conn = shim.connect(READY_TIMEOUT_S)
        if shim_conn is None:
            ch.send({"cold": f"the warm promptfoo is not ready (exit {shim.poll()})"})
            return
        with shim_conn:
            sc = _Channel(shim_conn)
            sc.recv(READY_TIMEOUT_S)  # {"ready": true}
            sc.send(job)
            answer = sc.recv(READY_TIMEOUT_S) or {"reason": f"the warm promptfoo exited {shim.poll()}"}
        if not answer.get("accepted"):
            ch.send({"cold": str(answer.get("reason"))})
            return
        self.served += 1
        ch.send({"pid": shim.proc.pid})
        while shim.poll() is None:  # until it exits, or the client says kill (or goes away)
            with contextlib.suppress(TimeoutError):
                if ch.recv(0.1) is None:
                    return  # EOF: the client died; the caller kills the shim
                shim.kill()  # {"kill": true}: its timeout passed, or it was interrupted
        ch.send({"returncode": shim.proc.returncode, "stdout": str(shim.stdout), "stderr": str(shim.stderr)})
        with contextlib.suppress(TimeoutError):
            ch.recv(60.0)  # the client has copied the output when it closes

    def take_cpu_seconds(self) -> float | None:
        """Return the CPU-s of this broker's shims that ended since the last call (None: none did).

        A shim's CPU is promptfoo's load and its job: what a cold eval's own process would have spent. It is
        this process's child, not the eval step's, so the runner's per-step CPU-s cannot see it; ``promptci
        run`` adds it to the run's totals.
        """
        with self._lock:
            ended = [s for s in self._shims if s.cpu_seconds is not None and not s.cpu_taken]
            for s in ended:
                s.cpu_taken = True
        return sum(s.cpu_seconds or 0.0 for s in ended) if ended else None

    def release(self) -> None:
        """Kill the spare shim now (no eval will ask): its load would only take CPU from the rest of the run."""
        with self._lock:
            shim, self._spare = self._spare, None
        if shim is not None:
            shim.kill()

    def on_event(self, node: Any) -> None:
        """The runner's per-node callback: release the spare once the eval fan-out is skipped, or a task
        after it (promote, summary) starts; a fully cached run then never pays for an unused load."""
        status, task = getattr(node, "status", ""), getattr(node, "task", "")
        if (task == "eval" and status in ("Skipped", "Omitted")) or (
                task in AFTER_EVAL and status not in ("Pending", "")):
            self.release()

    def stop(self) -> None:
        """Stop serving, kill every shim (running or spare) and remove the broker's directory."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for shim in self._shims:
            shim.kill()
        self._acceptor.join(timeout=5)
        for t in self._threads:
            t.join(timeout=KILL_GRACE_S)
        for shim in self._shims:
            shim.remove()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def warm_for_run(env: MutableMapping[str, str], enabled: bool = True) -> Iterator[WarmBroker | None]:
    """Run a broker with one warm promptfoo for the block, with ``env[BROKER_ENV]`` set to its address.

    No broker serves when not ``enabled`` (steps in containers: the socket and the install are not
    theirs), when ``PROMPTCI_PROMPTFOO_BROKER`` is already set (``off``, or someone else's broker),
    when ``PROMPTCI_PROMPTFOO_CMD`` overrides the command (the shim runs only the pinned install), or
    when the pinned install is not usable (the evals then report it, cold). Called on the main thread:
    the shim dies with it (``PR_SET_PDEATHSIG`` follows the thread that started it).

    The shim starts BEFORE the settings are read: importing pydantic-settings (~0.2 s) would otherwise come
    first on the critical path of a small run, whose one eval waits for this load. It starts on the default
    install (``promptfoo.REPO_ROOT``); settings that rule it out (the cases above) kill it at once, and a
    ``PROMPTCI_PROMPTFOO_HOME`` naming another install restarts it there. Such a shim cost some CPU, never a
    job: it only loads promptfoo's modules, in an empty directory of its own.
    """
    broker = _start(env, promptfoo.REPO_ROOT) if enabled else None
    try:
        if enabled:
            from config.settings import get_settings

            settings = get_settings(env)
            home = settings.promptfoo_home or promptfoo.REPO_ROOT
            if settings.promptfoo_broker or settings.promptfoo_cmd or home != promptfoo.REPO_ROOT:
                if broker is not None:
                    broker.stop()
                # Started there even when the default install is missing (only the named one exists).
                broker = None if settings.promptfoo_broker or settings.promptfoo_cmd else _start(env, home)
        if broker is not None:
            env[BROKER_ENV] = broker.address
        yield broker
    finally:
        if broker is not None:
            env.pop(BROKER_ENV, None)
            broker.stop()


def _start(env: MutableMapping[str, str], home: Path) -> WarmBroker | None:
    """Return a new broker whose shim loads the install at ``home``, or None when that install is not usable."""
    try:
        # Unchecked (no `node --version`, on the run's critical path): run_promptfoo checks before it asks.
        node, entry = promptfoo.default_command(home, checked=False)
    except promptfoo.PromptfooMissing:
        return None
    from workflows.runner import lifecycle

    shim_env = {**env, lifecycle.TOKEN_ENV: lifecycle.runner_token()}
    return WarmBroker(shim_env, node, entry, lifecycle.pdeathsig_prefix())


def run_warm(cmd: list[str], args: list[str], cwd: Path, env_for: Callable[[Path], dict[str, str]],
             timeout_s: float, out: IO[bytes], err: IO[bytes]) -> WarmResult | None:
    """Run ``cmd + args`` on the run's warm promptfoo; return how it ended, or None to run it cold.

    ``cmd`` is ``[node, entry]``; ``env_for(state)`` returns the job's env with promptfoo's state in
    ``state`` (the shim's, read at import). None (cold) when there is no broker, it does not answer, has
    no warm promptfoo left, or the shim declines the job; nothing has run then. A timeout (counted from
    the call) or an interrupt kills the shim's process group. stdout and stderr are copied into ``out``
    and ``err`` when the job ends.
    """
    from config.settings import get_settings

    address = get_settings().promptfoo_broker
    if not address or address == OFF or len(cmd) != 2:
        return None
    deadline = time.monotonic() + timeout_s
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(address)
        sock.settimeout(None)
        return _job(_Channel(sock), cmd, args, cwd, env_for, deadline, out, err)
    except OSError as exc:
        log.info("warm promptfoo unavailable (%s); running cold", exc)
        return None
    finally:
        sock.close()


def _job(ch: _Channel, cmd: list[str], args: list[str], cwd: Path, env_for: Callable[[Path], dict[str, str]],
         deadline: float, out: IO[bytes], err: IO[bytes]) -> WarmResult | None:
    """Claim the shim, send the job, wait for its end (or kill it at ``deadline``); None: run it cold."""
    ch.send({"node": cmd[0], "entry": cmd[1]})
    claim = ch.recv()
    if not claim or "state" not in claim:
        _cold(claim)
        return None
    state = Path(claim["state"])
    shutil.rmtree(state, ignore_errors=True)
    with promptfoo.removed(state):
        ch.send({"argv": args, "cwd": str(cwd), "env": env_for(state)})
        try:
            started = ch.recv(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return WarmResult(None, True)  # the timeout passed before it started; closing kills the shim
        if not started or "pid" not in started:
            _cold(started)
            return None
        timed_out = False
        try:
            try:
                done = ch.recv(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                timed_out = True
                ch.send({"kill": True})
                done = ch.recv()
        except OSError:
            done = None
        except BaseException:
            with contextlib.suppress(OSError):
                ch.send({"kill": True})  # interrupted: never leave promptfoo behind
            raise
        if not done or "returncode" not in done:  # the job ran: never again cold; no exit code is an error
            log.warning("the warm promptfoo broker went away during the job")
            return WarmResult(None, timed_out)
        for path, dest in ((done["stdout"], out), (done["stderr"], err)):
            with open(path, "rb") as src:
                shutil.copyfileobj(src, dest)
    return WarmResult(done["returncode"], timed_out)


def _cold(msg: dict[str, Any] | None) -> None:
    """Log why the job runs cold (it has not run: the caller starts it as without a broker)."""
    log.info("warm promptfoo not used (%s); running cold", (msg or {}).get("cold", "no answer"))
    return None
