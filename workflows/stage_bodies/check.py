"""The lint and validate stages: check the artifacts under a path, one line per problem."""

from __future__ import annotations

import sys

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


def validate(artifact_path: str) -> None:
    """Validate the artifacts under ``artifact-path`` against their schemas and the model catalog."""
    problems_stage("validate", artifact_path)
