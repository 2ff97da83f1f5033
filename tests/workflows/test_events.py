"""The generated EventSources and Sensor: schema-valid, wired to the right templates, same filter."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.artifacts import ArtifactType
from config.pipeline import PromptPipelineConfig
from tests.argo_schema import schema_check
from workflows.events import (
    ARGO_EVENTS_VERSION,
    VERSION_ANNOTATION,
    WORKFLOW_PARAMETERS,
    TriggerSettings,
    build_event_manifests,
    write_event_manifests,
)
from workflows.webhooks.sensor_filter import evaluate, parse_event
from workflows.webhooks.trigger_filter import push_filter

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
CASES: dict[str, dict[str, Any]] = json.loads((PAYLOADS / "cases.json").read_text())


@pytest.fixture
def manifests() -> list[dict[str, Any]]:
    return build_event_manifests(PromptPipelineConfig())


def sensor_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (sensor,) = [d for d in docs if d["kind"] == "Sensor"]
    return sensor


def test_written_manifests_pass_the_argo_events_schema(tmp_path: Path) -> None:
    paths = write_event_manifests(tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        ["eventsource-promptci-github.yaml", "eventsource-promptci-gitlab.yaml",
         "eventsource-promptci-gitea.yaml", "sensor-promptci-push.yaml"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files
    result = schema_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 documents, 0 invalid, EventSource=3, Sensor=1" in result.stdout


def test_triggered_workflows_pass_the_argo_workflows_schema(tmp_path: Path, manifests: list[dict]) -> None:
    for i, trig in enumerate(sensor_of(manifests)["spec"]["triggers"]):
        wf = trig["template"]["argoWorkflow"]["source"]["resource"]
        (tmp_path / f"wf{i}.yaml").write_text(yaml.safe_dump(wf))
    result = schema_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 documents, 0 invalid, Workflow=12" in result.stdout


def test_no_yaml_aliases_and_no_submit_from(tmp_path: Path) -> None:
    for path in write_event_manifests(tmp_path):
        text = path.read_text()
        assert "&id" not in text and "*id" not in text, path.name
        assert "submit-from" not in text and "submitFrom" not in text


def test_one_submit_trigger_per_host_and_type_fires_on_its_own_dependency(manifests: list[dict]) -> None:
    spec = sensor_of(manifests)["spec"]
    deps = {d["name"]: d for d in spec["dependencies"]}
    assert len(deps) == 12
    seen = set()
    for trig in spec["triggers"]:
        tpl = trig["template"]
        dep = deps[tpl["conditions"]]
        host, artifact_type = tpl["conditions"].split("-", 1)
        seen.add((host, artifact_type))
        assert dep["eventSourceName"] == f"promptci-{host}"
        argo = tpl["argoWorkflow"]
        assert argo["operation"] == "submit"
        wf = argo["source"]["resource"]
        assert wf["kind"] == "Workflow"
        assert wf["spec"]["workflowTemplateRef"] == {"name": f"promptci-{artifact_type}"}
        assert all(p["src"]["dependencyName"] == tpl["conditions"] for p in argo["parameters"])
    assert seen == {(h, t.value) for h in ("github", "gitlab", "gitea") for t in ArtifactType}


def _parameter_sources(trigger: dict[str, Any]) -> dict[str, str]:
    """Return parameter name -> dataTemplate, resolving each dest index against the Workflow's list."""
    argo = trigger["template"]["argoWorkflow"]
    names = [p["name"] for p in argo["source"]["resource"]["spec"]["arguments"]["parameters"]]
    out = {}
    for p in argo["parameters"]:
        prefix, index, suffix = p["dest"].rsplit(".", 2)
        assert (prefix, suffix) == ("spec.arguments.parameters", "value")
        out[names[int(index)]] = p["src"]["dataTemplate"]
    return out


