"""plan_run (validate's second half): cache hits settled, the rest sharded, the plan signed, and
"nothing to promote" decided from the target environment's signed baselines."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.pipeline import PromptPipelineConfig
from steps.contracts import EvalItem
from steps.records import decode_plan, plan_key, record_key
from steps.run_plan import RunPlan, all_live, plan_run
from steps.signing import signing_key
from steps.stores.store import LocalStore, baseline_key
from tests.steps.evalkit import NAMES, config, make_repo, record


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, EvalItem]:
    root = tmp_path / "repo"
    item = make_repo(root)
    for n in NAMES:
        record(root, n, f"Hello {n}!")
    return root, item


def _plan(root: Path, item: EvalItem, store: LocalStore, run_id: str, cfg: PromptPipelineConfig,
          env: str = "dev", dry_run: bool = False) -> RunPlan:
    return plan_run([item], repo_root=root, run_id=run_id, target_env=env, dry_run=dry_run, config=cfg,
                    store=store, key=signing_key(root, create=True))


def _run_shard(root: Path, store: LocalStore, run_id: str, plan: RunPlan, cfg: PromptPipelineConfig) -> None:
    from steps.eval import run_shard

    for shard in plan.record.shards:
        results = run_shard(shard, repo_root=root, run_id=run_id, target_env="dev", config=cfg, store=store,
                            work_dir=root.parent / f"work-{run_id}-{shard.index}")
        assert [r.status for r in results] == ["passed"] * len(shard.items)


def test_fresh_items_are_sharded_cached_ones_settled_and_live_ones_not_promoted(repo: tuple[Path, EvalItem]) -> None:
    root, item = repo
    store = LocalStore(root.parent / "store")
    cfg = config()
    key = signing_key(root, create=True)

    first = _plan(root, item, store, "r1", cfg)
    assert [len(s.items) for s in first.record.shards] == [1] and first.settled == []
    assert [r.model_dump() for r in first.refs] == [{"index": 0, "items": 1, "tests": 3}]
    assert (first.count, first.all_live, first.needs_approval) == (1, False, False)
    stored = decode_plan(store.get_bytes(plan_key("r1")) or b"", key, "plan")
    assert stored == first.record and stored.items == [item]

    _run_shard(root, store, "r1", first, cfg)
    second = _plan(root, item, store, "r2", cfg)  # a re-run: the cache answers, no shard
    assert second.record.shards == [] and second.refs == []
    assert [(r.artifact_id, r.status, r.cached) for r in second.settled] == [("greeter", "passed", True)]
    assert second.count == 1  # not live in dev yet: promote must still run
    assert store.get_bytes(record_key("r2", "greeter", "golden")) is not None  # settled = signed record written

    # What promote leaves behind: dev's baseline is the signed record of this content.
    store.put_bytes(baseline_key("dev", "greeter", "golden"), store.get_bytes(record_key("r1", "greeter", "golden"))
                    or b"")
    third = _plan(root, item, store, "r3", cfg)
    assert (third.count, third.all_live, third.needs_approval) == (0, True, False)
    assert any("nothing to promote" in line for line in third.lines("dev"))
    assert _plan(root, item, store, "r4", cfg, env="staging").count == 1  # live in dev only

    stricter = config(min_scores={"personal": 2.0})  # today's gate fails the cached result: promote must refuse it
    fourth = _plan(root, item, store, "r5", stricter)
    assert [r.status for r in fourth.settled] == ["failed"] and fourth.count == 1


def test_approval_is_asked_only_when_something_will_be_promoted(repo: tuple[Path, EvalItem]) -> None:
    root, item = repo
    store = LocalStore(root.parent / "store")
    cfg = PromptPipelineConfig.model_validate({**config().model_dump(),
                                               "promotion": {"chain": ["dev"],
                                                             "environments": {"dev": {"manual_approval": True}}}})
    assert _plan(root, item, store, "a1", cfg).needs_approval
    assert not _plan(root, item, store, "a2", cfg, dry_run=True).needs_approval


def test_all_live_reads_signed_baselines_and_stops_at_the_first_miss(repo: tuple[Path, EvalItem]) -> None:
    root, item = repo
    store = LocalStore(root.parent / "store")
    key = signing_key(root, create=True)
    assert not all_live([item], store, "dev", key)
    assert not all_live([], store, "dev", key)  # nothing planned is not "all live": count stays 0 anyway
    store.put_bytes(baseline_key("dev", "greeter", "golden"), b'{"kind": "promptci.eval-record"}')
    assert not all_live([item], store, "dev", key)  # unsigned: not trusted as live


@pytest.mark.parametrize(("cap", "expected"), [(None, 8), ("2", 2), ("1", 1), ("20", 8)])
def test_the_local_shard_cap_lowers_max_shards_and_never_raises_it(cap: str | None, expected: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The local runner caps shards at its parallelism (PROMPTCI_EVAL_SHARDS_CAP); the trusted
    ``eval.max_shards`` stays the ceiling, so the environment can only make fewer, bigger shards."""
    from steps.run_plan import shard_limit

    monkeypatch.delenv("PROMPTCI_EVAL_SHARDS_CAP", raising=False)
    if cap is not None:
        monkeypatch.setenv("PROMPTCI_EVAL_SHARDS_CAP", cap)
    assert shard_limit(config()) == expected


