"""``submit.py resume RUN_ID`` / ``stop RUN_ID``: a local run through its control directory, an Argo
workflow through the Argo Server API (path and body checked against Argo's swagger.json)."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from tests.conftest import SHARED
from workflows.runner.records import RunResult
from workflows.runner.scheduler import run_template
from workflows.submit import cli

EXCERPT = Path(__file__).parent / "data" / "argo-swagger-resume-stop.json"
SWAGGER = SHARED / "schemas" / "argo-workflows" / "swagger.json"
TOKEN = "control-token-value"


def _approval_manifest() -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "gate"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "approval", "suspend": {}},
                {"name": "main", "dag": {"tasks": [{"name": "approval", "template": "approval"}]}}]}}


def _drive(tmp_path: Path, action: str) -> tuple[Any, RunResult]:
    """Start a run that suspends at ``approval``, call ``action`` on it through the CLI; return (CLI result, run)."""
    box: dict[str, RunResult] = {}
    thread = threading.Thread(target=lambda: box.update(
        result=run_template(_approval_manifest(), {}, repo_root=tmp_path, run_id="gate-1", env=dict(os.environ))))
    thread.start()
    waiting = tmp_path / ".promptci" / "runs" / "gate-1" / "control" / "suspended.json"
    for _ in range(300):
        if waiting.exists() and json.loads(waiting.read_text()) == ["approval"]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the run never suspended")
    out = CliRunner().invoke(cli, [action, "gate-1", "--repo-root", str(tmp_path)])
    thread.join(timeout=60)
    return out, box["result"]


def test_resume_a_local_run_by_its_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    out, result = _drive(tmp_path, "resume")
    assert out.exit_code == 0, out.output
    assert "resumed approval" in out.output
    assert result.ok
    again = CliRunner().invoke(cli, ["resume", "gate-1", "--repo-root", str(tmp_path)])
    assert again.exit_code == 2 and "is not running" in again.output
    assert len(again.output.strip().splitlines()) == 1


def test_stop_a_local_run_by_its_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    out, result = _drive(tmp_path, "stop")
    assert out.exit_code == 0, out.output
    assert result.status == "Failed" and result.message == "Stopped with strategy 'Stop'"


def test_an_unknown_run_without_a_server_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARGO_SERVER", raising=False)
    out = CliRunner().invoke(cli, ["resume", "nope", "--repo-root", str(tmp_path)])
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        f"resume: no local run 'nope' under {tmp_path.resolve() / '.promptci' / 'runs'} "
        "and no Argo server (--argo-server or ARGO_SERVER)"]


@pytest.fixture
def server() -> Iterator[tuple[list[tuple[str, str, Any]], str]]:
    calls: list[tuple[str, str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            calls.append((self.command, self.path, body))
            ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            data = json.dumps({"metadata": {"name": "wf-1", "namespace": "ci"}, "spec": {}} if ok else
                              {"code": 16, "message": "token not valid"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield calls, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def _matches(template: str, path: str) -> bool:
    return re.fullmatch(re.sub(r"\{[a-z]+\}", "[^/]+", template), path) is not None


@pytest.mark.parametrize("action, request_type", [("resume", "WorkflowResumeRequest"),
                                                  ("stop", "WorkflowStopRequest")])
def test_on_a_server_the_argo_api_is_called_as_swagger_says(server: tuple[list[tuple[str, str, Any]], str],
                                                            tmp_path: Path, action: str, request_type: str) -> None:
    calls, url = server
    env = {"ARGO_SERVER": url, "ARGO_NAMESPACE": "ci", "ARGO_TOKEN": TOKEN}
    out = CliRunner().invoke(cli, [action, "wf-1", "--repo-root", str(tmp_path)], env=env)
    assert out.exit_code == 0, out.output
    assert f"workflow ci/wf-1: {action} requested" in out.output and TOKEN not in out.output
    (method, path, body), = calls
    spec = json.loads(EXCERPT.read_text())
    template = f"/api/v1/workflows/{{namespace}}/{{name}}/{action}"
    assert method.lower() in spec["paths"][template] and _matches(template, path)
    assert path == f"/api/v1/workflows/ci/wf-1/{action}"
    params = spec["paths"][template][method.lower()]["parameters"]
    ref = next(p for p in params if p["in"] == "body")["schema"]["$ref"]
    assert ref == f"#/definitions/io.argoproj.workflow.v1alpha1.{request_type}"
    jsonschema.validate(body, {"$ref": ref, "definitions": spec["definitions"]})
    assert body == {"name": "wf-1", "namespace": "ci"}


def test_the_swagger_excerpt_is_argos_own() -> None:
    """The excerpt the API tests read is byte-for-byte the matching parts of Argo's swagger.json.

    ../shared is beside every CI checkout, so in CI this never skips.
    """
    if not SWAGGER.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SWAGGER} is missing: CI needs ../shared beside the checkout")
        pytest.skip(f"{SWAGGER} is absent outside CI (a worktree without ../shared)")
    swagger = json.loads(SWAGGER.read_text())
    excerpt = json.loads(EXCERPT.read_text())
    assert {p: swagger["paths"][p] for p in excerpt["paths"]} == excerpt["paths"]
    assert {d: swagger["definitions"][d] for d in excerpt["definitions"]} == excerpt["definitions"]


def test_a_server_refusal_is_one_line_without_the_token(server: tuple[list[tuple[str, str, Any]], str],
                                                         tmp_path: Path) -> None:
    _, url = server
    out = CliRunner().invoke(cli, ["resume", "wf-1", "--repo-root", str(tmp_path)],
                             env={"ARGO_SERVER": url, "ARGO_NAMESPACE": "ci", "ARGO_TOKEN": "wrong-token"})
    assert out.exit_code == 1  # refused by the server: final, not a usage error and not worth a retry
    assert len(out.output.strip().splitlines()) == 1 and out.output.startswith("resume: ")
    assert "wrong-token" not in out.output
