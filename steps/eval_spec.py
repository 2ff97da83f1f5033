"""What one eval branch runs: its tests rendered for promptfoo, its providers and its cache-key inputs.

``spec_for`` turns an (artifact, dataset) into a ``Spec`` by artifact type
(prompts here; guardrail policies and RAG configs in ``steps.eval_types``).
Anything that makes the branch impossible to set up (no such dataset, zero
tests, a variable without a value, a model not in the catalog...) raises
``BranchError``: the branch is then an error, never a pass.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.artifacts import GuardrailPolicyArtifact, PromptArtifact, RagConfigArtifact, TestCase
from config.catalog import load_catalog
from config.pipeline import EvalThresholds, PromptPipelineConfig
from config.settings import get_settings
from config.yamlio import LoadError
from steps import eval_cache, promptfoo
from steps.artifact_files import ArtifactFile, load_artifact
from steps.contracts import EvalItem
from steps.datasets import load_dataset
from steps.eval_types import Spec, SpecError, guardrail_spec, rag_spec
from steps.model_refs import RefError, ResolvedModel, dependents, gated_by, resolve_model, split_dataset
from steps.providers import Mode, ProviderConfigError, effective_mode, local_model, provider_mode
from steps.providers.live import live_provider, provider_hosts
from steps.providers.recordings import (
    JS_PROVIDER,
    params_key,
    recordings_digest,
    recordings_dir,
    write_recording,
)
from steps.render import MissingVariable, RenderError, render_prompt, resolve_vars

INLINE = "inline"
MODEL_GRADED = frozenset({"llm-rubric", "model-graded-closedqa", "factuality", "answer-relevance",
                          "context-faithfulness", "context-recall", "context-relevance", "similar"})


class BranchError(Exception):
    """Something that makes the branch an error (fail closed); the message is the reason."""


class TransientBranchError(BranchError):
    """An error another attempt may clear (promptfoo hung past its timeout): retried, exit 75."""


def load_tests(af: ArtifactFile, dataset: str) -> tuple[list[TestCase], bytes]:
    """Return the dataset's tests and the bytes that identify them (for the cache key)."""
    art = af.artifact
    assert isinstance(art, PromptArtifact)
    if dataset == INLINE:
        return list(art.tests), json.dumps([t.model_dump(mode="json", by_alias=True) for t in art.tests],
                                           sort_keys=True).encode()
    path = af.dataset_path(dataset)
    if path is None:
        known = ", ".join(af.datasets) or "none"
        raise BranchError(f"{af.rel_path}: no dataset named '{dataset}' (the artifact has: {known})")
    try:
        return load_dataset(path, display=str(path.relative_to(af.root) if path.is_relative_to(af.root)
                                              else path)), path.read_bytes()
    except LoadError as exc:
        raise BranchError("; ".join(p.format() for p in exc.problems)) from exc


def prepare_tests(art: PromptArtifact, tests: list[TestCase], rel_path: str, dataset: str
             ) -> list[promptfoo.PreparedTest]:
    """Return the tests with rendered messages; a model-graded or unrenderable test is an error."""
    out = []
    for i, t in enumerate(tests):
        desc = t.description or f"{dataset} test {i + 1}"
        values = resolve_vars(t.vars, art.variables)
        try:
            messages = render_prompt(art, values)
        except MissingVariable as exc:
            raise BranchError(f"{rel_path}: test '{desc}' of dataset '{dataset}' gives no value for "
                              f"variable '{exc.args[0]}'") from exc
        except RenderError as exc:
            raise BranchError(f"{rel_path}: test '{desc}' of dataset '{dataset}': {exc}") from exc
        assertions = [a.model_dump(mode="json", exclude_none=True) for a in t.assert_]
        out.append(promptfoo.PreparedTest(i, desc, dict(t.vars), messages, assertions))
    return out


