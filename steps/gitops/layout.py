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


class EnvironmentEdit:
    """Pending edits of one environment on a clone: ConfigMap files plus the kustomization listing them.

    Kept in memory (promote commits them with ``Clone.commit_series``, never through the work
    tree); :func:`write_environment_file` writes them out. Either way the one rule holds: the
    kustomization lists exactly the ConfigMap files present, sorted, so concurrent promoters
    re-applying on a new head never drop each other's entries.
    """

    def __init__(self, clone: Clone, config: PromptPipelineConfig, env: str):
        self.rel = env_dir(config, env)
        self.env, self.namespace = env, config.gitops.namespace
        self._dir = clone.dir / self.rel
        names = os.listdir(self._dir) if self._dir.is_dir() else []
        self._on_disk = {n for n in names if n.endswith(".yaml")}  # = glob("*.yaml"), cheaper
        self._files = self._on_disk - {KUSTOMIZATION}
        self._text: dict[str, str] = {}

    def _current(self, name: str) -> str | None:
        if name in self._text:
            return self._text[name]
        return (self._dir / name).read_text(encoding="utf-8") if name in self._on_disk else None

    def put(self, name: str, text: str) -> list[tuple[str, str | None, str]]:
        """Set ConfigMap file ``name`` to ``text`` and regenerate the kustomization.

        Returns the files that change, as (repo-relative path, text before or None, text after).
        """
        self._files.add(name)
        kustomization = render_kustomization(sorted(self._files), self.env, self.namespace)
        changed: list[tuple[str, str | None, str]] = []
        for n, new in ((name, text), (KUSTOMIZATION, kustomization)):
            old = self._current(n)
            if old != new:
                self._text[n] = new
                changed.append((f"{self.rel}/{n}", old, new))
        return changed


def unified_diff(changed: list[tuple[str, str | None, str]]) -> str:
    """Return the unified diff (difflib) of ``EnvironmentEdit.put``'s changed files."""
    return "".join("".join(difflib.unified_diff(
        (old or "").splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"a/{rel}" if old is not None else "/dev/null", tofile=f"b/{rel}")) for rel, old, new in changed)


def write_environment_file(clone: Clone, config: PromptPipelineConfig, env: str, name: str,
                           text: str) -> tuple[list[str], str]:
    """Write one ConfigMap file and regenerate the kustomization; return (changed paths, diff)."""
    edit = EnvironmentEdit(clone, config, env)
    changed = edit.put(name, text)
    for rel, _, new in changed:
        path = clone.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new, encoding="utf-8")
    return [f"{edit.rel}/{name}", f"{edit.rel}/{KUSTOMIZATION}"], unified_diff(changed)


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
