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
from workflows.stage_bodies import plan as planning
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


@script(constructor="runner")
def lint(artifact_path: ArtifactPath) -> None:
    """Lint the artifacts under ``artifact-path`` (stage_bodies/check.py)."""
    check.lint(artifact_path)


@script(constructor="runner")
def validate(artifact_path: ArtifactPath) -> None:
    """Validate the artifacts under ``artifact-path`` (stage_bodies/check.py)."""
    check.validate(artifact_path)


@script(constructor="runner")
def plan(
    artifact_path: ArtifactPath,
    artifact_type: ArtifactTypeParam,
    git_revision: Annotated[str, Parameter(name="git-revision")],
    base_revision: Annotated[str, Parameter(name="base-revision")],
    target_environment: TargetEnv,
    dry_run: DryRun,
    items: Annotated[Path, Parameter(name="items", output=True)],
    needs_approval: Annotated[Path, Parameter(name="needs-approval", output=True)],
    count: Annotated[Path, Parameter(name="count", output=True)],
) -> None:
    """Plan the eval fan-out (stage_bodies/plan.py)."""
    planning.plan(artifact_path=artifact_path, artifact_type=artifact_type, git_revision=git_revision,
                  base_revision=base_revision, target_environment=target_environment, dry_run=dry_run,
                  items=items, needs_approval=needs_approval, count=count)


@script(constructor="runner")
def eval_branch(
    item: Annotated[str, Parameter(name="item")],
    target_environment: TargetEnv,
    no_cache: Annotated[str, Parameter(name="no-cache")],
    result: Annotated[Path, Parameter(name="result", output=True)],
    reports: Annotated[Path, Artifact(name="reports", output=True)],
) -> None:
    """Run one eval branch (stage_bodies/evaluate.py)."""
    evaluate.eval_branch(item=item, target_environment=target_environment, no_cache=no_cache, result=result,
                         reports=reports)


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


STAGES = {"lint": lint, "validate": validate, "plan": plan, "eval": eval_branch, "promote": promote,
          "summary": summary}
