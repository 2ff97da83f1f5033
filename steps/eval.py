"""The eval stage: items (artifact × dataset) run with promptfoo and judged by the gates.

Three entry points, none of which raises for a quality or tool problem:

* ``settle_cached`` (plan time): every item whose measurement is in the eval
  cache is judged and written right there; an item that cannot even be set up
  is an error right there; the rest are returned with their weight, to be packed
  into shards;
* ``run_shard`` (one eval task): the shard's items that have no final signed
  record for this run yet are measured and judged; the others' stored verdicts
  are returned (a retried shard does not re-run them);
* ``run_branch``: one item, cache included (the original one-branch-per-item path).

A verdict's status is ``passed`` (the only status that lets promote run),
``failed`` (a gate was not met) or ``error`` (promptfoo crashed, wrote no or
non-JSON results, timed out, ran zero tests, a provider errored, a recording is
missing, the store failed...). Fail closed: anything unexpected is an error.
Modules: ``eval_spec`` (what an item runs), ``eval_run`` (measuring it),
``eval_verdict`` (judging it and writing its files).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from config.pipeline import PromptPipelineConfig
from steps.contracts import BranchResult, EvalItem, Shard
from steps.eval_batch import Outcome, Part, measure_batch, shard_label
from steps.eval_results import EvalResult
from steps.eval_run import cached, measure
from steps.eval_spec import (
    BranchError,
    Prepared,
    TransientBranchError,
    load_tests,
    prepare,
    prepare_tests,
    spec_for,
)
from steps.eval_split import report_stub, shard_report_key
from steps.eval_verdict import (
    NETWORK_ERROR,
    Branch,
    branch_result,
    finish,
    seal,
    store_error,
    stored_final,
    write_branch_file,
)
from steps.signing import SignatureError, signing_key
from steps.stores.store import ArtifactStore, StoreError, each_item

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["NETWORK_ERROR", "BranchError", "Settled", "TransientBranchError", "load_tests", "prepare_tests",
           "run_branch", "run_shard", "settle_cached", "spec_for", "write_measured"]


@dataclass
class Settled:
    """What plan learns from the cache: verdicts already final, and the items still to run."""

    results: list[BranchResult] = field(default_factory=list)  # cache hits and items that cannot be set up
    pending: list[tuple[EvalItem, int]] = field(default_factory=list)  # (item, test runs) to pack into shards


@dataclass
class Hit:
    """An item whose measurement is in the eval cache: its prepared run and the cached (result, files)."""

    prep: Prepared
    found: tuple[EvalResult, dict[str, bytes]]


def _guarded(item: EvalItem, b: Branch, store: ArtifactStore, body: Callable[[], T]) -> T | BranchResult:
    """Return ``body()``, or the error verdict of whatever it raised (fail closed, with the reason)."""
    try:
        return body()
    except BranchError as exc:
        return branch_result(item, "error", reasons=[str(exc)], report_keys=b.report_keys,
                             retryable=isinstance(exc, TransientBranchError))
    except StoreError as exc:
        return store_error(item, store, exc, b)
    except Exception as exc:  # fail closed: a crash in this stage must block promotion, with its reason
        log.exception("eval of %s/%s crashed", item.artifact_id, item.dataset)
        return branch_result(item, "error", reasons=[f"eval stage crashed: {type(exc).__name__}: {exc}"],
                             report_keys=b.report_keys)


def _signing_key(repo_root: Path) -> bytes | str:
    """Return the key eval signs records with, or the reason it cannot sign."""
    try:
        return signing_key(repo_root, create=True)
    except SignatureError as exc:
        return f"cannot sign the eval record: {exc}"


def run_branch(item: EvalItem, *, repo_root: Path, run_id: str, target_env: str | None,
               config: PromptPipelineConfig, store: ArtifactStore, work_dir: Path,
               no_cache: bool = False, branch_file: bool = False) -> BranchResult:
    """Evaluate one (artifact, dataset) and return its verdict; never raises for quality or tool failures.

    Writes ``result.json`` (the measured EvalResult), promptfoo's ``results.json``,
    ``report.html`` and ``junit.xml``, ``diff.md``/``diff.html`` against the baseline of
    ``target_env`` (``dev`` when None), and last the signed ``record.json`` (steps/records.py)
    that promote decides on, to ``run_key(run_id, …)``. A store failure makes the
    branch a retryable error (nothing signed is left half-written). ``branch.json`` is
    written last when ``branch_file`` (otherwise the caller writes it).
    """
    key = _signing_key(repo_root)
    if isinstance(key, str):
        return branch_result(item, "error", reasons=[key])
    b = Branch(item)

    def body() -> BranchResult:
        prep = prepare(item, repo_root=repo_root, config=config, target_env=target_env, work_dir=work_dir)
        hit = cached(prep, store, no_cache)
        result, files = hit if hit is not None else measure(prep, work_dir, no_cache)
        return finish(prep, b, result, files, cached=hit is not None, store=store, run_id=run_id,
                      target_env=target_env, key=key)

    return seal(_guarded(item, b, store, body), b, store=store, run_id=run_id, key=key, branch_file=branch_file)


def settle_cached(items: list[EvalItem], *, repo_root: Path, run_id: str, target_env: str | None,
                  config: PromptPipelineConfig, store: ArtifactStore, no_cache: bool = False) -> Settled:
    """Return the items settled at plan time (cache hits, items that cannot be set up) and the rest, weighed.

    A cache hit is re-judged against today's thresholds and baseline and leaves
    everything a cached branch leaves (reports, diffs, signed record, ``branch.json``);
    so does an item that cannot be prepared (status ``error``: promote refuses).
    A pending item's weight is its test runs (tests × repeats). The settled items are written
    side by side (``each_item``), each item's own writes in their order, as ``write_measured``'s.
    """
    settled = Settled()
    key = _signing_key(repo_root)
    if isinstance(key, str):
        settled.results = [branch_result(item, "error", reasons=[key]) for item in items]
        return settled
    jobs: list[Callable[[], BranchResult]] = []  # one per settled item: its writes (each_item)

    def written(b: Branch, out: BranchResult | Hit) -> BranchResult:
        """Return the item's final verdict once its files (a hit's), record and ``branch.json`` are written."""
        if isinstance(out, Hit):
            out = _guarded(b.item, b, store, functools.partial(
                finish, out.prep, b, *out.found, cached=True, store=store, run_id=run_id, target_env=target_env,
                key=key))
        return seal(out, b, store=store, run_id=run_id, key=key, branch_file=True)

    with tempfile.TemporaryDirectory(prefix="promptci-plan-") as tmp:
        for item in items:
            b = Branch(item)

            def body(item: EvalItem = item) -> Hit | int:
                # The work dir would hold only what a cache miss builds (a RAG index): nothing is built here.
                prep = prepare(item, repo_root=repo_root, config=config, target_env=target_env,
                               work_dir=Path(tmp) / "unused")
                hit = cached(prep, store, no_cache)
                return prep.runs if hit is None else Hit(prep, hit)

            out = _guarded(item, b, store, body)
            if isinstance(out, int):
                settled.pending.append((item, out))
            else:
                jobs.append(functools.partial(written, b, out))
        settled.results = each_item(store, jobs)
    return settled


def _measure(parts: list[Part], work_dir: Path, no_cache: bool) -> tuple[list[Outcome], bytes | None]:
    """Return ``measure_batch``'s outcomes and shard report; a crash of it is every part's error (fail
    closed), never raised."""
    if not parts:
        return [], None
    try:
        return measure_batch(parts, work_dir, no_cache)
    except Exception as exc:
        log.exception("the shard's promptfoo run crashed")
        return [BranchError(f"eval stage crashed: {type(exc).__name__}: {exc}") for _ in parts], None


@dataclass
class _Final:
    """A shard item's verdict that is already signed and written (stored earlier, or a cache hit)."""

    result: BranchResult


