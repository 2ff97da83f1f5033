"""The lint stage: syntax, schema, ids and golden datasets of artifact files.

Lint answers "is this file well-formed?": YAML/JSON syntax (line and column),
duplicate keys, size/binary/empty files, required/unknown/mistyped fields,
message roles, ids unique and agreeing with file names, and golden datasets
that exist, parse, and assert something. Catalog and token checks are
validate's job (it runs in parallel, on the same files).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from config.artifacts import GuardrailPolicyArtifact, PromptArtifact, RagConfigArtifact, artifact_id_from_path
from config.problems import Problem
from config.yamlio import LoadError
from steps.artifact_files import ArtifactFile, discover, load_all, rel
from steps.cli import check_command
from steps.datasets import read_dataset, read_guardrail_cases, read_rag_dataset


def expand(paths: Sequence[str | Path], root: Path) -> tuple[list[Path], list[Problem]]:
    """Return the artifact files named by ``paths`` (dirs expanded), and problems for missing paths."""
    files: list[Path] = []
    problems: list[Problem] = []
    for p in paths:
        path = Path(p)
        try:
            files += discover(path)
        except FileNotFoundError:
            problems.append(Problem(rel(path, root), 0, 0, "", "no such file or directory"))
    return files, problems


# Artifact and dataset paths travel through Argo parameters (the eval fan-out); keeping them to
# this alphabet means no path can ever read as Argo template syntax ({{...}}) or need quoting.
SAFE_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")
SAFE_PATH_HINT = "may only contain letters, digits, '.', '_', '-' and '/' (it is passed through Argo parameters)"


# Each type's golden data has its own shape (steps.datasets).
READERS: dict[type, Callable[[Path, str], object]] = {
    PromptArtifact: read_dataset, GuardrailPolicyArtifact: read_guardrail_cases, RagConfigArtifact: read_rag_dataset}


def _lint_datasets(art: ArtifactFile) -> list[Problem]:
    prompt = art.artifact
    assert isinstance(prompt, PromptArtifact | GuardrailPolicyArtifact | RagConfigArtifact)
    problems: list[Problem] = []
    if not prompt.evals and not (isinstance(prompt, PromptArtifact) and prompt.tests):
        loc = ("testData",) if art.github_models else ("evals",)
        what = "prompt has no golden tests" if isinstance(prompt, PromptArtifact) else \
            f"{art.artifact_type.value} has no golden data (zero tests is an error)"
        problems.append(art.loaded.problem(loc, f"{what}; add an eval dataset"))
    read = READERS[type(prompt)]
    seen: set[str] = set()
    for i, ref in enumerate(prompt.evals):
        if ref.name in seen:
            problems.append(art.loaded.problem(("evals", i, "name"), f"duplicate dataset name '{ref.name}'"))
        seen.add(ref.name)
        path = art.root / ref.path
        if not SAFE_PATH.match(ref.path):
            problems.append(art.loaded.problem(("evals", i, "path"), f"dataset path {SAFE_PATH_HINT}"))
            continue
        if rel(path, art.root).startswith(("..", "/")):
            problems.append(art.loaded.problem(("evals", i, "path"), "dataset path must stay inside the repo"))
            continue
        if not path.is_file():
            problems.append(art.loaded.problem(("evals", i, "path"), f"dataset file not found: {ref.path}"))
            continue
        try:
            read(path, rel(path, art.root))
        except LoadError as exc:
            problems += exc.problems
    gh_tests = prompt.tests if isinstance(prompt, PromptArtifact) and art.github_models else []
    if gh_tests and not any(t.assert_ for t in gh_tests):
        problems.append(art.loaded.problem(("evaluators",), "testData has no evaluators: every test "
                                                            "would pass without checking anything"))
    return problems


def lint_paths(paths: Sequence[str | Path], *, root: Path | None = None) -> list[Problem]:
    """Return every lint problem in the artifact files at ``paths`` (files or directories)."""
    root = (root or Path.cwd()).resolve()
    files, problems = expand(paths, root)
    artifacts, load_problems = load_all(files, root)
    problems += load_problems
    first_seen: dict[str, ArtifactFile] = {}
    for art in artifacts:
        if not SAFE_PATH.match(art.rel_path):
            problems.append(art.loaded.problem((), f"file path {SAFE_PATH_HINT}"))
        expected = artifact_id_from_path(art.rel_path)
        if not art.github_models and art.artifact_id != expected:
            problems.append(art.loaded.problem(("id",), f"id '{art.artifact_id}' does not match the file "
                                                        f"name (expected '{expected}')"))
        other = first_seen.setdefault(art.artifact_id, art)
        if other is not art:
            problems.append(art.loaded.problem(("id",), f"id '{art.artifact_id}' is already used by "
                                                        f"{other.rel_path}"))
        if isinstance(art.artifact, PromptArtifact | GuardrailPolicyArtifact | RagConfigArtifact):
            problems += _lint_datasets(art)
    return problems


main = check_command("lint", lint_paths, "Lint artifact files: syntax, schema, ids and golden datasets.")

if __name__ == "__main__":
    main()
