"""The webhook receiver over real HTTP on 127.0.0.1: per-host auth, replays, the queue, deadlines, sizes."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from config.pipeline import PromptPipelineConfig
from workflows.cli.serve import serve
from workflows.webhooks.auth import WebhookSecrets
from workflows.webhooks.receiver import ReceiverServer, ReceiverSettings, make_server
from workflows.webhooks.run_queue import DeliveryLog, Job

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
CASES: dict[str, dict[str, Any]] = json.loads((PAYLOADS / "cases.json").read_text())
SECRETS = {"github": "gh-key-1", "gitlab": "gl-token-2", "gitea": "gt-key-3", "bitbucket": "bb-key-4"}
EVENT_HEADER = {"github": "X-GitHub-Event", "gitlab": "X-Gitlab-Event", "gitea": "X-Gitea-Event",
                "bitbucket": "X-Event-Key"}
DELIVERY_HEADER = {"github": "X-GitHub-Delivery", "gitlab": "X-Gitlab-Event-UUID", "gitea": "X-Gitea-Delivery",
                   "bitbucket": "X-Request-UUID"}
PUSH = {"github": "push", "gitlab": "Push Hook", "gitea": "push", "bitbucket": "repo:push"}
PROOF_HEADERS = ("X-Hub-Signature-256", "X-Gitea-Signature", "X-Gitlab-Token", "X-Hub-Signature")


def bitbucket_body(case: str = "normal") -> bytes:
    rows = [json.loads(line) for line in (PAYLOADS / "bitbucket-corpus.jsonl").read_text().splitlines()]
    return str(next(r for r in rows if r["case"] == case)["body"]).encode()


def body_of(host: str, case: str = "normal") -> bytes:
    return bitbucket_body(case) if host == "bitbucket" else (PAYLOADS / f"{host}-{case}.json").read_bytes()


def signed(host: str, body: bytes, event: str | None = None, secret: str | None = None,
           delivery: str | None = None) -> dict[str, str]:
    """Return the headers ``host`` sends with ``body``, signed with ``secret`` (default: its own)."""
    key = (secret or SECRETS[host]).encode()
    mac = hmac.new(key, body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", EVENT_HEADER[host]: event or PUSH[host],
               DELIVERY_HEADER[host]: delivery or str(uuid.uuid4())}
    if host == "github":
        headers["X-Hub-Signature-256"] = "sha256=" + mac
    elif host == "gitea":  # Gitea also sends the GitHub-compatible headers
        headers.update({"X-Gitea-Signature": mac, "X-GitHub-Event": headers[EVENT_HEADER[host]],
                        "X-Hub-Signature-256": "sha256=0"})
    elif host == "bitbucket":
        headers["X-Hub-Signature"] = "sha256=" + mac
    else:
        headers["X-Gitlab-Token"] = key.decode()
    return headers


@dataclass
class FakeCI:
    """Records jobs; ``gate`` (when set) holds each job until the test releases it."""

    gate: threading.Event | None = None
    jobs: list[Job] = field(default_factory=list)
    started: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    finished: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def __call__(self, job: Job) -> None:
        self.jobs.append(job)
        self.started.release()
        try:
            if self.gate is not None:
                assert self.gate.wait(30), "test never released the gate"
        finally:
            self.finished.release()

    def wait(self, n: int = 1, timeout: float = 10.0) -> None:
        for _ in range(n):
            assert self.finished.acquire(timeout=timeout), "job did not finish in time"


@dataclass
class Receiver:
    server: ReceiverServer
    ci: FakeCI

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/webhook", body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()


def start(ci: FakeCI | None = None, *, capacity: int = 8, secrets: WebhookSecrets | None = None,
          **kw: Any) -> Receiver:
    ci = ci or FakeCI()
    secrets = secrets or WebhookSecrets(**{h: s.encode() for h, s in SECRETS.items()})
    settings = ReceiverSettings(secrets=secrets, artifact_dirs=PromptPipelineConfig().artifact_dirs, **kw)
    counter = itertools.count(1)
    server = make_server(settings, ci, queue_capacity=capacity, new_id=lambda: f"run-{next(counter)}")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return Receiver(server, ci)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start()
    yield r
    r.server.close()


def with_after(host: str, n: int) -> bytes:
    """Return the host's normal push with a distinct ``after`` (as a later push would have)."""
    data = json.loads(body_of(host))
    data["after"] = hashlib.sha1(f"after-{n}".encode()).hexdigest()
    return json.dumps(data).encode()


