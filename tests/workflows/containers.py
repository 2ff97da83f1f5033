"""Support for tests that run real containers: the step image (built once per session) and small templates.

The image is built by ``make image`` (the one recipe, cached layers make it quick when nothing
changed), under the name the templates use. Without Podman the tests skip locally and FAIL in CI
(``CI=true``): the container path must never go untested there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workflows.runner import lifecycle
from workflows.templates import SOURCE_PATH, STEP_SECURITY_CONTEXT, PipelineSettings

REPO = Path(__file__).resolve().parents[2]


def require_podman() -> None:
    """Skip (locally) or fail (in CI) when Podman is not installed."""
    if shutil.which("podman") is None:
        if os.environ.get("CI"):
            pytest.fail("podman is not installed and CI=true: container tests never skip in CI "
                        "(make container-deps)")
        pytest.skip("podman is not installed (make container-deps)")


def build_step_image() -> str:
    """Build the step image with ``make image`` under the templates' image name; return that name."""
    require_podman()
    image = PipelineSettings().image
    out = subprocess.run(["make", "-C", str(REPO), "image", f"IMAGE={image}"], capture_output=True, text=True,
                         timeout=1800, check=False)
    if out.returncode != 0:
        pytest.fail(f"make image failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return image


def security_context() -> dict[str, Any]:
    """Return the real templates' securityContext as a manifest dict."""
    return STEP_SECURITY_CONTEXT.model_dump(by_alias=True, exclude_none=True)


def inline_template(name: str, source: str, image: str, *, env: dict[str, str] | None = None,
                    extra: dict[str, Any] | None = None, script: dict[str, Any] | None = None,
                    with_source: bool = True) -> dict[str, Any]:
    """Return a one-task WorkflowTemplate dict whose step runs the Python ``source`` in ``image``.

    The step gets the real templates' securityContext and, with ``with_source``, the ``source``
    git artifact at ``SOURCE_PATH`` (repo-url / git-revision parameters) as its working directory.
    """
    step: dict[str, Any] = {"name": "step", "script": {
        "image": image, "imagePullPolicy": "IfNotPresent", "command": ["python"], "source": source,
        "securityContext": security_context(),
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()], **(script or {})}}
    params = []
    if with_source:
        step["script"]["workingDir"] = SOURCE_PATH
        step["inputs"] = {"artifacts": [{"name": "source", "path": SOURCE_PATH, "git": {
            "repo": "{{workflow.parameters.repo-url}}", "revision": "{{workflow.parameters.git-revision}}"}}]}
        params = [{"name": "repo-url"}, {"name": "git-revision", "value": ""}]
    step.update(extra or {})
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": name},
            "spec": {"entrypoint": "main", "arguments": {"parameters": params}, "templates": [
                {"name": "main", "dag": {"tasks": [{"name": "step", "template": "step"}]}}, step]}}


def git_repo(path: Path, files: dict[str, str]) -> Path:
    """Create a git repo at ``path`` (branch main) with ``files`` committed; return it."""
    path.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    ident = ["-c", "user.name=dev", "-c", "user.email=dev@example.test"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), *ident, "commit", "-qm", "init"], check=True)
    return path


def containers_of_run(run_id: str) -> list[str]:
    """Return the ids of every container (running or not) labelled with ``run_id``."""
    return list(lifecycle.containers_with_label(lifecycle.RUN_LABEL, run_id))