def _item_dir(work_dir: Path, item: EvalItem) -> Path:
    """Return where a shard item's own files go under the shard's ``work_dir``."""
    return work_dir / item.artifact_id / item.dataset


def run_shard(shard: Shard, *, repo_root: Path, run_id: str, target_env: str | None,
              config: PromptPipelineConfig, store: ArtifactStore, work_dir: Path,
              no_cache: bool = False) -> list[BranchResult]:
    """Return the verdicts of ``shard``'s items, in its order; never raises for quality or tool problems.

    Items with a final signed record of this run (a retried shard) are returned as
    stored (their ``branch.json`` rewritten), never re-run. An item that cannot be
    prepared is an error on its own; every other item is measured by ONE promptfoo
    process (``steps.eval_batch``) and judged on its own, leaving what
    ``run_branch`` leaves plus its ``branch.json``. promptfoo's own files are in
    ``work_dir``; each item's share of them in ``work_dir/<artifact>/<dataset>``.
    """
    key = _signing_key(repo_root)
    if isinstance(key, str):
        return [branch_result(item, "error", reasons=[key]) for item in shard.items]
    done: dict[int, BranchResult] = {}
    parts: list[tuple[int, Part, Branch]] = []
    for pos, item in enumerate(shard.items):
        b = Branch(item)

        def ready(item: EvalItem = item, b: Branch = b) -> Prepared | _Final:
            stored = stored_final(store, run_id, item, key)
            if stored is not None:
                write_branch_file(store, run_id, stored)
                return _Final(stored)
            prep = prepare(item, repo_root=repo_root, config=config, target_env=target_env,
                           work_dir=_item_dir(work_dir, item))
            hit = cached(prep, store, no_cache)
            if hit is None:
                return prep
            return _Final(seal(finish(prep, b, hit[0], hit[1], cached=True, store=store, run_id=run_id,
                                      target_env=target_env, key=key), b, store=store, run_id=run_id, key=key,
                               branch_file=True))

        got = _guarded(item, b, store, ready)
        if isinstance(got, Prepared):
            parts.append((pos, Part(got, shard_label(len(parts), got), _item_dir(work_dir, item)), b))
        elif isinstance(got, _Final):
            done[pos] = got.result
        else:  # it cannot be prepared: an error of its own, the others still run
            done[pos] = seal(got, b, store=store, run_id=run_id, key=key, branch_file=True)
    measured, report = _measure([p for _, p, _ in parts], work_dir, no_cache)
    verdicts = write_measured(shard.index, [(p, b) for _, p, b in parts], measured, report, store=store,
                              run_id=run_id, target_env=target_env, key=key)
    for (pos, _, _), verdict in zip(parts, verdicts, strict=True):
        done[pos] = verdict
    return [done[pos] for pos in range(len(shard.items))]


