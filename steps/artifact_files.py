"""Finding and loading artifact files: the one place that turns a path into a typed artifact.

Both lint and validate start here, and so do plan and eval, so a file is read
the same way by every stage.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.artifacts import (
    KIND_MODELS,
    Artifact,
    ArtifactType,
    GitHubModelsPrompt,
    PromptArtifact,
    Strict,
    artifact_id_from_path,
    from_github_models,
    is_github_prompt,
)
from config.problems import Problem
from config.validation import problems_from_error
from config.yamlio import Loaded, LoadError, is_json_path, memo_by_file, parse_text, read_checked
from steps.contracts import content_hash

ARTIFACT_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class ArtifactFile:
    """A successfully parsed artifact, with everything later stages need to know about its file."""

    path: Path
    rel_path: str
    raw: bytes
    artifact: Artifact
    artifact_type: ArtifactType
    loaded: Loaded
    root: Path
    github_models: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def artifact_id(self) -> str:
        return self.artifact.id

    @property
    def content_hash(self) -> str:
        return content_hash(self.raw)

    @property
    def datasets(self) -> list[str]:
        """Return the dataset names to evaluate: named files, ``inline`` for a prompt's embedded tests.

        A model-config has none of its own: its datasets are those of the prompts that use it (plan).
        """
        names = [d.name for d in getattr(self.artifact, "evals", [])]
        if isinstance(self.artifact, PromptArtifact) and self.artifact.tests:
            names.append("inline")
        return names

    def dataset_path(self, name: str) -> Path | None:
        """Return the file of dataset ``name`` (None for ``inline`` or an unknown name)."""
        for d in getattr(self.artifact, "evals", []):
            if d.name == name:
                return self.root / d.path
        return None


def rel(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` when inside it, else as given (for messages)."""
    # os.path keeps this free of syscalls (Path.resolve stats every component); it runs per file.
    rp = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return str(path) if rp.startswith("..") else rp.replace(os.sep, "/")


def discover(path: Path) -> list[Path]:
    """Return the artifact files at ``path`` (a file, or every YAML/JSON file below a directory), sorted."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise FileNotFoundError(path)
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in ARTIFACT_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def _typed(loaded: Loaded, path: str) -> tuple[Strict | None, list[Problem], bool]:
    data = loaded.data
    if not isinstance(data, dict):
        return None, [loaded.problem((), "an artifact must be a mapping of fields")], False
    if is_github_prompt(path):
        try:
            gh = GitHubModelsPrompt.model_validate(data)
        except ValidationError as exc:
            return None, problems_from_error(loaded, exc), True
        try:
            return from_github_models(gh, artifact_id_from_path(path)), [], True
        except ValueError as exc:  # an evaluator with no exact promptfoo equivalent
            idx = next((i for i, ev in enumerate(gh.evaluators) if f"'{ev.name}'" in str(exc)), 0)
            return None, [loaded.problem(("evaluators", idx), str(exc))], True
    kind = data.get("kind", "prompt")
    model = KIND_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None, [loaded.problem(("kind",), f"unknown kind {kind!r}; expected one of "
                                                f"{', '.join(KIND_MODELS)}")], False
    try:
        return model.model_validate(data), [], False
    except ValidationError as exc:
        return None, problems_from_error(loaded, exc), False


@memo_by_file
def load_artifact(path: Path, root: Path) -> ArtifactFile:
    """Return the typed artifact in ``path``; raise LoadError listing every syntax/schema problem.

    Memoized per file (``config.yamlio.memo_by_file``): each file is parsed once per process.
    """
    shown = rel(path, root)
    raw, text = read_checked(path, shown)
    loaded = parse_text(text, shown, is_json=is_json_path(path))
    artifact, problems, gh = _typed(loaded, shown)
    if artifact is None:
        raise LoadError(problems)
    atype = ArtifactType(getattr(artifact, "kind", "prompt"))
    return ArtifactFile(path=path, rel_path=shown, raw=raw, artifact=artifact,  # type: ignore[arg-type]
                        artifact_type=atype, loaded=loaded, root=root, github_models=gh)


def load_all(paths: Iterable[Path], root: Path) -> tuple[list[ArtifactFile], list[Problem]]:
    """Return every artifact that loads, plus the problems of those that don't."""
    ok: list[ArtifactFile] = []
    problems: list[Problem] = []
    for p in paths:
        try:
            ok.append(load_artifact(p, root))
        except LoadError as exc:
            problems += exc.problems
    return ok, problems
