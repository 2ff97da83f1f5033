"""`submit.py run` (and plain `submit.py`) run the compiled pipeline locally and fail closed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from workflows.submit import cli


@pytest.fixture
def broken_prompts(repo: Path) -> Path:
    for name in ("model-configs", "rag-configs", "guardrails"):
        shutil.rmtree(repo / name)
    p = repo / "prompts" / "summarizer.json"
    p.write_text(p.read_text().replace('"id": "summarizer"', '"id": "Not A Valid Id"'))
    return repo


def test_plain_invocation_runs_locally_and_a_broken_artifact_blocks_promotion(
        broken_prompts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(broken_prompts)
    result = CliRunner().invoke(cli, [], env={"ARGO_SERVER": "", "PUSHGATEWAY_URL": ""})
    assert result.exit_code == 1, result.output
    runs = list((broken_prompts / ".promptci" / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-prompt")
    summary = json.loads((runs[0] / "run.json").read_text())
    assert summary["status"] == "Failed", summary
    assert summary["tasks"]["validate"] == "Failed"
    assert summary["tasks"]["eval"] in {"Omitted", "Skipped"}
    assert summary["tasks"]["promote"] in {"Omitted", "Skipped"}
    stderr = (runs[0] / "tasks" / "validate" / "stdout.txt").read_text()
    assert "prompts/summarizer.json" in stderr


def test_run_rejects_bad_parameters_with_one_line(broken_prompts: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "prompt", "--repo-root", str(broken_prompts), "-p", "bogus=1"])
    assert result.exit_code == 2 and "unknown parameter(s): bogus" in result.output
    result = CliRunner().invoke(cli, ["run", "prompt", "--repo-root", str(broken_prompts), "-p", "no-equals"])
    assert result.exit_code == 2 and "not key=value" in result.output


def test_bad_pipeline_config_prints_one_line_per_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text("defaults:\n  eval:\n    passRateThreshold: 0.5\n")
    result = CliRunner().invoke(cli, ["dump", "--out", str(tmp_path / "out"), "--config", str(cfg)])
    assert result.exit_code == 2
    assert any("pipeline.yaml:3" in line and "passRateThreshold" in line for line in result.output.splitlines())
