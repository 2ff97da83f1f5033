"""Plan: which eval branches a pipeline run needs (changed artifacts × their datasets).

The output feeds the eval fan-out (Argo ``withParam``), so it is computed at run time
from git: an artifact is *changed* when ``git diff base..rev`` touches its file or one of
the dataset files it references (a changed golden set re-runs its artifact). Without a
base revision (or with git's all-zeros "no parent" sha) every artifact counts as changed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from config.artifacts import ArtifactType, PromptArtifact, model_config_ref
from steps.artifact_files import ArtifactFile, discover, load_artifact
from steps.contracts import EvalItem
from steps.model_refs import RefError, dependents, find_model_config

ZERO_SHA = frozenset("0")


class PlanError(Exception):
    """Git could not answer what changed (unknown revision, not a repository...)."""


def _git(root: Path, *args: str) -> list[str]:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PlanError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
    return [line for line in proc.stdout.splitlines() if line.strip()]


def changed_files(root: Path, base: str, rev: str | None) -> set[Path]:
    """Return the absolute paths changed between ``base`` and ``rev``.

    With no ``rev`` the working tree is compared with ``base`` and untracked files count
    as changed, so a local run sees edits that are not committed yet.
    """
    top = Path(_git(root, "rev-parse", "--show-toplevel")[0])
    if rev:
        names = _git(root, "diff", "--name-only", "--no-renames", f"{base}..{rev}")
    else:
        names = _git(root, "diff", "--name-only", "--no-renames", base)
        names += [str(Path(root, n).resolve().relative_to(top))
                  for n in _git(root, "ls-files", "--others", "--exclude-standard")]
    return {(top / n).resolve() for n in names}


def is_no_base(base_revision: str | None) -> bool:
    """Return True when there is no base to diff against (empty, or git's all-zeros sha)."""
    return not base_revision or not base_revision.strip() or set(base_revision.strip()) <= ZERO_SHA


class NoGoldenData(PlanError):
    """An artifact that nothing would evaluate: zero tests is an error for every type."""


def _items(art: ArtifactFile, root: Path, changed: set[Path] | None) -> list[EvalItem]:
    """Return the eval items of one artifact, or [] when neither it nor its golden data changed.

    A model-config is evaluated through the datasets of every prompt that uses it
    (dataset ``<prompt-id>/<dataset>``); it counts as changed when its own file
    changed (a dependent prompt's change plans that prompt, not the config).
    """
    if art.artifact_type is ArtifactType.MODEL_CONFIG:
        users = dependents(root, art.artifact_id)
        datasets = [f"{p.artifact_id}/{d}" for p in users for d in p.datasets]
        touched = {art.path.resolve()}
        what = f"no prompt uses it (model: config:{art.artifact_id}), so nothing would evaluate it"
    else:
        datasets = art.datasets
        touched = {art.path.resolve()} | {p.resolve() for d in datasets if (p := art.dataset_path(d)) is not None}
        what = "it has no golden data (evals:)"
        if art.artifact_type is ArtifactType.PROMPT:
            touched |= _model_config_files(art, root)
    if changed is not None and not touched & changed:
        return []
    if not datasets:
        raise NoGoldenData(f"{art.rel_path}: {what}; zero tests is an error for every artifact type")
    return [EvalItem(artifact_id=art.artifact_id, artifact_type=art.artifact_type.value, path=art.rel_path,
                     dataset=d, content_hash=art.content_hash) for d in datasets]


def _model_config_files(art: ArtifactFile, root: Path) -> set[Path]:
    """Return the model-config file a prompt references (a changed config re-plans it), if any."""
    assert isinstance(art.artifact, PromptArtifact)
    ref = model_config_ref(art.artifact.model)
    if ref is None:
        return set()
    try:
        return {find_model_config(root, ref).path.resolve()}
    except RefError:
        return set()  # eval reports the broken reference


def plan(artifact_path: str, artifact_type: ArtifactType, *, repo_root: Path, git_revision: str | None,
         base_revision: str | None) -> list[EvalItem]:
    """Return one EvalItem per changed artifact of ``artifact_type`` × dataset, sorted by path.

    Every type has golden data: an artifact without any (or a model-config no
    prompt uses) raises NoGoldenData. Deleted artifacts are absent from the
    checkout, so never planned. Raises FileNotFoundError for a missing
    ``artifact_path``, LoadError for an unreadable artifact and PlanError when
    git fails: a plan that cannot be made must stop the run.
    """
    root = repo_root.resolve()
    target = (root / artifact_path).resolve()
    if not target.exists():
        raise FileNotFoundError(f"artifact-path '{artifact_path}' does not exist in {root}")
    changed = None if is_no_base(base_revision) else changed_files(root, str(base_revision), git_revision)
    items: list[EvalItem] = []
    for path in discover(target):
        art = load_artifact(path, root)
        if art.artifact_type is artifact_type:
            items += _items(art, root, changed)
    return items