def _providers(art: PromptArtifact, model: ResolvedModel, mode: Mode, repo_root: Path
               ) -> tuple[str, dict[str, Any], dict[str, Any], list[str]]:
    """Return (canonical model, target provider, grader provider, hosts that bypass the dead proxy)."""
    resolved = load_catalog().resolve(model.model)
    if resolved is None:
        raise BranchError(f"model '{model.model}' is not in the model catalog (config/models.yaml)")
    canonical, entry = resolved
    pkey = params_key(model.parameters)
    if mode == "recorded":
        base = {"recordings_dir": str(recordings_dir(repo_root)), "artifact_id": art.id, "model": canonical,
                "params_key": pkey}
        target = {"id": f"file://{JS_PROVIDER}", "label": f"recorded:{canonical}",
                  "config": {**base, "role": "target"}}
        grader = {"id": f"file://{JS_PROVIDER}", "label": "recorded-grader",
                  "config": {**base, "role": "grader"}}
        return canonical, target, grader, []
    try:
        target = live_provider(canonical, entry, model.parameters)
        grader_model = load_catalog().resolve(_grader_model(canonical))
        if grader_model is None:
            raise BranchError(f"grader model '{_grader_model(canonical)}' is not in the model catalog")
        grader = live_provider(grader_model[0], grader_model[1], type(model.parameters)())
    except ProviderConfigError as exc:
        raise BranchError(str(exc)) from exc
    return canonical, target, grader, provider_hosts(entry) + provider_hosts(grader_model[1])


def _grader_model(canonical: str) -> str:
    """Return the grader model for live runs: ``$PROMPTCI_GRADER_MODEL`` or the prompt's own model."""
    return get_settings().grader_model or canonical


