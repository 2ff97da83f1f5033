"""A repo under test cannot replace the step's code: the templates run ``python -P``.

``python -m`` puts the working directory (the checkout) first on ``sys.path``. A repo holding its
own ``workflows/`` (the stage entry's package) or ``hera/`` package would then run its code in a pod that holds the
provider keys and the GitOps token. The container test (tests/workflows/test_container_pipeline.py)
shows the same in the step image.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from config.artifacts import ArtifactType
from config.pipeline import DEFAULT_CONFIG
from workflows.runner.executors import PROJECT_ROOT
from workflows.runner.scheduler import run_template
from workflows.templates import POLICY_CONFIGMAP, STEP_COMMAND, PipelineSettings, build_template

MARKER = "PWNED"
EVIL = f"from pathlib import Path\nPath(__file__).resolve().parents[1].joinpath({MARKER!r}).write_text(__name__)\n"


def plant_malicious_code(repo: Path) -> None:
    """Put a ``workflows/stages.py`` and a ``hera/`` package in ``repo`` that leave a marker when imported."""
    (repo / "workflows").mkdir()
    (repo / "workflows" / "__init__.py").write_text(EVIL)
    (repo / "workflows" / "stages.py").write_text(EVIL + "def lint(**kw):\n    pass\n")
    (repo / "hera").mkdir()
    (repo / "hera" / "__init__.py").write_text(EVIL)


def policy_configmaps() -> dict[str, dict[str, str]]:
    """Return the policy ConfigMap the templates mount (the shipped pipeline config), as run_template takes it."""
    return {POLICY_CONFIGMAP: {"pipeline.yaml": DEFAULT_CONFIG.read_text()}}


def lint_only(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return ``manifest`` reduced to its real ``lint`` step in a one-task DAG (no exit handler)."""
    spec = dict(manifest["spec"])
    lint = next(t for t in spec["templates"] if t["name"] == "lint")
    spec["templates"] = [lint, {"name": "main", "dag": {"tasks": [
        {"name": "lint", "template": "lint",
         "arguments": {"parameters": [{"name": "artifact-path", "value": "prompts"}]}}]}}]
    spec["entrypoint"] = "main"
    spec.pop("onExit", None)
    return {**manifest, "spec": spec}


def test_templates_run_the_step_with_python_dash_p() -> None:
    manifest = build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict()
    scripts = [t["script"] for t in manifest["spec"]["templates"] if "script" in t]
    assert scripts and all(s["command"] == STEP_COMMAND == ["python", "-P"] for s in scripts)


def test_a_checkout_with_its_own_workflows_and_hera_is_not_imported(repo: Path) -> None:
    plant_malicious_code(repo)
    manifest = lint_only(build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict())
    result = run_template(manifest, {"repo-url": str(repo)}, repo_root=repo, runs_dir=repo / "runs",
                          run_id="safe", env=dict(os.environ), configmaps=policy_configmaps())
    assert result.ok, result.message
    assert "prompts: ok" in (result.run_dir / "tasks" / "lint" / "stdout.txt").read_text()
    assert not (repo / MARKER).exists()

    # The control: the same command without -P imports the checkout's workflows/ (the bug -P closes).
    args = repo / "args.json"
    args.write_text('[{"name": "artifact-path", "value": "prompts"}]')
    lint = next(t for t in manifest["spec"]["templates"] if t["name"] == "lint")["script"]
    assert lint["command"][1:] == ["-P"]
    subprocess.run([sys.executable, *lint["args"], str(args)],
                   cwd=repo, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True,
                   check=False)
    assert (repo / MARKER).exists()
