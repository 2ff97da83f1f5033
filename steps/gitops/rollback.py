"""Rollback: restore an artifact's earlier ConfigMap in one environment by a NEW commit.

History is never rewritten: the target content is read from an older commit of
the GitOps repo and committed again on top of the current head, so the
rollback itself is audited like any promotion. Nothing else changes (no other
ConfigMap, no baseline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from config.pipeline import PromptPipelineConfig
from steps.gitops.configmaps import ArtifactConfigMap, LayoutError, parse_configmap
from steps.gitops.gitops import Clone, GitEnv, GitError, PushRejected, publish, redact
from steps.gitops.layout import (
    author_of,
    env_dir,
    gitops_clone,
    one_line,
    read_environment,
    write_environment_file,
)
from steps.promotion.baselines import reconcile
from steps.stores.store import ArtifactStore, StoreError


class RollbackError(Exception):
    """The rollback cannot be done (artifact not live, no such version, git failure).

    ``transient`` is True for an infrastructure failure (the GitOps remote): exit 75, retried.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class HistoryEntry:
    """One earlier state of an artifact's ConfigMap: the GitOps commit and what it held."""

    commit: str
    configmap: ArtifactConfigMap
    text: str


@dataclass
class RollbackResult:
    """What a rollback did. ``commit`` is None when the target was already live (no commit)."""

    artifact_id: str
    env: str
    from_version: str = ""
    from_hash: str = ""
    to_version: str = ""
    to_hash: str = ""
    restored_from: str = ""
    commit: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    infra: list[str] = field(default_factory=list)
    live: ArtifactConfigMap | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return what the rollback did as JSON-ready data (``promptci rollback --format json``): the fields
        above except the live ConfigMap object, and ``exit_code`` (75 when an infrastructure step failed)."""
        return {"artifact_id": self.artifact_id, "env": self.env, "from_version": self.from_version,
                "from_hash": self.from_hash, "to_version": self.to_version, "to_hash": self.to_hash,
                "restored_from": self.restored_from, "commit": self.commit, "history": self.history,
                "notes": self.notes, "infra": self.infra, "exit_code": 75 if self.infra else 0}

    def render(self) -> str:
        """Return a one-paragraph summary for the terminal (plus baseline notes and errors)."""
        if self.commit is None:
            text = (f"{self.artifact_id} in {self.env}: {self.to_version} {self.to_hash[:15]} is already "
                    "live; nothing to do")
        else:
            text = (f"rolled back {self.artifact_id} in {self.env}: {self.from_version} {self.from_hash[:15]} "
                    f"-> {self.to_version} {self.to_hash[:15]} (content of {self.restored_from[:12]}), "
                    f"commit {self.commit}")
        return "\n".join([text, *(f"  note: {n}" for n in self.notes),
                          *(f"  infrastructure (exit 75, retried): {e}" for e in self.infra)])


def history(clone: Clone, rel: str) -> list[HistoryEntry]:
    """Return every readable state of the ConfigMap file ``rel``, newest commit first."""
    out = []
    for sha in clone.log_file(rel):
        text = clone.show(sha, rel)
        if text is None:
            continue  # the commit deleted the file
        try:
            out.append(HistoryEntry(sha, parse_configmap(text, f"{rel}@{sha[:12]}"), text))
        except LayoutError:
            continue
    return out


def pick_target(entries: list[HistoryEntry], current: ArtifactConfigMap, to: str | None) -> HistoryEntry:
    """Return the history entry to restore.

    Default: the newest state whose content differs from what is live (the
    previous distinct content). ``to``: the newest state with that artifact
    version, else the state at the GitOps commit whose sha starts with ``to``.
    """
    if to is None:
        for e in entries:
            if e.configmap.content_hash != current.content_hash:
                return e
        raise RollbackError(f"{current.artifact_id} has no earlier content to roll back to")
    for e in entries:
        if e.configmap.version == to:
            return e
    if re.fullmatch(r"[0-9a-fA-F]{4,40}", to):
        for e in entries:
            if e.commit.startswith(to.lower()):
                return e
    known = ", ".join(dict.fromkeys(f"{e.configmap.version} ({e.commit[:8]})" for e in entries))
    raise RollbackError(f"{current.artifact_id} never held version or commit '{to}'; known: {known}")


def rollback_message(cur: ArtifactConfigMap, target: HistoryEntry, env: str) -> str:
    """Return the structured commit message of a rollback."""
    t = target.configmap
    trailers = [("Artifact", t.artifact_id), ("Artifact-Type", t.artifact_type), ("Version", t.version),
                ("Content-Hash", t.content_hash), ("Environment", env),
                ("Source-Revision", t.source_revision or "unknown"),
                ("Rolled-Back-From", f"{cur.version} {cur.content_hash}"),
                ("Restored-From-Commit", target.commit)]
    subject = f"rollback({env}): {t.artifact_id} {t.version} {t.content_hash[:15]}"
    return one_line(subject) + "\n\n" + "\n".join(f"{k}: {one_line(v)}" for k, v in trailers) + "\n"


def pinned(target: ArtifactConfigMap, cur: ArtifactConfigMap) -> ArtifactConfigMap:
    """Return ``target`` pinned against ``cur``: only a source newer than what is rolled back may replace it.

    Why: without the pin, a retry of the run that promoted ``cur`` would pass the
    newer-source gate again and silently undo the rollback.
    """
    ts, rev = cur.floor
    return replace(target, pinned_revision=rev, pinned_timestamp=None if ts < 0 else ts)


def rollback_artifact(artifact_id: str, *, env: str, config: PromptPipelineConfig, repo_root: Path,
                      to: str | None = None, workdir: Path | None = None,
                      store: ArtifactStore | None = None, key: bytes | None = None) -> RollbackResult:
    """Return the RollbackResult of restoring ``artifact_id``'s earlier content in ``env`` by a new commit.

    The restored ConfigMap is pinned (:func:`pinned`). With a ``store`` and ``key``, the
    environment's baseline then follows git (steps/promotion/baselines.py); a store failure
    is in ``infra``. Raises RollbackError when the artifact is not live there, the target
    does not exist, or git fails (message redacted; ``transient``). Retries on a
    concurrent push like promotion does, recomputing the target on the new head.
    """
    if env not in config.promotion.chain:
        raise RollbackError(f"unknown environment '{env}'; the chain is {', '.join(config.promotion.chain)}")
    result = RollbackResult(artifact_id=artifact_id, env=env)

    def apply(clone: Clone) -> bool:
        live = read_environment(clone, config, env)
        cur = live.get(artifact_id)
        if cur is None:
            raise RollbackError(f"{artifact_id} is not live in {env} (live: {', '.join(sorted(live)) or 'none'})")
        rel = f"{env_dir(config, env)}/{cur.file}"
        entries = history(clone, rel)
        target = pick_target(entries, cur, to)
        result.from_version, result.from_hash = cur.version, cur.content_hash
        result.to_version, result.to_hash = target.configmap.version, target.configmap.content_hash
        result.restored_from, result.commit = target.commit, None
        result.history = [{"commit": e.commit, "version": e.configmap.version,
                           "content_hash": e.configmap.content_hash} for e in entries]
        result.live = cur
        if target.configmap.content_hash == cur.content_hash:
            return False
        result.live = pinned(target.configmap, cur)
        paths, _ = write_environment_file(clone, config, env, cur.file, result.live.render())
        result.commit = clone.commit_paths(paths, rollback_message(cur, target, env))
        return result.commit is not None

    with GitEnv(author_of(config)) as genv:
        try:
            with gitops_clone(config, repo_root, workdir, genv) as clone:
                publish(clone, config.gitops.max_push_attempts, apply)
        except PushRejected as exc:
            raise RollbackError(f"push still rejected after {config.gitops.max_push_attempts} attempts: "
                                f"{exc}", transient=True) from None
        except LayoutError as exc:
            raise RollbackError(str(exc)) from None
        except (GitError, OSError) as exc:
            raise RollbackError(redact(str(exc)), transient=True) from None
    if store is not None and key is not None and result.live is not None:
        try:
            _, result.notes = reconcile(store, env, {artifact_id: result.live}, key)
        except StoreError as exc:
            result.infra.append(f"rolled back, but the {env} baseline was not brought up to date: {exc}; a "
                                "retry repairs it")
    return result
