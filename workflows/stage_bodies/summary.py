"""The summary stage (the exit handler): the run's eval summary, whatever happened."""

from __future__ import annotations

from workflows.stage_bodies.common import repo_root, run_id


def summary() -> None:
    """The exit handler: write the run's eval summary (PR-comment Markdown) to the store and print it.

    It runs whatever happened, so a failed run still explains itself. It reads the plan and
    every branch's full result (with reasons) from the store, not from parameters: a branch
    with no stored result crashed or timed out, and is reported as such.

    It always exits 0: the summary is a report, not a gate. When it cannot be built (the
    store is away after the S3 client's own retries) it prints ``summary: unavailable`` as its
    own status, and a run whose promotion was committed stays green (docs/pipelines.md).
    """
    from pydantic import ValidationError

    from config.policy import PolicyError, load_trusted
    from config.settings import get_settings
    from steps.contracts import BRANCH_FILE, BranchResult, EvalItem
    from steps.records import plan_key
    from steps.reports import write_run_summary
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError, get_json, run_key

    root = repo_root()
    rid = run_id()
    status = get_settings().workflow_status or "Unknown"
    try:
        config = load_trusted(root)[0]
        store = open_store(config.store)
        planned = get_json(store, plan_key(rid))
        if planned is None:
            print(f"summary: run {rid} {status}; no eval was planned (lint or validate did not pass)")
            return
        results = []
        for raw in planned.get("items", []) if isinstance(planned, dict) else []:
            item = EvalItem.model_validate(raw)
            stored = get_json(store, run_key(rid, item.artifact_id, item.dataset, BRANCH_FILE))
            if stored is None:
                results.append(BranchResult(**item.model_dump(), status="error",
                                            reasons=["no result: its eval shard crashed, timed out or never ran"]))
            else:
                results.append(BranchResult.model_validate(stored))
        text = write_run_summary(results, store, rid)
    except (PolicyError, StoreError, ValidationError, ValueError) as exc:
        print(f"summary: unavailable: run {rid} {status}; the summary could not be built: {exc}")
        return
    print(f"summary: run {rid} {status}; written to {store.describe()}/runs/{rid}/summary.md")
    print(text)
