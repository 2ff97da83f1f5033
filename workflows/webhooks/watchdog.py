"""One thread that cuts connections whose request is not complete by its deadline.

A per-read socket timeout cannot stop a client that sends one byte a second; shutting the
socket down at a whole-request deadline can. One thread serves every connection, so the
receiver does not start a timer thread per request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Watchdog:
    """Cuts connections whose request is not done by its deadline (one thread for all of them)."""

    def __init__(self, interval: float = 0.05):
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, socket.socket]] = {}
        self._fired: set[int] = set()
        self._next = 0
        self._interval = interval
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="promptci-deadlines", daemon=True).start()

    def watch(self, sock: socket.socket, seconds: float) -> int:
        with self._lock:
            self._next += 1
            self._entries[self._next] = (time.monotonic() + seconds, sock)
            return self._next

    def fired(self, token: int) -> bool:
        """Return whether the deadline has cut this connection (still watching it)."""
        with self._lock:
            return token in self._fired

    def done(self, token: int) -> bool:
        """Stop watching; return whether the deadline had already cut the connection."""
        with self._lock:
            self._entries.pop(token, None)
            fired = token in self._fired
            self._fired.discard(token)
            return fired

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            now = time.monotonic()
            with self._lock:
                late = [(t, s) for t, (d, s) in self._entries.items() if d <= now]
                for t, _ in late:
                    del self._entries[t]
                    self._fired.add(t)
            for _, sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
