"""register/submit against a fake Argo Server on 127.0.0.1: method, path, bearer token, schema-valid body."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from config.pipeline import PromptPipelineConfig
from config.profiles import apply_profile
from workflows.argo.schema import packaged_schema, schema_problems
from workflows.cluster_config import pipeline_config_map
from workflows.submit import cli

TOKEN = "s3cr3t-token-value"


class FakeArgo:
    """Records every request; answers like the Argo Server API."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.templates: dict[str, dict[str, Any]] = {}
        self.configmaps: dict[str, dict[str, Any]] = {}
        self.phases = ["Running", "Running", "Succeeded"]
        self.fail_with: int | None = None  # answer every request with this status (an outage)


@pytest.fixture
def argo() -> Iterator[tuple[FakeArgo, str]]:
    state = FakeArgo()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.requests.append((self.command, self.path, dict(self.headers), body))
            if state.fail_with:
                return self._reply(state.fail_with, {"code": 14, "message": "unavailable"})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._reply(401, {"code": 16, "message": "token not valid"})
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:3] == ["api", "v1", "namespaces"] and parts[4:5] == ["configmaps"]:  # the Kubernetes API
                if self.command == "GET" and len(parts) == 6:
                    if parts[5] not in state.configmaps:
                        return self._reply(404, {"kind": "Status", "code": 404})
                    return self._reply(200, state.configmaps[parts[5]])
                if self.command == "POST" and len(parts) == 5:
                    state.configmaps[body["metadata"]["name"]] = {
                        **body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
                    return self._reply(201, state.configmaps[body["metadata"]["name"]])
                if self.command == "PUT" and len(parts) == 6:
                    version = str(int(state.configmaps[parts[5]]["metadata"]["resourceVersion"]) + 1)
                    if body["metadata"].get("resourceVersion") != state.configmaps[parts[5]]["metadata"][
                            "resourceVersion"]:
                        return self._reply(409, {"kind": "Status", "code": 409})
                    state.configmaps[parts[5]] = {**body, "metadata": {**body["metadata"],
                                                                       "resourceVersion": version}}
                    return self._reply(200, state.configmaps[parts[5]])
            if parts[:3] == ["api", "v1", "workflow-templates"]:
                if self.command == "POST" and len(parts) == 4:
                    name = body["template"]["metadata"]["name"]
                    if name in state.templates:
                        return self._reply(409, {"code": 6, "message": "already exists"})
                    state.templates[name] = {**body["template"], "metadata": {
                        **body["template"]["metadata"], "resourceVersion": "7"}}
                    return self._reply(200, state.templates[name])
                if self.command == "GET" and len(parts) == 5:
                    return self._reply(200, state.templates[parts[4]])
                if self.command == "PUT" and len(parts) == 5:
                    state.templates[parts[4]] = body["template"]
                    return self._reply(200, body["template"])
            if parts[:3] == ["api", "v1", "workflows"]:
                if self.command == "POST" and len(parts) == 4:
                    wf = body["workflow"]
                    wf["metadata"]["name"] = wf["metadata"]["generateName"] + "abcde"
                    return self._reply(200, wf)
                if self.command == "GET" and len(parts) == 5:
                    phase = state.phases.pop(0) if len(state.phases) > 1 else state.phases[0]
                    return self._reply(200, {"metadata": {"name": parts[4]}, "spec": {},
                                             "status": {"phase": phase}})
            return self._reply(404, {"code": 5, "message": "not found"})

        do_GET = do_POST = do_PUT = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _env(url: str) -> dict[str, str]:
    return {"ARGO_SERVER": url, "ARGO_NAMESPACE": "ci", "ARGO_TOKEN": TOKEN, "KUBE_API_SERVER": url,
            "KUBE_TOKEN": TOKEN}


def test_register_creates_then_updates_with_valid_templates(argo: tuple[FakeArgo, str]) -> None:
    state, url = argo
    first = CliRunner().invoke(cli, ["register"], env=_env(url))
    assert first.exit_code == 0, first.output
    assert first.output.count("created WorkflowTemplate ci/promptci-") == 4
    posts = [r for r in state.requests if r[0] == "POST" and "configmaps" not in r[1]]
    assert {r[1] for r in posts} == {"/api/v1/workflow-templates/ci"}
    for _, _, headers, body in posts:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert schema_problems(body["template"], packaged_schema(), "body") == []
    state.requests.clear()
    second = CliRunner().invoke(cli, ["register"], env=_env(url))
    assert second.exit_code == 0, second.output
    assert second.output.count("updated WorkflowTemplate ci/promptci-") == 4
    puts = [r for r in state.requests if r[0] == "PUT" and "configmaps" not in r[1]]
    assert {r[1] for r in puts} == {f"/api/v1/workflow-templates/ci/promptci-{t}" for t in
                                    ("prompt", "model-config", "rag-config", "guardrail-policy")}
    assert all(r[3]["template"]["metadata"]["resourceVersion"] == "7" for r in puts)
    assert TOKEN not in first.output + second.output


def test_register_writes_the_trusted_policy_configmap_from_the_protected_branch(
        argo: tuple[FakeArgo, str]) -> None:
    """The gates every step pod mounts are config/pipeline.yaml as committed on main, not the working tree,
    with the cluster profile (S3 store, GitOps remote by URL) that pods need: the same bytes `dump` writes."""
    state, url = argo
    first = CliRunner().invoke(cli, ["register", "--trusted-ref", "main"], env=_env(url))
    assert first.exit_code == 0, first.output
    assert "created ConfigMap ci/promptci-pipeline-config from main:config/pipeline.yaml (" in first.output
    cm = state.configmaps["promptci-pipeline-config"]
    committed = subprocess.run(["git", "show", "main:config/pipeline.yaml"], capture_output=True, text=True,
                               check=True).stdout
    # the committed gates, with the cluster profile's store and GitOps remote: exactly what dump writes
    carried = PromptPipelineConfig.model_validate(yaml.safe_load(cm["data"]["pipeline.yaml"]))
    trusted = PromptPipelineConfig.model_validate(yaml.safe_load(committed))
    assert carried == apply_profile(trusted, "cluster") and carried.store.kind == "s3"
    assert carried.defaults == trusted.defaults and carried.promotion == trusted.promotion
    assert cm["data"] == pipeline_config_map(apply_profile(trusted, "cluster"))["data"]
    assert cm["metadata"]["annotations"]["promptci.dev/policy-source"].startswith("main:config/pipeline.yaml")
    assert cm["metadata"]["namespace"] == "ci"
    second = CliRunner().invoke(cli, ["register", "--trusted-ref", "main"], env=_env(url))
    assert second.exit_code == 0 and "updated ConfigMap ci/promptci-pipeline-config" in second.output
    assert state.configmaps["promptci-pipeline-config"]["metadata"]["resourceVersion"] == "2"
    no_kube = CliRunner().invoke(cli, ["register"], env={**_env(url), "KUBE_API_SERVER": ""})
    assert no_kube.exit_code == 2 and "no Kubernetes API for the policy ConfigMap" in no_kube.output


def test_an_unreachable_or_unavailable_argo_api_exits_75_for_a_retry(argo: tuple[FakeArgo, str]) -> None:
    state, url = argo
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: connection refused
        down = CliRunner().invoke(cli, ["submit", "prompt", "-p", "repo-url=x"], env=_env(closed))
        register_down = CliRunner().invoke(cli, ["register"], env=_env(closed))
    assert down.exit_code == 75, down.output
    assert register_down.exit_code == 75, register_down.output
    state.fail_with = 503
    unavailable = CliRunner().invoke(cli, ["submit", "prompt", "-p", "repo-url=x"], env=_env(url))
    assert unavailable.exit_code == 75, unavailable.output
    state.fail_with = 403
    forbidden = CliRunner().invoke(cli, ["submit", "prompt", "-p", "repo-url=x"], env=_env(url))
    assert forbidden.exit_code == 1, forbidden.output


def test_submit_prints_link_and_waits_for_the_result(argo: tuple[FakeArgo, str]) -> None:
    state, url = argo
    result = CliRunner().invoke(cli, ["submit", "prompt", "-p", "git-revision=abc123", "-p",
                                      "repo-url=https://git.example/repo.git", "--wait", "--interval", "0.01"],
                                env=_env(url))
    assert result.exit_code == 0, result.output
    assert f"{url}/workflows/ci/promptci-prompt-abcde" in result.output
    method, path, headers, body = next(r for r in state.requests if r[0] == "POST")
    assert (method, path) == ("POST", "/api/v1/workflows/ci")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    wf = body["workflow"]
    assert wf["spec"]["workflowTemplateRef"] == {"name": "promptci-prompt"}
    assert {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]} == {
        "git-revision": "abc123", "repo-url": "https://git.example/repo.git"}
    assert schema_problems({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", **wf},
                           packaged_schema(), "body") == []
    gets = [r for r in state.requests if r[0] == "GET"]
    assert gets and all(r[1].startswith("/api/v1/workflows/ci/promptci-prompt-abcde") for r in gets)
    assert TOKEN not in result.output


def test_submit_wait_exits_non_zero_when_the_workflow_fails(argo: tuple[FakeArgo, str]) -> None:
    state, url = argo
    state.phases = ["Failed"]
    result = CliRunner().invoke(cli, ["submit", "prompt", "-p", "repo-url=x", "--wait", "--interval", "0.01"],
                                env=_env(url))
    assert result.exit_code == 1 and "Failed" in result.output


def test_bad_token_and_unknown_parameter_fail_cleanly(argo: tuple[FakeArgo, str]) -> None:
    _, url = argo
    bad = CliRunner().invoke(cli, ["register"], env={**_env(url), "ARGO_TOKEN": "wrong"})
    assert bad.exit_code == 1 and "wrong" not in bad.output
    unknown = CliRunner().invoke(cli, ["submit", "prompt", "-p", "nope=1"], env=_env(url))
    assert unknown.exit_code == 2 and "unknown parameter" in unknown.output


def test_no_server_configured_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["register"], env={"ARGO_SERVER": ""})
    assert result.exit_code == 2 and "ARGO_SERVER" in result.output