@pytest.mark.parametrize(("runs", "max_shards", "min_tests", "cap", "expected"), [
    (31, 8, 150, None, 1),    # the samples, shipped policy: one promptfoo start, not two or eight
    (600, 8, 150, None, 4),   # 200 prompts x 3 tests: a fifth shard would carry less than its start
    (1200, 8, 150, None, 8),  # big runs use the cluster's whole width
    (31, 8, 64, None, 1),
    (0, 8, 64, None, 1),      # nothing to weigh still packs its items into one shard
    (127, 8, 64, None, 1),    # a second shard would carry less than its own start costs
    (128, 8, 64, None, 2),
    (600, 8, 64, None, 8),    # with a minimum of 64, 200 prompts x 3 tests use the whole width
    (600, 8, 64, "2", 2),     # the local cap still lowers it
    (600, 8, 100, None, 6),
    (600, 4, 1, None, 4),     # eval.max_shards stays the ceiling
])
def test_shard_count_is_the_least_of_max_shards_the_cap_and_one_per_min_tests_per_shard(
        runs: int, max_shards: int, min_tests: int, cap: str | None, expected: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each shard pays one promptfoo start (a pod on a cluster): a run only gets another shard when
    that shard takes at least ``eval.min_tests_per_shard`` test runs off the others."""
    from steps.run_plan import shard_count

    monkeypatch.delenv("PROMPTCI_EVAL_SHARDS_CAP", raising=False)
    if cap is not None:
        monkeypatch.setenv("PROMPTCI_EVAL_SHARDS_CAP", cap)
    cfg = PromptPipelineConfig.model_validate(
        {**config().model_dump(), "eval": {"max_shards": max_shards, "min_tests_per_shard": min_tests}})
    assert shard_count(cfg, runs) == expected


def test_a_small_run_is_planned_as_one_shard_and_a_lower_minimum_splits_it(tmp_path: Path) -> None:
    """plan_run packs by the rule: the same two pending items are one shard under the shipped minimum,
    two when the trusted policy allows a shard per test run."""
    root = tmp_path / "repo"
    item = make_repo(root, datasets={"golden": NAMES, "more": NAMES})
    for n in NAMES:
        record(root, n, f"Hello {n}!")
    other = item.model_copy(update={"dataset": "more"})
    store = LocalStore(tmp_path / "store")
    key = signing_key(root, create=True)
    shipped = config()
    assert shipped.eval.min_tests_per_shard == 150
    wide = PromptPipelineConfig.model_validate({**shipped.model_dump(), "eval": {"max_shards": 8,
                                                                                 "min_tests_per_shard": 1}})
    for cfg, shards in ((shipped, 1), (wide, 2)):
        plan = plan_run([item, other], repo_root=root, run_id=f"s{shards}", target_env="dev", dry_run=True,
                        config=cfg, store=store, key=key, no_cache=True)
        assert len(plan.record.shards) == shards, plan.lines("dev")
