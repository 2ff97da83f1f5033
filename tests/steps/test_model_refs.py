"""model: config:<id> — resolution, and the cache inputs that make a config change invalidate its dependents."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.artifacts import PromptArtifact
from steps.artifact_files import load_artifact
from steps.contracts import EvalItem
from steps.eval_spec import spec_for as _spec
from steps.model_refs import RefError, dependents, resolve_model, split_dataset


def _key_inputs(repo: Path, path: str, dataset: str) -> dict:
    af = load_artifact(repo / path, repo)
    item = EvalItem(artifact_id=af.artifact_id, artifact_type=af.artifact_type.value, path=path, dataset=dataset,
                    content_hash=af.content_hash)
    return _spec(item, af, "recorded", repo, repo / "work").key_inputs


def test_config_parameters_win_and_the_prompt_fills_the_rest(repo: Path):
    mc = repo / "model-configs" / "support-default.yaml"
    mc.write_text(mc.read_text() + "parameters:\n  max_tokens: 5\n")
    prompt = load_artifact(repo / "prompts" / "support-reply.yaml", repo).artifact
    assert isinstance(prompt, PromptArtifact)
    resolved = resolve_model(prompt, repo)
    assert resolved.model == "gpt-4o-mini"
    assert (resolved.parameters.max_tokens, resolved.parameters.temperature) == (5, 0.3)
    assert resolved.fallbacks == ["claude-haiku-4-5", "llama-3.1-8b-instruct"]
    assert [p.artifact_id for p in dependents(repo, "support-default")] == ["support-reply", "ticket-classifier"]


def test_cache_inputs_hold_the_resolved_config_and_the_prompt(repo: Path):
    before = _key_inputs(repo, "prompts/support-reply.yaml", "golden")
    via_config = _key_inputs(repo, "model-configs/support-default.yaml", "support-reply/golden")
    assert before["model_config"] == via_config["model_config"] is not None
    assert _key_inputs(repo, "prompts/sql-generator.yaml", "golden")["model_config"] is None  # a direct model id

    mc = repo / "model-configs" / "support-default.yaml"
    mc.write_text(mc.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    assert _key_inputs(repo, "prompts/support-reply.yaml", "golden")["model_config"] != before["model_config"]
    unrelated = _key_inputs(repo, "prompts/sql-generator.yaml", "golden")
    assert unrelated["model_config"] is None

    p = repo / "prompts" / "support-reply.yaml"
    p.write_text(p.read_text().replace("version: ", "# edited\nversion: ", 1))
    assert _key_inputs(repo, "model-configs/support-default.yaml", "support-reply/golden")["prompt"] \
        != via_config["prompt"]


def test_bad_references_are_one_line_errors(repo: Path):
    prompt = load_artifact(repo / "prompts" / "support-reply.yaml", repo).artifact
    assert isinstance(prompt, PromptArtifact)
    with pytest.raises(RefError, match="names no model-config: model-configs/nope.yaml does not exist"):
        resolve_model(prompt.model_copy(update={"model": "config:nope"}), repo)
    with pytest.raises(RefError, match="'<prompt-id>/<dataset>'"):
        split_dataset("golden")
