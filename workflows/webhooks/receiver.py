"""The local webhook receiver: Git host push -> filtered -> queued local pipeline run.

The embedded-default counterpart of the Argo Events Sensor. Requests are
checked in this order, each failure answering at once:

1. size: no ``Content-Length`` -> 411; over the limit -> 413 (body not parsed);
2. authenticity: GitHub ``X-Hub-Signature-256`` / Gitea ``X-Gitea-Signature``
   (hex HMAC-SHA256 of the body) or GitLab ``X-Gitlab-Token``, compared in
   constant time (:func:`hmac.compare_digest`) -> 401 when missing or wrong;
3. event type: anything but a push -> 202 ``{"status": "ignored", "reason": ...}``;
4. the push filter of :mod:`workflows.webhooks.trigger_filter` (the Sensor's rule) per
   artifact type -> 202 ignored, or one queued run per matching type:
   202 ``{"status": "queued", "run_id": ..., "runs": [...]}``.

Runs go through :class:`RunQueue`: one worker thread per repository, so runs
of one repo execute one at a time, in arrival order, while different repos
proceed in parallel. Built on the standard library's ``ThreadingHTTPServer``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from workflows.webhooks.trigger_filter import decide_push

log = logging.getLogger("promptci.receiver")

MAX_BODY_BYTES = 1024 * 1024
# An oversized body is read and discarded up to this many bytes so the client
# sees the 413 instead of a reset connection; beyond it the connection is dropped.
MAX_DRAIN_BYTES = 8 * 1024 * 1024
SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
URL_RE = re.compile(r"^[^\s{}<>\"'\\]{1,2048}$")

StartRun = Callable[[dict[str, str]], None]


def default_run_id() -> str:
    """Return a sortable, unique run id such as ``20240514-102107-3f9a1c2e``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:8]


def run_locally(params: dict[str, str], config_path: str | None = None) -> None:
    """Run one pipeline with the local runner; the default ``start_run``.

    ``params`` holds ``artifact-type`` and ``run-id`` besides the Workflow
    parameters. The import is lazy so the receiver does not depend on the
    runner module at import time.
    """
    from workflows.runner.scheduler import run_pipeline  # type: ignore[import-not-found,unused-ignore]

    rest = dict(params)
    artifact_type, run_id = rest.pop("artifact-type"), rest.pop("run-id")
    result = run_pipeline(artifact_type, rest, run_id, config_path=config_path)
    log.info("run %s (%s) finished: %s", run_id, artifact_type, result)


# ------------------------------------------------------------------ the queue


@dataclass
class RunState:
    run_id: str
    repo: str
    artifact_type: str
    state: str = "queued"  # queued -> running -> done | error
    error: str | None = None


class RunQueue:
    """Runs ``start_run`` jobs one at a time per repository, each repo on its own worker thread."""

    def __init__(self, start_run: StartRun):
        self._start_run = start_run
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[tuple[RunState, dict[str, str]] | None]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self.runs: dict[str, RunState] = {}

    def submit(self, repo: str, params: dict[str, str]) -> RunState:
        """Queue one run of ``repo``; return its state record (``params["run-id"]`` is its id)."""
        state = RunState(params["run-id"], repo, params["artifact-type"])
        with self._lock:
            self.runs[state.run_id] = state
            q = self._queues.get(repo)
            if q is None:
                q = self._queues[repo] = queue.Queue()
                worker = threading.Thread(target=self._work, args=(q,), name=f"runs:{repo}", daemon=True)
                self._workers[repo] = worker
                worker.start()
            q.put((state, params))
        return state

    def _work(self, q: queue.Queue[tuple[RunState, dict[str, str]] | None]) -> None:
        while (job := q.get()) is not None:
            state, params = job
            state.state = "running"
            try:
                self._start_run(params)
                state.state = "done"
            except Exception as exc:  # noqa: BLE001 - a crashed run must not kill the repo's worker
                state.state, state.error = "error", f"{type(exc).__name__}: {exc}"
                log.error("run %s failed to complete: %s", state.run_id, state.error)

    def close(self, timeout: float = 10.0) -> None:
        """Let queued runs finish, then stop the workers (waiting up to ``timeout`` each)."""
        with self._lock:
            for q in self._queues.values():
                q.put(None)
            workers = list(self._workers.values())
        for w in workers:
            w.join(timeout)


