"""What an eval branch runs for a guardrail policy or a RAG config: promptfoo tests, provider, cache inputs.

Both run through promptfoo like prompts (same results.json, reports, cache and
gates). The provider is a Python custom provider: the guardrail engine itself
(``steps.providers.guardrail_provider``) or the retriever the rag-config
describes (``steps.providers.rag_provider``). Each golden case becomes one
promptfoo test whose first assertion decides pass/fail and whose other
assertions report named scores: ``recall``/``specificity`` (overall and
``.<category>``) for guardrails, ``hit_at_k``, ``recall_at_k``, ``mrr`` and
``ndcg_at_k`` for RAG (see ``steps.gates``).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from config.artifacts import GuardrailPolicyArtifact, RagConfigArtifact
from config.catalog import load_catalog
from config.yamlio import LoadError
from steps import promptfoo
from steps.artifact_files import ArtifactFile
from steps.datasets import read_guardrail_cases, read_rag_dataset
from steps.gates import HIT_AT_K, MRR, NDCG_AT_K, RECALL, RECALL_AT_K, SPECIFICITY
from steps.providers.recordings import JS_PROVIDER, recordings_digest, recordings_dir
from steps.rag.embeddings import EmbeddingError, EmbeddingProvider

T = TypeVar("T")
CODE_ROOT = Path(__file__).resolve().parents[1]
GUARDRAIL_PROVIDER = CODE_ROOT / "steps" / "providers" / "guardrail_provider.py"
RAG_PROVIDER = CODE_ROOT / "steps" / "providers" / "rag_provider.py"


class SpecError(Exception):
    """The branch cannot be set up (bad dataset, unknown model, missing recording...)."""


@dataclass
class Spec:
    """Everything the common promptfoo run needs for one branch."""

    prepared: list[promptfoo.PreparedTest]
    target: dict[str, Any]
    grader: dict[str, Any]
    model: str
    key_inputs: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    setup: Callable[[], None] | None = None  # work done only on a cache miss (it may call providers)
    record: Callable[[Path], None] | None = None  # record mode: write recordings from results.json
    judged_against: str | None = None  # the baseline key a model-config branch is judged against
    mode: str | None = None  # this branch's provider mode when not the run's (PROMPTCI_PROVIDER=local)


def code_digest(*paths: Path) -> str:
    """Return a hash of the source files that define an evaluator's semantics (part of the cache key)."""
    h = hashlib.sha256()
    for p in sorted(f for path in paths for f in ([path] if path.is_file() else sorted(path.rglob("*.py")))):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _golden(af: ArtifactFile, dataset: str, read: Callable[[Path, str], T]) -> tuple[Path, T]:
    """Return the dataset file and what ``read`` makes of it; any problem is a SpecError."""
    path = af.dataset_path(dataset)
    if path is None:
        raise SpecError(f"{af.rel_path}: no dataset named '{dataset}' (the artifact has: "
                        f"{', '.join(af.datasets) or 'none'})")
    try:
        return path, read(path, str(path.relative_to(af.root)) if path.is_relative_to(af.root) else str(path))
    except LoadError as exc:
        raise SpecError("; ".join(p.format() for p in exc.problems)) from exc


def _python_provider(script: Path, label: str, config: dict[str, Any]) -> dict[str, Any]:
    # One persistent worker: the engine/index loads once, and the machine has 2 cores.
    return {"id": f"file://{script}", "label": label,
            "config": {**config, "pythonExecutable": sys.executable, "workers": 1}}


def _no_grader(artifact_id: str) -> dict[str, Any]:
    """Return a grader that errors if asked: these datasets use deterministic assertions only."""
    return {"id": f"file://{JS_PROVIDER}", "label": "no-grader",
            "config": {"role": "grader", "artifact_id": artifact_id}}


def _js(body: str) -> str:
    """Return a multi-line promptfoo javascript assertion (a function body of ``output``)."""
    return "const o = JSON.parse(output);\n" + body


def _score(metric: str, expr: str) -> dict[str, Any]:
    """Return an assertion that always passes and reports ``expr`` (0..1) as named score ``metric``."""
    return {"type": "javascript", "metric": metric,
            "value": _js(f"const s = {expr};\nreturn {{pass: true, score: s, reason: '{metric} ' + s}};")}


def _live_openai_only(mode: str, provider: str, what: str) -> None:
    """Refuse a live classifier/embedding call the Python clients cannot make (they speak OpenAI's API)."""
    if mode != "recorded" and provider != "openai":
        raise SpecError(f"{what} is served by '{provider}'; live guardrail classifiers and embeddings "
                        "support OpenAI models only (recorded mode works for any)")