def test_register_refuses_a_controller_with_an_instance_id_before_any_request(argo: tuple[FakeArgo, str]) -> None:
    """A controller with instanceID runs only labelled Workflows (util/instanceid/service.go), and the
    Sensor's in-process `argo submit` strips the label (argo-events argo-workflow.go Execute): refuse."""
    state, url = argo
    result = CliRunner().invoke(cli, ["register"], env={**_env(url), "ARGO_INSTANCEID": "team-a"})
    assert result.exit_code == 2
    assert "instanceID 'team-a'" in result.output and "workflows.argoproj.io/controller-instanceid" in result.output
    assert state.requests == []
    result = CliRunner().invoke(cli, ["register", "--instanceid", "team-b"], env=_env(url))
    assert result.exit_code == 2 and "team-b" in result.output and state.requests == []


def test_submit_without_repo_url_names_the_flag_before_any_request(argo: tuple[FakeArgo, str]) -> None:
    """Argo would reject it (validate.go validateArgumentsValues: "value or valueFrom is required")."""
    state, url = argo
    result = CliRunner().invoke(cli, ["submit", "prompt", "-p", "git-revision=abc"], env=_env(url))
    assert result.exit_code == 2
    assert "repo-url has no default; pass -p repo-url=..." in result.output
    assert state.requests == []