def test_revisions_and_clone_url_map_to_the_template_parameters(manifests: list[dict]) -> None:
    for trig in sensor_of(manifests)["spec"]["triggers"]:
        host = trig["template"]["conditions"].split("-", 1)[0]
        src = _parameter_sources(trig)
        assert set(src) == {"git-revision", "base-revision", "repo-url"}
        assert ".Input.body.after " in src["git-revision"]
        assert ".Input.body.before " in src["base-revision"]
        url_key = "body.project.git_http_url" if host == "gitlab" else "body.repository.clone_url"
        assert f".Input.{url_key} " in src["repo-url"]
        for template in src.values():  # payload braces can never become Argo template syntax
            assert template.endswith('| replace "{" "%7B" | replace "}" "%7D" }}')
        wf_params = trig["template"]["argoWorkflow"]["source"]["resource"]["spec"]["arguments"]["parameters"]
        assert [p["name"] for p in wf_params] == list(WORKFLOW_PARAMETERS)


def test_defaults_come_from_the_config(manifests: list[dict]) -> None:
    cfg = PromptPipelineConfig.model_validate({"artifact_dirs": {**PromptPipelineConfig().artifact_dirs,
                                                                 "prompt": "llm/prompts"},
                                               "promotion": {"chain": ["qa", "prod"]}})
    sensor = sensor_of(build_event_manifests(cfg, namespace="ci", settings=TriggerSettings(branch="trunk")))
    assert sensor["metadata"]["namespace"] == "ci"
    for dep, trig in zip(sensor["spec"]["dependencies"], sensor["spec"]["triggers"], strict=True):
        if not dep["name"].endswith("-prompt"):
            continue
        assert dep["filters"] == push_filter("llm/prompts", "trunk", dep["eventSourceName"].split("-")[1])
        params = {p["name"]: p["value"] for p in
                  trig["template"]["argoWorkflow"]["source"]["resource"]["spec"]["arguments"]["parameters"]}
        assert params["artifact-path"] == "llm/prompts"
        assert params["target-environment"] == "qa"
        assert params["dry-run"] == "false"


@pytest.mark.parametrize("name", sorted(CASES))
def test_sensor_dependency_decides_each_payload_like_the_receiver(name: str, manifests: list[dict]) -> None:
    host = name.split("-", 1)[0]
    event = parse_event(host, (PAYLOADS / f"{name}.json").read_bytes())
    (dep,) = [d for d in sensor_of(manifests)["spec"]["dependencies"] if d["name"] == f"{host}-prompt"]
    assert evaluate(dep["filters"], event) is CASES[name]["prompt"]


def test_event_sources_reference_secrets_and_never_contain_them(manifests: list[dict]) -> None:
    by_name = {d["metadata"]["name"]: d["spec"] for d in manifests if d["kind"] == "EventSource"}
    gh = by_name["promptci-github"]["github"]["push"]
    gl = by_name["promptci-gitlab"]["gitlab"]["push"]
    gt = by_name["promptci-gitea"]["webhook"]["push"]
    assert gh["webhookSecret"] == {"name": "promptci-webhook-secrets", "key": "github"}
    assert gh["events"] == ["push"]
    assert gl["secretToken"] == {"name": "promptci-webhook-secrets", "key": "gitlab"}
    assert gl["accessToken"] == {"name": "promptci-webhook-secrets", "key": "gitlab-access-token"}
    assert gl["events"] == ["PushEvents"]  # tag pushes are TagPushEvents: never delivered
    assert gt["authSecret"] == {"name": "promptci-webhook-secrets", "key": "gitea"}
    for spec in (gh, gl, gt):
        hook = spec.get("webhook", spec)
        assert hook["maxPayloadSize"] == 1024 * 1024
        assert hook["url"].startswith("https://")


# ---------------------------------------------------------------- Argo Events v1.9.11 validate() rules


def _validate_webhook_context(ctx: dict[str, Any] | None) -> str | None:
    """argo-events v1.9.11 pkg/eventsources/common/webhook/validate.go ``ValidateWebhookContext``."""
    if ctx is None:
        return "webhook context is nil"
    if not ctx.get("endpoint"):
        return "endpoint can't be empty"
    if not ctx.get("port"):
        return "port can't be empty"
    if not str(ctx["port"]).isdigit():
        return f"failed to parse server port {ctx['port']}"
    return None


