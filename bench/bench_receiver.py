"""Benchmark: how fast the receiver rejects wrongly signed pushes, side by side with two references.

Three servers on 127.0.0.1 get the same 500 GitHub pushes signed with a wrong key, 4 client
threads at a time (bounded), one connection per request:

* ``floor``: a bare ``ThreadingHTTPServer`` that answers 401 without reading the body;
* ``before``: the receiver as it was before per-host secrets (loaded from git history at
  ``--before-rev``, when that revision is there);
* ``now``: the receiver in this checkout (deadline watchdog, Content-Type, per-host secrets).

Prints p50/p95 latency and requests/s for each, the ratios, and the machine's load average.
Goal: ``now`` no worse than p50 1.8 ms / ~300 req/s on the development machine.

Run: python bench/bench_receiver.py [--requests 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import importlib.util
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import quick  # noqa: E402
from workflows.webhooks.auth import WebhookSecrets  # noqa: E402
from workflows.webhooks.receiver import ReceiverSettings, make_server  # noqa: E402

BODY = (ROOT / "tests" / "fixtures" / "payloads" / "github-normal.json").read_bytes()
DIRS = {"prompt": "prompts", "model-config": "model-configs", "rag-config": "rag-configs",
        "guardrail-policy": "guardrails"}
# The last commit of main before this change (per-host secrets); its receiver is "before".
BEFORE_REV = "df04b5b"


class _Floor(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def floor_server() -> tuple[int, Callable[[], None]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Floor)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server.server_address[1], stop


def now_server() -> tuple[int, Callable[[], None]]:
    secrets = WebhookSecrets(github=b"right-key", gitlab=b"gl", gitea=b"gt", bitbucket=b"bb")
    server = make_server(ReceiverSettings(secrets=secrets, artifact_dirs=DIRS), lambda job: None)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server.server_address[1], server.close


def before_server(rev: str) -> tuple[int, Callable[[], None]] | None:
    """Return the pre-change receiver loaded from git at ``rev``, or None when that revision is absent."""
    proc = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:workflows/webhooks/receiver.py"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    with tempfile.NamedTemporaryFile("w", suffix="_receiver_before.py", delete=False) as fh:
        fh.write(proc.stdout)
    spec = importlib.util.spec_from_file_location("receiver_before", fh.name)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["receiver_before"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    os.unlink(fh.name)
    server = mod.make_server(mod.ReceiverSettings(secret=b"right-key", artifact_dirs=DIRS),
                             start_run=lambda params: None)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server.server_address[1], server.close


def headers() -> dict[str, str]:
    mac = hmac.new(b"wrong-key", BODY, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "d",
            "X-Hub-Signature-256": "sha256=" + mac}


def measure(port: int, n: int, concurrency: int) -> tuple[float, float, float]:
    """Return (p50 ms, p95 ms, requests/s) for ``n`` rejected pushes, ``concurrency`` at a time."""
    hdrs = headers()

    def one(_: int) -> float:
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/webhook", body=BODY, headers=hdrs)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 401, resp.status
        return time.perf_counter() - t0

    for _ in range(20):  # warm up
        one(0)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        lat = list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(lat, n=20)
    return statistics.median(lat) * 1000, q[18] * 1000, n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--before-rev", default=BEFORE_REV)
    args = ap.parse_args()
    if quick():
        args.requests = min(args.requests, 100)
    logging.disable(logging.CRITICAL)  # 1,500 "rejected" lines would time the terminal, not the receiver
    servers: dict[str, tuple[int, Callable[[], None]] | None] = {
        "floor": floor_server(), "before": before_server(args.before_rev), "now": now_server()}
    load = os.getloadavg()
    results = {}
    for name, started in servers.items():
        if started is None:
            print(f"{name:>7}: skipped (revision {args.before_rev} not in this clone)")
            continue
        port, stop = started
        results[name] = measure(port, args.requests, args.concurrency)
        stop()
        p50, p95, rps = results[name]
        print(f"{name:>7}: p50 {p50:.2f} ms  p95 {p95:.2f} ms  {rps:.0f} req/s")
    now = results["now"]
    for ref in ("floor", "before"):
        if ref in results:
            p50, _, rps = results[ref]
            print(f"now/{ref}: p50 x{now[0] / p50:.2f}, req/s x{now[2] / rps:.2f}")
    print(f"{args.requests} requests, {args.concurrency} at a time; load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} on {os.cpu_count()} cores (goal: p50 <= 1.8 ms, >= 300 req/s)")


if __name__ == "__main__":
    main()
