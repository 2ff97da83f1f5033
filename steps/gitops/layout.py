"""The GitOps repository as promptci lays it out: one directory per environment on a clone.

Shared by promote, rollback and status, so all three read and write the layout one way.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config.pipeline import PromptPipelineConfig
from steps.gitops.configmaps import KUSTOMIZATION, ArtifactConfigMap, parse_configmap, render_kustomization
from steps.gitops.gitops import Author, Clone, GitEnv, open_clone


def env_dir(config: PromptPipelineConfig, env: str) -> str:
    """Return the repo-relative directory of ``env`` (``environments/prod``)."""
    return f"{config.gitops.path.strip('/')}/{env}" if config.gitops.path.strip("/") else env


def read_environment(clone: Clone, config: PromptPipelineConfig, env: str) -> dict[str, ArtifactConfigMap]:
    """Return the promptci ConfigMaps live in ``env`` on the clone's tree, by artifact id.

    Raises LayoutError for a file promptci cannot read (fail closed: a
    corrupted environment never gets promoted over blindly).
    """
    d = clone.dir / env_dir(config, env)
    out: dict[str, ArtifactConfigMap] = {}
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.yaml")):
        if f.name == KUSTOMIZATION:
            continue
        cm = parse_configmap(f.read_text(), f"{env_dir(config, env)}/{f.name}")
        out[cm.artifact_id] = cm
    return out


def write_environment_file(clone: Clone, config: PromptPipelineConfig, env: str, name: str,
                           text: str) -> tuple[list[str], str]:
    """Write one ConfigMap file and regenerate the kustomization; return (changed paths, diff).

    The kustomization lists exactly the ConfigMap files present, sorted, so
    concurrent promoters re-applying on a new head never drop each other's entries.
    """
    rel = env_dir(config, env)
    d = clone.dir / rel
    d.mkdir(parents=True, exist_ok=True)
    diff = _write(d / name, f"{rel}/{name}", text)
    files = [f for f in os.listdir(d) if f.endswith(".yaml") and f != KUSTOMIZATION]  # = glob("*.yaml"), cheaper
    diff += _write(d / KUSTOMIZATION, f"{rel}/{KUSTOMIZATION}",
                   render_kustomization(files, env, config.gitops.namespace))
    return [f"{rel}/{name}", f"{rel}/{KUSTOMIZATION}"], diff


def _write(path: Path, rel: str, text: str) -> str:
    """Write ``text`` to ``path`` and return the unified diff (difflib) against what was there."""
    old = path.read_text() if path.exists() else None
    if old == text:
        return ""
    path.write_text(text)
    return "".join(difflib.unified_diff(
        (old or "").splitlines(keepends=True), text.splitlines(keepends=True),
        fromfile=f"a/{rel}" if old is not None else "/dev/null", tofile=f"b/{rel}"))


@contextmanager
def gitops_clone(config: PromptPipelineConfig, repo_root: Path, workdir: Path | None,
                 genv: GitEnv) -> Iterator[Clone]:
    """Yield a fresh clone of the GitOps branch in ``workdir`` (default: a temp dir removed afterwards)."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield open_clone(config.gitops.repo_url, config.gitops.branch, repo_root,
                         Path(tempfile.mkdtemp(prefix="gitops-", dir=workdir)), genv)
        return
    with tempfile.TemporaryDirectory(prefix="promptci-gitops-") as tmp:
        yield open_clone(config.gitops.repo_url, config.gitops.branch, repo_root, Path(tmp) / "gitops", genv)


def author_of(config: PromptPipelineConfig) -> Author:
    """Return the commit author configured for the GitOps repo."""
    return Author(config.gitops.author_name, config.gitops.author_email)


def one_line(text: str) -> str:
    """Return ``text`` on one line, so user-controlled values cannot forge commit trailers."""
    return " ".join(str(text).split())
