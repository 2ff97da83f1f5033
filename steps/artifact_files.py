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
    PromptArtifact,
    Strict,
    artifact_id_from_path,
)
from config.formats import NATIVE_SUFFIXES, SUPPORTED, format_of
from config.formats.github_models import (
    GitHubModelsPrompt,
    from_github_models,
    is_github_models,
    spaced_placeholders,
    unsupported_evaluators,
)
from config.problems import Problem, Severity, internal_problem
from config.validation import problems_from_error
from config.yamlio import Loaded, LoadError, is_json_path, memo_by_file, parse_text, read_checked
from steps.contracts import content_hash

ARTIFACT_SUFFIXES = NATIVE_SUFFIXES  # the suffixes of a native artifact file (model-config lookups by id)


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
    fmt: str = "native"  # native | github-models | prompty | dotprompt
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[Problem] = field(default_factory=list)  # found while reading (lint reports them)

    @property
    def github_models(self) -> bool:
        return self.fmt == "github-models"

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


def inside(path: Path, root: Path) -> bool:
    """Return True when ``path``, symlinks resolved, is inside ``root`` (a link out of the repo is not)."""
    rp = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    return not (rp == ".." or rp.startswith(".." + os.sep) or os.path.isabs(rp))


def discover(path: Path) -> list[Path]:
    """Return the files at ``path``: the path itself unless it is a directory, else every file below it
    (any format: unsupported ones are reported by ``load_artifact``, never skipped), sorted.

    Hidden entries (``.git``, ``.gitkeep``) and Dotprompt partials (``_name.prompt``, read through the
    prompts that include them) are not artifacts. Raises FileNotFoundError when ``path`` does not exist.
    """
    if not path.is_dir():
        if not os.path.lexists(path):
            raise FileNotFoundError(path)
        return [path]
    found = []
    for p in path.rglob("*"):
        rel_parts = p.relative_to(path).parts
        if any(part.startswith(".") for part in rel_parts) or p.is_dir():
            continue
        if format_of(p.name) == "dotprompt-partial":
            continue
        found.append(p)
    return sorted(found)


def _typed(loaded: Loaded, path: str) -> tuple[Strict | None, list[Problem], bool]:
    data = loaded.data
    if not isinstance(data, dict):
        return None, [loaded.problem((), "an artifact must be a mapping of fields")], False
    if is_github_models(path, data):
        try:
            gh = GitHubModelsPrompt.model_validate(data)
        except ValidationError as exc:  # schema problems and unsupported evaluators, in one pass
            return None, problems_from_error(loaded, exc) + [
                loaded.problem(loc, msg) for loc, msg in unsupported_evaluators(data.get("evaluators"))], True
        prompt, found = from_github_models(gh, artifact_id_from_path(path))
        if prompt is None:
            return None, [loaded.problem(loc, msg) for loc, msg in found], True
        return prompt, [loaded.problem(loc, msg, severity=Severity.WARNING)
                        for loc, msg in spaced_placeholders(gh)], True
    kind = data.get("kind", "prompt")
    model = KIND_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None, [loaded.problem(("kind",), f"unknown kind {kind!r}; expected one of "
                                                f"{', '.join(KIND_MODELS)}")], False
    try:
        return model.model_validate(data), [], False
    except ValidationError as exc:
        return None, problems_from_error(loaded, exc), False


def _read(path: Path, root: Path, shown: str, text: str) -> tuple[Strict | None, Loaded, list[Problem], str]:
    """Return (artifact or None, loaded document, problems, format) for one file's text."""
    fmt = format_of(path.name)
    if fmt == "prompty":
        from config.formats.prompty import read_prompty  # the prompty runtime loads only when needed

        prompt, loaded, problems = read_prompty(text, shown, artifact_id_from_path(shown))
        return prompt, loaded, problems, fmt
    if fmt == "dotprompt":
        from config.formats.dotprompt import read_dotprompt

        prompt, loaded, problems = read_dotprompt(text, shown, artifact_id_from_path(shown), path, root)
        return prompt, loaded, problems, fmt
    loaded = parse_text(text, shown, is_json=is_json_path(path))
    artifact, problems, gh = _typed(loaded, shown)
    return artifact, loaded, problems, "github-models" if gh else "native"


@memo_by_file
def load_artifact(path: Path, root: Path) -> ArtifactFile:
    """Return the typed artifact in ``path``; raise LoadError listing every syntax/schema problem.

    Reads every supported format (see ``config.formats``); any other file is an "unsupported
    format" problem, and a path that resolves outside ``root`` is refused.

    Memoized per file (``config.yamlio.memo_by_file``): each file is parsed once per process.
    """
    shown = rel(path, root)
    if not inside(path, root):
        raise LoadError([Problem(shown, 1, 1, "", f"resolves to {os.path.realpath(path)}, outside the "
                                                  "repository; artifacts must live inside it (no symlinks out)")])
    fmt = format_of(path.name)
    if fmt == "dotprompt-partial":
        raise LoadError([Problem(shown, 1, 1, "", "a Dotprompt partial ('_' prefix) is not a prompt: it is read "
                                                  "through the prompts that include it ({{> name}})")])
    if fmt is None:
        what = f"'{path.suffix}'" if path.suffix else "(no extension)"
        raise LoadError([Problem(shown, 1, 1, "", f"unsupported format {what}: supported formats are {SUPPORTED}")])
    raw, text = read_checked(path, shown)
    artifact, loaded, problems, fmt = _read(path, root, shown, text)
    if artifact is None or any(p.severity is not Severity.WARNING for p in problems):
        raise LoadError(problems)
    atype = ArtifactType(getattr(artifact, "kind", "prompt"))
    return ArtifactFile(path=path, rel_path=shown, raw=raw, artifact=artifact,  # type: ignore[arg-type]
                        artifact_type=atype, loaded=loaded, root=root, fmt=fmt, warnings=problems)


def load_all(paths: Iterable[Path], root: Path) -> tuple[list[ArtifactFile], list[Problem]]:
    """Return every artifact that loads, plus the problems of those that don't.

    A crash on one file becomes one "promptci bug" line for that file (exit 2), and the
    other files are still read and reported.
    """
    ok: list[ArtifactFile] = []
    problems: list[Problem] = []
    for p in paths:
        try:
            ok.append(load_artifact(p, root))
        except LoadError as exc:
            problems += exc.problems
        except Exception as exc:  # noqa: BLE001 - reported as a promptci bug, never a traceback
            problems.append(internal_problem(rel(p, root), exc))
    return ok, problems
