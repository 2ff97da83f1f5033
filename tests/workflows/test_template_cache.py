"""The compiled template of a local run comes from a cache only while it is exactly what a build gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.artifacts import ArtifactType
from workflows.runner.executors import PROJECT_ROOT
from workflows.template_cache import cache_key, compiled_template
from workflows.template_settings import PipelineSettings
from workflows.templates import build_template


@pytest.mark.parametrize("artifact_type", [t.value for t in ArtifactType])
def test_a_cached_template_is_the_built_one(tmp_path: Path, artifact_type: str) -> None:
    settings = PipelineSettings()
    built = build_template(ArtifactType(artifact_type), settings).to_dict()
    first = compiled_template(artifact_type, settings, tmp_path)
    entries = list(tmp_path.glob("*.json"))
    assert first == built and len(entries) == 1
    entries[0].write_text(entries[0].read_text().replace('"promptci-', '"from-the-cache-'))  # proves it is read
    assert compiled_template(artifact_type, settings, tmp_path)["metadata"]["name"] == f"from-the-cache-{artifact_type}"


def test_other_settings_are_another_entry(tmp_path: Path) -> None:
    settings = PipelineSettings()
    other = settings.model_copy(update={"image": "registry.example/promptci-step:9"})
    assert cache_key("prompt", settings) != cache_key("prompt", other) != cache_key("model-config", other)
    assert compiled_template("prompt", other, tmp_path) == build_template(ArtifactType.PROMPT, other).to_dict()
    assert len(list(tmp_path.glob("*.json"))) == 1
    compiled_template("prompt", settings, tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2


@pytest.mark.parametrize("change", ["edited", "gone"])
def test_a_changed_source_module_rebuilds(tmp_path: Path, change: str) -> None:
    settings = PipelineSettings()
    compiled_template("prompt", settings, tmp_path)
    entry = next(tmp_path.glob("*.json"))
    data = json.loads(entry.read_text())
    assert "workflows/templates.py" in data["sources"] and "workflows/stages.py" in data["sources"]
    data["manifest"]["metadata"]["name"] = "stale"
    if change == "edited":
        data["sources"]["workflows/templates.py"] = "0" * 64
    else:
        data["sources"]["workflows/no-such-module.py"] = "0" * 64
    entry.write_text(json.dumps(data))
    assert compiled_template("prompt", settings, tmp_path)["metadata"]["name"] == "promptci-prompt"
    assert json.loads(entry.read_text())["manifest"]["metadata"]["name"] == "promptci-prompt"  # rewritten


def test_an_unreadable_entry_is_a_miss_and_no_cache_dir_is_a_build(tmp_path: Path) -> None:
    settings = PipelineSettings()
    (tmp_path / f"{cache_key('prompt', settings)}.json").write_text("{not json")
    assert compiled_template("prompt", settings, tmp_path)["metadata"]["name"] == "promptci-prompt"
    assert compiled_template("prompt", settings, None)["metadata"]["name"] == "promptci-prompt"


def test_a_cache_hit_does_not_import_hera(tmp_path: Path) -> None:
    code = ("import sys\nfrom pathlib import Path\nfrom workflows.template_cache import compiled_template\n"
            "from workflows.template_settings import PipelineSettings\n"
            f"m = compiled_template('prompt', PipelineSettings.load(None), Path({str(tmp_path)!r}))\n"
            "print(m['metadata']['name'], 'hera' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    run = [sys.executable, "-P", "-c", code]
    assert subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout == "promptci-prompt True\n"
    assert subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout == "promptci-prompt False\n"
