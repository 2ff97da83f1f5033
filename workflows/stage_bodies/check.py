"""The lint and validate stages: check the artifacts under a path, one line per problem (validate then plans)."""

from __future__ import annotations

import sys
from pathlib import Path

from workflows.stage_bodies.common import repo_root


def problems_stage(kind: str, artifact_path: str) -> None:
    """Run the ``lint`` or ``validate`` check on ``artifact_path``; exit 1 (rejected) or 2 (a promptci
    bug on some file) when it finds problems, printing one line per problem."""
    from config.problems import exit_code, render

    root = repo_root()
    if kind == "lint":
        from steps.lint import lint_paths as check
    else:
        from steps.validate import validate_paths as check
    problems = check([root / artifact_path], root=root)
    if problems:
        print(render(problems))
    if exit_code(problems):  # 1 rejected, 2 a promptci bug on some file (told apart for CI)
        sys.exit(exit_code(problems))
    print(f"{kind}: {artifact_path}: ok")


def lint(artifact_path: str) -> None:
    """Lint the artifacts under ``artifact-path``; exit 1 on any error (prints one line per problem)."""
    problems_stage("lint", artifact_path)


def validate(artifact_path: str, artifact_type: str, git_revision: str, base_revision: str,
             target_environment: str, dry_run: str, no_cache: str, shards: Path, count: Path,
             needs_approval: Path) -> None:
    """Validate the artifacts under ``artifact-path`` against their schemas and the model catalog, then,
    when they are valid, plan the run (stage_bodies/plan.py): validate's outputs are the plan's."""
    problems_stage("validate", artifact_path)
    from workflows.stage_bodies.plan import plan

    plan(artifact_path, artifact_type, git_revision, base_revision, target_environment, dry_run, no_cache,
         shards=shards, count=count, needs_approval=needs_approval)
