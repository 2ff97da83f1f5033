"""The promote stage: this run's artifacts into the target environment, all or nothing."""

from __future__ import annotations

import sys

from workflows.stage_bodies.common import EXIT_USAGE, load_config, repo_root, run_id, truthy


def promote(target_environment: str, dry_run: str, approved: str, git_revision: str) -> None:
    """Promote this run's artifacts into ``target-environment`` (all or nothing).

    Reads the run's signed plan and eval records from the store by run id (never from
    parameters). Exit code: 0 promoted, 1 refused, 75 infrastructure failure (retried).
    """
    from config.settings import get_settings
    from steps.promote import promote_run
    from steps.signing import SignatureError, signing_key
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError

    root = repo_root()
    config = load_config(root)
    try:
        key = signing_key(root)
        store = open_store(config.store)
    except (SignatureError, StoreError) as exc:
        print(f"promote: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    report = promote_run(run_id(), env=target_environment, repo_root=root, config=config, store=store, key=key,
                         approved=truthy(approved), dry_run=truthy(dry_run), source_revision=git_revision,
                         run_link=get_settings().run_link)
    print(report.render())
    sys.exit(report.exit_code)
