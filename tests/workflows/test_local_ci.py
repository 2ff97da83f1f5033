"""``serve`` as a CI for one repository: real git repos, a real receiver, the pipeline run faked.

The receiver fetches ``after`` from its configured remote when the checkout lacks it, checks it
out, lets ``git diff`` decide the types when the payload could not, and never evaluates a
revision its remote's branch does not contain, whatever the payload claims.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from workflows.webhooks.auth import WebhookSecrets
from workflows.webhooks.local_ci import GitError, LocalCI
from workflows.webhooks.receiver import ReceiverSettings, make_server
from workflows.webhooks.run_queue import Job, Push

DIRS = {"prompt": "prompts", "model-config": "model-configs", "rag-config": "rag-configs",
        "guardrail-policy": "guardrails"}
PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout.strip()


def commit(clone: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        (clone / name).write_text(text)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", message)
    git(clone, "push", "-q", "origin", "HEAD:main")
    return git(clone, "rev-parse", "HEAD")


@pytest.fixture
def repos(tmp_path: Path) -> dict[str, Path | str]:
    """Return an upstream, a developer clone that pushes, and the receiver's own checkout."""
    up, dev, work = tmp_path / "up.git", tmp_path / "dev", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(up))
    git(tmp_path, "clone", "-q", str(up), str(dev))
    git(dev, "checkout", "-q", "-b", "main")
    base = commit(dev, {"prompts/a.yaml": "a\n", "docs/readme.md": "r\n"}, "seed")
    git(tmp_path, "clone", "-q", "-b", "main", str(up), str(work))
    return {"up": up, "dev": dev, "work": work, "base": base}


class Runs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], str, str]] = []

    def __call__(self, artifact_type: str, params: dict[str, str], run_id: str) -> bool:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=params["repo-url"], capture_output=True,
                              text=True, check=True).stdout.strip()
        self.calls.append((artifact_type, params, run_id, head))
        return True


def push(before: str, after: str, types: frozenset[str] | None = None) -> Push:
    return Push("gitlab", str(uuid.uuid4()), "main", before, after, types, "test")


def test_fetches_checks_out_and_lets_git_decide_the_types(repos: dict) -> None:
    dev, work = repos["dev"], repos["work"]
    after = commit(dev, {"guardrails/g.yaml": "g\n"}, "guardrail")
    runs = Runs()
    ci = LocalCI(work, DIRS, runs)
    job = Job("j1", "main", [push(repos["base"], after)])
    ci(job)
    assert [(t, p["git-revision"], p["base-revision"], head) for t, p, _, head in runs.calls] == \
        [("guardrail-policy", after, repos["base"], after)]
    assert runs.calls[0][1]["repo-url"] == str(work) and runs.calls[0][1]["artifact-path"] == "guardrails"
    assert job.runs == {"guardrail-policy": "done"} and job.error is None


def test_coalesced_pushes_run_once_at_the_newest_after_over_all_their_changes(repos: dict) -> None:
    dev = repos["dev"]
    first = commit(dev, {"prompts/b.yaml": "b\n"}, "prompt")
    second = commit(dev, {"docs/more.md": "m\n"}, "docs")
    runs = Runs()
    job = Job("j2", "main", [push(first, second), push(repos["base"], first)])  # delivered out of order
    LocalCI(repos["work"], DIRS, runs)(job)
    assert [(t, p["git-revision"], p["base-revision"]) for t, p, _, _ in runs.calls] == \
        [("prompt", second, repos["base"])]


def test_a_push_that_touches_no_artifact_runs_nothing(repos: dict) -> None:
    after = commit(repos["dev"], {"docs/x.md": "x\n"}, "docs")
    runs = Runs()
    job = Job("j3", "main", [push(repos["base"], after)])
    LocalCI(repos["work"], DIRS, runs)(job)
    assert runs.calls == [] and job.runs == {} and job.error is None


def test_a_revision_the_remote_branch_lacks_is_never_evaluated(repos: dict) -> None:
    forged = hashlib.sha1(b"not a commit here").hexdigest()
    runs = Runs()
    with pytest.raises(GitError, match="no pushed revision is on origin/main"):
        LocalCI(repos["work"], DIRS, runs)(Job("j4", "main", [push(repos["base"], forged)]))
    side = repos["dev"]
    git(side, "checkout", "-q", "-b", "other")
    (side / "prompts" / "evil.yaml").write_text("x\n")
    git(side, "add", "-A")
    git(side, "commit", "-q", "-m", "elsewhere")
    git(side, "push", "-q", "origin", "other")
    elsewhere = git(side, "rev-parse", "HEAD")  # exists on the remote, but not on main
    with pytest.raises(GitError):
        LocalCI(repos["work"], DIRS, runs)(Job("j5", "main", [push(repos["base"], elsewhere)]))
    assert runs.calls == []


def test_over_http_the_payload_clone_url_is_ignored(repos: dict) -> None:
    after = commit(repos["dev"], {"prompts/c.yaml": "c\n"}, "prompt c")
    data = json.loads((PAYLOADS / "gitlab-empty-commits.json").read_text())
    data.update(before=repos["base"], after=after)
    data["project"]["git_http_url"] = "https://evil.example.com/other.git"
    body = json.dumps(data).encode()
    runs = Runs()
    ci = LocalCI(repos["work"], DIRS, runs)
    server = make_server(ReceiverSettings(secrets=WebhookSecrets(gitlab=b"tok"), artifact_dirs=DIRS), ci)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
        conn.request("POST", "/webhook", body=body, headers={
            "Content-Type": "application/json", "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "tok",
            "X-Gitlab-Event-UUID": str(uuid.uuid4())})
        reply = json.loads(conn.getresponse().read())
        assert reply["status"] == "queued"
    finally:
        server.close()  # waits for the queued job
    assert [(t, p["repo-url"], head) for t, p, _, head in runs.calls] == [("prompt", str(repos["work"]), after)]
    assert hmac.compare_digest(git(repos["work"], "rev-parse", "HEAD"), after)