def _record(result_path: Path, prepared: list[promptfoo.PreparedTest], repo_root: Path, artifact_id: str,
            model: str, pkey: str, origin: dict[str, str], extra: dict[str, str]) -> int:
    """Write a recording per test from a live run's results.json; return how many were written.

    Each carries its ``origin`` (model, provider, when) and the token usage the provider reported.
    """
    doc = json.loads(result_path.read_text())
    rows = sorted(doc["results"]["results"], key=lambda r: r.get("testIdx", 0))
    by_test: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        idx = r["testCase"]["metadata"]["promptci_index"]
        resp = r.get("response") or {}
        by_test.setdefault(idx, []).append(
            {"error": resp["error"]} if resp.get("error") else
            {"output": resp.get("output", ""), "tokenUsage": _usage(resp.get("tokenUsage") or {}),
             "cost": r.get("cost", 0)})
    stamp = {**origin, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for t in prepared:
        write_recording(recordings_dir(repo_root), artifact_id, model=model, params=pkey,
                        prompt=promptfoo.messages_prompt(t.messages), messages=t.messages,
                        responses=by_test.get(t.index, []), test=t.description, origin=stamp, extra=extra)
    return len(prepared)


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    """Return promptfoo's token usage reduced to what a recording replays (prompt, completion, total)."""
    return {k: int(usage.get(k) or 0) for k in ("prompt", "completion", "total")}


def prompt_spec(af: ArtifactFile, art: PromptArtifact, dataset: str, mode: Mode, repo_root: Path,
                model_config: ArtifactFile | None = None) -> Spec:
    """Return the promptfoo run of a prompt's dataset, on the model its ``model:`` resolves to.

    ``model_config`` is the candidate model-config of a model-config branch; the
    resolved config's content hash is part of the cache key, so changing a
    config invalidates exactly the branches of the prompts that use it.
    """
    tests, dataset_bytes = load_tests(af, dataset)
    if not tests:
        raise BranchError(f"{af.rel_path}: dataset '{dataset}' has zero tests")
    prepared = prepare_tests(art, tests, af.rel_path, dataset)
    graded = sorted({a["type"].removeprefix("not-") for t in prepared for a in t.assertions} & MODEL_GRADED)
    try:
        model = resolve_model(art, repo_root, model_config)
    except RefError as exc:
        raise BranchError(f"{af.rel_path}: {exc}") from exc
    entry = load_catalog().resolve(model.model)
    mode = effective_mode(mode, entry[1].provider if entry else "")  # local: live only for the local model
    if graded and mode == "recorded":
        raise BranchError(f"{af.rel_path}: dataset '{dataset}' uses model-graded assertions "
                          f"({', '.join(graded)}); the recorded provider cannot serve grader calls, "
                          "so they would never be checked. Run with PROMPTCI_PROVIDER=live")
    canonical, target, grader, hosts = _providers(art, model, mode, repo_root)
    pkey = params_key(model.parameters)

    via = "local/" if local_model.is_local(target) else ""

    def record(results_path: Path) -> None:
        _record(results_path, prepared, repo_root, art.id, canonical, pkey,
                origin={"model": canonical, "provider": f"{via}{target['id']}"},
                extra={"source": af.rel_path, "dataset": dataset})

    return Spec(prepared, target, grader, canonical, {
        "prompt": af.content_hash,  # a model-config branch's item hash is the config's, not the prompt's
        "dataset": eval_cache.cache_key({"b": dataset_bytes.hex()}), "model": canonical,
        # the local server's port changes every run: the key names its model file instead
        "target": local_model.cache_view(target), "grader": local_model.cache_view(grader),
        "model_config": model.config_hash, "fallbacks": model.fallbacks,
        "recordings": recordings_digest(recordings_dir(repo_root), art.id) if mode == "recorded" else None,
    }, hosts=hosts, record=record, mode=mode)


def spec_for(item: EvalItem, af: ArtifactFile, mode: Mode, repo_root: Path, work_dir: Path) -> Spec:
    """Return what this branch runs, by artifact type (every type has golden data: zero tests is an error)."""
    art = af.artifact
    try:
        if isinstance(art, PromptArtifact):
            return prompt_spec(af, art, item.dataset, mode, repo_root)
        if isinstance(art, GuardrailPolicyArtifact):  # no local models there: local mode replays them
            return guardrail_spec(af, item.dataset, effective_mode(mode, ""), repo_root)
        if isinstance(art, RagConfigArtifact):
            return rag_spec(af, item.dataset, effective_mode(mode, ""), repo_root, work_dir)
        prompt_id, dataset = split_dataset(item.dataset)
        users = [p for p in dependents(repo_root, art.id) if p.artifact_id == prompt_id]
        if not users:
            raise BranchError(f"{af.rel_path}: no prompt '{prompt_id}' uses model 'config:{art.id}'")
        prompt = users[0].artifact
        assert isinstance(prompt, PromptArtifact)
        spec = prompt_spec(users[0], prompt, dataset, mode, repo_root, model_config=af)
        spec.judged_against = prompt_id
        return spec
    except (SpecError, RefError) as exc:
        raise BranchError(str(exc)) from exc


@dataclass
class Prepared:
    """One item ready to measure: what it runs, the thresholds it is judged by, and its cache key."""

    item: EvalItem
    spec: Spec
    thresholds: EvalThresholds
    mode: Mode  # this item's provider mode (with PROMPTCI_PROVIDER=local it differs per model)
    version: str  # promptfoo's
    cache_key: str
    baseline_id: str  # whose baseline it is judged against (a model-config: the prompt that uses it)
    baseline_dataset: str

    @property
    def runs(self) -> int:
        """Return the test runs this item costs (tests × repeats): its weight when packing shards."""
        return len(self.spec.prepared) * self.thresholds.repeats


def prepare(item: EvalItem, *, repo_root: Path, config: PromptPipelineConfig, target_env: str | None,
            work_dir: Path) -> Prepared:
    """Return ``item`` ready to measure; raise BranchError when it cannot even be set up.

    The artifact must still have the content plan saw (``item.content_hash``).
    Nothing here calls a provider or starts promptfoo, so plan can prepare every
    changed item to check the cache and weigh the rest.
    """
    try:
        af = load_artifact(repo_root / item.path, repo_root)
    except LoadError as exc:
        raise BranchError("; ".join(p.format() for p in exc.problems)) from exc
    except OSError as exc:
        raise BranchError(f"{item.path}: cannot read the artifact: {exc}") from exc
    if af.content_hash != item.content_hash:
        raise BranchError(f"{item.path} changed since plan "
                          f"({item.content_hash[:19]} → {af.content_hash[:19]})")
    try:
        run_mode = provider_mode()
        version = promptfoo.installed_version()
    except ProviderConfigError as exc:
        raise BranchError(str(exc)) from exc
    except promptfoo.PromptfooMissing as exc:
        raise BranchError(str(exc)) from exc
    spec = spec_for(item, af, run_mode, repo_root, work_dir)
    mode: Mode = spec.mode or run_mode  # type: ignore[assignment]
    # A model-config is judged by the gates of each prompt that uses it, against that prompt's baseline
    # (the prompt as promoted, under the currently promoted config).
    base_id, base_ds = item.artifact_id, item.dataset
    if spec.judged_against is not None:
        base_id, base_ds = split_dataset(item.dataset)
    th = config.for_artifact(gated_by(item.artifact_type, item.artifact_id, item.dataset)).thresholds_for(target_env)
    key = eval_cache.cache_key({"content": item.content_hash, "type": item.artifact_type,
                                "mode": "live" if mode == "record" else mode, "promptfoo": version,
                                "repeats": th.repeats, **spec.key_inputs})
    return Prepared(item, spec, th, mode, version, key, base_id, base_ds)
