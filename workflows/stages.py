"""The pipeline's step functions, as Hera ``@script`` signatures.

Hera reads these signatures (parameter names, which are outputs) to build the templates.
Each function only calls its stage's body in ``workflows/stage_bodies/`` (free of Hera), which
parses nothing Hera-specific: see that package for what each stage does and its exit codes
(0 passed, 1 said no, 75 transient: retried by ``retryStrategy``).
"""

# No ``from __future__ import annotations``: Hera reads the real annotation objects.
from pathlib import Path
from typing import Annotated

from hera.workflows import Artifact, Parameter, script

from workflows.stage_bodies import check, evaluate
from workflows.stage_bodies import promote as promoting
from workflows.stage_bodies import summary as summarizing
from workflows.stage_bodies.common import (  # re-exported: the templates set these
    CONFIG_ENV,
    EXIT_TRANSIENT,
    RUN_ID_ENV,
    RUN_LINK_ENV,
    WORKFLOW_STATUS_ENV,
)

__all__ = ["CONFIG_ENV", "EXIT_TRANSIENT", "RUN_ID_ENV", "RUN_LINK_ENV", "STAGES", "WORKFLOW_STATUS_ENV"]

ArtifactPath = Annotated[str, Parameter(name="artifact-path")]
ArtifactTypeParam = Annotated[str, Parameter(name="artifact-type")]
TargetEnv = Annotated[str, Parameter(name="target-environment")]
DryRun = Annotated[str, Parameter(name="dry-run")]
NoCache = Annotated[str, Parameter(name="no-cache")]


@script(constructor="runner")
def lint(artifact_path: ArtifactPath) -> None:
    """Lint the artifacts under ``artifact-path`` (stage_bodies/check.py)."""
    check.lint(artifact_path)


@script(constructor="runner")
def validate(
    artifact_path: ArtifactPath,
    artifact_type: ArtifactTypeParam,
    git_revision: Annotated[str, Parameter(name="git-revision")],
    base_revision: Annotated[str, Parameter(name="base-revision")],
    target_environment: TargetEnv,
    dry_run: DryRun,
    no_cache: NoCache,
    shards: Annotated[Path, Parameter(name="shards", output=True)],
    count: Annotated[Path, Parameter(name="count", output=True)],
    needs_approval: Annotated[Path, Parameter(name="needs-approval", output=True)],
) -> None:
    """Validate the artifacts, then plan the run: the eval shards, what promote acts on, approval
    (stage_bodies/check.py, stage_bodies/plan.py)."""
    check.validate(artifact_path, artifact_type, git_revision, base_revision, target_environment, dry_run,
                   no_cache, shards=shards, count=count, needs_approval=needs_approval)


@script(constructor="runner")
def eval_shard(
    shard: Annotated[str, Parameter(name="shard")],
    target_environment: TargetEnv,
    no_cache: NoCache,
    reports: Annotated[Path, Artifact(name="reports", output=True)],
) -> None:
    """Run one eval shard (stage_bodies/evaluate.py)."""
    evaluate.eval_shard(shard=shard, target_environment=target_environment, no_cache=no_cache, reports=reports)


@script(constructor="runner")
def promote(
    target_environment: TargetEnv,
    dry_run: DryRun,
    approved: Annotated[str, Parameter(name="approved")],
    git_revision: Annotated[str, Parameter(name="git-revision")],
) -> None:
    """Promote this run's artifacts (stage_bodies/promote.py)."""
    promoting.promote(target_environment=target_environment, dry_run=dry_run, approved=approved,
                      git_revision=git_revision)


@script(constructor="runner")
def summary() -> None:
    """The exit handler: the run's summary (stage_bodies/summary.py)."""
    summarizing.summary()


STAGES = {"lint": lint, "validate": validate, "eval": eval_shard, "promote": promote, "summary": summary}
