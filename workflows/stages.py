"""The pipeline's step functions, as Hera ``@script`` signatures.

Hera reads these signatures (parameter names, which are outputs) to build the templates. Each one
calls its stage's body in ``workflows/stage_bodies/`` (free of Hera; ``@runs``, workflows/stage_script.py),
and the pod runs that body through the thin entry (workflows/stage_entry.py), never importing this
module. See the bodies for what each stage does and its exit codes (0 passed, 1 said no, 75
transient: retried by ``retryStrategy``).
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
from workflows.stage_script import runs

__all__ = ["CONFIG_ENV", "EXIT_TRANSIENT", "RUN_ID_ENV", "RUN_LINK_ENV", "STAGES", "WORKFLOW_STATUS_ENV"]

ArtifactPath = Annotated[str, Parameter(name="artifact-path")]
ArtifactTypeParam = Annotated[str, Parameter(name="artifact-type")]
TargetEnv = Annotated[str, Parameter(name="target-environment")]
DryRun = Annotated[str, Parameter(name="dry-run")]
NoCache = Annotated[str, Parameter(name="no-cache")]


@script(constructor="runner")
@runs(check.lint)
def lint(artifact_path: ArtifactPath) -> None:
    """Lint the artifacts under ``artifact-path`` (stage_bodies/check.py)."""


@script(constructor="runner")
@runs(check.validate)
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


@script(constructor="runner")
@runs(evaluate.eval_shard)
def eval_shard(
    shard: Annotated[str, Parameter(name="shard")],
    target_environment: TargetEnv,
    no_cache: NoCache,
    reports: Annotated[Path, Artifact(name="reports", output=True)],
) -> None:
    """Run one eval shard (stage_bodies/evaluate.py)."""


@script(constructor="runner")
@runs(promoting.promote)
def promote(
    target_environment: TargetEnv,
    dry_run: DryRun,
    approved: Annotated[str, Parameter(name="approved")],
    git_revision: Annotated[str, Parameter(name="git-revision")],
) -> None:
    """Promote this run's artifacts (stage_bodies/promote.py)."""


@script(constructor="runner")
@runs(summarizing.summary)
def summary() -> None:
    """The exit handler: the run's summary (stage_bodies/summary.py)."""


STAGES = {"lint": lint, "validate": validate, "eval": eval_shard, "promote": promote, "summary": summary}
