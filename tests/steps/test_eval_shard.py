"""settle_cached (plan time) and run_shard (one eval task) with REAL promptfoo and the recorded provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.contracts import BRANCH_FILE, BranchResult, EvalItem, Shard
from steps.eval import run_branch, run_shard, settle_cached
from steps.records import read_record, record_key
from steps.signing import signing_key
from steps.stores.store import LocalStore, run_key
from tests.steps.evalkit import NAMES, config, make_repo, read_json, record

pytestmark = pytest.mark.slow
GOOD = "Hello {name}, nice to meet you!"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PROMPTCI_CALL_LOG", str(tmp_path / "calls.log"))
    return {"repo": tmp_path / "repo", "store": tmp_path / "store", "work": tmp_path / "work",
            "calls": tmp_path / "calls.log"}


def _calls(env: dict[str, Path]) -> int:
    return len(env["calls"].read_text().splitlines()) if env["calls"].exists() else 0


def _branch_file(env: dict[str, Path], run_id: str, item: EvalItem) -> BranchResult | None:
    data = LocalStore(env["store"]).get_bytes(run_key(run_id, item.artifact_id, item.dataset, BRANCH_FILE))
    return None if data is None else BranchResult.model_validate(read_json(data))


def _good_and_bad(env: dict[str, Path]) -> tuple[EvalItem, EvalItem]:
    """Return the greeter's golden item (its recordings pass) and an item of a dataset it does not have."""
    good = make_repo(env["repo"])
    for n in NAMES:
        record(env["repo"], n, GOOD.format(name=n))
    return good, good.model_copy(update={"dataset": "no-such-set"})


def test_settle_cached_settles_hits_and_unpreparable_items_and_weighs_the_rest(env):
    good, bad = _good_and_bad(env)
    store = LocalStore(env["store"])
    assert run_branch(good, repo_root=env["repo"], run_id="r0", target_env=None, config=config(), store=store,
                      work_dir=env["work"] / "r0").status == "passed"  # fills the cache
    calls = _calls(env)

    settled = settle_cached([good, bad], repo_root=env["repo"], run_id="r1", target_env=None, config=config(),
                            store=store)
    assert _calls(env) == calls  # plan never calls a provider
    assert settled.pending == []
    hit, err = settled.results
    assert (hit.dataset, hit.status, hit.cached, hit.pass_rate) == ("golden", "passed", True, 1.0)
    assert err.status == "error" and "no dataset named 'no-such-set'" in err.reasons[0]
    for r, item in ((hit, good), (err, bad)):
        assert _branch_file(env, "r1", item) == r  # branch.json is written by eval, not by the stage
        record_ = read_record(store, record_key("r1", item.artifact_id, item.dataset), signing_key(env["repo"]))
        assert record_ is not None and record_[0].branch == r
    assert store.get_bytes(run_key("r1", "greeter", "golden", "diff.md"))

    fresh = settle_cached([good], repo_root=env["repo"], run_id="r2", target_env=None, config=config(),
                          store=store, no_cache=True)
    assert fresh.results == [] and fresh.pending == [(good, 3)]  # 3 tests × 1 repeat
    assert _branch_file(env, "r2", good) is None  # a pending item leaves nothing behind yet
    assert settle_cached([good], repo_root=env["repo"], run_id="r3", target_env=None,
                         config=config(repeats=3, k_of_n=2), store=store).pending == [(good, 9)]


def test_run_shard_returns_stored_final_items_without_running_them_again(env):
    good, bad = _good_and_bad(env)
    store = LocalStore(env["store"])
    shard = Shard(index=0, items=[good, bad], tests=3)
    first = run_shard(shard, repo_root=env["repo"], run_id="r1", target_env=None, config=config(), store=store,
                      work_dir=env["work"], no_cache=True)
    assert [(r.dataset, r.status, r.cached) for r in first] == [("golden", "passed", False),
                                                                ("no-such-set", "error", False)]
    assert _calls(env) == 3
    assert [_branch_file(env, "r1", i) for i in shard.items] == first
    assert store.get_bytes(run_key("r1", "greeter", "golden", "junit.xml"))

    again = run_shard(shard, repo_root=env["repo"], run_id="r1", target_env=None, config=config(), store=store,
                      work_dir=env["work"], no_cache=True)
    assert again == first and _calls(env) == 3  # both are final: nothing ran again


def test_a_node_too_old_for_promptfoo_is_each_items_one_line_error_not_a_crash(env, tmp_path, monkeypatch):
    """A machine whose only Node is older than promptfoo's ``engines.node``: every item of the shard is an
    error that says so and how to fix it (fail closed), never "eval stage crashed"."""
    good, _ = _good_and_bad(env)
    home = tmp_path / "home"  # the pinned promptfoo, without make setup's .node/
    home.mkdir()
    (home / "node_modules").symlink_to(Path(__file__).resolve().parents[2] / "node_modules")
    old = tmp_path / "old-node"
    old.mkdir()
    (old / "node").write_text("#!/bin/sh\necho v18.19.0\n")
    (old / "node").chmod(0o755)
    monkeypatch.setenv("PROMPTCI_PROMPTFOO_HOME", str(home))
    monkeypatch.setenv("PATH", f"{old}:/usr/bin:/bin")
    shard = Shard(index=0, items=[good], tests=3)
    (result,) = run_shard(shard, repo_root=env["repo"], run_id="r1", target_env=None, config=config(),
                          store=LocalStore(env["store"]), work_dir=env["work"], no_cache=True)
    assert result.status == "error" and not result.retryable
    assert "v18.19.0" in result.reasons[0] and "make setup" in result.reasons[0], result.reasons
    assert "crashed" not in result.reasons[0]
    assert _calls(env) == 0