def write_measured(index: int, parts: list[tuple[Part, Branch]], measured: list[Outcome], report: bytes | None, *,
                   store: ArtifactStore, run_id: str, target_env: str | None, key: bytes) -> list[BranchResult]:
    """Return the verdicts of shard ``index``'s measured items, in ``parts``' order, once each is written.

    The shard's store writes: the shard report (``report``, once), then per item its files,
    cache entry, signed record and ``branch.json``, in that order (steps/eval_verdict.py says
    why). Up to ``store.writers`` items are written at once (``each_item``): on S3 the writes
    are round trips, and a shard of 100 items makes ~1,200 of them. Never raises for a store
    failure: the item is a retryable error, as ``seal`` makes it.
    """
    stored: list[str] = []  # the shard report's key, once it is in the store
    lock = threading.Lock()  # items are written side by side: one of them stores the report

    def shard_report(report: bytes) -> str:
        """Return the key of the shard's report, storing it the first time (raises StoreError).

        Every item's ``report.html`` links to it, so an item waits here until it is stored.
        """
        with lock:
            if not stored:
                key_name = shard_report_key(run_id, index, report)
                store.put_bytes(key_name, report, "text/html")
                stored.append(key_name)
            return stored[0]

    def written(part: Part, b: Branch, outcome: Outcome) -> BranchResult:
        """Return the item's final verdict once its files, record and ``branch.json`` are written (one
        item's job)."""

        def judge() -> BranchResult:
            if isinstance(outcome, BranchError):
                raise outcome
            files = outcome[1]
            if report is not None:
                files = {**files, "report.html": report_stub(shard_report(report), part, len(parts))}
            return finish(part.prep, b, outcome[0], files, cached=False, store=store, run_id=run_id,
                          target_env=target_env, key=key)

        return seal(_guarded(part.prep.item, b, store, judge), b, store=store, run_id=run_id, key=key,
                    branch_file=True)

    return each_item(store, [functools.partial(written, part, b, outcome)
                             for (part, b), outcome in zip(parts, measured, strict=True)])
