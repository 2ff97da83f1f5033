"""What ``serve`` does with a queued job: fetch, check out, decide the types from git, run the pipelines.

The receiver works on one configured checkout and its configured remote. A payload's clone
URL is never used: ``after`` is fetched from the remote's branch, and a revision the branch
does not contain (a forged SHA, another repository's commit, a push since rewritten away) is
never evaluated. When the payload could not prove which types changed, ``git diff`` between
the pushes' base and the newest ``after`` decides (as the plan step does in every run), so an
empty-commits push becomes the runs it needs, not one per type.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from steps.plan import is_no_base
from workflows.webhooks.run_queue import Job

log = logging.getLogger("promptci.receiver")

RunOne = Callable[[str, dict[str, str], str], bool]  # (artifact type, params, run id) -> succeeded?


class GitError(Exception):
    """A git command the job needs failed."""


def run_with_local_runner(root: Path, config_path: str | None) -> RunOne:
    """Return a RunOne that runs the pipeline with the local runner in ``root``."""

    def run(artifact_type: str, params: dict[str, str], run_id: str) -> bool:
        from workflows.runner.scheduler import run_pipeline  # lazy: the receiver does not need the runner

        result = run_pipeline(artifact_type, params, run_id, repo_root=root, config_path=config_path)
        log.info("run %s (%s) finished: %s %s", run_id, artifact_type, result.status, result.message)
        return result.ok

    return run


class LocalCI:
    """Turns a :class:`Job` into pipeline runs on the checkout at ``root`` (see the module docstring)."""

    def __init__(self, root: Path, artifact_dirs: Mapping[str, str], run_one: RunOne, *, remote: str = "origin",
                 target_environment: str = "dev", dry_run: bool = False):
        self.root, self.remote, self.run_one = root, remote, run_one
        self.dirs = {t: d.strip("/") for t, d in artifact_dirs.items()}
        self.target_environment, self.dry_run = target_environment, dry_run

    def _git(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, text=True,
                              check=False, timeout=300)
        if proc.returncode not in ok_codes:
            raise GitError(f"git {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
        return proc

    def _has(self, rev: str) -> bool:
        return self._git("cat-file", "-e", f"{rev}^{{commit}}", ok_codes=(0, 1, 128)).returncode == 0

    def fetch(self, branch: str) -> str:
        """Fetch ``branch`` from the configured remote; return the SHA of its tip."""
        self._git("fetch", "--quiet", "--no-tags", self.remote, f"refs/heads/{branch}")
        return self._git("rev-parse", "FETCH_HEAD^{commit}").stdout.strip()

    def on_branch(self, rev: str, tip: str) -> bool:
        """Return whether ``rev`` is a commit contained in the fetched branch tip."""
        return self._has(rev) and self._git("merge-base", "--is-ancestor", rev, tip,
                                            ok_codes=(0, 1)).returncode == 0

    def revisions(self, job: Job, tip: str) -> tuple[str, str]:
        """Return ``(base, after)`` for the job: the newest pushed ``after`` and the oldest base.

        Pushes whose ``after`` the branch does not contain are dropped (logged). Raises
        GitError when none is left.
        """
        afters = list(dict.fromkeys(p.after for p in job.pushes))
        kept = [a for a in afters if self.on_branch(a, tip)]
        for a in set(afters) - set(kept):
            log.warning("run %s: %s is not on %s/%s; not evaluated", job.job_id, a[:12], self.remote, job.branch)
        if not kept:
            raise GitError(f"no pushed revision is on {self.remote}/{job.branch}")
        tips = self._git("merge-base", "--independent", *kept).stdout.split()
        after = tips[0] if len(tips) == 1 else kept[-1]
        befores = list(dict.fromkeys(p.before for p in job.pushes))
        if any(is_no_base(b) or not self._has(b) for b in befores):
            return "0" * len(after), after
        base = self._git("merge-base", "--octopus", *befores, ok_codes=(0, 1)).stdout.strip()
        return (base or "0" * len(after)), after

    def changed_types(self, base: str, after: str) -> list[str]:
        """Return the artifact types with a file changed between ``base`` and ``after`` (all without a base)."""
        if is_no_base(base):
            return sorted(self.dirs)
        names = self._git("diff", "--name-only", "--no-renames", f"{base}..{after}").stdout.splitlines()
        return sorted(t for t, d in self.dirs.items() if any(n.startswith(d + "/") for n in names))

    def __call__(self, job: Job) -> None:
        tip = self.fetch(job.branch)
        base, after = self.revisions(job, tip)
        types = sorted(job.types) if job.types is not None else self.changed_types(base, after)
        job.runs = {t: "queued" for t in types}
        if not types:
            log.info("run %s: git diff %s..%s touches no artifact directory; nothing to run",
                     job.job_id, base[:12], after[:12])
            return
        self._git("checkout", "--quiet", "--detach", after)
        params = {"git-revision": after, "base-revision": base, "repo-url": str(self.root),
                  "target-environment": self.target_environment, "dry-run": "true" if self.dry_run else "false"}
        failed = []
        for t in types:
            job.runs[t] = "running"
            try:
                ok = self.run_one(t, {**params, "artifact-path": self.dirs[t]}, f"{job.job_id}-{t}")
            except Exception as exc:  # noqa: BLE001 - one type's crash must not hide the others' results
                ok = False
                log.error("run %s-%s crashed: %s: %s", job.job_id, t, type(exc).__name__, exc)
            job.runs[t] = "done" if ok else "failed"
            if not ok:
                failed.append(t)
        if failed:
            job.error = f"pipeline failed for {', '.join(failed)}"
