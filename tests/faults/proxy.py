"""A TCP proxy in front of the S3 server that injects faults at a chosen request.

The store is reached over real HTTP (moto), so a fault is what a client would see: the
connection drops (S3 unreachable), or the server answers 503. The proxy reads the request
line of every request it forwards (boto3 sends one per PUT/GET, keep-alive or not), so a
fault can fire exactly at a point of promote: before a matching request is forwarded, or
right after its response went back. An action can also SIGKILL a process (the promote
step) at that moment. Why not patch boto3: the project's rule is real parts only.

Two standing conditions, besides the one-shot triggers: ``delay_s`` holds every request that
long before forwarding it (a network round trip, for bench/bench_store.py), and ``refuse``
answers 503 to every request matching a pattern (one key that cannot be written, whatever
the client's retries).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_REQUEST = re.compile(rb"^(GET|PUT|HEAD|POST|DELETE) (\S+) HTTP/1\.[01]\r\n", re.M)
_UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n")


@dataclass
class Trigger:
    """Fire ``action`` once, at the first request whose line matches ``pattern``.

    ``when``: ``before`` (the request is not forwarded) or ``after`` (its response was sent).
    """

    pattern: str
    when: str
    action: Callable[[], None]
    fired: bool = False


class FaultProxy:
    """Forward 127.0.0.1:<port> to ``upstream``; ``mode`` is ``up``, ``down`` (drop) or ``503``."""

    def __init__(self, upstream: str, down_flag: Path | None = None):
        host, port = upstream.removeprefix("http://").split(":")
        self.down_flag = down_flag  # a file whose existence means "down" (a git hook can create it)
        self.upstream = (host, int(port))
        self.mode = "up"
        self.delay_s = 0.0  # added before each request is forwarded
        self.refused: list[str] = []  # patterns of request lines answered 503, every time
        self.triggers: list[Trigger] = []
        self.requests: list[str] = []
        self.in_flight = 0  # requests forwarded whose response has not started back yet
        self.peak_in_flight = 0  # the most there ever were at once
        self.pid: int | None = None
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    # actions a trigger can take
    def go_down(self) -> None:
        self.mode = "down"

    def kill_target(self) -> None:
        """SIGKILL the process under test (its pid is set by the harness when it starts it)."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)

    def at(self, pattern: str, when: str, action: Callable[[], None]) -> None:
        self.triggers.append(Trigger(pattern, when, action))

    def refuse(self, pattern: str) -> None:
        """Answer 503 to every request whose line (``PUT /bucket/key``) matches ``pattern``, from now on."""
        self.refused.append(pattern)

    def _fire(self, line: str, when: str) -> bool:
        with self._lock:
            for t in self.triggers:
                if not t.fired and t.when == when and re.search(t.pattern, line):
                    t.fired = True
                    t.action()
                    return True
        return False

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _count(self, n: int) -> None:
        """Add ``n`` to the requests in flight (a response counts before the client can see it)."""
        with self._lock:
            self.in_flight += n
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _down(self) -> bool:
        if self.down_flag is not None and self.down_flag.exists():
            self.mode = "down"
        return self.mode == "down"

    def _serve(self, client: socket.socket) -> None:
        if self._down():
            client.close()
            return
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        pending: list[str] = []
        waiting: list[None] = []  # one per request of this connection in flight
        done = threading.Event()

        def back() -> None:  # server -> client, firing "after" triggers once a response went back
            try:
                while not done.is_set():
                    data = server.recv(65536)
                    if not data:
                        break
                    if data.startswith(b"HTTP/1.") and waiting:
                        waiting.pop()
                        self._count(-1)
                    client.sendall(data)
                    if data.startswith(b"HTTP/1.") and pending:
                        self._fire(pending.pop(0), "after")
            except OSError:
                pass
            finally:
                done.set()
                client.close()

        threading.Thread(target=back, daemon=True).start()
        try:
            while not done.is_set():
                data = client.recv(65536)
                if not data or self._down():
                    break
                m = _REQUEST.search(data)
                if m:
                    line = f"{m.group(1).decode()} {m.group(2).decode()}"
                    self.requests.append(line)
                    if self._fire(line, "before") or self.mode == "down":
                        break  # a "before" fault never lets its request through
                    if self.mode == "503" or any(re.search(p, line) for p in self.refused):
                        client.sendall(_UNAVAILABLE)
                        break
                    pending.append(line)
                    waiting.append(None)
                    self._count(1)
                    if self.delay_s:
                        time.sleep(self.delay_s)
                server.sendall(data)
        except OSError:
            pass
        finally:
            done.set()
            self._count(-len(waiting))  # dropped before their answer
            waiting.clear()
            for s in (server, client):
                with contextlib.suppress(OSError):
                    s.close()
