"""Check that the local checkout is the revision a run was asked to evaluate."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from workflows.runner.records import RunError


def verify_checkout(root: Path, params: Mapping[str, str]) -> None:
    """Raise RunError unless the checkout is exactly ``git-revision`` (when one is given).

    In Argo the git artifact checks out that revision; locally the runner uses the
    checkout as it is. Evaluating one thing and recording another revision in the GitOps
    commit would be a lie, so a run asked for a revision the checkout is not at
    (another commit, or uncommitted changes) stops before anything runs.
    """
    rev = (params.get("git-revision") or "").strip()
    if not rev:
        return

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    want = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    head = git("rev-parse", "HEAD")
    if want.returncode != 0:
        raise RunError(f"git-revision '{rev}' is not a commit in {root}; fetch it, or run without it")
    if head.returncode != 0 or head.stdout.strip() != want.stdout.strip():
        raise RunError(f"git-revision '{rev}' is not the checked-out HEAD of {root} "
                       f"({head.stdout.strip()[:12] or 'none'}); check it out first: the local runner "
                       "evaluates the checkout")
    dirty = git("status", "--porcelain", "--", ".", ":(exclude).promptci")
    if dirty.stdout.strip():
        first = dirty.stdout.strip().splitlines()[0]
        raise RunError(f"the checkout has changes not in git-revision '{rev}' ({first.strip()}, ...); "
                       "commit or stash them, or run without git-revision")
