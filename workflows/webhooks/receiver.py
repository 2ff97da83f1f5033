"""The local webhook receiver: Git host push -> verified -> filtered -> coalesced run of one checkout.

The embedded-default counterpart of the Argo Events Sensor. A request is checked in this
order, each failure answering at once with one log line:

1. route (``POST /webhook``) -> 404; sender (an event header of a known host) -> 401;
   ``Content-Type`` (JSON; GitHub also form-encoded) -> 415;
2. size: no ``Content-Length`` -> 411; over ``max_body_bytes`` (25 MiB, GitHub's own cap) -> 413;
3. the whole request (headers and body) must arrive within ``request_deadline`` seconds, or
   the connection is cut (a slow client cannot hold a thread);
4. authenticity with the *host's own* secret (:mod:`workflows.webhooks.auth`) -> 401;
5. a signed event other than a push -> 202 ignored; no delivery id -> 400;
   a delivery id or body seen in the last 24 h -> 409 (replay);
6. the push rule (:mod:`workflows.webhooks.trigger_filter`, the Sensor's own filter dict; a
   body over ``filter_cap_bytes``, the EventSource's 1 MiB, skips the file lists and fires) ->
   202 ignored, or the push joins the run queue (:mod:`workflows.webhooks.run_queue`):
   202 queued, or 429 when the queue is full.

Queued jobs run on one worker (:mod:`workflows.webhooks.local_ci`): fetch ``after`` from the
configured remote, check it out, run the pipelines of the types that changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn
from urllib.parse import parse_qs

from workflows.webhooks.auth import HostSpec, WebhookSecrets, identify, verify
from workflows.webhooks.bitbucket import bitbucket_revisions, decide_bitbucket_push
from workflows.webhooks.run_queue import DEDUPE_SECONDS, DeliveryLog, Push, QueueFull, RunQueue, StartJob
from workflows.webhooks.sensor_filter import parse_event
from workflows.webhooks.trigger_filter import decide_push
from workflows.webhooks.watchdog import Watchdog

log = logging.getLogger("promptci.receiver")

FILTER_CAP_BYTES = 1024 * 1024  # argo-events' default maxPayloadSize (WebhookContext), as our EventSources set
MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub drops webhook payloads over 25 MB; nothing legitimate is larger
MAX_DRAIN_BYTES = 8 * 1024 * 1024  # an oversized body is read this far so the client sees the 413
REQUEST_DEADLINE = 10.0
MAX_CONNECTIONS = 64  # handler threads at once; more connections get 503 at once


@dataclass(frozen=True)
class ReceiverSettings:
    """What the receiver needs besides the run queue."""

    secrets: WebhookSecrets
    artifact_dirs: Mapping[str, str]
    branch: str = "main"
    filter_cap_bytes: int = FILTER_CAP_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    request_deadline: float = REQUEST_DEADLINE
    max_connections: int = MAX_CONNECTIONS
    dedupe_seconds: float = DEDUPE_SECONDS


class _Reply(Exception):
    def __init__(self, status: HTTPStatus, body: dict[str, Any]):
        super().__init__(body)
        self.status, self.body = status, body


class ReceiverServer(ThreadingHTTPServer):
    """The HTTP server: settings, run queue, replay log and deadline watchdog for its handlers."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], settings: ReceiverSettings, run_queue: RunQueue):
        super().__init__(address, _Handler)
        self.settings, self.run_queue = settings, run_queue
        self.deliveries = DeliveryLog(ttl=settings.dedupe_seconds)
        self.watchdog = Watchdog()
        self._slots = threading.BoundedSemaphore(settings.max_connections)
        self._serving = False

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread, or answer 503 when ``max_connections`` are busy.

        With the request deadline this bounds both the threads and the memory that bodies
        still being read can take.
        """
        if not self._slots.acquire(blocking=False):
            log.warning("refused %s: %d connections busy", client_address[0], self.settings.max_connections)
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\nRetry-After: 1\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving = True
        super().serve_forever(poll_interval)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log one line instead of socketserver's traceback."""
        import sys

        exc = sys.exc_info()[1]
        log.warning("request from %s failed: %s: %s", client_address[0], type(exc).__name__, exc)

    def close(self) -> None:
        """Stop serving, close the socket and let queued runs finish."""
        if self._serving:  # shutdown() would wait forever on a server that never served
            self.shutdown()
        self.server_close()
        self.watchdog.stop()
        self.run_queue.close()


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.settings.request_deadline)
        self._watch = self.server.watchdog.watch(self.connection, self.server.settings.request_deadline)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError) as exc:
            if not self.server.watchdog.fired(self._watch):  # finish() reports a deadline cut
                self._log_disconnect(exc)

    def parse_request(self) -> bool:
        """Parse the request line and headers, unless the deadline cut them short (then say nothing)."""
        if self.server.watchdog.fired(self._watch):
            self.close_connection = True
            return False
        ok = super().parse_request()
        if self.server.watchdog.fired(self._watch):
            self.close_connection = True
            return False
        return ok

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if self.server.watchdog.done(self._watch):
            log.warning("client %s cut off: request not complete within %.1f s",
                        self.client_address[0], self.server.settings.request_deadline)

    def _log_disconnect(self, exc: BaseException) -> None:
        log.info("client %s disconnected: %s", self.client_address[0], type(exc).__name__)

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
        job = self.server.run_queue.get(m.group(1)) if m else None
        if job is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
        else:
            self._send(HTTPStatus.OK, job.summary())

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        keys: list[str] = []
        try:
            host, event, body = self._read_request()
            status, reply = self._handle(host, event, body, keys)
        except _Reply as r:
            status, reply = r.status, r.body
        except _CutOff:
            self.close_connection = True
            return
        if status >= 400 and status != HTTPStatus.CONFLICT:
            self.server.deliveries.release(keys)  # not accepted: a redelivery may try again
        if status >= 400:
            log.warning("rejected %s: %s %s", self.address_string(), int(status), reply.get("error"))
        self._send(status, reply, close=True)

    def _read_request(self) -> tuple[HostSpec, str, bytes]:
        settings = self.server.settings
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw_length = headers.get("content-length")
        length = int(raw_length) if raw_length is not None and raw_length.isdigit() else None
        if self.path.split("?")[0] not in ("/", "/webhook"):
            self._refuse(length, HTTPStatus.NOT_FOUND, "POST webhooks to /webhook")
        found = identify(headers)
        if found is None:
            self._refuse(length, HTTPStatus.UNAUTHORIZED,
                         "no X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event or X-Event-Key header")
        host, event = found
        media = _media_type(headers.get("content-type", ""))
        if media not in host.content_types:
            self._refuse(length, HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                         f"Content-Type {media or '(none)'} is not {' or '.join(host.content_types)}")
        if length is None:
            raise _Reply(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
        if length > settings.max_body_bytes:
            self._refuse(length, HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"body is {length} bytes; the limit is {settings.max_body_bytes}")
        return host, event, self._read_exactly(length)

    def _refuse(self, length: int | None, status: HTTPStatus, error: str) -> NoReturn:
        """Raise the reply, after reading away (a bounded part of) the body so the client sees it."""
        if length:
            self._drain(length)
        raise _Reply(status, {"error": error})

    def _read_exactly(self, length: int) -> bytes:
        chunks, remaining = [], length
        try:
            while remaining > 0 and (chunk := self.rfile.read1(min(remaining, 1 << 16))):
                chunks.append(chunk)
                remaining -= len(chunk)
        except (ConnectionError, TimeoutError, OSError) as exc:
            self._log_disconnect(exc)
            raise _CutOff from exc
        if remaining:
            if not self.server.watchdog.done(self._watch):
                log.info("client %s disconnected after %d of %d bytes", self.client_address[0],
                         length - remaining, length)
            else:
                log.warning("client %s cut off after %d of %d bytes: request not complete within %.1f s",
                            self.client_address[0], length - remaining, length,
                            self.server.settings.request_deadline)
            raise _CutOff
        return b"".join(chunks)

    def _drain(self, length: int) -> None:
        remaining = min(length, MAX_DRAIN_BYTES)
        try:
            while remaining > 0 and (chunk := self.rfile.read(min(65536, remaining))):
                remaining -= len(chunk)
        except OSError:
            pass

    def _handle(self, host: HostSpec, event: str, body: bytes, keys: list[str]) -> tuple[HTTPStatus, dict[str, Any]]:
        settings = self.server.settings
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not verify(host.key, headers, body, settings.secrets.get(host.key)):
            raise _Reply(HTTPStatus.UNAUTHORIZED, {"error": f"missing or invalid {host.key} signature"})
        if event != host.push_event:
            return HTTPStatus.ACCEPTED, {"status": "ignored", "reason": f"{host.key} event {event!r} is not handled"}
        delivery = headers.get(host.delivery_header, "").strip()
        if not delivery:
            raise _Reply(HTTPStatus.BAD_REQUEST, {"error": f"{host.delivery_header} is required"})
        keys += [f"{host.key}:delivery:{delivery}", f"{host.key}:body:{hashlib.sha256(body).hexdigest()}"]
        seen = self.server.deliveries.reserve(keys)
        if seen is not None:
            what = "delivery id" if ":delivery:" in seen else "body"
            raise _Reply(HTTPStatus.CONFLICT, {"status": "duplicate",
                                               "error": f"this {what} was accepted in the last 24 h (replay)"})
        return self._queue(host.key, delivery, self._payload_bytes(host.key, body), len(body))

    def _payload_bytes(self, host: str, body: bytes) -> bytes:
        if _media_type(self.headers.get("Content-Type", "")) == "application/x-www-form-urlencoded":
            # GitHub's form delivery wraps the JSON in payload=...
            return (parse_qs(body.decode("utf-8", "replace")).get("payload") or [""])[0].encode()
        return body

    def _queue(self, host: str, delivery: str, payload: bytes, size: int) -> tuple[HTTPStatus, dict[str, Any]]:
        settings = self.server.settings
        try:
            if host == "bitbucket":
                decisions = decide_bitbucket_push(payload, settings.artifact_dirs, settings.branch)
            else:
                decisions = decide_push(host, payload, settings.artifact_dirs, settings.branch,
                                        lists_usable=size <= settings.filter_cap_bytes)
        except ValueError as exc:
            raise _Reply(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"}) from exc
        fired = [d for d in decisions if d.triggered]
        if not fired:
            reasons = list(dict.fromkeys(d.reason for d in decisions))
            return HTTPStatus.ACCEPTED, {"status": "ignored", "reason": "; ".join(reasons)}
        before, after = _revisions(host, payload, settings.branch)
        types = None if any(not d.listed for d in fired) else frozenset(d.artifact_type for d in fired)
        push = Push(host, delivery, settings.branch, before, after, types, fired[0].reason)
        try:
            job, merged = self.server.run_queue.submit(push)
        except QueueFull as exc:
            raise _Reply(HTTPStatus.TOO_MANY_REQUESTS, {"error": f"run queue full: {exc}; retry later"}) from exc
        log.info("%s push %s@%s %s run %s: %s", host, settings.branch, after[:12],
                 "merged into" if merged else "queued as", job.job_id, push.reason)
        return HTTPStatus.ACCEPTED, {"status": "queued", "run_id": job.job_id, "coalesced": merged,
                                     "types": sorted(types) if types is not None else "decided by git diff",
                                     "reason": push.reason}


class _CutOff(Exception):
    """The client went away or missed the deadline; there is nobody to answer."""


def _revisions(host: str, payload: bytes, branch: str) -> tuple[str, str]:
    """Return ``(before, after)`` of a push the rule accepted (so both are SHAs)."""
    if host == "bitbucket":
        revs = bitbucket_revisions(json.loads(payload), branch)
        assert revs is not None  # decide_bitbucket_push fired, so the change has valid hashes
        return revs
    body = parse_event(host, payload)["body"]  # the same reading of duplicate keys as the rule's
    return str(body["before"]), str(body["after"])


def make_server(settings: ReceiverSettings, start_job: StartJob, *, host: str = "127.0.0.1", port: int = 0,
                queue_capacity: int = 8, new_id: Any = None) -> ReceiverServer:
    """Return a bound (not yet serving) receiver; call ``serve_forever()`` and later ``close()``.

    ``start_job`` runs one coalesced job (``LocalCI`` in ``serve``; a fake in tests); port 0
    picks a free port (read it from ``server.server_address``). Raises ValueError for
    unusable secrets (none, or two hosts sharing one).
    """
    problems = settings.secrets.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return ReceiverServer((host, port), settings, RunQueue(start_job, queue_capacity, new_id))
