"""One promptfoo process per shard (steps/eval_batch.py), with REAL promptfoo and the recorded provider.

How promptfoo makes one process equal to N separate ones (read in promptfoo's source, github
promptfoo/promptfoo, and in the pinned install's dist):

* src/evaluator.ts ``appendRunEvalOptionsForVars`` skips every provider for which
  ``isProviderAllowed(provider, testCase.providers)`` is false, and src/util/provider.ts
  ``isProviderAllowed``/``doesProviderRefMatch`` match a reference against a provider's label exactly, as a
  ``ref:`` prefix or as a ``ref*`` wildcard (``steps.eval_batch.shard_label`` keeps labels clear of all three);
* ``appendRunEvalOptionsForTestCase`` loops ``repeatIndex`` from 0 to
  ``normalizeRepeatCount(testCase.options?.repeat, globalRepeat)`` for each test (read in the pinned
  0.123.1's dist, node_modules/promptfoo/dist/src/evaluator-*.js, and in 0.121.20's; the github snapshot the
  search tools hold predates the per-test ``repeat`` and loops ``options.repeat``). Each row gets
  ``repeatIndex`` counted per test, which ``recorded.js`` uses to pick the response of that repeat
  (``responses[repeat]``), so a shard replays exactly what the item alone replays.

If a promptfoo upgrade dropped either, these tests fail: rows would cross items (wrong run counts, an
error per item) or repeats would collapse (``check_runs`` makes that an error).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import stat
from pathlib import Path
from typing import Any

import pytest

from config.artifacts import ArtifactType
from config.pipeline import PromptPipelineConfig, load_pipeline_config
from steps import promptfoo
from steps.contracts import BranchResult, EvalItem, Shard
from steps.eval import run_branch, run_shard
from steps.plan import plan
from steps.stores.store import LocalStore, run_key
from tests.steps.evalkit import NAMES, config, make_repo, read_json, record

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
# Every artifact type with the folder its samples live in: the identity tests run each one as a shard.
SAMPLE_TYPES = ((ArtifactType.PROMPT, "prompts"), (ArtifactType.GUARDRAIL_POLICY, "guardrails"),
                (ArtifactType.RAG_CONFIG, "rag-configs"), (ArtifactType.MODEL_CONFIG, "model-configs"))
GOOD = "Hello {name}, nice to meet you!"
# Fields that cannot be equal between two evaluations, whoever runs them: fresh ids, clocks, timings,
# and the paths promptfoo echoes that lie in each run's own work dir (its outputs, a RAG item's index).
VOLATILE = {"id", "evalId", "timestamp", "exportedAt", "evaluationCreatedAt", "latencyMs", "totalLatencyMs",
            "durationMs", "evaluationDurationMs", "outputPath", "index_path",
            # EvalResult: per-call latency, and the wall time of the promptfoo process that measured the item
            "latency_ms", "latency_ms_avg", "duration_s"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD",
                "PROMPTCI_RECORDED_DELAY_MS"):
        monkeypatch.delenv(var, raising=False)
    real = shlex.join(promptfoo.command())
    wrapper = tmp_path / "promptfoo-counting"  # the real promptfoo, with each start counted
    wrapper.write_text(f'#!/bin/sh\necho start >> {tmp_path / "starts.log"}\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PROMPTCI_PROMPTFOO_CMD", str(wrapper))
    monkeypatch.setenv("PROMPTCI_CALL_LOG", str(tmp_path / "calls.log"))
    return {"repo": tmp_path / "repo", "store": tmp_path / "store", "work": tmp_path / "work",
            "calls": tmp_path / "calls.log", "starts": tmp_path / "starts.log"}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _calls(env: dict[str, Path]) -> list[tuple[str, str, int]]:
    """Return the provider calls so far: (artifact, test, repeat)."""
    return [(c["artifact"], c["test"], c["repeat"]) for c in map(json.loads, _lines(env["calls"]))]


def _shard(env: dict[str, Path], items: list[EvalItem], cfg: PromptPipelineConfig, run_id: str = "r1",
           ) -> list[BranchResult]:
    return run_shard(Shard(index=0, items=items, tests=0), repo_root=env["repo"], run_id=run_id,
                     target_env=None, config=cfg, store=LocalStore(env["store"]), work_dir=env["work"] / run_id)


def _linked_report(store: LocalStore, run_id: str, r: BranchResult) -> str:
    """Return the store key the item's report.html page links to (resolved from the page's own key)."""
    key = run_key(run_id, r.artifact_id, r.dataset, "report.html")
    page = (store.get_bytes(key) or b"").decode()
    href = re.search(r"<a href='([^']+)'>", page)
    assert href, page
    return posixpath.normpath(posixpath.join(posixpath.dirname(key), href.group(1)))


def _stable(doc: Any) -> Any:
    """Return ``doc`` without the VOLATILE fields, at any depth."""
    if isinstance(doc, dict):
        return {k: _stable(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def _three_prompts(env: dict[str, Path]) -> tuple[list[EvalItem], PromptPipelineConfig]:
    """Return three items of three prompts: greeter passes, welcomer passes 2 of 3 repeats, hailer fails."""
    greeter = make_repo(env["repo"])
    welcomer = make_repo(env["repo"], prompt_id="welcomer")
    hailer = make_repo(env["repo"], prompt_id="hailer", datasets={"smoke": ["Ada", "Grace"]})
    for n in NAMES:
        record(env["repo"], n, GOOD.format(name=n))
        # each repeat its own answer; the second misses the name: still 2 of 3
        record(env["repo"], n, GOOD.format(name=n), "Hello!", f"Hi {n}.", prompt_id="welcomer")
    record(env["repo"], "Ada", GOOD.format(name="Ada"), prompt_id="hailer")
    record(env["repo"], "Grace", "Hello stranger.", prompt_id="hailer")
    return [greeter, welcomer, hailer], config({"welcomer": {"repeats": 3, "k_of_n": 2}})


def test_one_process_per_shard_and_one_failing_item_fails_only_its_own_gate(env):
    items, cfg = _three_prompts(env)
    results = _shard(env, items, cfg)
    assert len(_lines(env["starts"])) == 1  # ONE promptfoo for the three items
    assert [(r.artifact_id, r.status) for r in results] == [("greeter", "passed"), ("welcomer", "passed"),
                                                           ("hailer", "failed")]
    assert [r.status for r in results].count("failed") == 1
    assert "(1/2 tests passed" in results[2].reasons[0]
    assert [(r.tests_total, r.runs_total) for r in results] == [(3, 3), (3, 9), (2, 2)]
    calls = _calls(env)
    assert sorted(c for c in calls if c[0] == "welcomer") == [("welcomer", f"greets {n}", r)
                                                              for n in sorted(NAMES) for r in range(3)]
    store = LocalStore(env["store"])
    for r in results:
        assert BranchResult.model_validate(read_json(store.get_bytes(run_key("r1", r.artifact_id, r.dataset,
                                                                             "branch.json")))) == r
        junit = store.get_bytes(run_key("r1", r.artifact_id, r.dataset, "junit.xml")) or b""
        assert junit.count(b"<testcase ") == r.runs_total  # its own suite only
    # promptfoo's report of the whole shard is stored once; each item's report.html leads to it
    (report,) = store.list_keys("runs/r1/shards/")
    assert b"<html" in (store.get_bytes(report) or b"")
    for k, r in enumerate(results):
        assert _linked_report(store, "r1", r) == report
        assert f"[#{k} {r.artifact_id}/{r.dataset}]".encode() in (store.get_bytes(report) or b"")  # its column

    # The same items one promptfoo each (today's path): the same verdicts and the same measurements.
    alone = [run_branch(i, repo_root=env["repo"], run_id="r2", target_env=None, config=cfg,
                        store=LocalStore(env["store"]), work_dir=env["work"] / "r2" / i.artifact_id, no_cache=True)
             for i in items]
    assert len(_lines(env["starts"])) == 4
    for a, s in zip(alone, results, strict=True):
        assert a.model_dump(exclude={"report_keys"}) == s.model_dump(exclude={"report_keys"})
        a_doc, s_doc = (read_json(store.get_bytes(run_key(run, a.artifact_id, a.dataset, "result.json")))
                        for run in ("r2", "r1"))
        assert _stable(a_doc) == _stable(s_doc)


def test_a_retried_shard_reruns_only_the_items_without_a_final_record(env):
    items, cfg = _three_prompts(env)
    items = items[:2]
    # welcomer's provider is unreachable for one test: a transient error of that item only
    record(env["repo"], "Grace", {"error": "request to https://api.openai.com failed: connect ECONNREFUSED"},
           prompt_id="welcomer")
    first = _shard(env, items, cfg)
    assert [(r.status, r.retryable) for r in first] == [("passed", False), ("error", True)]
    assert len(_lines(env["starts"])) == 1 and len(_calls(env)) == 3 + 9

    record(env["repo"], "Grace", GOOD.format(name="Grace"), "Hello!", "Hi Grace.", prompt_id="welcomer")  # back
    retried = _shard(env, items, cfg)
    assert retried[0] == first[0]  # returned as stored, not re-run
    assert retried[1].status == "passed"
    assert len(_lines(env["starts"])) == 2
    assert {c[0] for c in _calls(env)[12:]} == {"welcomer"} and len(_calls(env)) == 12 + 9

    # each attempt's report is kept: the item finished in the first one still leads to the report that measured it
    store = LocalStore(env["store"])
    assert len(store.list_keys("runs/r1/shards/")) == 2
    assert _linked_report(store, "r1", first[0]) != _linked_report(store, "r1", retried[1])
    assert b"[#0 greeter/" in (store.get_bytes(_linked_report(store, "r1", first[0])) or b"")

    again = _shard(env, items, cfg)  # both final now: nothing starts
    assert again == retried and len(_lines(env["starts"])) == 2 and len(_calls(env)) == 21


def test_a_timed_out_shard_leaves_its_unfinished_items_retryable(env, monkeypatch):
    items, cfg = _three_prompts(env)
    items = items[:2]
    monkeypatch.setenv("PROMPTCI_RECORDED_DELAY_MS", "20000")
    slow = config({"welcomer": {"repeats": 3, "k_of_n": 2}}, timeout_seconds=1)
    timed_out = _shard(env, items, slow)
    assert [(r.status, r.retryable) for r in timed_out] == [("error", True), ("error", True)]
    assert all("timed out after 2s" in r.reasons[0] for r in timed_out)  # 1 s per item, summed

    monkeypatch.delenv("PROMPTCI_RECORDED_DELAY_MS")
    retried = _shard(env, items, cfg)
    assert [r.status for r in retried] == ["passed", "passed"]


def _sample_items(artifact_type: ArtifactType, folder: str) -> list[EvalItem]:
    return plan(folder, artifact_type, repo_root=REPO, git_revision=None, base_revision=None)


def _norm_junit(data: bytes | None) -> str:
    assert data is not None
    return re.sub(r' (time|timestamp)="[^"]*"', "", data.decode())


def _norm_md(data: bytes | None) -> str:
    assert data is not None
    return re.sub(r"average latency \d+ ms", "average latency N ms", data.decode())


def test_per_item_results_of_a_shard_equal_an_unsharded_run_on_the_samples(tmp_path, monkeypatch):
    """Every sample type, one shard per type, against one run_branch per item: the same files, as JSON.

    Excluded (VOLATILE): ids, clocks, latencies and durations, and the output paths. ``report.html`` is not
    compared: per item it is the shard's promptfoo report (steps/eval_batch.py says why).
    """
    for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_pipeline_config()
    alone_store, shard_store = LocalStore(tmp_path / "alone"), LocalStore(tmp_path / "shard")
    checked = 0
    for artifact_type, folder in SAMPLE_TYPES:
        items = _sample_items(artifact_type, folder)
        assert items, folder
        alone = [run_branch(i, repo_root=REPO, run_id="r", target_env="dev", config=cfg, store=alone_store,
                            work_dir=tmp_path / "w1" / i.artifact_id / i.dataset, no_cache=True) for i in items]
        sharded = run_shard(Shard(index=0, items=items, tests=0), repo_root=REPO, run_id="r", target_env="dev",
                            config=cfg, store=shard_store, work_dir=tmp_path / "w2" / folder, no_cache=True)
        for a, s in zip(alone, sharded, strict=True):
            assert a.status == "passed", a.reasons
            assert a == s  # the verdict, the counts, the store keys written
            for name in ("result.json", "results.json"):
                a_doc, s_doc = (read_json(st.get_bytes(run_key("r", a.artifact_id, a.dataset, name)))
                                for st in (alone_store, shard_store))
                assert _stable(a_doc) == _stable(s_doc), (a.artifact_id, a.dataset, name)
            key = run_key("r", a.artifact_id, a.dataset, "junit.xml")
            assert _norm_junit(alone_store.get_bytes(key)) == _norm_junit(shard_store.get_bytes(key))
            key = run_key("r", a.artifact_id, a.dataset, "diff.md")
            assert _norm_md(alone_store.get_bytes(key)) == _norm_md(shard_store.get_bytes(key))
            checked += 1
    # The cache entries land under the same keys with the same files.
    cache = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone" / "cache").rglob("*")
                   if p.is_file())
    assert cache and cache == sorted(p.relative_to(tmp_path / "shard")
                                     for p in (tmp_path / "shard" / "cache").rglob("*") if p.is_file())
    assert checked >= 13
