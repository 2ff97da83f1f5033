"""The eval stage: one branch (one artifact × dataset), its result and its reports."""

from __future__ import annotations

import sys
from pathlib import Path

from workflows.stage_bodies.common import (
    BRANCH_FILE,
    EXIT_FAILED,
    EXIT_TRANSIENT,
    TRANSIENT_ERRORS,
    load_config,
    repo_root,
    run_id,
    save,
    truthy,
)


def eval_branch(item: str, target_environment: str, no_cache: str, result: Path, reports: Path) -> None:
    """Run one eval branch (one artifact × dataset) and write its BranchResult as ``result``.

    Exits 1 when the branch did not pass, so the fan-out fails and promote never runs;
    exits 75 on a transient error so ``retryStrategy`` retries it.
    """
    from steps.contracts import EvalItem, to_wire, wire_result
    from steps.stores.store import run_key

    root = repo_root()
    config = load_config(root)
    parsed = EvalItem.model_validate_json(item)
    reports.mkdir(parents=True, exist_ok=True)
    try:
        from steps.eval import run_branch
        from steps.stores.s3store import open_store

        outcome = run_branch(parsed, repo_root=root, run_id=run_id(),
                             target_env=target_environment or None, config=config,
                             store=open_store(config.store), work_dir=reports, no_cache=truthy(no_cache))
    except TRANSIENT_ERRORS as exc:
        print(f"eval: transient error, will be retried: {exc}", file=sys.stderr)
        sys.exit(EXIT_TRANSIENT)
    save(config, run_key(run_id(), parsed.artifact_id, parsed.dataset, BRANCH_FILE),
         outcome.model_dump(mode="json"))
    result.write_text(to_wire(wire_result(outcome)))
    print(f"eval: {parsed.artifact_id} × {parsed.dataset}: {outcome.status}"
          + (f" (pass rate {outcome.pass_rate:.2f})" if outcome.pass_rate is not None else ""))
    for reason in outcome.reasons:
        print(f"  - {reason}")
    if outcome.status == "error" and outcome.retryable:
        sys.exit(EXIT_TRANSIENT)  # e.g. the store was unreachable: worth another attempt (retryStrategy)
    if outcome.status != "passed":
        sys.exit(EXIT_FAILED)
