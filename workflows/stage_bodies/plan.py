"""Planning, the second half of the validate stage: which items run, in which shards, and what promote does.

It runs only when validate found the artifacts valid (validate has read them all already, so a
separate plan task would only cost one more pod start). The plan itself is a plain function,
``steps.run_plan.plan_run``: changed items (``steps.plan.plan``), cache hits settled right here
(they never start an eval task), the rest packed into shards, the plan signed into the store.
This body parses the parameters, writes validate's outputs and picks the exit code.
"""

from __future__ import annotations

from pathlib import Path

from workflows.stage_bodies.common import TRANSIENT_ERRORS, fail, load_config, repo_root, run_id, truthy


def plan(artifact_path: str, artifact_type: str, git_revision: str, base_revision: str, target_environment: str,
         dry_run: str, no_cache: str, shards: Path, count: Path, needs_approval: Path) -> None:
    """Plan the run and write ``shards`` (JSON ShardRefs: the eval fan-out), ``count`` (items promote
    acts on; 0 skips it) and ``needs-approval``.

    Exit 1 when git cannot say what changed, an artifact cannot be read or the target environment is
    not in the chain; 2 when the plan cannot be signed; 75 when the store is away (retried).
    """
    from pydantic import BaseModel

    from config.artifacts import ArtifactType
    from config.yamlio import LoadError
    from steps.contracts import to_wire
    from steps.exit_codes import ExitCode
    from steps.plan import PlanError
    from steps.plan import plan as changed
    from steps.run_plan import plan_run
    from steps.signing import SignatureError, signing_key
    from steps.stores.s3store import open_store
    from steps.stores.store import StoreError

    root = repo_root()
    config = load_config(root)
    try:
        found = changed(artifact_path, ArtifactType(artifact_type), repo_root=root,
                        git_revision=git_revision or None, base_revision=base_revision or None)
    except (PlanError, FileNotFoundError) as exc:
        fail(ExitCode.REJECTED, f"plan: {exc}")
    except LoadError as exc:  # lint reports these too; plan must not guess around them
        fail(ExitCode.REJECTED, *(p.format() for p in exc.problems))
    if target_environment not in config.promotion.chain:
        fail(ExitCode.REJECTED, f"target-environment: '{target_environment}' is not in promotion.chain "
                                f"({', '.join(config.promotion.chain)})")
    try:
        key = signing_key(root, create=True)
        store = open_store(config.store)
    except (SignatureError, StoreError) as exc:
        fail(ExitCode.USAGE, f"plan: cannot sign or store the plan: {exc}")
    try:
        run = plan_run(list(found), repo_root=root, run_id=run_id(), target_env=target_environment,
                       dry_run=truthy(dry_run), config=config, store=store, key=key, no_cache=truthy(no_cache))
    except StoreError as exc:
        fail(ExitCode.TRANSIENT, f"store: cannot write the plan: {exc}")
    except TRANSIENT_ERRORS as exc:
        fail(ExitCode.TRANSIENT, f"plan: transient error, will be retried: {exc}")
    refs: list[BaseModel] = list(run.refs)  # to_wire takes a list of any records
    shards.write_text(to_wire(refs))
    count.write_text(str(run.count))
    needs_approval.write_text("true" if run.needs_approval else "false")
    print("\n".join(run.lines(target_environment)))
