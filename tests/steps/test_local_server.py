"""The bundled model server as a process: ready on probe, deterministic, restarted if killed, gone when stopped.

Real model, real Node server, real HTTP (needs ``make setup-local-model``; fails in CI without it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from steps.providers import local_model
from tests.local_model_kit import require_local_model

pytestmark = pytest.mark.slow

REQUEST = {"model": "smollm2-135m-instruct", "temperature": 0, "seed": 7, "max_tokens": 16,
           "messages": [{"role": "system", "content": 'Reply with JSON like {"order_id": "ORD-..."}.'},
                        {"role": "user", "content": "Message: I want to cancel ORD-90017 please."}]}


def _chat(base_url: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{base_url}/chat/completions", json.dumps(REQUEST).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _gone(pid: int, port: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as s:  # SO_REUSEADDR: closed connections in TIME_WAIT don't count, a listener does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_server_lifecycle(tmp_path: Path) -> None:
    require_local_model()
    server = local_model.LocalServer(log_path=tmp_path / "server.log")
    url = server.start()
    first_pid, port = server.pid, server.port
    assert first_pid is not None
    try:
        assert local_model.probe(url)
        one, two = _chat(url), _chat(url)
        assert one["choices"][0]["message"]["content"] == two["choices"][0]["message"]["content"]
        usage = one["usage"]
        assert usage["prompt_tokens"] > 20 and 0 < usage["completion_tokens"] <= 16
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + local_model.ready_timeout()
        while (server.pid == first_pid or not local_model.probe(url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.pid != first_pid and server.port == port and server.restarts == 1
        again = _chat(url)  # same port, same answer from the restarted process
        assert again["choices"][0]["message"]["content"] == one["choices"][0]["message"]["content"]
    finally:
        last_pid = server.pid
        server.stop()
    assert last_pid is not None
    _gone(first_pid, port)
    _gone(last_pid, port)