# ---------------------------------------------------------------- authenticity


@pytest.mark.parametrize("host", ["github", "gitlab", "gitea", "bitbucket"])
def test_each_hosts_own_signature_is_required(receiver: Receiver, host: str) -> None:
    body = body_of(host)
    status, reply = receiver.post(body, signed(host, body))
    assert (status, reply["status"]) == (202, "queued")
    assert receiver.post(body, signed(host, body, secret="not-the-secret"))[0] == 401
    if host != "gitlab":  # GitLab sends a token, not a body signature
        tampered = body.replace(b"main", b"mainx", 1)
        assert receiver.post(tampered, signed(host, body))[0] == 401
    missing = {k: v for k, v in signed(host, body).items() if k not in PROOF_HEADERS}
    status, reply = receiver.post(body, missing)
    assert status == 401 and host in reply["error"]
    receiver.ci.wait(1)
    assert len(receiver.ci.jobs) == 1


@pytest.mark.parametrize(("host", "other"), [("github", "gitlab"), ("gitea", "gitlab"), ("bitbucket", "gitlab"),
                                             ("github", "gitea"), ("gitlab", "github")])
def test_another_hosts_secret_never_authenticates(receiver: Receiver, host: str, other: str) -> None:
    """Holding GitLab's token (sent in clear on every delivery) does not let anyone sign for GitHub."""
    body = body_of(host)
    status, reply = receiver.post(body, signed(host, body, secret=SECRETS[other]))
    assert status == 401 and receiver.ci.jobs == []


def test_a_host_without_a_secret_is_refused() -> None:
    r = start(secrets=WebhookSecrets(github=b"only-github"))
    try:
        body = body_of("gitea")
        assert r.post(body, signed("gitea", body))[0] == 401
    finally:
        r.server.close()


def test_equal_secrets_for_two_hosts_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="github and gitlab webhook secrets are equal"):
        make_server(ReceiverSettings(secrets=WebhookSecrets(github=b"same", gitlab=b"same"),
                                     artifact_dirs={"prompt": "prompts"}), FakeCI())


# ---------------------------------------------------------------- replays and request shape


def test_a_replay_is_rejected_by_delivery_id_and_by_body(receiver: Receiver) -> None:
    body = body_of("github")
    headers = signed("github", body, delivery="d-1")
    assert receiver.post(body, headers)[0] == 202
    status, reply = receiver.post(body, headers)
    assert (status, reply["status"]) == (409, "duplicate") and "delivery id" in reply["error"]
    status, reply = receiver.post(body, signed("github", body, delivery="d-2"))  # new id, same signed body
    assert status == 409 and "body" in reply["error"]
    other = with_after("github", 1)
    assert receiver.post(other, signed("github", other, delivery="d-1"))[0] == 409
    receiver.ci.wait(1)
    assert len(receiver.ci.jobs) == 1


def test_a_delivery_that_was_not_accepted_can_be_redelivered(receiver: Receiver) -> None:
    headers = signed("github", b"not json", delivery="d-9")
    assert receiver.post(b"not json", headers)[0] == 400
    body = body_of("github")
    assert receiver.post(body, signed("github", body, delivery="d-9"))[0] == 202


def test_push_without_delivery_id_is_400(receiver: Receiver) -> None:
    body = body_of("gitlab")
    headers = {k: v for k, v in signed("gitlab", body).items() if k != DELIVERY_HEADER["gitlab"]}
    status, reply = receiver.post(body, headers)
    assert status == 400 and "x-gitlab-event-uuid" in reply["error"]


def test_content_type_is_enforced(receiver: Receiver) -> None:
    body = body_of("gitea")
    for ctype in ("text/plain", "application/x-www-form-urlencoded", ""):
        status, reply = receiver.post(body, {**signed("gitea", body), "Content-Type": ctype})
        assert status == 415, ctype
    body = urlencode({"payload": body_of("github").decode()}).encode()
    headers = {**signed("github", body), "Content-Type": "application/x-www-form-urlencoded"}
    assert receiver.post(body, headers)[0] == 202  # GitHub's form delivery is allowed