def validate_event_source(spec: dict[str, Any]) -> list[str]:
    """Return the errors argo-events v1.9.11's ``validate()`` functions report for ``spec`` (empty: valid).

    * gitlab/validate.go: ``events`` non-nil, ``gitlabBaseURL`` non-empty, ``accessToken`` non-nil,
      then ``ValidateWebhookContext(webhook)``;
    * github/validate.go: exactly one of ``repositories``/``organizations``; ``events`` when the
      source creates hooks (``NeedToCreateHooks``: an API token or GitHub App plus ``webhook.url``);
      ``contentType`` "json" or "form"; ``githubBaseURL`` and ``githubUploadURL`` together;
    * webhook/validate.go: ``ValidateWebhookContext``.
    """
    errors: list[str] = []
    for kind, events in spec.items():
        if kind == "service":
            continue
        for name, es in events.items():
            where = f"{kind}.{name}"
            if kind == "gitlab":
                if es.get("events") is None:
                    errors.append(f"{where}: events can't be empty")
                if not es.get("gitlabBaseURL"):
                    errors.append(f"{where}: gitlab base url can't be empty")
                if es.get("accessToken") is None:
                    errors.append(f"{where}: access token can't be nil")
                ctx_error = _validate_webhook_context(es.get("webhook"))
            elif kind == "github":
                repos, orgs = es.get("repositories"), es.get("organizations")
                if repos is None and orgs is None:
                    errors.append(f"{where}: either repositories or organizations is required")
                if repos is not None and orgs is not None:
                    errors.append(f"{where}: only one of repositories and organizations is allowed")
                creates = bool(es.get("apiToken") or es.get("githubApp")) and bool((es.get("webhook") or {}).get("url"))
                if creates and not es.get("events"):
                    errors.append(f"{where}: events must be defined to create a github webhook")
                if es.get("contentType") not in (None, "", "json", "form"):
                    errors.append(f"{where}: content type must be \"json\" or \"form\"")
                if bool(es.get("githubBaseURL")) != bool(es.get("githubUploadURL")):
                    errors.append(f"{where}: githubBaseURL and githubUploadURL go together")
                ctx_error = _validate_webhook_context(es.get("webhook"))
            elif kind == "webhook":
                ctx_error = _validate_webhook_context(es)
            else:
                errors.append(f"{where}: no validate() rules recorded for event source type {kind}")
                continue
            if ctx_error:
                errors.append(f"{where}: {ctx_error}")
    return errors


def test_event_sources_pass_the_pinned_argo_events_validation(manifests: list[dict]) -> None:
    sources = [d for d in manifests if d["kind"] == "EventSource"]
    assert len(sources) == 3
    for doc in sources:
        assert doc["metadata"]["annotations"][VERSION_ANNOTATION] == ARGO_EVENTS_VERSION == "v1.9.11"
        assert validate_event_source(doc["spec"]) == [], doc["metadata"]["name"]


def test_the_validation_rules_catch_what_broke_gitlab_before(manifests: list[dict]) -> None:
    """The pre-fix GitLab source (secretToken only) is exactly what v1.9.11 refuses to start."""
    (gitlab,) = [d for d in manifests if d["metadata"]["name"] == "promptci-gitlab"]
    old = copy.deepcopy(gitlab["spec"])
    del old["gitlab"]["push"]["accessToken"]
    assert validate_event_source(old) == ["gitlab.push: access token can't be nil"]


def test_gitlab_source_verifies_the_token_because_it_manages_its_hook(manifests: list[dict]) -> None:
    """gitlab/start.go (v1.9.11) checks X-Gitlab-Token only when ``NeedToCreateHooks()``:
    ``AccessToken != nil && Webhook != nil && Webhook.URL != ""`` (eventsource_types.go), and only
    with a ``secretToken``. Both must hold, or anyone can start runs."""
    (gitlab,) = [d for d in manifests if d["metadata"]["name"] == "promptci-gitlab"]
    es = gitlab["spec"]["gitlab"]["push"]
    assert es["accessToken"] is not None and es["webhook"]["url"] and es["secretToken"]
    assert es["secretToken"] != es["accessToken"]
    assert es["projects"] and es["events"] == ["PushEvents"]
    assert es["deleteHookOnFinish"] is False  # a rolling restart must not delete the hook


def test_no_bitbucket_event_source_is_generated(manifests: list[dict]) -> None:
    """argo-events v1.9.11's bitbucket source verifies no signature (bitbucket/start.go ``HandleRoute``)."""
    kinds = {k for d in manifests if d["kind"] == "EventSource" for k in d["spec"] if k != "service"}
    assert kinds == {"github", "gitlab", "webhook"}
