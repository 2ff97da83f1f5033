"""The webhook receiver over real HTTP on 127.0.0.1: signatures, limits, filtering, queueing."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from config.pipeline import PromptPipelineConfig
from workflows.cli.serve import serve
from workflows.webhooks.receiver import ReceiverServer, ReceiverSettings, make_server

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
CASES: dict[str, dict[str, Any]] = json.loads((PAYLOADS / "cases.json").read_text())
SECRET = "s3cr3t-for-tests"
EVENT_HEADER = {"github": "X-GitHub-Event", "gitlab": "X-Gitlab-Event", "gitea": "X-Gitea-Event"}


@dataclass
class FakeRunner:
    """Records started runs; ``delay`` keeps a run busy so queueing can be observed."""

    delay: float = 0.0
    fail_on: set[str] = field(default_factory=set)
    started: list[dict[str, str]] = field(default_factory=list)
    active: dict[str, int] = field(default_factory=dict)
    max_active: dict[str, int] = field(default_factory=dict)
    max_total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def __call__(self, params: dict[str, str]) -> None:
        repo = params["repo-url"]
        with self.lock:
            self.started.append(params)
            self.active[repo] = self.active.get(repo, 0) + 1
            self.max_active[repo] = max(self.max_active.get(repo, 0), self.active[repo])
            self.max_total = max(self.max_total, sum(self.active.values()))
        try:
            time.sleep(self.delay)
            if params["run-id"] in self.fail_on:
                raise RuntimeError("runner exploded")
        finally:
            with self.lock:
                self.active[repo] -= 1
            self.done.release()

    def wait(self, n: int, timeout: float = 10.0) -> None:
        for _ in range(n):
            assert self.done.acquire(timeout=timeout), "run did not finish in time"


@dataclass
class Receiver:
    server: ReceiverServer
    runner: FakeRunner

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/webhook", body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def run_state(self, run_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Return the run's status once it has left queued/running (the worker sets it after the call)."""
        deadline = time.monotonic() + timeout
        while True:
            status, reply = self.get(f"/runs/{run_id}")
            if status != 200 or reply["state"] not in ("queued", "running") or time.monotonic() > deadline:
                return reply
            time.sleep(0.01)

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()


