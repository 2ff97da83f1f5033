"""The plan stage: which artifact × dataset pairs to evaluate, and whether promotion needs approval."""

from __future__ import annotations

import sys
from pathlib import Path

from workflows.stage_bodies.common import EXIT_FAILED, load_config, repo_root, save_plan, truthy


def plan(artifact_path: str, artifact_type: str, git_revision: str, base_revision: str,
         target_environment: str, dry_run: str, items: Path, needs_approval: Path, count: Path) -> None:
    """Write the eval fan-out list (``items``: JSON EvalItems), its length (``count``) and
    whether promotion needs approval.

    ``needs-approval`` is ``true`` only when there is something to promote into an environment
    whose gate asks for manual approval (and this is not a dry run).
    """
    from config.artifacts import ArtifactType
    from config.yamlio import LoadError
    from steps.contracts import to_wire
    from steps.plan import PlanError
    from steps.plan import plan as make_plan

    root = repo_root()
    config = load_config(root)
    try:
        found = make_plan(artifact_path, ArtifactType(artifact_type), repo_root=root,
                          git_revision=git_revision or None, base_revision=base_revision or None)
    except (PlanError, FileNotFoundError) as exc:
        print(f"plan: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except LoadError as exc:  # lint reports these too; plan must not guess around them
        for p in exc.problems:
            print(p.format(), file=sys.stderr)
        sys.exit(EXIT_FAILED)
    if target_environment not in config.promotion.chain:
        print(f"target-environment: '{target_environment}' is not in promotion.chain "
              f"({', '.join(config.promotion.chain)})", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    approval = bool(found) and config.promotion.gate(target_environment).manual_approval \
        and not truthy(dry_run)
    save_plan(config, root, list(found))
    items.write_text(to_wire(list(found)))
    needs_approval.write_text("true" if approval else "false")
    count.write_text(str(len(found)))
    for it in found:
        print(f"plan: {it.path} × {it.dataset}")
    print(f"plan: {len(found)} eval branch(es); approval needed: {str(approval).lower()}")
