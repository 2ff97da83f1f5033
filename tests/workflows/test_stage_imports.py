"""A stage's import path holds neither Hera nor boto3 when the store is the local disk.

Hera is read when the templates are built, never in a stage's process (workflows/stage_entry.py);
boto3 only when the store is S3 (steps/stores/s3store.py). Checked two ways: importing each stage's
entry and body module, and a whole local pipeline run of the real stages with ``-X importtime``
(``PYTHONPROFILEIMPORTTIME``) reporting every module each stage's process imported.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.artifacts import ArtifactType
from workflows.runner.executors import PROJECT_ROOT
from workflows.submit import cli
from workflows.templates import PipelineSettings, build_template

FORBIDDEN = re.compile(r"^(hera|boto3|botocore|s3transfer)(\.|$)")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$")


def stage_commands() -> dict[str, list[str]]:
    """Return each stage's pod args (``-m workflows.stage_entry BODY ...``), by stage name."""
    spec = build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict()["spec"]
    return {t["name"]: t["script"]["args"] for t in spec["templates"] if "script" in t}


def imported(stderr: str) -> list[str]:
    """Return the modules a process imported, from its ``-X importtime`` lines."""
    return [m.group(1) for line in stderr.splitlines() if (m := IMPORT_LINE.match(line))]


@pytest.mark.parametrize("stage", sorted(stage_commands()))
def test_the_entry_and_the_body_module_import_no_hera_and_no_boto3(stage: str) -> None:
    args = stage_commands()[stage]
    body_module = args[2].split(":")[0]
    proc = subprocess.run([sys.executable, "-P", "-X", "importtime", "-c",
                           f"import workflows.stage_entry, {body_module}"],
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True,
                          check=True)
    modules = imported(proc.stderr)
    assert body_module in modules and "workflows.stage_entry" in modules
    assert [m for m in modules if FORBIDDEN.match(m)] == []


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=dev", "-c", "user.email=dev@example.test", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.mark.slow
def test_every_real_stage_of_a_local_run_imports_no_hera_and_no_boto3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    for name in ("prompts", "evals", "recordings"):
        shutil.copytree(PROJECT_ROOT / name, src / name)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", ".")
    git(src, "commit", "-qm", "samples")
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")  # every stage's process reports its imports

    # The process executor: a pod's process start is what is checked (the fork executor imports once, in its zygote).
    run = CliRunner().invoke(cli, ["run", "prompt", "--executor", "process", "--repo-root", str(src),
                                   "--run-id", "imports", "-p", "artifact-path=prompts/summarizer.json"])

    assert run.exit_code == 0, run.output
    tasks = src / ".promptci" / "runs" / "imports" / "tasks"
    seen = {}
    for stderr in sorted(tasks.rglob("stderr.txt")):
        modules = imported(stderr.read_text())
        stage = stderr.relative_to(tasks).parts[0].split("_")[0]
        seen[stage] = modules
        assert [m for m in modules if FORBIDDEN.match(m)] == [], stage
    assert set(seen) == set(stage_commands())  # every stage of the template ran
    bodies = {stage: args[2].split(":")[0] for stage, args in stage_commands().items()}
    assert all(bodies[stage] in modules for stage, modules in seen.items())  # the entry ran each body
    assert "steps.promptfoo" in seen["eval"]  # the eval stage did run its eval
