"""promote_run against real git: a bare remote in a temp dir, fresh clones, signed records in a store."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path

import pytest
import yaml

from steps.gitops import gitops
from steps.gitops.rollback import rollback_artifact
from steps.promote import PromotionReport
from steps.records import content_record_key, decode_record
from steps.signing import signing_key
from steps.stores.store import baseline_key, run_key
from tests.steps.promote_helpers import (
    Run,
    commit_count,
    git,
    live_content,
    make_config,
    remote_of,
    run_for,
    run_of_many,
    show,
    store_of,
    write_prompt,
)
from tests.steps.promote_helpers import promote as promote_src


def promote(tmp: Path, config, run: Run, env: str, **kw) -> PromotionReport:  # type: ignore[no-untyped-def]
    return promote_src(tmp / "src", config, run, env, **kw)  # type: ignore[no-any-return]


def run_of(tmp: Path, config, aid: str, **kw) -> Run:  # type: ignore[no-untyped-def]
    return run_for(tmp / "src", aid, store_of(config), **kw)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return tmp_path


def test_first_promotion_creates_remote_and_commits_configmap(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "support-reply", "1.2.0")
    run = run_of(tmp, config, "support-reply")

    report = promote(tmp, config, run, "dev", run_link="https://argo.example/runs/run-1")

    assert report.ok, report.render()
    assert [o.status for o in report.outcomes] == ["promoted"]
    assert commit_count(config) == 2  # the initial commit of the new bare repo, then ours
    # The ConfigMap holds the file exactly as committed in the source repo.
    source = (tmp / "src/prompts/support-reply.yaml").read_text()
    assert live_content(config, "dev", "support-reply") == source
    msg = git(remote_of(config), "log", "-1", "--format=%s%n%b%n%an <%ae>", "main")
    h = run.content_hash
    assert msg.startswith(f"promote(dev): support-reply 1.2.0 {h[:15]}")
    for trailer in ("Artifact: support-reply", "Version: 1.2.0", f"Content-Hash: {h}", "Environment: dev",
                    "Run-Id: run-1", "Run-Link: https://argo.example/runs/run-1",
                    f"Source-Revision: {run.revision}",
                    'Eval-Summary: {"datasets":{"golden":{"pass_rate":1.0,"passed":20,"total":20}},'
                    '"run":"run-1"}',
                    "Promo Bot <promo@example.test>"):
        assert trailer in msg
    assert report.outcomes[0].commit == git(remote_of(config), "rev-parse", "main").strip()
    assert "promoted" in report.render() and "support-reply" in report.render()


def test_idempotent_repromotion_makes_no_commit(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "support-reply")
    run = run_of(tmp, config, "support-reply")
    assert promote(tmp, config, run, "dev").ok
    before = commit_count(config)

    again = promote(tmp, config, run_of(tmp, config, "support-reply", run_id="run-2"), "dev")

    assert again.ok, again.render()
    assert [o.status for o in again.outcomes] == ["unchanged"]
    assert again.outcomes[0].commit is None
    assert commit_count(config) == before


def _merge_runs(config, into: Run, other: Run) -> None:  # type: ignore[no-untyped-def]
    """Make ``into``'s run plan both runs' items, as one plan of two artifacts would (re-signed)."""
    from steps.records import PlanRecord, plan_key, put_signed, read_record, record_key

    store = store_of(config)
    key = signing_key(Path(config.store.root).parent / "src")
    for item in other.planned:
        rec = read_record(store, record_key(other.run_id, item.artifact_id, item.dataset), key)
        assert rec is not None
        put_signed(store, record_key(into.run_id, item.artifact_id, item.dataset),
                   rec[0].model_copy(update={"run_id": into.run_id}), key)
    into.planned += other.planned
    put_signed(store, plan_key(into.run_id), PlanRecord(run_id=into.run_id, items=into.planned), key)


def test_failed_branch_blocks_every_artifact_and_commits_nothing(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "good")
    write_prompt(tmp / "src", "bad")
    run = run_of(tmp, config, "good")
    bad = run_of(tmp, config, "bad", status="failed", pass_rate=0.7, run_id="r2")
    _merge_runs(config, run, bad)

    report = promote(tmp, config, run, "dev")

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
    run = run_of(tmp, config, "a", datasets=("golden", "edge"), skip=("edge",))

    report = promote(tmp, config, run, "dev")

    assert not report.ok
    assert any("a/edge: no result" in r.reason for r in report.outcomes[0].refusals)


def test_threshold_gate_is_per_environment_and_commits_nothing(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    run = run_of(tmp, config, "a", pass_rate=0.85)
    assert promote(tmp, config, run, "dev").ok  # dev: 0.8 is enough
    before = commit_count(config)

    report = promote(tmp, config, run, "staging")

    assert not report.ok
    [refusal] = report.outcomes[0].refusals
    assert refusal.gate == "thresholds"
    assert "pass rate 85.0% is below the minimum 90.0%" in refusal.reason
    assert refusal.reason.endswith("(required for staging)")
    assert commit_count(config) == before
    assert "[thresholds]" in report.render()


def test_metric_and_regression_gates(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev"], environments={"dev": {"min_scores": {"tone": 0.7}}})
    write_prompt(tmp / "src", "a")
    assert promote(tmp, config, run_of(tmp, config, "a", scores={"tone": 0.9}), "dev").ok
    write_prompt(tmp / "src", "a", "1.1.0")
    before = commit_count(config)
    run = run_of(tmp, config, "a", scores={"tone": 0.6}, pass_rate=0.85)

    report = promote(tmp, config, run, "dev")

    reasons = " | ".join(r.reason for r in report.outcomes[0].refusals)
    assert "metric 'tone' scored 0.600, below the minimum 0.7" in reasons
    # Regression against the record of the content live in dev (1.0 pass rate, tone 0.9).
    assert "pass rate regressed 15.0% against the baseline (100.0% → 85.0%)" in reasons
    assert "metric 'tone' regressed 0.300 against the baseline" in reasons
    assert commit_count(config) == before


def test_content_must_be_what_was_evaluated(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    run = run_of(tmp, config, "a")
    write_prompt(tmp / "src", "a", note="edited after the eval")

    report = promote(tmp, config, run, "dev")

    assert not report.ok
    assert report.outcomes[0].refusals[0].gate == "content"
    assert "what is promoted must be what was evaluated" in report.outcomes[0].refusals[0].reason


def test_prod_without_same_hash_in_staging_is_refused(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev", "staging", "prod"])  # no approval needed here
    write_prompt(tmp / "src", "a", "1.0.0")
    v1 = run_of(tmp, config, "a")
    assert promote(tmp, config, v1, "staging").ok is False  # not in dev yet
    assert promote(tmp, config, v1, "dev").ok
    assert promote(tmp, config, v1, "staging").ok
    write_prompt(tmp / "src", "a", "1.1.0")
    v2 = run_of(tmp, config, "a")
    before = commit_count(config)

    report = promote(tmp, config, v2, "prod")

    assert not report.ok
    [refusal] = report.outcomes[0].refusals
    assert refusal.gate == "order"
    held = v1.content_hash[:15]
    assert f"must be live in staging before prod, but it holds {held}" in refusal.reason
    assert commit_count(config) == before
    # And the staged version goes to prod fine.
    write_prompt(tmp / "src", "a", "1.0.0")
    assert promote(tmp, config, v1, "prod").ok


def test_manual_approval_required_where_configured(tmp: Path) -> None:
    config = make_config(tmp, chain=["prod"], environments={"prod": {"manual_approval": True}})
    write_prompt(tmp / "src", "a")
    run = run_of(tmp, config, "a")

    refused = promote(tmp, config, run, "prod")
    assert not refused.ok
    assert refused.outcomes[0].refusals[0].gate == "approval"
    assert commit_count(config) == 1

    approved = promote(tmp, config, run, "prod", approved=True)
    assert approved.ok, approved.render()


def test_dry_run_prints_diff_and_commits_nothing(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a", "1.0.0")
    assert promote(tmp, config, run_of(tmp, config, "a"), "dev").ok
    before = commit_count(config)
    baseline = store_of(config).get_bytes(baseline_key("dev", "a", "golden"))
    write_prompt(tmp / "src", "a", "1.1.0")

    report = promote(tmp, config, run_of(tmp, config, "a"), "dev", dry_run=True)

    assert report.ok
    assert report.outcomes[0].status == "would-promote"
    assert "--- a/environments/dev/promptci-prompt-a.yaml" in report.diff
    assert "-  version: 1.0.0" in report.diff and "+  version: 1.1.0" in report.diff
    assert report.diff.rstrip("\n") in report.render()
    assert commit_count(config) == before
    assert store_of(config).get_bytes(baseline_key("dev", "a", "golden")) == baseline


def test_baselines_are_the_signed_eval_records_by_content_and_per_env(tmp: Path) -> None:
    config = make_config(tmp)
    store = store_of(config)
    write_prompt(tmp / "src", "a")
    run = run_of(tmp, config, "a", datasets=("golden", "edge"))

    report = promote(tmp, config, run, "dev")

    assert report.ok, report.render()
    for ds in ("golden", "edge"):
        signed = store.get_bytes(run_key(run.run_id, "a", ds, "record.json"))
        # One baseline format: the eval stage's signed record, byte for byte, under the content hash
        # (written before the push) and as dev's live baseline (written after it).
        assert store.get_bytes(content_record_key("a", ds, run.content_hash)) == signed
        assert store.get_bytes(baseline_key("dev", "a", ds)) == signed
        rec = decode_record(signed or b"", signing_key(tmp / "src"), ds)
        assert rec.content_hash == run.content_hash and rec.result is not None
    assert sorted(report.baseline_keys) == [baseline_key("dev", "a", "edge"), baseline_key("dev", "a", "golden")]


def test_failed_push_leaves_old_baseline(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp)
    store = store_of(config)
    store.put_bytes(baseline_key("dev", "a", "golden"), b'{"old": true}')
    write_prompt(tmp / "src", "a")

    def broken_push(self: gitops.Clone) -> None:
        raise gitops.GitError("git push failed (128): remote hung up")

    monkeypatch.setattr(gitops.Clone, "push", broken_push)
    report = promote(tmp, config, run_of(tmp, config, "a"), "dev")

    assert not report.ok and report.exit_code == 75  # the remote is infrastructure: retried
    assert "remote hung up" in report.infra[0]
    assert report.outcomes[0].status == "blocked" and report.outcomes[0].commit is None
    assert json.loads(store.get_bytes(baseline_key("dev", "a", "golden")) or b"")["old"] is True
    assert commit_count(config) == 1


def test_push_rejected_midway_is_retried_and_lands(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    write_prompt(tmp / "src", "b")
    assert promote(tmp, config, run_of(tmp, config, "a"), "dev").ok
    # A competing promoter pushes between our fetch and our push (a real push from another clone).
    real_push = gitops.Clone.push
    calls = []

    def competing_then_push(self: gitops.Clone) -> None:
        calls.append(1)
        if len(calls) == 1:
            other = promote(tmp, config, run_of(tmp, config, "b", run_id="other"), "dev")
            assert other.ok
        real_push(self)

    monkeypatch.setattr(gitops.Clone, "push", competing_then_push)
    write_prompt(tmp / "src", "a", "2.0.0")

    report = promote(tmp, config, run_of(tmp, config, "a"), "dev")

    assert report.ok, report.render()
    assert report.attempts == 2 and len(calls) >= 2
    assert "version: 2.0.0" in live_content(config, "dev", "a")
    assert "Artifact b." in live_content(config, "dev", "b")  # the competitor's commit is not lost
    kust = yaml.safe_load(show(config, "environments/dev/kustomization.yaml"))
    assert kust["resources"] == ["promptci-prompt-a.yaml", "promptci-prompt-b.yaml"]


def test_same_artifact_race_newer_source_revision_wins(tmp: Path) -> None:
    config = make_config(tmp)
    write_prompt(tmp / "src", "a", "2.0.0")
    newer = run_of(tmp, config, "a", when=2000)
    assert promote(tmp, config, newer, "dev").ok
    write_prompt(tmp / "src", "a", "1.0.0")
    older = run_of(tmp, config, "a", when=1000)
    before = commit_count(config)

    report = promote(tmp, config, older, "dev")

    assert not report.ok
    [refusal] = report.outcomes[0].refusals
    assert refusal.gate == "newer-source"
    assert f"from source revision {newer.revision[:12]}" in refusal.reason
    assert "the newer source revision wins" in refusal.reason
    assert commit_count(config) == before
    assert "version: 2.0.0" in live_content(config, "dev", "a")


def test_same_timestamp_tie_broken_by_revision(tmp: Path) -> None:
    config = make_config(tmp)
    runs = {}
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        write_prompt(tmp / "src", "a", v)
        runs[v] = run_of(tmp, config, "a", when=5)
    low, mid, high = sorted(runs.items(), key=lambda kv: kv[1].revision)
    write_prompt(tmp / "src", "a", mid[0])
    assert promote(tmp, config, mid[1], "dev").ok
    write_prompt(tmp / "src", "a", low[0])
    lower = promote(tmp, config, low[1], "dev")
    write_prompt(tmp / "src", "a", high[0])
    higher = promote(tmp, config, high[1], "dev")
    assert not lower.ok and lower.outcomes[0].refusals[0].gate == "newer-source"
    assert higher.ok, higher.render()


def _promote_in_process(args: tuple[str, Run]) -> tuple[bool, str]:
    tmp, run = Path(args[0]), args[1]
    report = promote(tmp, make_config(tmp), run, "dev")
    return report.ok, report.render()


def test_ten_concurrent_promoters_in_separate_processes_all_land(tmp: Path) -> None:
    ids = [f"art-{i}" for i in range(10)]
    config = make_config(tmp)
    runs = []
    for aid in ids:
        write_prompt(tmp / "src", aid, note=f"Unique content of {aid}.")
        runs.append(run_of(tmp, config, aid, run_id=f"run-{aid}"))
    ctx = multiprocessing.get_context("spawn")  # separate interpreters, not forked copies
    with ctx.Pool(10) as pool:
        results = pool.map(_promote_in_process, [(str(tmp), run) for run in runs])

    assert all(ok for ok, _ in results), "\n".join(text for _, text in results)
    assert commit_count(config) == 11  # the initial commit plus exactly one per promoter
    for aid in ids:
        assert f"Unique content of {aid}." in live_content(config, "dev", aid)
    kust = yaml.safe_load(show(config, "environments/dev/kustomization.yaml"))
    assert kust["resources"] == sorted(f"promptci-prompt-{a}.yaml" for a in ids)


def test_environment_output_is_valid_kubernetes_yaml(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev", "staging"])
    for aid in ("a", "b", "c"):
        write_prompt(tmp / "src", aid)
        assert promote(tmp, config, run_of(tmp, config, aid), "dev").ok
    assert promote(tmp, config, run_of(tmp, config, "b"), "staging").ok
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

    report = promote(tmp, config, run_of(tmp, config, "a"), "dev", workdir=workdir)

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


def _promote_version(args: tuple[str, str, Run]) -> tuple[bool, str, str]:
    tmp, src, run = Path(args[0]), args[1], args[2]
    report = promote_src(tmp / src, make_config(tmp), run, "dev")
    return report.ok, report.outcomes[0].status, report.render()


def test_concurrent_promotions_of_one_artifact_end_with_the_newer_revision(
        tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTCI_SIGNING_KEY", "one-key-for-both-checkouts")  # as the Secret would be
    config = make_config(tmp)
    write_prompt(tmp / "old", "shared", "1.0.0")
    write_prompt(tmp / "new", "shared", "2.0.0")
    old = run_for(tmp / "old", "shared", store_of(config), run_id="old", when=1000)
    new = run_for(tmp / "new", "shared", store_of(config), run_id="new", when=2000)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        (_, old_status, old_text), (new_ok, _, new_text) = pool.map(
            _promote_version, [(str(tmp), "old", old), (str(tmp), "new", new)])

    assert new_ok, new_text
    assert "version: 2.0.0" in live_content(config, "dev", "shared")
    # The older one either lost the race outright, or landed first and was then superseded.
    assert old_status in ("refused", "promoted")
    if old_status == "refused":
        assert "[newer-source]" in old_text and "the newer source revision wins" in old_text


def test_regression_is_judged_against_the_record_of_what_git_has_live(tmp: Path) -> None:
    """Whatever the env's baseline copy says (here: overwritten with an unsigned file), promote judges
    the candidate against the signed record of the content git holds live, with the eval stage's rules."""
    config = make_config(tmp)
    write_prompt(tmp / "src", "a")
    assert promote(tmp, config, run_of(tmp, config, "a", scores={"tone": 0.9}), "dev").ok
    store_of(config).put_bytes(baseline_key("dev", "a", "golden"), b'{"pass_rate": 0.0}')
    write_prompt(tmp / "src", "a", "1.1.0")

    report = promote(tmp, config, run_of(tmp, config, "a", pass_rate=0.85), "dev")

    assert not report.ok
    reasons = report.render()
    assert "pass rate regressed 15.0% against the baseline (100.0% → 85.0%)" in reasons
    # One gate implementation: a metric the baseline reported but the candidate did not is a regression.
    assert "metric 'tone' was reported by the baseline but not by this run" in reasons
    assert commit_count(config) == 2


