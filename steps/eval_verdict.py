"""Judging a measured item and writing what a branch leaves in the store.

Per item, under ``runs/{run}/{artifact}/{dataset}/``: ``result.json`` (the
EvalResult), promptfoo's ``results.json``, ``report.html`` and ``junit.xml``,
``diff.md``/``diff.html`` against the target environment's baseline, then the
signed ``record.json`` promote decides on, and last ``branch.json`` (the
BranchResult the run summary reads). A passing, freshly measured item is also
saved to the eval cache.

The invariant every reader relies on: an object that says "this is complete" is written only
after every object it vouches for, so nothing half-written is ever taken as done.

* ``cache/eval/…/{key}/result.json`` is a cache entry's marker: ``eval_cache.lookup`` reads it
  first, and without it the entry is a miss. ``eval_cache.save`` writes it after the entry's
  other files, and ``finish`` saves the entry only after every run file of the item is written.
* ``record.json`` is the item's marker: promote's ``gather`` (steps/promotion/candidates.py)
  decides on it, and a retried shard's ``stored_final`` skips an item whose record is final.
  ``seal`` writes it only after ``finish`` returned, that is after the item's run files
  (``report_keys``), the shard report its ``report.html`` links to and its cache entry were
  written. When any of those writes fails (after S3Store's own retries), ``finish`` raises
  StoreError and the record written is a retryable error (or nothing at all, when the store
  is away): never a final verdict.
* ``branch.json`` (what the summary reads) comes after the record.

Items are written side by side on S3 (``steps.stores.store.each_item``), but one item's writes
are always made by one job, one after another in the order above: the invariant holds per item
whatever the other items are doing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from steps import eval_cache
from steps.contracts import BRANCH_FILE, BranchResult, EvalItem
from steps.eval_results import EvalResult
from steps.eval_spec import BranchError, Prepared
from steps.gates import Verdict, judge
from steps.records import EvalRecord, RecordError, put_signed, read_record, record_key
from steps.reports import diff_html, diff_markdown
from steps.stores.store import ArtifactStore, StoreError, baseline_key, put_json, run_key

log = logging.getLogger(__name__)

# A provider that could not be reached (or said "try later"): what promptfoo and Node's fetch report
# then. A branch whose every error is one of these is retried (exit 75); a wrong answer never is.
NETWORK_ERROR = re.compile(r"ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|"
                           r"socket hang up|fetch failed|network error|timed out|"
                           r"\b(?:status|HTTP|code)[: ]*(?:429|502|503|504)\b", re.IGNORECASE)


@dataclass
class Branch:
    """What one item has left behind so far (for its BranchResult and signed record)."""

    item: EvalItem
    report_keys: list[str] = field(default_factory=list)
    result: EvalResult | None = None

    def put(self, store: ArtifactStore, run_id: str, name: str, data: bytes, ctype: str) -> None:
        """Store ``data`` as this item's file ``name`` of run ``run_id`` and remember its key."""
        key = run_key(run_id, self.item.artifact_id, self.item.dataset, name)
        store.put_bytes(key, data, ctype)
        self.report_keys.append(key)


def branch_result(item: EvalItem, status: str, **kw: Any) -> BranchResult:
    """Return the BranchResult of ``item`` with ``status`` and the given fields."""
    return BranchResult(artifact_id=item.artifact_id, artifact_type=item.artifact_type, path=item.path,
                        dataset=item.dataset, content_hash=item.content_hash, status=status,  # type: ignore[arg-type]
                        **kw)


def store_error(item: EvalItem, store: ArtifactStore, exc: StoreError, b: Branch) -> BranchResult:
    """Return the retryable error of an item whose store reads or writes failed."""
    return branch_result(item, "error", reasons=[f"artifact store ({store.describe()}): {exc}"],
                         report_keys=b.report_keys, retryable=True)


