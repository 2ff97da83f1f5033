"""What is live where: each artifact's version and content hash in every environment.

Read straight from the GitOps repo (the source of truth Argo CD applies), never
from a cache, so ``status`` shows exactly what a rollback or promotion left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.pipeline import PromptPipelineConfig
from steps.gitops.configmaps import LayoutError
from steps.gitops.gitops import GitEnv, GitError, is_local_url, resolve_url
from steps.gitops.layout import author_of, gitops_clone, read_environment


class StatusError(Exception):
    """The GitOps repo could not be read."""


@dataclass(frozen=True)
class LiveVersion:
    version: str
    content_hash: str
    source_revision: str


@dataclass
class EnvironmentStatus:
    """Per artifact id, per environment: what is live (None: not deployed there)."""

    chain: list[str]
    artifacts: dict[str, dict[str, LiveVersion | None]] = field(default_factory=dict)
    head: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready data: ``{"environments": [...], "artifacts": {id: {env: {...} | null}}}``."""
        return {"environments": self.chain, "head": self.head,
                "artifacts": {aid: {env: (None if v is None else {"version": v.version,
                                                                  "content_hash": v.content_hash,
                                                                  "source_revision": v.source_revision})
                                    for env, v in envs.items()}
                              for aid, envs in sorted(self.artifacts.items())}}


def environment_status(config: PromptPipelineConfig, repo_root: Path,
                       workdir: Path | None = None) -> EnvironmentStatus:
    """Return what every environment of the chain holds, read from a fresh clone of the GitOps repo.

    A local GitOps repo that does not exist yet means nothing was promoted:
    an empty status, and the repo is not created.
    """
    status = EnvironmentStatus(chain=list(config.promotion.chain))
    url = resolve_url(config.gitops.repo_url, repo_root)
    if is_local_url(url) and not url.startswith("file://") and not Path(url).exists():
        return status
    with GitEnv(author_of(config)) as genv:
        try:
            with gitops_clone(config, repo_root, workdir, genv) as clone:
                status.head = clone.head()
                for env in status.chain:
                    for aid, cm in read_environment(clone, config, env).items():
                        status.artifacts.setdefault(aid, dict.fromkeys(status.chain))[env] = LiveVersion(
                            cm.version, cm.content_hash, cm.source_revision)
        except (GitError, LayoutError, OSError) as exc:
            raise StatusError(str(exc)) from None
    return status