def test_a_record_without_a_measured_result_is_refused_for_every_type(tmp: Path) -> None:
    config = make_config(tmp)
    src = tmp / "src"
    (src / "model-configs").mkdir(parents=True)
    rel = "model-configs/support-default.yaml"
    (src / rel).write_text("kind: model-config\nid: support-default\nversion: 1.0.0\nowner: p\nmodel: gpt-4o\n")
    run = run_of(tmp, config, "support-default", path=rel, artifact_type="model-config",
                 datasets=("p/golden",), unmeasured=True)  # eval signed "passed" but measured nothing

    report = promote(tmp, config, run, "dev")

    assert not report.ok and "passed but recorded no measured result" in report.render()


def test_a_model_config_judged_per_prompt_dataset_promotes(tmp: Path) -> None:
    config = make_config(tmp)
    src = tmp / "src"
    (src / "model-configs").mkdir(parents=True)
    rel = "model-configs/support-default.yaml"
    (src / rel).write_text("kind: model-config\nid: support-default\nversion: 1.0.0\nowner: p\nmodel: gpt-4o\n")
    run = run_of(tmp, config, "support-default", path=rel, artifact_type="model-config",
                 datasets=("support-reply/golden",))

    report = promote(tmp, config, run, "dev")

    assert report.ok, report.render()
    assert store_of(config).get_bytes(baseline_key("dev", "support-default", "support-reply/golden"))


