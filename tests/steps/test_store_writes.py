"""A shard's store writes, items side by side (``each_item``), against a real S3 server (moto over HTTP).

The shard is measured ONCE by real promptfoo (recorded provider); its outcomes are then written by
``steps.eval.write_measured`` (what ``run_shard`` calls) to stores that differ only in how many items
they write at once, behind tests/faults/proxy.py. A promptfoo run's own outputs differ run to run
(timestamps), so measuring once is what makes a byte-for-byte comparison possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from config.pipeline import load_pipeline_config
from steps.contracts import BranchResult, EvalItem
from steps.eval import settle_cached, write_measured
from steps.eval_batch import Outcome, Part, measure_batch, shard_label
from steps.eval_spec import prepare
from steps.eval_verdict import Branch, stored_final
from steps.exit_codes import ExitCode, outcome_code
from steps.records import read_record, record_key
from steps.run_plan import plan_run
from steps.signing import signing_key
from steps.stores.s3store import S3Store
from steps.stores.store import ArtifactStore, LocalStore
from tests.faults.proxy import FaultProxy
from tests.steps.evalkit import NAMES, config, make_repo, record
from workflows.stage_bodies.evaluate import eval_shard

pytestmark = pytest.mark.slow
GOOD = "Hello {name}, nice to meet you!"
ITEMS = 4


@dataclass
class Measured:
    """A shard measured once: its items, parts, outcomes and report, and the key records are signed with."""

    repo: Path
    items: list[EvalItem]
    parts: list[Part]
    measured: list[Outcome]
    report: bytes | None
    key: bytes


@pytest.fixture
def shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_creds: None) -> Measured:
    for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD"):
        monkeypatch.delenv(var, raising=False)
    repo, work = tmp_path / "repo", tmp_path / "work"
    items = []
    for i in range(ITEMS):
        items.append(make_repo(repo, prompt_id=f"p{i}"))
        for n in NAMES:
            record(repo, n, GOOD.format(name=n), prompt_id=f"p{i}")
    parts = []
    for k, item in enumerate(items):
        item_dir = work / item.artifact_id / item.dataset
        prep = prepare(item, repo_root=repo, config=config(), target_env=None, work_dir=item_dir)
        parts.append(Part(prep, shard_label(k, prep), item_dir))
    measured, report = measure_batch(parts, work, no_cache=False)
    assert report is not None and all(not isinstance(o, Exception) for o in measured), measured
    return Measured(repo, items, parts, measured, report, signing_key(repo, create=True))


def write(m: Measured, store: ArtifactStore, run_id: str = "r") -> list[BranchResult]:
    """Return the verdicts of writing the measured shard to ``store`` (fresh branches, as run_shard makes)."""
    return write_measured(0, [(p, Branch(p.prep.item)) for p in m.parts], m.measured, m.report, store=store,
                          run_id=run_id, target_env=None, key=m.key)


def contents(store: ArtifactStore) -> dict[str, bytes | None]:
    """Return every object of ``store`` (under its prefix) by key."""
    return {k: store.get_bytes(k) for k in store.list_keys("")}


def s3(proxy: FaultProxy, prefix: str, writers: int) -> S3Store:
    """Return a store behind ``proxy`` under ``prefix`` (moto keeps one bucket per process: each test has its
    own prefixes) that writes ``writers`` items at once."""
    return S3Store("promptci", prefix, endpoint_url=proxy.url, region="us-east-1", attempts=2, writers=writers)


def test_items_written_side_by_side_leave_byte_for_byte_what_one_after_another_leaves(
        shard: Measured, s3_endpoint: str, tmp_path: Path) -> None:
    proxy = FaultProxy(s3_endpoint)
    proxy.delay_s = 0.02  # every request is in flight a while: side-by-side writers overlap there
    try:
        serial, side = s3(proxy, "same/serial", 1), s3(proxy, "same/side", 8)
        got_serial = write(shard, serial)
        serial_peak, proxy.peak_in_flight = proxy.peak_in_flight, 0
        got_side = write(shard, side)
        side_peak = proxy.peak_in_flight
        # plan time: the next run finds every item in the cache and writes it there and then
        settled_serial = settle_cached(shard.items, repo_root=shard.repo, run_id="r2", target_env=None,
                                       config=config(), store=serial)
        settled_side = settle_cached(shard.items, repo_root=shard.repo, run_id="r2", target_env=None,
                                     config=config(), store=side)
        on_s3 = contents(serial), contents(side)
    finally:
        proxy.close()
    local = LocalStore(tmp_path / "local")
    got_local = write(shard, local)

    assert [r.status for r in got_serial] == ["passed"] * ITEMS
    assert got_side == got_serial == got_local
    assert [r.status for r in settled_serial.results] == ["passed"] * ITEMS and not settled_serial.pending
    assert settled_side.results == settled_serial.results
    # per item: 6 run files, 4 cache files, record, branch.json; the shard report once; then the cached run's 8
    assert len(on_s3[0]) == ITEMS * 12 + 1 + ITEMS * 8
    assert on_s3[1] == on_s3[0]
    assert {k: v for k, v in on_s3[0].items() if k.startswith("runs/r/") or k.startswith("cache/")} == contents(local)
    assert serial_peak == 1 < side_peak  # the writes really went out side by side


def test_an_object_that_cannot_be_written_fails_its_item_only_and_leaves_no_completion_marker(
        shard: Measured, s3_endpoint: str) -> None:
    """One item's cache file (its junit.xml) is refused (503 on every attempt). Today's behaviour, kept: that item is a
    retryable error with no final record and no cache marker; the other items are unaffected."""
    proxy = FaultProxy(s3_endpoint)
    proxy.refuse(r"^PUT /promptci/refused/\w+/cache/eval/p1/golden/\w+/junit\.xml")
    try:
        stores = s3(proxy, "refused/serial", 1), s3(proxy, "refused/side", 8)
        results = [write(shard, store) for store in stores]
        keys = [set(store.list_keys("")) for store in stores]
        finals = [[stored_final(store, "r", item, shard.key) for item in shard.items] for store in stores]
        p1_records = [read_record(store, record_key("r", "p1", "golden"), shard.key) for store in stores]
    finally:
        proxy.close()

    assert keys[0] == keys[1]
    for got, final, p1_record in zip(results, finals, p1_records, strict=True):
        assert [r.status for r in got] == ["passed", "error", "passed", "passed"]
        assert got[1].retryable and got[1].reasons[0].startswith("artifact store (s3://promptci/"), got[1].reasons
        assert "cannot write" in got[1].reasons[0] and "junit.xml" in got[1].reasons[0]
        assert final[1] is None and all(f is not None and f.status == "passed" for f in final[::2] + final[3:])
        assert p1_record is not None and p1_record[0].branch.status == "error" and p1_record[0].branch.retryable
        assert outcome_code(ok=all(r.status == "passed" for r in got),
                            transient=any(r.status == "error" and r.retryable for r in got)) == ExitCode.TRANSIENT
    markers = sorted(k.split("/")[2] for k in keys[0] if k.startswith("cache/eval/") and k.endswith("/result.json"))
    assert markers == ["p0", "p2", "p3"]  # p1's entry has files but no marker: a lookup misses it
    assert sorted(k.rsplit("/", 1)[1] for k in keys[0] if k.startswith("cache/eval/p1/")) == [
        "report.html", "results.json"]  # written before the refused one, vouched for by nothing
    assert "runs/r/p1/golden/result.json" in keys[0]  # written before the failure, vouched for by nothing


def test_a_store_that_goes_away_mid_shard_is_transient_and_no_item_is_half_final(
        shard: Measured, s3_endpoint: str) -> None:
    """The store drops every connection from the first record PUT on: the shard exits 75 (retried), and
    every item is either passed with a final record or a retryable error without one."""
    proxy = FaultProxy(s3_endpoint)
    proxy.at(r"^PUT /promptci/away/runs/r/\w+/golden/record\.json", "before", proxy.go_down)
    try:
        store = s3(proxy, "away", 8)
        got = write(shard, store)
        proxy.mode = "up"
        finals = [stored_final(store, "r", item, shard.key) for item in shard.items]
    finally:
        proxy.close()

    assert any(r.status == "error" for r in got)
    for r, final in zip(got, finals, strict=True):
        assert (r.status, final is not None) in (("passed", True), ("error", False)), (r, final)
        if r.status == "error":
            assert r.retryable and r.reasons[0].startswith("artifact store (s3://promptci/away/"), r.reasons
    assert outcome_code(ok=False, transient=any(r.retryable for r in got)) == ExitCode.TRANSIENT


def test_the_eval_stage_exits_75_when_one_items_object_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The real stage body (plan in the store, ShardRef in, exit code out) on S3 with 8 writers: one item's
    record is refused, so that item is a retryable store error and the task exits 75 (Argo retries it)."""
    for var in ("PROMPTCI_PROVIDER", "PROMPTCI_RECORD", "PROMPTCI_RECORDINGS_DIR", "PROMPTCI_PROMPTFOO_CMD",
                "PROMPTCI_STORE_KIND", "PROMPTCI_S3_BUCKET", "PROMPTCI_S3_PREFIX", "PROMPTCI_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    repo = tmp_path / "repo"
    items = [make_repo(repo, prompt_id=f"p{i}") for i in range(3)]
    for i in range(3):
        for n in NAMES:
            record(repo, n, GOOD.format(name=n), prompt_id=f"p{i}")
    proxy = FaultProxy(s3_endpoint)
    try:
        cfg = config().model_dump(mode="json")
        cfg["store"] = {"kind": "s3", "bucket": "promptci", "prefix": "stage", "endpoint_url": proxy.url,
                        "region": "us-east-1"}
        policy = tmp_path / "trusted.yaml"
        policy.write_text(yaml.safe_dump(cfg))
        trusted = load_pipeline_config(policy)
        store = S3Store("promptci", "stage", endpoint_url=proxy.url, region="us-east-1")
        plan = plan_run(items, repo_root=repo, run_id="r1", target_env="dev", dry_run=False, config=trusted,
                        store=store, key=signing_key(repo, create=True))
        assert len(plan.refs) == 1
        monkeypatch.chdir(repo)
        monkeypatch.setenv("PROMPTCI_CONFIG", str(policy))
        monkeypatch.setenv("PROMPTCI_RUN_ID", "r1")
        monkeypatch.setenv("PROMPTCI_S3_ATTEMPTS", "2")
        monkeypatch.setenv("PROMPTCI_S3_WRITERS", "8")
        proxy.refuse(r"^PUT /promptci/stage/runs/r1/p1/golden/record\.json")
        with pytest.raises(SystemExit) as exc:
            eval_shard(shard=plan.refs[0].model_dump_json(), target_environment="dev", no_cache="false",
                       reports=tmp_path / "reports")
        final = [stored_final(store, "r1", item, signing_key(repo)) for item in items]
    finally:
        proxy.close()
    out = capsys.readouterr().out
    assert exc.value.code == ExitCode.TRANSIENT, out
    assert "eval: p0 × golden: passed" in out and "eval: p2 × golden: passed" in out
    assert "eval: p1 × golden: error" in out and "artifact store (s3://promptci/stage/" in out
    assert final[1] is None and final[0] is not None and final[2] is not None
