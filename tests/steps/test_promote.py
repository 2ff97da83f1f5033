"""promote_run against real git: a bare remote in a temp dir and fresh clones."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path

import pytest
import yaml

from steps.gitops import gitops
from steps.promote import PromotionReport, promote_run
from steps.stores.store import baseline_key, put_json, run_key
from tests.steps.promote_helpers import (
    commit_count,
    git,
    live_content,
    make_config,
    remote_of,
    run_for,
    show,
    store_of,
    write_prompt,
)


def promote(tmp: Path, config, run, env: str, **kw) -> PromotionReport:  # type: ignore[no-untyped-def]
    kw.setdefault("run_id", "run-1")
    kw.setdefault("source_revision", "a" * 40)
    kw.setdefault("source_timestamp", 1_700_000_000)
    return promote_run(run.results, run.planned, env=env, repo_root=tmp / "src", config=config,
                       store=store_of(config), **kw)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return tmp_path


def test_first_promotion_creates_remote_and_commits_configmap(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "support-reply", "1.2.0")
    run = run_for(tmp / "src", "support-reply")

    report = promote(tmp, config, run, "dev", run_link="https://argo.example/runs/run-1")

    assert report.ok, report.render()
    assert [o.status for o in report.outcomes] == ["promoted"]
    assert commit_count(config) == 2  # the initial commit of the new bare repo, then ours
    # The ConfigMap holds the file exactly as committed in the source repo.
    source = (tmp / "src/prompts/support-reply.yaml").read_text()
    assert live_content(config, "dev", "support-reply") == source
    msg = git(remote_of(config), "log", "-1", "--format=%s%n%b%n%an <%ae>", "main")
    h = run.results[0].content_hash
    assert msg.startswith(f"promote(dev): support-reply 1.2.0 {h[:15]}")
    for trailer in ("Artifact: support-reply", "Version: 1.2.0", f"Content-Hash: {h}", "Environment: dev",
                    "Run-Id: run-1", "Run-Link: https://argo.example/runs/run-1",
                    f"Source-Revision: {'a' * 40}",
                    'Eval-Summary: {"datasets":{"golden":{"pass_rate":1.0,"passed":10,"total":10}},'
                    '"run":"run-1"}',
                    "Promo Bot <promo@example.test>"):
        assert trailer in msg
    assert report.outcomes[0].commit == git(remote_of(config), "rev-parse", "main").strip()
    assert "promoted" in report.render() and "support-reply" in report.render()


def test_idempotent_repromotion_makes_no_commit(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "support-reply")
    run = run_for(tmp / "src", "support-reply")
    assert promote(tmp, config, run, "dev").ok
    before = commit_count(config)

    again = promote(tmp, config, run, "dev", run_id="run-2", source_revision="b" * 40)

    assert again.ok, again.render()
    assert [o.status for o in again.outcomes] == ["unchanged"]
    assert again.outcomes[0].commit is None
    assert commit_count(config) == before


def test_failed_branch_blocks_every_artifact_and_commits_nothing(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "good")
    write_prompt(tmp / "src", "bad")
    good, bad = run_for(tmp / "src", "good"), run_for(tmp / "src", "bad", status="failed", pass_rate=0.7)

    report = promote_run(
        good.results + bad.results, good.planned + bad.planned, env="dev", repo_root=tmp / "src",
        run_id="r", config=config, store=store_of(config))

    assert not report.ok
    by_id = {o.artifact_id: o for o in report.outcomes}
    assert by_id["bad"].status == "refused"
    assert by_id["bad"].refusals[0].gate == "results"
    assert "bad/golden failed: 3 of 10 tests failed" in by_id["bad"].refusals[0].reason
    assert by_id["good"].status == "blocked"
    assert not remote_of(config).exists()  # nothing touched git at all


def test_missing_result_is_refused(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    run = run_for(tmp / "src", "a", datasets=("golden", "edge"))

    report = promote_run(run.results[:1], run.planned, env="dev", repo_root=tmp / "src", run_id="r",
                         config=config, store=store_of(config))

    assert not report.ok
    assert any("a/edge: no result" in r.reason for r in report.outcomes[0].refusals)


def test_threshold_gate_is_per_environment_and_commits_nothing(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    run = run_for(tmp / "src", "a", pass_rate=0.85)
    assert promote(tmp, config, run, "dev").ok  # dev: 0.8 is enough
    before = commit_count(config)

    report = promote(tmp, config, run, "staging")

    assert not report.ok
    [refusal] = report.outcomes[0].refusals
    assert refusal.gate == "thresholds"
    assert "pass rate 0.850 < 0.900 required for staging" in refusal.reason
    assert commit_count(config) == before
    assert "[thresholds]" in report.render()


def test_metric_and_regression_gates(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev"], environments={"dev": {"min_scores": {"tone": 0.7}}})
    write_prompt(tmp / "src", "a")
    run = run_for(tmp / "src", "a", scores={"tone": 0.6}, baseline=1.0, pass_rate=0.85)

    report = promote(tmp, config, run, "dev")

    reasons = " | ".join(r.reason for r in report.outcomes[0].refusals)
    assert "metric 'tone' 0.600 < 0.700" in reasons
    assert "regressed from baseline 1.000 by more than 0.100" in reasons
    assert commit_count(config) == 1  # only the initial commit of the new GitOps repo


def test_content_must_be_what_was_evaluated(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    run = run_for(tmp / "src", "a")
    write_prompt(tmp / "src", "a", note="edited after the eval")

    report = promote(tmp, config, run, "dev")

    assert not report.ok
    assert report.outcomes[0].refusals[0].gate == "content"
    assert "what is promoted must be what was evaluated" in report.outcomes[0].refusals[0].reason


def test_prod_without_same_hash_in_staging_is_refused(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev", "staging", "prod"])  # no approval needed here
    write_prompt(tmp / "src", "a", "1.0.0")
    v1 = run_for(tmp / "src", "a")
    assert promote(tmp, config, v1, "staging").ok is False  # not in dev yet
    assert promote(tmp, config, v1, "dev").ok
    assert promote(tmp, config, v1, "staging").ok
    write_prompt(tmp / "src", "a", "1.1.0")
    v2 = run_for(tmp / "src", "a")
    before = commit_count(config)

    report = promote(tmp, config, v2, "prod", source_timestamp=1_700_000_100)

    assert not report.ok
    [refusal] = report.outcomes[0].refusals
    assert refusal.gate == "order"
    held = v1.results[0].content_hash[:15]
    assert f"must be live in staging before prod, but it holds {held}" in refusal.reason
    assert commit_count(config) == before
    # And the staged version goes to prod fine.
    write_prompt(tmp / "src", "a", "1.0.0")
    assert promote(tmp, config, v1, "prod").ok


def test_manual_approval_required_where_configured(tmp: Path) -> None:
    config = make_config(tmp, chain=["prod"], environments={"prod": {"manual_approval": True}})
    write_prompt(tmp / "src", "a")
    run = run_for(tmp / "src", "a")

    refused = promote(tmp, config, run, "prod")
    assert not refused.ok
    assert refused.outcomes[0].refusals[0].gate == "approval"
    assert commit_count(config) == 1

    approved = promote(tmp, config, run, "prod", approved=True)
    assert approved.ok, approved.render()


def test_dry_run_prints_diff_and_commits_nothing(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a", "1.0.0")
    assert promote(tmp, config, run_for(tmp / "src", "a"), "dev").ok
    before = commit_count(config)
    baseline = store_of(config).get_bytes(baseline_key("dev", "a", "golden"))
    write_prompt(tmp / "src", "a", "1.1.0")

    report = promote(tmp, config, run_for(tmp / "src", "a"), "dev", dry_run=True,
                     source_timestamp=1_800_000_000)

    assert report.ok
    assert report.outcomes[0].status == "would-promote"
    assert "--- a/environments/dev/promptci-prompt-a.yaml" in report.diff
    assert "-  version: 1.0.0" in report.diff and "+  version: 1.1.0" in report.diff
    assert report.diff.rstrip("\n") in report.render()
    assert commit_count(config) == before
    assert store_of(config).get_bytes(baseline_key("dev", "a", "golden")) == baseline


def test_baseline_written_after_push_from_run_result(tmp: Path) -> None:
    config = make_config(tmp)
    store = store_of(config)
    write_prompt(tmp / "src", "a")
    run = run_for(tmp / "src", "a", datasets=("golden", "edge"))
    put_json(store, run_key("run-1", "a", "golden", "result.json"), {"from": "eval stage"})

    report = promote(tmp, config, run, "dev")

    assert report.ok
    assert json.loads(store.get_bytes(baseline_key("dev", "a", "golden")) or b"") == {"from": "eval stage"}
    # No stored result for 'edge': the BranchResult itself becomes the baseline.
    edge = json.loads(store.get_bytes(baseline_key("dev", "a", "edge")) or b"")
    assert edge["pass_rate"] == 1.0 and edge["dataset"] == "edge"


def test_failed_push_leaves_old_baseline(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp)
    store = store_of(config)
    put_json(store, baseline_key("dev", "a", "golden"), {"pass_rate": 0.9, "old": True})
    write_prompt(tmp / "src", "a")

    def broken_push(self: gitops.Clone) -> None:
        raise gitops.GitError("git push failed (128): remote hung up")

    monkeypatch.setattr(gitops.Clone, "push", broken_push)
    report = promote(tmp, config, run_for(tmp / "src", "a"), "dev")

    assert not report.ok
    assert "remote hung up" in report.errors[0]
    assert report.outcomes[0].status == "blocked" and report.outcomes[0].commit is None
    assert json.loads(store.get_bytes(baseline_key("dev", "a", "golden")) or b"")["old"] is True
    assert commit_count(config) == 1


def test_push_rejected_midway_is_retried_and_lands(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    write_prompt(tmp / "src", "b")
    assert promote(tmp, config, run_for(tmp / "src", "a"), "dev").ok
    # A competing promoter pushes between our fetch and our push (a real push from another clone).
    real_push = gitops.Clone.push
    calls = []

    def competing_then_push(self: gitops.Clone) -> None:
        calls.append(1)
        if len(calls) == 1:
            other = promote(tmp, config, run_for(tmp / "src", "b"), "dev", run_id="other")
            assert other.ok
        real_push(self)

    monkeypatch.setattr(gitops.Clone, "push", competing_then_push)
    write_prompt(tmp / "src", "a", "2.0.0")

    report = promote(tmp, config, run_for(tmp / "src", "a"), "dev", source_timestamp=1_800_000_000)

    assert report.ok, report.render()
    assert report.attempts == 2 and len(calls) >= 2
    assert "version: 2.0.0" in live_content(config, "dev", "a")
    assert "Artifact b." in live_content(config, "dev", "b")  # the competitor's commit is not lost
    kust = yaml.safe_load(show(config, "environments/dev/kustomization.yaml"))
    assert kust["resources"] == ["promptci-prompt-a.yaml", "promptci-prompt-b.yaml"]


def test_same_artifact_race_newer_source_revision_wins(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a", "2.0.0")
    newer = run_for(tmp / "src", "a")
    assert promote(tmp, config, newer, "dev", source_revision="f" * 40, source_timestamp=2000).ok
    write_prompt(tmp / "src", "a", "1.0.0")
    older = run_for(tmp / "src", "a")
    before = commit_count(config)

    report = promote(tmp, config, older, "dev", source_revision="e" * 40, source_timestamp=1000)

    assert not report.ok
    [refusal] = report.outcomes[0].refusals
    assert refusal.gate == "newer-source"
    assert f"from source revision {'f' * 12}" in refusal.reason
    assert "the newer source revision wins" in refusal.reason
    assert commit_count(config) == before
    assert "version: 2.0.0" in live_content(config, "dev", "a")


def test_same_timestamp_tie_broken_by_revision(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a", "1.0.0")
    assert promote(tmp, config, run_for(tmp / "src", "a"), "dev", source_revision="b" * 40,
                   source_timestamp=5).ok
    write_prompt(tmp / "src", "a", "1.0.1")
    lower = promote(tmp, config, run_for(tmp / "src", "a"), "dev", source_revision="a" * 40,
                    source_timestamp=5)
    higher = promote(tmp, config, run_for(tmp / "src", "a"), "dev", source_revision="c" * 40,
                     source_timestamp=5)
    assert not lower.ok and lower.outcomes[0].refusals[0].gate == "newer-source"
    assert higher.ok


def _promote_in_process(args: tuple[str, str]) -> tuple[bool, str]:
    tmp, aid = Path(args[0]), args[1]
    config = make_config(tmp)
    report = promote(tmp, config, run_for(tmp / "src", aid), "dev", run_id=f"run-{aid}")
    return report.ok, report.render()


def test_ten_concurrent_promoters_in_separate_processes_all_land(tmp: Path) -> None:
    ids = [f"art-{i}" for i in range(10)]
    for aid in ids:
        write_prompt(tmp / "src", aid, note=f"Unique content of {aid}.")
    ctx = multiprocessing.get_context("spawn")  # separate interpreters, not forked copies
    with ctx.Pool(10) as pool:
        results = pool.map(_promote_in_process, [(str(tmp), aid) for aid in ids])

    assert all(ok for ok, _ in results), "\n".join(text for _, text in results)
    config = make_config(tmp)
    assert commit_count(config) == 11  # the initial commit plus exactly one per promoter
    for aid in ids:
        assert f"Unique content of {aid}." in live_content(config, "dev", aid)
    kust = yaml.safe_load(show(config, "environments/dev/kustomization.yaml"))
    assert kust["resources"] == sorted(f"promptci-prompt-{a}.yaml" for a in ids)


def test_environment_output_is_valid_kubernetes_yaml(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev", "staging"])
    for aid in ("a", "b", "c"):
        write_prompt(tmp / "src", aid)
        assert promote(tmp, config, run_for(tmp / "src", aid), "dev").ok
    assert promote(tmp, config, run_for(tmp / "src", "b"), "staging").ok
    checkout = tmp / "checkout"
    subprocess.run(["git", "clone", "-q", str(remote_of(config)), str(checkout)], check=True)

    for env_dir in sorted((checkout / "environments").iterdir()):
        cms = []
        for f in sorted(env_dir.iterdir()):
            for doc in yaml.safe_load_all(f.read_text()):
                assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], f
                if doc["kind"] == "ConfigMap":
                    cms.append(f.name)
                    assert doc["metadata"]["namespace"] == "genai"
                    assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "promptci"
                    assert all(isinstance(v, str) for v in doc["data"].values())
        kust = yaml.safe_load((env_dir / "kustomization.yaml").read_text())
        assert kust["resources"] == cms
    assert sorted(p.name for p in (checkout / "environments").iterdir()) == ["dev", "staging"]


def test_no_secret_in_commits_logs_or_git_config(tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    token = "ghp_FAKEtoken1234567890secret"
    monkeypatch.setenv("PROMPTCI_GIT_TOKEN", token)
    monkeypatch.setenv("PROMPTCI_GIT_USERNAME", "bot")
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    workdir = tmp / "work"

    report = promote(tmp, config, run_for(tmp / "src", "a"), "dev", workdir=workdir)

    assert report.ok
    text = report.render() + json.dumps(report.as_dict()) + capfd.readouterr().out
    assert token not in text
    [clone] = list(workdir.iterdir())
    assert token not in (clone / ".git" / "config").read_text()
    history = git(remote_of(config), "log", "-p", "--all", "--format=%H %an %ae%n%B")
    assert token not in history
    for f in tmp.rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f


def _promote_version(args: tuple[str, str, int]) -> tuple[bool, str, str]:
    tmp, src, ts = Path(args[0]), args[1], args[2]
    config = make_config(tmp)
    run = run_for(tmp / src, "shared")
    report = promote_run(run.results, run.planned, env="dev", repo_root=tmp / src, run_id=src, config=config,
                         store=store_of(config), source_revision=f"{ts:040d}", source_timestamp=ts)
    return report.ok, report.outcomes[0].status, report.render()


def test_concurrent_promotions_of_one_artifact_end_with_the_newer_revision(tmp: Path) -> None:
    write_prompt(tmp / "old", "shared", "1.0.0")
    write_prompt(tmp / "new", "shared", "2.0.0")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        (_, old_status, old_text), (new_ok, _, new_text) = pool.map(
            _promote_version, [(str(tmp), "old", 1000), (str(tmp), "new", 2000)])

    assert new_ok, new_text
    assert "version: 2.0.0" in live_content(make_config(tmp), "dev", "shared")
    # The older one either lost the race outright, or landed first and was then superseded.
    assert old_status in ("refused", "promoted")
    if old_status == "refused":
        assert "[newer-source]" in old_text and "the newer source revision wins" in old_text


def test_stored_eval_result_baseline_blocks_a_regression(tmp: Path) -> None:
    """The env baseline the eval stage stores (an EvalResult) is re-checked at promotion time."""
    from steps.eval_results import EvalResult, RunOutcome, TestOutcome

    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    tests = [TestOutcome(index=i, test_id=f"t{i}", description=f"t{i}",
                         runs=[RunOutcome(repeat=0, passed=True, score=1.0)]) for i in range(10)]
    baseline = EvalResult(artifact_id="a", dataset="golden", content_hash="sha256:old", model="gpt-4o-mini",
                          provider="recorded", promptfoo_version="0.121.20", repeats=1, tests=tests)
    store_of(config).put_bytes(baseline_key("dev", "a", "golden"), baseline.model_dump_json().encode())
    # The branch itself reports no baseline (e.g. eval judged against another env): promote still catches it.
    run = run_for(tmp / "src", "a", pass_rate=0.85)

    report = promote(tmp, config, run, "dev")

    assert not report.ok
    reasons = report.render()
    assert "regressed from dev baseline 1.000 by more than 0.100" in reasons
    assert commit_count(config) == 1  # only the bare repo's initial commit


def test_a_result_without_a_pass_rate_is_refused_for_every_type(tmp: Path) -> None:
    from steps.contracts import BranchResult, EvalItem, content_hash
    from tests.steps.promote_helpers import Run

    config = make_config(tmp)
    src = tmp / "src"
    (src / "model-configs").mkdir(parents=True)
    rel = "model-configs/support-default.yaml"
    (src / rel).write_text("kind: model-config\nid: support-default\nversion: 1.0.0\nowner: p\nmodel: gpt-4o\n")
    h = content_hash((src / rel).read_bytes())
    item = EvalItem(artifact_id="support-default", artifact_type="model-config", path=rel,
                    dataset="p/golden", content_hash=h)
    report = promote(tmp, config, Run([item], [BranchResult(**item.model_dump(), status="passed")]), "dev")
    assert not report.ok and "no pass rate recorded" in report.render()


def test_guardrail_gates_of_the_target_environment_hold_at_promotion(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev", "prod"],
                         environments={"prod": {"min_recall": 0.98, "max_false_positive_rate": 0.01}})
    write_prompt(tmp / "src", "a")
    run = run_for(tmp / "src", "a", pass_rate=1.0, scores={"recall": 0.96, "recall.pii": 0.9, "specificity": 1.0})
    assert promote(tmp, config, run, "dev").ok  # dev sets no guardrail gate

    report = promote(tmp, config, run, "prod", approved=True)

    reasons = [r.reason for r in report.outcomes[0].refusals]
    assert "a/golden: recall 0.960 (overall) is below min_recall 0.98 (required for prod)" in reasons
    assert "a/golden: recall 0.900 (category 'pii') is below min_recall 0.98 (required for prod)" in reasons