def test_guardrail_gates_of_the_target_environment_hold_at_promotion(tmp: Path) -> None:
    config = make_config(tmp, chain=["dev", "prod"],
                         environments={"prod": {"min_recall": 0.98, "max_false_positive_rate": 0.01}})
    write_prompt(tmp / "src", "a")
    run = run_of(tmp, config, "a", scores={"recall": 0.96, "recall.pii": 0.9, "specificity": 1.0})
    assert promote(tmp, config, run, "dev").ok  # dev sets no guardrail gate

    report = promote(tmp, config, run, "prod", approved=True)

    reasons = [r.reason for r in report.outcomes[0].refusals]
    assert "a/golden: recall 0.960 (overall) is below min_recall 0.98 (required for prod)" in reasons
    assert "a/golden: recall 0.900 (category 'pii') is below min_recall 0.98 (required for prod)" in reasons


def test_a_run_of_many_artifacts_lands_one_readable_commit_per_artifact(tmp: Path) -> None:
    """One promote of three artifacts (committed in one fast-import, steps/gitops/gitops.py): three
    commits in plan order, each touching only its ConfigMap and the kustomization (which lists the
    ConfigMaps present at that commit), each reported with its artifact, and rollback reads them."""
    config = make_config(tmp, chain=["dev", "staging"])
    src, ids = tmp / "src", ["c", "a", "b"]
    for aid in ids:
        write_prompt(src, aid, "1.0.0")
    run = run_of_many(src, ids, store_of(config), "run-many")

    report = promote(tmp, config, run, "dev")

    assert report.ok, report.render()
    remote = remote_of(config)
    shas = git(remote, "rev-list", "--reverse", "main").split()[1:]  # after the initial commit
    assert [o.commit for o in report.outcomes] == shas and report.head == shas[-1]
    files = [f"promptci-prompt-{aid}.yaml" for aid in ids]
    for n, (aid, sha) in enumerate(zip(ids, shas, strict=True)):
        touched = set(git(remote, "show", "--name-only", "--format=", sha).split())
        assert touched == {f"environments/dev/{files[n]}", "environments/dev/kustomization.yaml"}
        assert git(remote, "log", "-1", "--format=%s", sha).startswith(f"promote(dev): {aid} 1.0.0 sha256:")
        assert "Run-Id: run-many" in git(remote, "log", "-1", "--format=%b", sha)
        kust = yaml.safe_load(show(config, "environments/dev/kustomization.yaml", sha))
        assert kust["resources"] == sorted(files[: n + 1])
    assert {aid: live_content(config, "dev", aid) for aid in ids} == {
        aid: (src / f"prompts/{aid}.yaml").read_text() for aid in ids}
    assert promote(tmp, config, run, "staging").ok  # the order gate reads dev as this run left it

    write_prompt(src, "a", "2.0.0")
    assert promote(tmp, config, run_for(src, "a", store_of(config)), "dev").ok
    back = rollback_artifact("a", env="dev", config=config, repo_root=src)
    assert (back.to_version, back.restored_from) == ("1.0.0", shas[1])
