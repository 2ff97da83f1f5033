"""The holes of issue 12, each reproduced against real git and a real store: forged or altered
results, a future committer date, a rollback undone by a re-run, and a baseline left behind git."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from steps.gitops.rollback import rollback_artifact
from steps.records import content_record_key, decode_record, record_key
from steps.signing import signing_key
from steps.stores.store import LocalStore, StoreError, baseline_key
from tests.steps.promote_helpers import (
    commit_count,
    live_content,
    make_config,
    promote,
    run_for,
    store_of,
    write_prompt,
)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return tmp_path / "src"


def test_a_hand_written_passing_record_is_refused(src: Path) -> None:
    """Hole 2: a forged ``"status": "passed", "pass_rate": 1.0`` never reaches git or the baseline."""
    config = make_config(src.parent)
    store = store_of(config)
    write_prompt(src, "a")
    run = run_for(src, "a", store, pass_rate=0.3, status="failed")
    k = record_key(run.run_id, "a", "golden")
    doc = json.loads(store.get_bytes(k) or b"")
    doc["branch"]["status"], doc["branch"]["pass_rate"] = "passed", 1.0
    for t in doc["result"]["tests"]:
        t["runs"][0]["passed"] = True
    store.put_bytes(k, json.dumps(doc).encode())  # altered, signature kept

    altered = promote(src, config, run, "dev")

    assert altered.exit_code == 1
    assert "signature mismatch" in altered.render()
    del doc["signature"]
    store.put_bytes(k, json.dumps(doc).encode())  # unsigned

    unsigned = promote(src, config, run, "dev")

    assert unsigned.exit_code == 1 and "is unsigned" in unsigned.render()
    assert not Path(config.gitops.repo_url).exists()  # git was never touched
    assert store.get_bytes(baseline_key("dev", "a", "golden")) is None


def test_a_record_of_other_content_or_another_run_is_refused(src: Path) -> None:
    config = make_config(src.parent)
    store = store_of(config)
    write_prompt(src, "a", "1.0.0")
    good = run_for(src, "a", store, run_id="good")
    write_prompt(src, "a", "2.0.0")
    bad = run_for(src, "a", store, run_id="bad", pass_rate=0.2, status="failed")
    # Copy the good run's (validly signed) record over the bad run's: right signature, wrong run and content.
    store.put_bytes(record_key("bad", "a", "golden"), store.get_bytes(record_key("good", "a", "golden")) or b"")

    report = promote(src, config, bad, "dev")

    assert report.exit_code == 1
    text = report.render()
    assert "stored record is of good a/golden" in text
    assert f"evaluated {good.content_hash[:15]} but {bad.content_hash[:15]} was planned" in text


def test_a_committer_date_in_the_future_is_refused(src: Path) -> None:
    """Hole 5: a commit dated in 2100 cannot pin an environment."""
    config = make_config(src.parent)
    write_prompt(src, "a")
    run = run_for(src, "a", store_of(config), when=4102444800)

    report = promote(src, config, run, "dev")

    assert report.exit_code == 1
    assert "[source]" in report.render() and "2100-01-01T00:00:00Z" in report.render()
    assert "more than 5 minutes in the future" in report.render()
    assert not Path(config.gitops.repo_url).exists()
    # Four minutes ahead (clock skew) is fine.
    write_prompt(src, "a", "1.0.1")
    assert promote(src, config, run_for(src, "a", store_of(config), when=int(time.time()) + 240), "dev").ok


def test_rollback_holds_until_a_newer_source_revision(src: Path) -> None:
    """Hole 6a: re-running the run that was rolled back does not re-promote it."""
    config = make_config(src.parent, chain=["dev"])
    store = store_of(config)
    write_prompt(src, "a", "1.0.0")
    assert promote(src, config, run_for(src, "a", store), "dev").ok
    write_prompt(src, "a", "2.0.0")
    bad = run_for(src, "a", store)
    assert promote(src, config, bad, "dev").ok

    rolled = rollback_artifact("a", env="dev", config=config, repo_root=src, store=store, key=signing_key(src))

    assert rolled.to_version == "1.0.0" and rolled.commit
    # The dev baseline follows git back to 1.0.0's record.
    ptr = decode_record(store.get_bytes(baseline_key("dev", "a", "golden")) or b"", signing_key(src), "ptr")
    assert ptr.content_hash == rolled.to_hash
    before = commit_count(config)

    again = promote(src, config, bad, "dev")  # a CI retry of the old run

    assert again.exit_code == 1
    assert "[newer-source] a was rolled back in dev from source revision" in again.render()
    assert commit_count(config) == before and "version: 1.0.0" in live_content(config, "dev", "a")
    write_prompt(src, "a", "3.0.0")
    newer = promote(src, config, run_for(src, "a", store), "dev")
    assert newer.ok, newer.render()
    assert "version: 3.0.0" in live_content(config, "dev", "a")


class _FailingPuts(LocalStore):
    """A local store whose writes under one prefix fail, as a store outage at that point would."""

    def __init__(self, root: str, prefix: str):
        super().__init__(root)
        self.prefix = prefix

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        if key.startswith(self.prefix):
            raise StoreError(f"cannot write {key}: 503 Service Unavailable")
        return super().put_bytes(key, data, content_type)


def test_baseline_left_behind_git_is_repaired_by_the_next_run(src: Path) -> None:
    """Hole 3: the store fails after the push. Exit 75 (retried); the re-run finds the content live,
    repairs the baseline from the record stored before the push, and says so."""
    from steps.promote import promote_run

    config = make_config(src.parent)
    store = store_of(config)
    write_prompt(src, "a", "1.0.0")
    assert promote(src, config, run_for(src, "a", store), "dev").ok
    write_prompt(src, "a", "2.0.0")
    run = run_for(src, "a", store)
    flaky = _FailingPuts(config.store.root, "baselines/")

    first = promote_run(run.run_id, env="dev", repo_root=src, config=config, store=flaky, key=signing_key(src),
                        source_revision=run.revision)

    assert first.exit_code == 75, first.render()
    assert "version: 2.0.0" in live_content(config, "dev", "a")  # the push happened
    stale = decode_record(store.get_bytes(baseline_key("dev", "a", "golden")) or b"", signing_key(src), "p")
    assert stale.content_hash != run.content_hash  # the drift the issue describes

    rerun = promote(src, config, run, "dev")

    assert rerun.ok and rerun.outcomes[0].status == "unchanged"
    assert "baseline baselines/dev/a/golden.json repaired" in rerun.render()
    assert store.get_bytes(baseline_key("dev", "a", "golden")) == \
        store.get_bytes(content_record_key("a", "golden", run.content_hash))