def signed(host: str, body: bytes, event: str, secret: str = SECRET) -> dict[str, str]:
    """Return the headers ``host`` sends with a webhook signed/tokened with ``secret``."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", EVENT_HEADER[host]: event}
    if host == "github":
        headers["X-Hub-Signature-256"] = "sha256=" + mac
    elif host == "gitea":  # Gitea also sends the GitHub-compatible headers
        headers.update({"X-Gitea-Signature": mac, "X-GitHub-Event": event, "X-Hub-Signature-256": "sha256=0"})
    else:
        headers["X-Gitlab-Token"] = secret
    return headers


def payload(name: str) -> bytes:
    return (PAYLOADS / f"{name}.json").read_bytes()


def start(runner: FakeRunner, **kw: Any) -> Receiver:
    settings = ReceiverSettings(secret=SECRET.encode(), artifact_dirs=PromptPipelineConfig().artifact_dirs,
                                **kw)
    counter = itertools.count(1)
    server = make_server(settings, start_run=runner, new_run_id=lambda: f"run-{next(counter)}")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return Receiver(server, runner)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start(FakeRunner())
    yield r
    r.server.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_payload_case_over_http(receiver: Receiver, name: str) -> None:
    host = name.split("-", 1)[0]
    body = payload(name)
    status, reply = receiver.post(body, signed(host, body, CASES[name]["event"]))
    assert status == 202
    if not CASES[name]["prompt"]:
        assert reply["status"] == "ignored" and reply["reason"]
        assert receiver.runner.started == []
        return
    assert reply["status"] == "queued"
    types = [r["artifact_type"] for r in reply["runs"]]
    assert "prompt" in types and reply["run_id"] == reply["runs"][0]["run_id"]
    receiver.runner.wait(len(types))
    started = {p["run-id"]: p for p in receiver.runner.started}
    run = started[reply["runs"][types.index("prompt")]["run_id"]]
    data = json.loads(body)
    clone = data["project"]["git_http_url"] if host == "gitlab" else data["repository"]["clone_url"]
    assert run == {"artifact-type": "prompt", "run-id": run["run-id"], "artifact-path": "prompts",
                   "git-revision": data["after"], "base-revision": data["before"], "repo-url": clone,
                   "target-environment": "dev", "dry-run": "false"}


def test_normal_push_starts_exactly_one_prompt_run(receiver: Receiver) -> None:
    body = payload("github-normal")
    status, reply = receiver.post(body, signed("github", body, "push"))
    assert (status, reply["run_id"], [r["artifact_type"] for r in reply["runs"]]) == (202, "run-1", ["prompt"])
    receiver.runner.wait(1)
    assert [p["run-id"] for p in receiver.runner.started] == ["run-1"]
    assert receiver.run_state("run-1") == {"run_id": "run-1", "artifact_type": "prompt", "state": "done",
                                           "repo": "https://github.com/acme/prompt-lib.git", "error": None}
    assert receiver.get("/runs/run-404")[0] == 404


@pytest.mark.parametrize("host", ["github", "gitlab", "gitea"])
def test_bad_or_missing_signature_is_401_and_starts_nothing(receiver: Receiver, host: str) -> None:
    body = payload(f"{host}-normal")
    event = CASES[f"{host}-normal"]["event"]
    wrong = signed(host, body, event, secret="not-the-secret")
    assert receiver.post(body, wrong)[0] == 401
    if host != "gitlab":  # GitLab sends a token, not a body signature
        tampered = body.replace(b"support-reply", b"support-replY")
        assert receiver.post(tampered, signed(host, body, event))[0] == 401
    missing = {k: v for k, v in signed(host, body, event).items()
               if k not in ("X-Hub-Signature-256", "X-Gitea-Signature", "X-Gitlab-Token")}
    status, reply = receiver.post(body, missing)
    assert status == 401 and host in reply["error"]
    assert receiver.runner.started == []


def test_request_from_no_known_host_is_401(receiver: Receiver) -> None:
    body = payload("github-normal")
    assert receiver.post(body, {"Content-Type": "application/json"})[0] == 401


def test_signed_but_unhandled_events_are_a_no_op(receiver: Receiver) -> None:
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    status, reply = receiver.post(body, signed("github", body, "ping"))
    assert (status, reply) == (202, {"status": "ignored", "reason": "github event 'ping' is not handled"})
    tag = payload("gitlab-tag-push")
    status, reply = receiver.post(tag, signed("gitlab", tag, "Tag Push Hook"))
    assert status == 202 and reply["status"] == "ignored"
    assert receiver.runner.started == []


def test_oversized_body_is_413_before_any_parsing() -> None:
    r = start(FakeRunner(), max_body_bytes=4096)
    try:
        body = b"x" * 5000
        status, reply = r.post(body, signed("github", body, "push"))
        assert status == 413 and "limit is 4096" in reply["error"]
        ok = payload("github-normal")
        assert len(ok) <= 4096 or pytest.fail("fixture grew past the test limit")
        assert r.post(ok, signed("github", ok, "push"))[0] == 202
    finally:
        r.server.close()


def test_default_limit_is_one_mebibyte(receiver: Receiver) -> None:
    body = b" " * (1024 * 1024 + 1)
    assert receiver.post(body, signed("github", body, "push"))[0] == 413


def test_malformed_payloads_are_400(receiver: Receiver) -> None:
    for body in (b"not json", b"[1, 2]"):
        assert receiver.post(body, signed("github", body, "push"))[0] == 400
    data = json.loads(payload("github-normal"))
    data["after"] = "{{workflow.name}}"
    body = json.dumps(data).encode()
    status, reply = receiver.post(body, signed("github", body, "push"))
    assert status == 400 and "after is not a commit SHA" in reply["error"]
    assert receiver.runner.started == []


def test_github_form_encoded_delivery(receiver: Receiver) -> None:
    body = urlencode({"payload": payload("github-normal").decode()}).encode()
    headers = {**signed("github", body, "push"), "Content-Type": "application/x-www-form-urlencoded"}
    status, reply = receiver.post(body, headers)
    assert status == 202 and reply["status"] == "queued"


def test_runs_of_one_repo_run_one_at_a_time_in_order_other_repos_in_parallel() -> None:
    runner = FakeRunner(delay=0.3)
    r = start(runner)
    try:
        ids = []
        for name in ("github-normal", "github-forced-push", "github-several-commits"):
            body = payload(name)
            status, reply = r.post(body, signed("github", body, "push"))
            assert status == 202
            ids.append(reply["run_id"])
        other = json.loads(payload("gitlab-normal"))
        body = json.dumps(other).encode()
        assert r.post(body, signed("gitlab", body, "Push Hook"))[0] == 202
        states = {i: r.get(f"/runs/{i}")[1]["state"] for i in ids}
        assert list(states.values()).count("running") <= 1 and "queued" in states.values()
        runner.wait(4)
        gh = "https://github.com/acme/prompt-lib.git"
        assert runner.max_active[gh] == 1
        assert [p["run-id"] for p in runner.started if p["repo-url"] == gh] == ids
        assert runner.max_total == 2  # the GitLab repo's run overlapped the GitHub ones
    finally:
        r.server.close()


def test_a_crashing_run_is_recorded_and_the_next_one_still_runs() -> None:
    runner = FakeRunner(fail_on={"run-1"})
    r = start(runner)
    try:
        body = payload("gitea-normal")
        for _ in range(2):
            assert r.post(body, signed("gitea", body, "push"))[0] == 202
        runner.wait(2)
        assert r.run_state("run-1")["state"] == "error"
        assert r.run_state("run-1")["error"] == "RuntimeError: runner exploded"
        assert r.run_state("run-2")["state"] == "done"
    finally:
        r.server.close()


def test_serve_refuses_to_start_without_the_secret_in_the_environment() -> None:
    result = CliRunner().invoke(serve, ["--port", "0", "--secret-env", "PROMPTCI_TEST_NO_SUCH_VAR"],
                                env={"PROMPTCI_TEST_NO_SUCH_VAR": ""})
    assert result.exit_code == 2
    assert "PROMPTCI_TEST_NO_SUCH_VAR is not set" in result.output


def test_serve_reports_config_problems_one_per_line(tmp_path: Path) -> None:
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("defaults:\n  evall: {}\n")
    result = CliRunner().invoke(serve, ["--port", "0", "--config", str(cfg)],
                                env={"PROMPTCI_WEBHOOK_SECRET": "x"})
    assert result.exit_code == 1
    assert f"{cfg}:2:3: defaults.evall" in result.output