def finish(prep: Prepared, b: Branch, result: EvalResult, files: dict[str, bytes], *, cached: bool,
           store: ArtifactStore, run_id: str, target_env: str | None, key: bytes) -> BranchResult:
    """Judge ``result`` against the thresholds and the baseline, write the item's files; return its verdict.

    Raises BranchError (a bad baseline) or StoreError.
    """
    item = prep.item
    b.result = result
    env = target_env or "dev"
    base_key = baseline_key(env, prep.baseline_id, prep.baseline_dataset)
    try:  # the baseline is the signed eval record promote keeps for what is live in env
        stored = read_record(store, base_key, key)
    except RecordError as exc:
        raise BranchError(f"baseline for {env}: {exc}") from exc
    baseline = stored[0].result if stored is not None else None
    if prep.spec.judged_against is not None:
        result.judged_against = {"baseline": base_key,
                                 "content_hash": baseline.content_hash if baseline else None}
    verdict: Verdict = judge(result, prep.thresholds, baseline)
    errors = result.errors
    status = "error" if errors else ("passed" if verdict.passed else "failed")
    reasons = [*errors, *verdict.reasons] if errors else verdict.reasons
    files = {**files, "result.json": result.model_dump_json(indent=2).encode()}
    for name, ctype in (("result.json", "application/json"), ("results.json", "application/json"),
                        ("report.html", "text/html"), ("junit.xml", "application/xml")):
        if name in files:
            b.put(store, run_id, name, files[name], ctype)
    b.put(store, run_id, "diff.md", diff_markdown(result, baseline, verdict, status).encode(), "text/markdown")
    b.put(store, run_id, "diff.html", diff_html(result, baseline, verdict, status).encode(), "text/html")
    if status == "passed" and not cached:
        eval_cache.save(store, item.artifact_id, item.dataset, prep.cache_key, files)
    log.info("eval %s/%s: %s", item.artifact_id, item.dataset, status)
    retryable = bool(errors) and all(NETWORK_ERROR.search(e) for e in errors)
    return branch_result(item, status, pass_rate=verdict.pass_rate, metric_scores=verdict.metric_scores,
                         retryable=retryable, tests_total=verdict.tests_total, tests_passed=verdict.tests_passed,
                         baseline_pass_rate=verdict.baseline_pass_rate, reasons=reasons, cached=cached,
                         runs_total=sum(len(t.runs) for t in result.tests), authored_runs=result.authored_runs,
                         report_keys=b.report_keys)


def seal(out: BranchResult, b: Branch, *, store: ArtifactStore, run_id: str, key: bytes,
         branch_file: bool) -> BranchResult:
    """Write the item's signed record (and ``branch.json`` when ``branch_file``); return its final verdict.

    The record comes first: promote decides on it. A store failure makes the
    item a retryable error (a retry finds no final record and runs it again, or
    finds it and only rewrites ``branch.json``).
    """
    item = b.item
    try:
        put_signed(store, record_key(run_id, item.artifact_id, item.dataset),
                   EvalRecord(run_id=run_id, branch=out, result=b.result), key)
        if branch_file:
            write_branch_file(store, run_id, out)
    except StoreError as exc:
        return store_error(item, store, exc, b)
    return out


def write_branch_file(store: ArtifactStore, run_id: str, out: BranchResult) -> None:
    """Store ``out`` as the item's ``branch.json`` (what the run summary reads). Raises StoreError."""
    put_json(store, run_key(run_id, out.artifact_id, out.dataset, BRANCH_FILE), out.model_dump(mode="json"))


def stored_final(store: ArtifactStore, run_id: str, item: EvalItem, key: bytes) -> BranchResult | None:
    """Return the verdict this run already signed for ``item`` when it is final, else None.

    Final: the record is intact, of the same content, and not a retryable error
    (those are what a retry is for). An unreadable record is not final: the
    item runs again and overwrites it. Raises StoreError.
    """
    try:
        got = read_record(store, record_key(run_id, item.artifact_id, item.dataset), key)
    except RecordError as exc:
        log.warning("re-running %s/%s: %s", item.artifact_id, item.dataset, exc)
        return None
    if got is None:
        return None
    branch = got[0].branch
    if got[0].run_id != run_id or branch.content_hash != item.content_hash:
        return None
    if branch.status == "error" and branch.retryable:
        return None
    return branch
