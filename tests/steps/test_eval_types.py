"""Every artifact type earns its promotion: guardrail, RAG and model-config samples pass; their variants are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.artifacts import ArtifactType
from config.pipeline import load_pipeline_config
from steps.contracts import EvalItem
from steps.eval import run_branch
from steps.eval_results import load_result
from steps.plan import plan
from steps.records import EvalRecord, put_signed
from steps.reports import summary_markdown
from steps.signing import KEY_ENV, signing_key
from steps.stores.store import LocalStore

REPO = Path(__file__).resolve().parents[2]


def _items(path: str, atype: ArtifactType) -> list[EvalItem]:
    return plan(path, atype, repo_root=REPO, git_revision=None, base_revision=None)


def _run(items: list[EvalItem], tmp: Path, store: LocalStore, run_id: str, no_cache: bool = True):
    return [run_branch(i, repo_root=REPO, run_id=run_id, target_env="dev", config=load_pipeline_config(),
                       store=store, work_dir=tmp / "work" / run_id / i.artifact_id / i.dataset.replace("/", "_"),
                       no_cache=no_cache) for i in items]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PROMPTCI_CALL_LOG", str(tmp_path / "calls.log"))
    return tmp_path / "calls.log"


def _calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("sample, variant, atype, expected_reason", [
    ("guardrails/pii-and-injection.yaml", "examples/failing/pii-and-injection.yaml", ArtifactType.GUARDRAIL_POLICY,
     "recall 0.647 (category 'pii') is below min_recall 0.95"),
    ("rag-configs/kb-search.yaml", "examples/failing/kb-search.yaml", ArtifactType.RAG_CONFIG,
     "recall_at_k 0.818 is below min_recall_at_k 0.9"),
    ("model-configs/support-default.yaml", "examples/failing/support-default.yaml", ArtifactType.MODEL_CONFIG,
     "pass rate 0.0% is below the minimum 80.0%"),
])
def test_sample_passes_variant_is_refused_and_an_unchanged_rerun_makes_no_call(
        sample, variant, atype, expected_reason, tmp_path, clean_env):
    store = LocalStore(tmp_path / "store")
    items = _items(sample, atype)
    good = _run(items, tmp_path, store, "good")
    assert [r.status for r in good] == ["passed"] * len(items), [r.reasons for r in good]
    assert all(r.tests_total >= 3 for r in good)
    assert _calls(clean_env) > 0

    before = _calls(clean_env)
    again = _run(items, tmp_path, store, "again", no_cache=False)
    assert all(r.cached and r.status == "passed" for r in again)
    assert _calls(clean_env) == before  # an unchanged re-run makes 0 provider calls

    bad = _run(_items(variant, atype), tmp_path, store, "bad")
    assert any(r.status == "failed" for r in bad)
    reasons = [reason for r in bad for reason in r.reasons]
    assert any(expected_reason in reason for reason in reasons), reasons
    summary = summary_markdown(good + bad)
    assert "recall" in summary or "pass rate" in summary


@pytest.mark.slow
def test_model_config_branch_records_the_prompt_baseline_it_was_judged_against(tmp_path, clean_env, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k" * 32)  # sign with an explicit key, not a key file in the repo
    store = LocalStore(tmp_path / "store")
    prompt_items = _items("prompts/ticket-classifier.yaml", ArtifactType.PROMPT)
    [prompt_result] = _run(prompt_items, tmp_path, store, "p")
    key = "baselines/dev/ticket-classifier/golden.json"
    measured = load_result(store.get_bytes("runs/p/ticket-classifier/golden/result.json") or b"", "result")
    put_signed(store, key, EvalRecord(run_id="p", branch=prompt_result, result=measured), signing_key(REPO))
    items = [i for i in _items("model-configs/support-default.yaml", ArtifactType.MODEL_CONFIG)
             if i.dataset == "ticket-classifier/golden"]
    [r] = _run(items, tmp_path, store, "mc")
    assert r.status == "passed" and r.baseline_pass_rate == prompt_result.pass_rate == 1.0, r.reasons
    result = json.loads(store.get_bytes("runs/mc/support-default/ticket-classifier/golden/result.json") or b"")
    assert result["judged_against"] == {"baseline": key, "content_hash": prompt_items[0].content_hash}
