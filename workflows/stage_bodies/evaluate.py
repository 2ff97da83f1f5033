"""The eval stage: one shard (the items validate packed together), run in one go, with its reports."""

from __future__ import annotations

import sys
from pathlib import Path

from workflows.stage_bodies.common import TRANSIENT_ERRORS, fail, load_config, repo_root, run_id, truthy


def eval_shard(shard: str, target_environment: str, no_cache: str, reports: Path) -> None:
    """Run the items of one shard and print each item's verdict.

    ``shard`` is a ShardRef (index, item and test counts): the items themselves are read from the
    run's signed plan by run id and index, never from a parameter. Exit code (steps/exit_codes.py):
    0 every item passed, 1 an item failed or errored for good (so the fan-out fails and promote never
    runs), 75 when another attempt can help (``retryStrategy``; items with a final record are not
    re-run), 2 when the parameter is not a ShardRef or the store or signing key is not usable.
    """
    from pydantic import ValidationError

    from steps.contracts import ShardRef
    from steps.eval import run_shard
    from steps.exit_codes import ExitCode, outcome_code
    from steps.records import RecordError, read_plan
    from steps.signing import SignatureError, signing_key
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError

    try:
        ref = ShardRef.model_validate_json(shard)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        fail(ExitCode.USAGE, f"eval: shard: not a ShardRef: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    root = repo_root()
    config = load_config(root)
    rid = run_id()
    try:
        key = signing_key(root)
        store = open_store(config.store)
    except (SignatureError, StoreError) as exc:
        fail(ExitCode.USAGE, f"eval: {exc}")
    try:
        planned = read_plan(store, rid, key).shard(ref.index)
    except StoreError as exc:
        fail(ExitCode.TRANSIENT, f"store: cannot read the plan: {exc}")
    except RecordError as exc:
        fail(ExitCode.REJECTED, f"eval: {exc}")
    if (len(planned.items), planned.tests) != (ref.items, ref.tests):
        fail(ExitCode.REJECTED, f"eval: shard {ref.index} of the signed plan has {len(planned.items)} item(s) and "
                                f"{planned.tests} test run(s), the parameter says {ref.items} and {ref.tests}")
    reports.mkdir(parents=True, exist_ok=True)
    try:
        results = run_shard(planned, repo_root=root, run_id=rid, target_env=target_environment or None,
                            config=config, store=store, work_dir=reports, no_cache=truthy(no_cache))
    except TRANSIENT_ERRORS as exc:
        fail(ExitCode.TRANSIENT, f"eval: transient error, will be retried: {exc}")
    for r in results:
        print(f"eval: {r.artifact_id} × {r.dataset}: {r.status}"
              + (f" (pass rate {r.pass_rate:.2f})" if r.pass_rate is not None else "")
              + (" (cached)" if r.cached else ""))
        for reason in r.reasons:
            print(f"  - {reason}")
    code = outcome_code(ok=all(r.status == "passed" for r in results),
                        transient=any(r.status == "error" and r.retryable for r in results))
    print(f"eval: shard {ref.index}: {len(results)} item(s), {sum(r.status == 'passed' for r in results)} passed")
    if code != ExitCode.OK:
        sys.exit(code)
