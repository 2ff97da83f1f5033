"""The dumped WorkflowTemplates: schema-valid, the right DAG shape, and no drift from the golden files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from config.artifacts import ArtifactType
from steps import metric_names
from tests.argo_schema import schema_check
from workflows.submit import cli, dump_manifests, to_yaml
from workflows.templates import PipelineSettings, compile_templates

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden")


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dump")
    result = CliRunner().invoke(cli, ["dump", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _tasks(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    dag = next(t for t in doc["spec"]["templates"] if t["name"] == doc["spec"]["entrypoint"])
    return {t["name"]: t for t in dag["dag"]["tasks"]}


def _templates(out: Path) -> list[dict[str, Any]]:
    docs = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    return [d for d in docs if d["kind"] == "WorkflowTemplate"]


def test_dump_writes_one_template_per_type_that_passes_the_schema(dumped: Path) -> None:
    docs = _templates(dumped)
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(f"promptci-{t.value}" for t in ArtifactType)
    for d in docs:
        t = d["metadata"]["name"].removeprefix("promptci-")
        assert d["metadata"]["labels"]["promptci.dev/artifact-type"] == t
    proc = schema_check(dumped)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WorkflowTemplate=4" in proc.stdout.splitlines()[-1]


def test_dag_shape(dumped: Path) -> None:
    for doc in _templates(dumped):
        tasks = _tasks(doc)
        assert "depends" not in tasks["lint"] and "dependencies" not in tasks["lint"]
        assert "depends" not in tasks["validate"] and "dependencies" not in tasks["validate"]
        assert "plan" not in tasks  # validate plans: lint ∥ validate(+plan) → eval shards → promote
        ev = tasks["eval"]
        assert set(ev["depends"].replace("&&", " ").split()) == {"lint", "validate"}
        assert ev["withParam"] == "{{tasks.validate.outputs.parameters.shards}}"
        assert {p["name"]: p["value"] for p in ev["arguments"]["parameters"]}["shard"] == "{{item}}"
        assert "eval" in tasks["promote"]["depends"].replace("&&", " ").split()
        assert tasks["promote"]["when"] == "{{tasks.validate.outputs.parameters.count}} > 0"
        # Promote reads the run's signed records from the store: no result travels as a parameter.
        args = {p["name"]: p["value"] for p in tasks["promote"]["arguments"]["parameters"]}
        assert set(args) == {"target-environment", "dry-run", "approved", "git-revision"}
        assert tasks["approval"]["when"] == "{{tasks.validate.outputs.parameters.needs-approval}} == true"
        assert set(tasks["approval"]["depends"].replace("&&", " ").split()) == {"lint", "validate"}
        assert "approval" in tasks["promote"]["depends"]
        validate = next(t for t in doc["spec"]["templates"] if t["name"] == "validate")
        outputs = {p["name"] for p in validate["outputs"]["parameters"]}
        assert outputs == {"shards", "count", "needs-approval"}


def test_every_step_reads_the_policy_from_the_mounted_configmap(dumped: Path) -> None:
    """The gates come from the ConfigMap `register` writes from the protected branch, never the checkout."""
    for doc in _templates(dumped):
        spec = doc["spec"]
        assert spec["volumes"] == [{"name": "pipeline-config",
                                    "configMap": {"name": "promptci-pipeline-config"}}]
        for tpl in spec["templates"]:
            if "script" not in tpl:
                continue
            script = tpl["script"]
            assert {"name": "PROMPTCI_CONFIG", "value": "/etc/promptci/pipeline.yaml"} in script["env"]
            assert script["volumeMounts"] == [{"mountPath": "/etc/promptci", "name": "pipeline-config",
                                               "readOnly": True}]
            if tpl["name"] in ("validate", "eval", "promote"):  # validate signs the plan now
                assert {"secretRef": {"name": "promptci-signing", "optional": True}} in script["envFrom"]
                assert {"secretRef": {"name": "promptci-store", "optional": True}} in script["envFrom"]


def test_stage_settings_parameters_and_metrics(dumped: Path) -> None:
    for doc in _templates(dumped):
        spec = doc["spec"]
        params = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
        assert set(params) == {"artifact-path", "git-revision", "base-revision", "target-environment",
                               "dry-run", "no-cache", "repo-url"}
        assert params["target-environment"] == "dev" and params["dry-run"] == "false"
        assert params["no-cache"] == "false"
        assert spec["podGC"] and spec["ttlStrategy"] and spec["serviceAccountName"]
        assert spec["artifactRepositoryRef"]["configMap"]
        hist = spec["metrics"]["prometheus"][0]
        assert hist["name"] == metric_names.DURATION and hist["help"] == metric_names.DURATION_HELP
        assert hist["histogram"]["value"] == "{{workflow.duration}}"
        scripts = {t["name"]: t for t in spec["templates"] if "script" in t}
        assert set(scripts) == {"lint", "validate", "eval", "promote", "summary"}
        assert spec["onExit"] == "summary"  # the run summary is written whatever happened
        for name, tpl in scripts.items():
            counter = tpl["metrics"]["prometheus"][0]
            assert counter["name"] == metric_names.RESULT and counter["help"] == metric_names.RESULT_HELP
            labels = {lab["key"]: lab["value"] for lab in counter["labels"]}
            assert labels["stage"] == name and labels["result"] == "{{status}}"
            # Retries are for transient failures only: a failed gate (exit 1) is final.
            assert "exitCode == \"75\"" in tpl["retryStrategy"]["expression"]
            assert tpl["activeDeadlineSeconds"] and tpl["script"]["image"]
            assert tpl["script"]["args"][:2] == ["-m", "workflows.stage_entry"]  # the thin entry, not Hera's runner
            git = tpl["inputs"]["artifacts"][0]["git"]
            assert git["repo"] == "{{workflow.parameters.repo-url}}"
        assert scripts["eval"]["script"]["resources"]["requests"]["memory"] == "1Gi"
        assert scripts["lint"]["script"]["resources"]["requests"]["memory"] == "256Mi"
        assert scripts["eval"]["outputs"]["artifacts"][0]["name"] == "reports"


def test_artifact_path_defaults_follow_the_config() -> None:
    settings = PipelineSettings()
    settings.pipeline.artifact_dirs["prompt"] = "my-prompts"
    docs = {d["metadata"]["name"]: d for d in compile_templates(settings)}
    params = {p["name"]: p.get("value") for p in docs["promptci-prompt"]["spec"]["arguments"]["parameters"]}
    assert params["artifact-path"] == "my-prompts"


def test_golden_manifests_have_not_drifted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regenerate on purpose with: PROMPTCI_REGEN_GOLDEN=1 (or submit.py dump --out tests/workflows/golden)."""
    monkeypatch.delenv("PROMPTCI_IMAGE", raising=False)
    settings = PipelineSettings.load()
    if os.environ.get("PROMPTCI_REGEN_GOLDEN") == "1" and not os.environ.get("CI"):
        dump_manifests(GOLDEN, settings)
    fresh = {p.name: p.read_text() for p in dump_manifests(tmp_path, settings)}
    golden = {p.name: p.read_text() for p in GOLDEN.glob("*.yaml")}
    assert sorted(fresh) == sorted(golden), "files differ; regenerate only if the change is intended"
    for name, text in fresh.items():
        assert text == golden[name], f"{name} drifted from tests/workflows/golden; regenerate if intended"


def test_dump_is_stable() -> None:
    a = [to_yaml(d) for d in compile_templates()]
    b = [to_yaml(d) for d in compile_templates()]
    assert a == b
