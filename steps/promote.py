"""The promote stage: publish a run's evaluated artifacts to a GitOps repo as ConfigMaps.

Fail closed, all or nothing per run. Promote reads the run's signed plan and eval
records from the store by run id (never a results file); gates, in the order reported:

``results``      every planned branch has a signed, unaltered record of exactly the planned
                 content, and every one passed (steps/promotion/candidates.py);
``content``      the artifact file on disk hashes to what was evaluated;
``source``       the source revision and its committer date come from git; a date more
                 than 5 minutes in the future is refused (steps/promotion/source.py);
``approval``     manual approval where the environment requires it;
``thresholds``, ``order``, ``newer-source``: read the GitOps tree (steps/promotion/attempt.py).

If any artifact is refused, nothing is committed: the others are reported ``blocked``.
Otherwise: content records stored, one commit per changed artifact, one atomic push
(retried on non-fast-forward), then the live baselines, repaired whenever they lag git
(steps/promotion/baselines.py). Exit code: ``PromotionReport.exit_code`` (0, 1, or 75
for an infrastructure failure, which a retry finishes).
"""

from __future__ import annotations

from pathlib import Path

from config.pipeline import PromptPipelineConfig
from steps.gitops.configmaps import LayoutError
from steps.gitops.gitops import GitEnv, GitError, PushRejected, publish, redact
from steps.gitops.layout import author_of, gitops_clone
from steps.promotion.attempt import Attempt, commit_message, eval_summary
from steps.promotion.baselines import reconcile
from steps.promotion.candidates import Candidate, PlanMissing, check_content, gather
from steps.promotion.report import ArtifactOutcome, PromotionReport, Refusal
from steps.promotion.source import SourceError, read_source
from steps.stores.store import ArtifactStore, StoreError


def promote_run(run_id: str, *, env: str, repo_root: Path, config: PromptPipelineConfig, store: ArtifactStore,
                key: bytes, approved: bool = False, dry_run: bool = False, source_revision: str = "",
                run_link: str | None = None, workdir: Path | None = None) -> PromotionReport:
    """Return the PromotionReport of promoting run ``run_id``'s artifacts into ``env``.

    ``key`` verifies the signed records (steps/signing.py). ``source_revision`` is the
    evaluated revision (default HEAD of ``repo_root``); its time is read from git. Never
    raises for a refused gate, a git or a store failure: those are in the report.
    """
    report = PromotionReport(env=env, run_id=run_id, dry_run=dry_run)
    if env not in config.promotion.chain:
        report.errors.append(f"unknown environment '{env}'; the chain is {', '.join(config.promotion.chain)}")
        return report
    try:
        cands = gather(store, run_id, key)
    except PlanMissing as exc:
        report.errors.append(str(exc))
        return report
    except StoreError as exc:
        report.infra.append(f"artifact store: {exc}")
        return report
    report.outcomes = [c.outcome for c in cands.values()]
    if not cands:
        return report
    if any(r.gate == "results" for c in cands.values() for r in c.outcome.refusals):
        return report.block_rest()
    try:
        source = read_source(repo_root, source_revision)
        report.source_revision = source.revision
    except SourceError as exc:
        for c in cands.values():
            c.refuse("source", str(exc))
        return report.block_rest()
    gate = config.promotion.gate(env)
    for c in cands.values():
        check_content(c, repo_root)
        if gate.manual_approval and not approved:
            c.refuse("approval", f"{env} requires manual approval (Argo: the approval step; locally: --approve)")
    state = Attempt(cands, env, run_id, run_link, config, source, dry_run, store, key)
    with GitEnv(author_of(config)) as genv:
        try:
            with gitops_clone(config, repo_root, workdir, genv) as clone:
                report.attempts = publish(clone, config.gitops.max_push_attempts, state.apply)
                report.head = clone.head()
        except LayoutError as exc:  # the environment holds a file promptci cannot read: fail closed, final
            report.errors.append(str(exc))
        except PushRejected as exc:
            report.infra.append(f"push still rejected after {config.gitops.max_push_attempts} attempts (the "
                                f"branch keeps moving): {exc}")
        except (GitError, OSError) as exc:
            report.infra.append(f"GitOps remote: {redact(str(exc))}")
        except StoreError as exc:
            report.infra.append(f"artifact store, before the push (nothing was pushed): {exc}")
    if report.errors or report.infra:
        for o in report.outcomes:
            if o.status in ("promoted", "would-promote"):
                o.status, o.commit = "blocked", None
        return report
    if any(o.refusals for o in report.outcomes):
        return report.block_rest()
    if not dry_run:
        _finish_baselines(report, state, cands)
    return report


def _finish_baselines(report: PromotionReport, state: Attempt, cands: dict[str, Candidate]) -> None:
    """After the push: point each live baseline at the record of what git now holds (and repair lags)."""
    live = {aid: state.written.get(aid) or state.live[aid] for aid, c in cands.items()
            if c.outcome.status in ("promoted", "unchanged")}
    fallback = {(c.outcome.artifact_id, ds, c.outcome.content_hash): data
                for c in cands.values() for ds, data in c.signed.items()}
    try:
        report.baseline_keys, notes = reconcile(state.store, report.env, live, state.key,
                                                just_promoted=state.written, fallback=fallback)
        report.notes += notes
    except StoreError as exc:
        report.infra.append(f"promoted, but the {report.env} baselines were not brought up to date: {exc}; "
                            "a retry (or the next promote) repairs them from the content records")


__all__ = ["ArtifactOutcome", "PromotionReport", "Refusal", "promote_run", "commit_message", "eval_summary"]
