"""Offline `argo lint`: the compiled templates are clean; broken ones are caught with a location."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from workflows.argo.lint import lint_manifest
from workflows.submit import cli, to_yaml
from workflows.templates import compile_templates


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return compile_templates()[0]


def _dag(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tpl = next(t for t in m["spec"]["templates"] if t["name"] == m["spec"]["entrypoint"])
    return {t["name"]: t for t in tpl["dag"]["tasks"]}


def _messages(m: dict[str, Any]) -> list[str]:
    return [p.format() for p in lint_manifest(m)]


def test_compiled_templates_are_clean() -> None:
    for m in compile_templates():
        assert _messages(m) == []


def test_cycle_is_caught(manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    _dag(m)["lint"]["depends"] = "promote"
    msgs = _messages(m)
    assert any("dependency cycle" in s and "lint" in s and "promote" in s for s in msgs), msgs


def test_undefined_task_and_template_are_caught(manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    _dag(m)["eval"]["depends"] = "plan && ghost"
    _dag(m)["validate"]["template"] = "nowhere"
    msgs = _messages(m)
    assert any("depends on undefined task 'ghost'" in s for s in msgs), msgs
    assert any("undefined template 'nowhere'" in s for s in msgs), msgs


def test_out_of_scope_variables_are_caught(manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    lint_args = _dag(m)["lint"]["arguments"]["parameters"]
    # lint does not depend on eval, so eval's outputs are out of its scope; item only in a fan-out
    lint_args[0]["value"] = "{{tasks.eval.outputs.parameters.result}}"
    _dag(m)["plan"]["arguments"]["parameters"][0]["value"] = "{{item}}"
    _dag(m)["validate"]["arguments"]["parameters"][0]["value"] = "{{workflow.parameters.typo}}"
    msgs = _messages(m)
    for var in ("tasks.eval.outputs.parameters.result", "item", "workflow.parameters.typo"):
        assert any(f"'{{{{{var}}}}}' is not in scope" in s for s in msgs), (var, msgs)


def test_unsupplied_parameter_bad_names_and_expression_tags(manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    _dag(m)["plan"]["arguments"]["parameters"] = [p for p in _dag(m)["plan"]["arguments"]["parameters"]
                                                  if p["name"] != "git-revision"]
    _dag(m)["lint"]["name"] = "Lint_Step"
    _dag(m)["validate"]["arguments"]["parameters"][0]["value"] = "{{=sprig.env('HOME')}}"
    msgs = _messages(m)
    assert any("does not supply parameter 'git-revision'" in s for s in msgs), msgs
    assert any("invalid task name 'Lint_Step'" in s for s in msgs), msgs
    assert any("expression tag" in s for s in msgs), msgs


def test_schema_violation_is_reported(manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    m["spec"]["templates"][0]["script"]["imagePullPolicyy"] = "Always"
    assert any("schema" in s and "imagePullPolicyy" in s for s in _messages(m))


def test_lint_command_on_files_names_file_and_line(tmp_path: Path, manifest: dict[str, Any]) -> None:
    m = copy.deepcopy(manifest)
    _dag(m)["eval"]["depends"] = "plan && ghost"
    (tmp_path / "bad.yaml").write_text(to_yaml(m))
    result = CliRunner().invoke(cli, ["lint", str(tmp_path)])
    assert result.exit_code == 1
    line = next(s for s in result.output.splitlines() if "ghost" in s)
    path, lineno = line.split(":")[:2]
    assert path.endswith("bad.yaml") and int(lineno) > 1
    (tmp_path / "bad.yaml").write_text(to_yaml(manifest))
    assert CliRunner().invoke(cli, ["lint", str(tmp_path)]).exit_code == 0
