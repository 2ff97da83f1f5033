"""The source revision being promoted and its commit time, read from git, never from a flag.

Why: promotions of one artifact are ordered by the source's committer date (the newer
source revision wins, docs/promote.md). A date taken on trust, or a commit dated in the
future, would pin an environment against every later legitimate promotion. So the date
comes from the repository, and one more than ``MAX_FUTURE_SECONDS`` ahead is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from steps.gitops.gitops import GitEnv

MAX_FUTURE_SECONDS = 300


@dataclass(frozen=True)
class Source:
    """A source revision: its full sha and committer time (unix seconds)."""

    revision: str
    timestamp: int


class SourceError(Exception):
    """The source revision cannot be read from git, or its date cannot be trusted (a refusal)."""


def when(ts: int | None) -> str:
    """Return ``ts`` as an ISO-8601 UTC time (``unknown time`` for None)."""
    return "unknown time" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_source(repo_root: Path, revision: str = "", now: float | None = None) -> Source:
    """Return the revision (default HEAD) of the checkout at ``repo_root`` with its committer date.

    Raises SourceError when git cannot resolve it, or its committer date is more than
    five minutes in the future.
    """
    with GitEnv() as g:
        proc = g.run(["log", "-1", "--format=%H %ct", revision or "HEAD", "--"], cwd=repo_root, check=False)
    parts = proc.stdout.decode().split()
    if proc.returncode != 0 or len(parts) != 2:
        raise SourceError(f"cannot read source revision {revision or 'HEAD'} from git in {repo_root}; the "
                          "revision and its time come from the repository")
    src = Source(parts[0], int(parts[1]))
    limit = (time.time() if now is None else now) + MAX_FUTURE_SECONDS
    if src.timestamp > limit:
        raise SourceError(f"source revision {src.revision[:12]} has a committer date {when(src.timestamp)}, more "
                          f"than {MAX_FUTURE_SECONDS // 60} minutes in the future; a future date would pin the "
                          "environment against later promotions")
    return src
