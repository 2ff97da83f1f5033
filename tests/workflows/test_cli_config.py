"""``promptci config``: the trusted pipeline config as a step reads it; ``--show-env``: every PROMPTCI_* variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflows.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert isinstance(ended.value.code, int)
    return ended.value.code


def test_show_env_lists_every_variable_and_never_a_secret(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from config.settings import Settings, env_name

    monkeypatch.setenv("PROMPTCI_SIGNING_KEY", "a-signing-key-that-is-long-enough-to-use!!")
    monkeypatch.setenv("PROMPTCI_STORE_KIND", "s3")
    assert _run(["config", "--show-env"]) == 0
    out = capsys.readouterr().out
    assert "a-signing-key" not in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert set(rows) == {env_name(f) for f in Settings.model_fields}
    assert rows["PROMPTCI_SIGNING_KEY"][1:3] == ["***", "env"]
    assert rows["PROMPTCI_STORE_KIND"][1:3] == ["s3", "env"]
    assert rows["PROMPTCI_EVAL_JOBS"][1:3] == ["8", "default"]


def test_show_env_as_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROMPTCI_GIT_TOKEN", "ghp_never_printed")
    assert _run(["config", "--show-env", "--format", "json"]) == 0
    out = capsys.readouterr().out
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["PROMPTCI_GIT_TOKEN"]["value"] == "***" and rows["PROMPTCI_GIT_TOKEN"]["secret"]
    assert "ghp_never_printed" not in out


def test_config_prints_the_trusted_config_a_step_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "pipeline.yaml"
    policy.write_text((REPO / "config" / "pipeline.yaml").read_text().replace("min_pass_rate: 0.8",
                                                                              "min_pass_rate: 0.95"))
    assert _run(["config", "--repo-root", str(tmp_path), "--config", str(policy), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["defaults"]["eval"]["min_pass_rate"] == 0.95
    assert _run(["config", "--repo-root", str(tmp_path), "--config", str(tmp_path / "missing.yaml")]) == 2