def test_signed_non_push_events_and_ignored_pushes_start_nothing(receiver: Receiver) -> None:
    ping = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    assert receiver.post(ping, signed("github", ping, event="ping")) == \
        (202, {"status": "ignored", "reason": "github event 'ping' is not handled"})
    for host, case in (("github", "tag-push"), ("gitlab", "not-prompts"), ("gitea", "branch-delete")):
        status, reply = receiver.post(body_of(host, case), signed(host, body_of(host, case)))
        assert (status, reply["status"]) == (202, "ignored") and reply["reason"]
    tag = bitbucket_body("tag")
    assert receiver.post(tag, signed("bitbucket", tag))[1]["status"] == "ignored"
    data = json.loads(body_of("github"))
    data["after"] = "{{workflow.name}}"
    forged = json.dumps(data).encode()
    status, reply = receiver.post(forged, signed("github", forged))
    assert (status, reply["status"], reply["reason"]) == (202, "ignored", "after/before are not commit SHAs")
    assert receiver.ci.jobs == []


# ---------------------------------------------------------------- the queue


def test_fifty_concurrent_pushes_to_one_branch_become_at_most_two_runs() -> None:
    gate = threading.Event()
    r = start(FakeCI(gate=gate))
    try:
        bodies = [with_after("github", n) for n in range(50)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(pool.map(lambda b: r.post(b, signed("github", b)), bodies))
        assert [s for s, _ in replies] == [202] * 50
        assert len({rep["run_id"] for _, rep in replies}) <= 2
        gate.set()
        r.ci.wait(len({rep["run_id"] for _, rep in replies}))
        assert len(r.ci.jobs) <= 2 and sum(len(j.pushes) for j in r.ci.jobs) == 50
        last = r.ci.jobs[-1]
        assert last.pushes[-1].after in {json.loads(b)["after"] for b in bodies}
        assert r.get(f"/runs/{last.job_id}")[1]["pushes"] == len(last.pushes)
    finally:
        gate.set()
        r.server.close()


def test_a_full_queue_answers_429_and_frees_up_after_the_run() -> None:
    gate = threading.Event()
    r = start(FakeCI(gate=gate), capacity=1)
    try:
        first = with_after("github", 1)
        assert r.post(first, signed("github", first))[0] == 202
        assert r.ci.started.acquire(timeout=10)  # the run is busy
        second = with_after("github", 2)
        status, reply = r.post(second, signed("github", second))
        assert status == 429 and "run queue full" in reply["error"]
        gate.set()
        r.ci.wait(1)
        time.sleep(0.05)  # let the worker mark the slot free
        assert r.post(second, signed("github", second))[0] == 202  # the 429 did not burn the delivery
    finally:
        gate.set()
        r.server.close()


def test_an_empty_commits_delivery_is_one_run_decided_by_git(receiver: Receiver) -> None:
    body = body_of("gitlab", "empty-commits")
    status, reply = receiver.post(body, signed("gitlab", body))
    assert (status, reply["types"]) == (202, "decided by git diff")
    receiver.ci.wait(1)
    (job,) = receiver.ci.jobs
    assert job.types is None


# ---------------------------------------------------------------- sizes, deadlines, disconnects


def test_a_two_megabyte_push_still_runs(receiver: Receiver) -> None:
    data = json.loads(body_of("github", "not-prompts"))
    data["commits"][0]["message"] = "x" * (2 * 1024 * 1024)
    body = json.dumps(data).encode()
    status, reply = receiver.post(body, signed("github", body))
    assert (status, reply["status"], reply["types"]) == (202, "queued", "decided by git diff")
    assert "size cap" in reply["reason"]


def test_over_the_hard_limit_is_413() -> None:
    r = start(max_body_bytes=4096)
    try:
        body = b"x" * 5000
        status, reply = r.post(body, signed("github", body))
        assert status == 413 and "limit is 4096" in reply["error"]
    finally:
        r.server.close()


def test_a_one_byte_per_second_client_is_cut_off_at_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    r = start(request_deadline=1.5)
    caplog.set_level(logging.INFO, logger="promptci.receiver")
    try:
        body = body_of("github")
        head = "".join(f"{k}: {v}\r\n" for k, v in signed("github", body).items())
        request = (f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n").encode() + body
        sock = socket.create_connection(("127.0.0.1", r.port))
        sock.settimeout(0.2)
        sent, cut = 0, False
        for byte in request[:20]:
            try:
                sock.sendall(bytes([byte]))
                sent += 1
                if sock.recv(1) == b"":
                    cut = True
                    break
            except TimeoutError:
                pass
            except OSError:
                cut = True
                break
            time.sleep(0.8)
        sock.close()
        assert cut and sent < 20, f"connection still open after {sent} bytes at 1 byte/s"
        lines = [rec.getMessage() for rec in caplog.records if "cut off" in rec.getMessage()]
        assert len(lines) == 1 and "within 1.5 s" in lines[0]
        assert not any("code 400" in rec.getMessage() for rec in caplog.records)
        assert r.ci.jobs == []
        assert r.post(body, signed("github", body))[0] == 202  # the server still serves
    finally:
        r.server.close()


def test_a_client_that_disconnects_mid_body_is_one_log_line(caplog: pytest.LogCaptureFixture,
                                                            receiver: Receiver) -> None:
    caplog.set_level(logging.INFO, logger="promptci.receiver")
    body = body_of("gitea")
    head = "".join(f"{k}: {v}\r\n" for k, v in signed("gitea", body).items())
    sock = socket.create_connection(("127.0.0.1", receiver.port))
    sock.sendall(f"POST /webhook HTTP/1.1\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body[:100])
    sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("disconnected" in r.getMessage() for r in caplog.records):
        time.sleep(0.02)
    lines = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(lines) == 1 and "100 of" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text


# ---------------------------------------------------------------- the CLI


def test_serve_refuses_to_start_without_secrets() -> None:
    result = CliRunner().invoke(serve, ["--port", "0"], env={f"PROMPTCI_WEBHOOK_SECRET_{h.upper()}": ""
                                                             for h in SECRETS} | {"PROMPTCI_WEBHOOK_SECRET": "old"})
    assert result.exit_code == 2
    assert "no webhook secret is set" in result.output and "no longer read" in result.output


def test_serve_refuses_one_secret_for_two_hosts() -> None:
    env = {"PROMPTCI_WEBHOOK_SECRET_GITHUB": "same", "PROMPTCI_WEBHOOK_SECRET_GITLAB": "same"}
    result = CliRunner().invoke(serve, ["--port", "0"], env=env)
    assert result.exit_code == 2 and "github and gitlab webhook secrets are equal" in result.output


def test_serve_reports_config_problems_one_per_line(tmp_path: Path) -> None:
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("defaults:\n  evall: {}\n")
    result = CliRunner().invoke(serve, ["--port", "0", "--config", str(cfg)],
                                env={"PROMPTCI_WEBHOOK_SECRET_GITHUB": "x"})
    assert result.exit_code == 2  # a bad config is a usage error (steps/exit_codes.py)
    assert f"{cfg}:2:3: defaults.evall" in result.output


def test_the_replay_log_forgets_after_24_hours_and_stays_bounded() -> None:
    now = [1000.0]
    seen = DeliveryLog(clock=lambda: now[0], max_entries=3)
    assert seen.reserve(["a", "b"]) is None
    assert seen.reserve(["x", "b"]) == "b" and seen.reserve(["x"]) is None  # nothing of a refused call is kept
    now[0] += 24 * 3600 - 1
    assert seen.reserve(["a"]) == "a"
    now[0] += 2
    assert seen.reserve(["a"]) is None  # a day later the id may be used again
    for k in ("p", "q", "r"):
        seen.reserve([k])
    assert seen.reserve(["a"]) is None  # evicted: at most max_entries are remembered


def test_connections_beyond_the_limit_get_503_until_one_frees_up() -> None:
    r = start(max_connections=2, request_deadline=20)
    try:
        idle = [socket.create_connection(("127.0.0.1", r.port)) for _ in range(2)]
        for s in idle:
            s.sendall(b"POST /webhook HTTP/1.1\r\n")  # a handler thread waits for the rest
        time.sleep(0.3)
        def health() -> int:
            conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=10)
            try:
                conn.request("GET", "/healthz")
                return conn.getresponse().status
            finally:
                conn.close()

        assert health() == 503
        for s in idle:
            s.close()
        deadline = time.monotonic() + 10
        while health() != 200:
            assert time.monotonic() < deadline, "slots were not freed"
            time.sleep(0.05)
    finally:
        r.server.close()
