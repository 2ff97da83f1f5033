"""Offline `argo lint` is a faithful subset of Argo's validator (argo-workflows v4.1.2
``workflow/validate/validate.go``): the corpus of compiled templates, deploy/ manifests, golden
files and hand-made manifests (tests/workflows/lint_corpus.py) each gets Argo's verdict."""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from config.problems import Severity, has_errors
from tests.workflows.lint_corpus import CASES, Case
from workflows.argo import schema as argo_schema
from workflows.argo.lint import lint_manifest
from workflows.submit import cli, lint_files, to_yaml
from workflows.templates import compile_templates

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return compile_templates()[0]


def _errors(m: dict[str, Any], **kw: Any) -> list[str]:
    return [p.format() for p in lint_manifest(m, **kw) if p.severity is Severity.ERROR]


def test_compiled_templates_are_clean() -> None:
    for m in compile_templates():
        assert lint_manifest(m) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_case_gets_argos_verdict(case: Case, manifest: dict[str, Any]) -> None:
    """Each hand-made manifest: rejected with Argo's message, or accepted; ``case.source`` cites the rule."""
    m = copy.deepcopy(manifest)
    case.mutate(m)
    errors = _errors(m)
    if case.expect is None:
        assert errors == [], f"Argo accepts this ({case.source}) but lint rejects it: {errors}"
    else:
        assert any(case.expect in e for e in errors), f"Argo rejects this ({case.source}); lint said {errors}"


def test_corpus_has_at_least_twenty_invalid_manifests() -> None:
    assert sum(c.expect is not None for c in CASES) >= 20
    assert all(c.source for c in CASES)


@pytest.mark.parametrize("where", ["deploy", "tests/workflows/golden"])
def test_deploy_and_golden_manifests_are_valid(where: str) -> None:
    """Every file: WorkflowTemplates, the Sensor's submitted Workflows (against those templates), and
    kinds lint does not own (RBAC, ConfigMaps, EventSources: not Argo Workflows' to validate)."""
    assert lint_files([REPO / where], None) == []


def test_sensor_workflows_are_linted_against_the_templates(tmp_path: Path) -> None:
    """A Sensor trigger that submits a template nobody defines is caught, at the trigger's line."""
    sensor = (REPO / "deploy/generated/sensor-promptci-push.yaml").read_text()
    (tmp_path / "sensor.yaml").write_text(sensor.replace("name: promptci-prompt\n", "name: promptci-ghost\n", 1))
    for p in (REPO / "deploy/generated").glob("promptci-*.yaml"):
        shutil.copy(p, tmp_path / p.name)
    problems = lint_files([tmp_path], None)
    assert [p.message for p in problems] == ['workflowtemplates.argoproj.io "promptci-ghost" not found']
    assert problems[0].field.startswith("spec.triggers[0].template.argoWorkflow.source.resource")
    assert problems[0].line > 300


def test_a_workflow_is_stricter_than_a_template(manifest: dict[str, Any]) -> None:
    """``resolveAllVariables`` forgives an unknown ``workflow.parameters.*`` only while validating a
    WorkflowTemplate on its own; in a Workflow it is an error. In the template it is a warning."""
    m = copy.deepcopy(manifest)
    m["spec"]["templates"][0]["script"]["env"].append({"name": "X", "value": "{{workflow.parameters.typo}}"})
    warnings = [p for p in lint_manifest(m) if p.severity is Severity.WARNING]
    assert any("workflow.parameters.typo" in p.message for p in warnings)
    wf = {**m, "kind": "Workflow", "metadata": {"generateName": "promptci-prompt-"}}
    assert any("failed to resolve {{workflow.parameters.typo}}" in e for e in _errors(wf))


def test_lint_command_on_files_names_file_and_line(tmp_path: Path, manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    next(t for t in m["spec"]["templates"][-1]["dag"]["tasks"] if t["name"] == "eval")["depends"] = "validate && ghost"
    (tmp_path / "bad.yaml").write_text(to_yaml(m))
    result = CliRunner().invoke(cli, ["lint", str(tmp_path)])
    assert result.exit_code == 1
    line = next(s for s in result.output.splitlines() if "ghost" in s)
    path, lineno = line.split(":")[:2]
    assert path.endswith("bad.yaml") and int(lineno) > 1
    (tmp_path / "bad.yaml").write_text(to_yaml(manifest))
    assert CliRunner().invoke(cli, ["lint", str(tmp_path)]).exit_code == 0


def test_the_schema_ships_with_the_package_pinned_by_sha256() -> None:
    path = argo_schema.packaged_schema()
    assert path.is_relative_to(REPO / "workflows")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == argo_schema.SCHEMA_SHA256
    assert argo_schema.ARGO_VERSION in path.name
    readme = (path.parent / "README.md").read_text()
    assert argo_schema.SCHEMA_SHA256 in readme and argo_schema.ARGO_VERSION in readme
    assert '"argo/schemas/*.json"' in (REPO / "pyproject.toml").read_text()  # installed as package data


def test_an_altered_or_missing_schema_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   manifest: dict[str, Any]) -> None:
    """Never a silent skip: ``lint`` exits 2 naming the problem when the schema cannot be used."""
    bad = tmp_path / "argo-workflows-v4.1.2.schema.json"
    bad.write_text("{}")
    monkeypatch.setattr(argo_schema, "PACKAGED_SCHEMA", bad)
    argo_schema.packaged_schema.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["lint"])
        assert result.exit_code == 2
        assert "sha256" in result.output and "expected" in result.output
        monkeypatch.setattr(argo_schema, "PACKAGED_SCHEMA", tmp_path / "gone.json")
        argo_schema.packaged_schema.cache_clear()
        with pytest.raises(argo_schema.SchemaError, match="missing"):
            lint_manifest(manifest)
        result = CliRunner().invoke(cli, ["lint", "--schema", str(tmp_path / "gone.json")])
        assert result.exit_code == 2
    finally:
        argo_schema.packaged_schema.cache_clear()


def test_warnings_never_fail_lint(manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    m["spec"]["templates"][0]["script"]["env"].append({"name": "X", "value": "{{=sprig.env('HOME')}}"})
    problems = lint_manifest(m)
    assert problems and not has_errors(problems)


@pytest.mark.parametrize("path, value", [
    (("spec", "templates", 0, "inputs", "parameters"), True),
    (("spec", "templates", -1, "dag", "tasks", 0), None),
    (("spec", "templates", -1, "dag", "tasks", 1, "template"), ["lint"]),
    (("spec", "templates", 0, "metrics", "prometheus", 0, "labels", 0), "x"),
    (("kind",), ["Workflow"]),
])
def test_a_manifest_of_the_wrong_shape_gets_problems_not_a_traceback(manifest: dict[str, Any], path: tuple,
                                                                      value: Any) -> None:
    """Argo unmarshals into typed structs before validate.go runs: the shape is the schema's to report."""
    m = copy.deepcopy(manifest)
    obj: Any = m
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value
    assert has_errors(lint_manifest(m))
