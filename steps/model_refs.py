"""Prompts that use a model-config: ``model: config:<id>`` resolved, and the reverse (a config's dependents).

A prompt may name a model directly (``gpt-4o-mini``) or a model-config by id
(``config:support-default``). The config supplies the model, its parameters and
fallbacks; the config's parameters win, and the prompt's own ``parameters`` fill in
what the config leaves unset (so a config change reaches every dependent).
The config is looked up by id in the model-config directory of the repo
(``model-configs/<id>.yaml|yml|json``), or given explicitly: a changed
model-config is evaluated through its dependents with the *candidate* file.

Eval items of a model-config carry the dependent prompt in the dataset name:
``<prompt-id>/<dataset>`` (ids and dataset names never contain ``/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from config.artifacts import ArtifactType, ModelConfigArtifact, ModelParameters, PromptArtifact, model_config_ref
from config.yamlio import LoadError
from steps.artifact_files import ARTIFACT_SUFFIXES, ArtifactFile, discover, load_artifact
from steps.branch_gates import RefError, gated_by, split_dataset  # noqa: F401 - re-exported


@dataclass
class ResolvedModel:
    """The model a prompt runs on, and the model-config it came from (None for a direct model id)."""

    model: str
    parameters: ModelParameters
    fallbacks: list[str] = field(default_factory=list)
    config: ArtifactFile | None = None

    @property
    def config_hash(self) -> str | None:
        """Return the content hash of the model-config (part of the prompt's eval cache key)."""
        return self.config.content_hash if self.config else None


def find_model_config(root: Path, config_id: str) -> ArtifactFile:
    """Return the model-config ``config_id`` of the repo at ``root``; raise RefError when there is none."""
    base = root / ArtifactType.MODEL_CONFIG.default_dir
    for suffix in ARTIFACT_SUFFIXES:
        path = base / f"{config_id}{suffix}"
        if path.is_file():
            try:
                af = load_artifact(path, root)
            except LoadError as exc:
                raise RefError("; ".join(p.format() for p in exc.problems)) from exc
            if not isinstance(af.artifact, ModelConfigArtifact):
                raise RefError(f"{af.rel_path} is a {af.artifact_type.value}, not a model-config")
            return af
    raise RefError(f"model 'config:{config_id}' names no model-config: "
                   f"{base.relative_to(root) if base.is_relative_to(root) else base}/{config_id}.yaml does not exist")


def resolve_model(prompt: PromptArtifact, root: Path, config: ArtifactFile | None = None) -> ResolvedModel:
    """Return the model, parameters and fallbacks ``prompt`` runs with.

    ``config`` replaces the repo's model-config of that id (the candidate of a
    model-config branch). Raises RefError for a reference that cannot be resolved.
    """
    ref = model_config_ref(prompt.model)
    if ref is None:
        return ResolvedModel(prompt.model, prompt.parameters)
    af = config if config is not None and config.artifact_id == ref else find_model_config(root, ref)
    mc = af.artifact
    assert isinstance(mc, ModelConfigArtifact)
    params = ModelParameters.model_validate({**prompt.parameters.model_dump(exclude_none=True),
                                             **mc.parameters.model_dump(exclude_none=True)})
    return ResolvedModel(mc.model, params, list(mc.fallbacks), af)


def dependents(root: Path, config_id: str) -> list[ArtifactFile]:
    """Return the prompts of the repo's prompt directory that say ``model: config:<config_id>``, by path."""
    base = root / ArtifactType.PROMPT.default_dir
    if not base.is_dir():
        return []
    out = []
    for path in discover(base):
        try:
            af = load_artifact(path, root)
        except LoadError:
            continue  # lint reports it; an unreadable prompt cannot depend on anything
        if isinstance(af.artifact, PromptArtifact) and model_config_ref(af.artifact.model) == config_id:
            out.append(af)
    return out