def guardrail_spec(af: ArtifactFile, dataset: str, mode: str, repo_root: Path) -> Spec:
    """Return the promptfoo run of a guardrail policy's golden cases through the policy engine."""
    policy = af.artifact
    assert isinstance(policy, GuardrailPolicyArtifact)
    path, cases = _golden(af, dataset, read_guardrail_cases)
    classifier_model = ""
    if policy.classifier is not None:
        resolved = load_catalog().resolve(policy.classifier.model)
        if resolved is None:
            raise SpecError(f"{af.rel_path}: classifier model '{policy.classifier.model}' is not in the catalog")
        classifier_model = resolved[0]
        _live_openai_only(mode, resolved[1].provider, f"{af.rel_path}: classifier model '{classifier_model}'")
    prepared = []
    for i, c in enumerate(cases):
        expected = promptfoo.escaped_json({"action": c.expected, "redacted": c.redacted})
        correct = (f"const e = {expected};\n"
                   "const ok = o.action === e.action && (e.redacted === null || o.redacted === e.redacted);\n")
        asserts: list[dict[str, Any]] = [{"type": "javascript", "value": _js(
            correct + "return {pass: ok, score: ok ? 1 : 0, reason: ok ? 'as expected' : "
                      "'expected ' + e.action + (e.redacted === null ? '' : ' to ' + JSON.stringify(e.redacted)) + "
                      "', got ' + o.action + (o.redacted === null ? '' : ' to ' + JSON.stringify(o.redacted)) + "
                      "' (rules: ' + o.rules.join(', ') + ')'};")}]
        base = RECALL if c.expected != "allow" else SPECIFICITY
        for metric in (base, f"{base}.{c.category}"):
            asserts.append({"type": "javascript", "metric": metric, "value": _js(
                correct + f"return {{pass: true, score: ok ? 1 : 0, reason: '{metric}'}};")})
        payload = {"input": c.input, "output": c.output}
        prepared.append(promptfoo.PreparedTest(i, c.description, {"category": c.category, "expected": c.expected},
                                               [{"role": "user", "content": json.dumps(payload)}], asserts))
    rdir = recordings_dir(repo_root)
    target = _python_provider(GUARDRAIL_PROVIDER, f"guardrail-engine:{policy.id}", {
        "policy_path": str(af.path), "repo_root": str(af.root), "mode": mode, "artifact_id": policy.id,
        "classifier_model": classifier_model, "recordings_dir": str(rdir)})
    return Spec(prepared, target, _no_grader(policy.id), "guardrail-engine", {
        "dataset": hashlib.sha256(path.read_bytes()).hexdigest(),
        "engine": code_digest(CODE_ROOT / "steps" / "guardrails", GUARDRAIL_PROVIDER),
        "classifier": classifier_model,
        "recordings": recordings_digest(rdir, policy.id) if classifier_model and mode == "recorded" else None,
    }, env={"PYTHONPATH": str(CODE_ROOT)})


def rag_spec(af: ArtifactFile, dataset: str, mode: str, repo_root: Path, work_dir: Path) -> Spec:
    """Return the promptfoo run of a rag-config's golden queries against the retriever it describes.

    ``setup`` builds the retriever (asking the embedding provider for the chunks)
    once, on a cache miss, and pickles it into ``work_dir`` for the provider.
    """
    rag = af.artifact
    assert isinstance(rag, RagConfigArtifact)
    path, data = _golden(af, dataset, read_rag_dataset)
    resolved = load_catalog().resolve(rag.embedding_model)
    if resolved is None:
        raise SpecError(f"{af.rel_path}: embedding_model '{rag.embedding_model}' is not in the model catalog")
    model, entry = resolved
    rdir = recordings_dir(repo_root)
    embed = None
    if rag.index.type == "vector":
        _live_openai_only(mode, entry.provider, f"{af.rel_path}: embedding_model '{model}'")
        embed = EmbeddingProvider(mode, entry.provider_model or model, rdir, rag.id)
    index_path = work_dir / "retriever.pickle"

    def build() -> None:
        from steps.rag.retriever import Retriever  # numpy: imported only by a rag-config's eval, not by plan

        try:
            retriever = Retriever(rag, data.documents, entry.encoding, embed)
        except EmbeddingError as exc:
            raise SpecError(str(exc)) from exc
        work_dir.mkdir(parents=True, exist_ok=True)
        with open(index_path, "wb") as f:
            pickle.dump(retriever, f)
    prepared = []
    for i, q in enumerate(data.queries):
        desc = q.description or f"query {i + 1}: {q.query[:60]}"
        asserts: list[dict[str, Any]] = [{"type": "javascript", "value": _js(
            "const ok = o.metrics.hit_at_k === 1;\n"
            f"return {{pass: ok, score: ok ? 1 : 0, reason: ok ? 'a relevant document is in the top {rag.top_k}' "
            f": 'no relevant document in the top {rag.top_k}; retrieved: ' + o.retrieved.join(', ')}};")}]
        asserts += [_score(m, f"o.metrics.{m}") for m in (HIT_AT_K, RECALL_AT_K, MRR, NDCG_AT_K)]
        payload = {"query": q.query, "relevant": q.relevant}
        prepared.append(promptfoo.PreparedTest(i, desc, {"query": q.query, "relevant": q.relevant},
                                               [{"role": "user", "content": json.dumps(payload)}], asserts))
    target = _python_provider(RAG_PROVIDER, f"retriever:{rag.id}", {"index_path": str(index_path),
                                                                    "artifact_id": rag.id})
    return Spec(prepared, target, _no_grader(rag.id), f"{rag.index.type}:{model}", {
        "dataset": hashlib.sha256(path.read_bytes()).hexdigest(),
        "retriever": code_digest(CODE_ROOT / "steps" / "rag", RAG_PROVIDER),
        "embedding_model": model,
        "recordings": recordings_digest(rdir, rag.id) if embed is not None and mode == "recorded" else None,
    }, env={"PYTHONPATH": str(CODE_ROOT)}, setup=build)