# ------------------------------------------------------------- authentication


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def identify(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """Return ``(host, event)`` from the event header, or None when no known host sent it.

    ``headers`` has lower-cased names. Gitea also sends ``X-GitHub-Event`` for
    compatibility, so it is recognised first.
    """
    for host, header in (("gitea", "x-gitea-event"), ("gitlab", "x-gitlab-event"),
                         ("github", "x-github-event")):
        if headers.get(header):
            return host, headers[header]
    return None


def verify(host: str, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    """Return True when the request carries the right signature or token for ``host`` (constant time).

    ``headers`` has lower-cased names.
    """
    if host == "github":
        given = headers.get("x-hub-signature-256", "")
        expected = "sha256=" + _hmac_hex(secret, body)
    elif host == "gitea":
        given = headers.get("x-gitea-signature", "")
        expected = _hmac_hex(secret, body)
    elif host == "gitlab":
        given = headers.get("x-gitlab-token", "")
        expected = secret.decode()
    else:
        return False
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


PUSH_EVENTS = {"github": "push", "gitlab": "Push Hook", "gitea": "push"}


def clone_url(host: str, payload: Mapping[str, Any]) -> Any:
    """Return the repository clone URL from a push payload (GitLab keeps it under ``project``)."""
    holder = payload.get("project" if host == "gitlab" else "repository")
    if not isinstance(holder, dict):
        return None
    return holder.get("git_http_url" if host == "gitlab" else "clone_url")


# ------------------------------------------------------------------ the server


@dataclass(frozen=True)
class ReceiverSettings:
    """What the receiver needs besides the injected callables."""

    secret: bytes
    artifact_dirs: Mapping[str, str]
    branch: str = "main"
    target_environment: str = "dev"
    dry_run: bool = False
    max_body_bytes: int = MAX_BODY_BYTES


class _Reply(Exception):
    def __init__(self, status: HTTPStatus, body: dict[str, Any]):
        super().__init__(body)
        self.status, self.body = status, body


class ReceiverServer(ThreadingHTTPServer):
    """The HTTP server; holds the settings, the run queue and the run-id factory for its handlers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], settings: ReceiverSettings, run_queue: RunQueue,
                 new_run_id: Callable[[], str]):
        super().__init__(address, _Handler)
        self.settings, self.run_queue, self.new_run_id = settings, run_queue, new_run_id
        self._serving = False

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving = True
        super().serve_forever(poll_interval)

    def close(self) -> None:
        """Stop serving, close the socket and let queued runs finish."""
        if self._serving:  # shutdown() would wait forever on a server that never served
            self.shutdown()
        self.server_close()
        self.run_queue.close()


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    timeout = 15  # seconds per socket read: a stalled client cannot hold a thread forever
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, body: dict[str, Any], *, close: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path == "/healthz":
            self._send(HTTPStatus.OK, {"status": "ok"})
            return
        m = re.fullmatch(r"/runs/([A-Za-z0-9._-]+)", self.path)
        state = self.server.run_queue.runs.get(m.group(1)) if m else None
        if state is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
        else:
            self._send(HTTPStatus.OK, {"run_id": state.run_id, "artifact_type": state.artifact_type,
                                       "repo": state.repo, "state": state.state, "error": state.error})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        try:
            body = self._read_body()
            status, reply = self._handle(body)
        except _Reply as r:
            status, reply = r.status, r.body
        if status >= 400:
            log.warning("rejected %s: %s %s", self.address_string(), int(status), reply.get("error"))
        self._send(status, reply, close=status >= 400)

    def _read_body(self) -> bytes:
        if self.path.split("?")[0] not in ("/", "/webhook"):
            raise _Reply(HTTPStatus.NOT_FOUND, {"error": "POST webhooks to /webhook"})
        limit = self.server.settings.max_body_bytes
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.isdigit():
            raise _Reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
        length = int(raw_length)
        if length > limit:
            self._drain(length)
            raise _Reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         {"error": f"body is {length} bytes; the limit is {limit}"})
        return self.rfile.read(length)

    def _drain(self, length: int) -> None:
        remaining = min(length, MAX_DRAIN_BYTES)
        try:
            while remaining > 0 and (chunk := self.rfile.read(min(65536, remaining))):
                remaining -= len(chunk)
        except OSError:
            pass

    def _handle(self, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        settings = self.server.settings
        headers = {k.lower(): v for k, v in self.headers.items()}
        found = identify(headers)
        if found is None:
            raise _Reply(HTTPStatus.UNAUTHORIZED,
                         {"error": "no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header"})
        host, event = found
        if not verify(host, headers, body, settings.secret):
            raise _Reply(HTTPStatus.UNAUTHORIZED, {"error": f"missing or invalid {host} signature"})
        if event != PUSH_EVENTS[host]:
            reason = f"{host} event {event!r} is not handled"
            return HTTPStatus.ACCEPTED, {"status": "ignored", "reason": reason}
        payload = self._parse(body)
        decisions = decide_push(payload, settings.artifact_dirs, settings.branch)
        chosen = [d for d in decisions if d.triggered]
        if not chosen:
            reasons = list(dict.fromkeys(d.reason for d in decisions))
            return HTTPStatus.ACCEPTED, {"status": "ignored", "reason": "; ".join(reasons)}
        params = self._run_params(host, payload)
        runs = []
        for d in chosen:
            run_id = self.server.new_run_id()
            job = {"artifact-type": d.artifact_type, "run-id": run_id, "artifact-path": d.directory, **params}
            self.server.run_queue.submit(params["repo-url"], job)
            runs.append({"run_id": run_id, "artifact_type": d.artifact_type, "reason": d.reason})
            log.info("queued run %s (%s) for %s@%s: %s", run_id, d.artifact_type, params["repo-url"],
                     params["git-revision"][:12], d.reason)
        return HTTPStatus.ACCEPTED, {"status": "queued", "run_id": runs[0]["run_id"], "runs": runs}

    def _parse(self, body: bytes) -> dict[str, Any]:
        text: str | bytes = body
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            # GitHub's "application/x-www-form-urlencoded" delivery wraps the JSON in payload=...
            text = (parse_qs(body.decode("utf-8", "replace")).get("payload") or [""])[0]
        try:
            payload = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Reply(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"}) from exc
        if not isinstance(payload, dict):
            raise _Reply(HTTPStatus.BAD_REQUEST, {"error": "body is not a JSON object"})
        return payload

    def _run_params(self, host: str, payload: Mapping[str, Any]) -> dict[str, str]:
        settings = self.server.settings
        after, before, url = payload.get("after"), payload.get("before"), clone_url(host, payload)
        problems = [f"{name} is not a commit SHA" for name, v in (("after", after), ("before", before))
                    if not (isinstance(v, str) and SHA_RE.match(v))]
        if not (isinstance(url, str) and URL_RE.match(url)):
            problems.append("repository clone URL is missing or malformed")
        if problems:
            raise _Reply(HTTPStatus.BAD_REQUEST, {"error": "; ".join(problems)})
        assert isinstance(after, str) and isinstance(before, str) and isinstance(url, str)
        return {"git-revision": after, "base-revision": before, "repo-url": url,
                "target-environment": settings.target_environment,
                "dry-run": "true" if settings.dry_run else "false"}


def make_server(settings: ReceiverSettings, *, host: str = "127.0.0.1", port: int = 0,
                start_run: StartRun = run_locally,
                new_run_id: Callable[[], str] = default_run_id) -> ReceiverServer:
    """Return a bound (not yet serving) receiver; call ``serve_forever()`` and later ``close()``.

    ``start_run`` and ``new_run_id`` are injected so tests can use fakes; port 0
    picks a free port (read it from ``server.server_address``).
    """
    if not settings.secret:
        raise ValueError("the webhook secret is empty")
    return ReceiverServer((host, port), settings, RunQueue(start_run), new_run_id)
