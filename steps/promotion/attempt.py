"""One push attempt of a promotion: the gates that read the GitOps tree, then the commits.

Re-run from scratch on every attempt (``publish`` resets onto the newest remote head),
so the gates always judge what the push would land on:

``thresholds``    steps/gates.py ``judge`` (the one gate implementation eval also uses) with
                  the environment's thresholds, against the record of the content live there;
``order``         the previous environment of the chain holds the same content hash;
``newer-source``  the environment holds no newer source revision, and no rollback pinned it
                  at or after this one.

Before returning "push", the signed records of what is about to go live are stored by
content hash (steps/promotion/baselines.py), so git never points at content without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from config.pipeline import PromptPipelineConfig
from steps.branch_gates import gated_by
from steps.contracts import BranchResult
from steps.gates import judge
from steps.gitops.configmaps import ArtifactConfigMap
from steps.gitops.gitops import Clone
from steps.gitops.layout import EnvironmentEdit, one_line, read_environment, unified_diff
from steps.promotion.baselines import live_datasets, write_content_records
from steps.promotion.candidates import Candidate
from steps.promotion.report import ArtifactOutcome
from steps.promotion.source import Source, when
from steps.records import EvalRecord, RecordError, content_record_key, read_record
from steps.stores.store import ArtifactStore

GIT_GATES = ("thresholds", "order", "newer-source")


def eval_summary(results: list[BranchResult], run_id: str) -> dict[str, Any]:
    """Return the short eval summary stored in the ConfigMap and the commit message."""
    return {"run": run_id, "datasets": {
        r.dataset: {"pass_rate": None if r.pass_rate is None else round(r.pass_rate, 4),
                    "passed": r.tests_passed, "total": r.tests_total,
                    **({"scores": {k: round(v, 4) for k, v in sorted(r.metric_scores.items())}}
                       if r.metric_scores else {})}
        for r in sorted(results, key=lambda r: r.dataset)}}


def commit_message(cm: ArtifactConfigMap, env: str, run_id: str, run_link: str | None) -> str:
    """Return the structured commit message: a subject line then ``Key: value`` trailers."""
    trailers = [("Artifact", cm.artifact_id), ("Artifact-Type", cm.artifact_type), ("Version", cm.version),
                ("Content-Hash", cm.content_hash), ("Environment", env),
                ("Source-Revision", cm.source_revision or "unknown"),
                ("Eval-Summary", json.dumps(cm.eval_summary, sort_keys=True, separators=(",", ":"))),
                ("Run-Id", run_id)]
    if run_link:
        trailers.append(("Run-Link", run_link))
    subject = f"promote({env}): {cm.artifact_id} {cm.version} {cm.content_hash[:15]}"
    return one_line(subject) + "\n\n" + "\n".join(f"{k}: {one_line(v)}" for k, v in trailers) + "\n"


@dataclass
class Attempt:
    """A promotion's re-appliable change (``apply`` is handed to ``gitops.publish``)."""

    cands: dict[str, Candidate]
    env: str
    run_id: str
    run_link: str | None
    config: PromptPipelineConfig
    source: Source
    dry_run: bool
    store: ArtifactStore
    key: bytes
    live: dict[str, ArtifactConfigMap] = field(default_factory=dict)
    written: dict[str, ArtifactConfigMap] = field(default_factory=dict)
    _baselines: dict[tuple[str, str, str], EvalRecord | str | None] = field(default_factory=dict)

    def _baseline(self, aid: str, ds: str, live: ArtifactConfigMap) -> EvalRecord | str | None:
        """Return the record of the live content for (aid, ds), None when there is none to compare
        with (a new dataset), or a refusal reason. Raises StoreError."""
        k = (aid, ds, live.content_hash)
        if k not in self._baselines:
            name = content_record_key(*k)
            try:
                got = read_record(self.store, name, self.key)
            except RecordError as exc:
                self._baselines[k] = f"the {self.env} baseline {exc}"
            else:
                if got is not None:
                    self._baselines[k] = got[0]
                elif ds in live_datasets(live):
                    self._baselines[k] = (f"no signed eval record of the content live in {self.env} "
                                          f"({live.content_hash[:15]}, {name}); the regression gate cannot "
                                          "be judged")
                else:
                    self._baselines[k] = None
        return self._baselines[k]

    def _thresholds(self, c: Candidate, current: ArtifactConfigMap | None) -> None:
        for rec in c.records:
            if rec.result is None:
                continue  # already refused by the results gate (candidates.py): nothing was measured
            gated = gated_by(rec.branch.artifact_type, rec.branch.artifact_id, rec.branch.dataset)
            th = self.config.for_artifact(gated).thresholds_for(self.env)
            base = self._baseline(rec.branch.artifact_id, rec.branch.dataset, current) if current else None
            if isinstance(base, str):
                c.refuse("thresholds", f"{rec.branch.artifact_id}/{rec.branch.dataset}: {base}")
                continue
            verdict = judge(rec.result, th, base.result if base is not None else None)
            for reason in verdict.reasons:
                c.refuse("thresholds", f"{rec.branch.artifact_id}/{rec.branch.dataset}: {reason} "
                         f"(required for {self.env})")

    def _configmap(self, c: Candidate) -> ArtifactConfigMap:
        o = c.outcome
        return ArtifactConfigMap(
            artifact_id=o.artifact_id, artifact_type=o.artifact_type, file_name=o.path,
            content=c.raw.decode("utf-8", errors="replace"), version=o.version, content_hash=o.content_hash,
            source_revision=self.source.revision, source_timestamp=self.source.timestamp,
            eval_summary=eval_summary([r.branch for r in c.records], self.run_id),
            namespace=self.config.gitops.namespace)

    def _order(self, c: Candidate, cm: ArtifactConfigMap, prev_env: str | None,
               prev: dict[str, ArtifactConfigMap], current: ArtifactConfigMap | None) -> None:
        o = c.outcome
        if prev_env is not None:
            held = prev.get(o.artifact_id)
            if held is None or held.content_hash != o.content_hash:
                now = f"it holds {held.content_hash[:15]}" if held else "it does not hold the artifact"
                c.refuse("order", f"{o.artifact_id} {o.content_hash[:15]} must be live in {prev_env} before "
                         f"{self.env}, but {now}")
        if current is None:
            return
        mine = f"this run's {cm.source_revision[:12]} ({when(cm.source_timestamp)})"
        if current.source_key > cm.source_key:
            c.refuse("newer-source", f"{self.env} already holds {o.artifact_id} from source revision "
                     f"{current.source_revision[:12] or '?'} ({when(current.source_timestamp)}), newer than "
                     f"{mine}; the newer source revision wins — use `rollback` to restore older content")
        elif current.pinned_revision and current.floor >= cm.source_key:
            c.refuse("newer-source", f"{o.artifact_id} was rolled back in {self.env} from source revision "
                     f"{current.pinned_revision[:12]} ({when(current.pinned_timestamp)}); only a newer source "
                     f"revision may replace it, and {mine} is not")

    def apply(self, clone: Clone) -> bool:
        """Re-check the git-dependent gates on this head and commit; return True when there is a push."""
        self.live = read_environment(clone, self.config, self.env)
        prev_env = self.config.promotion.previous(self.env)
        prev = read_environment(clone, self.config, prev_env) if prev_env else {}
        planned: list[tuple[Candidate, ArtifactConfigMap]] = []
        self.written = {}
        for c in self.cands.values():
            o = c.outcome
            o.refusals = [r for r in o.refusals if r.gate not in GIT_GATES]
            o.commit, o.diff = None, ""
            current = self.live.get(o.artifact_id)
            if current is not None and current.content_hash == o.content_hash:
                o.status = "unchanged"  # already live: idempotent, whatever the chain looks like now
                continue
            cm = self._configmap(c)
            self._thresholds(c, current)
            self._order(c, cm, prev_env, prev, current)
            planned.append((c, cm))
        if any(c.outcome.refusals for c in self.cands.values()):
            return False
        edit = EnvironmentEdit(clone, self.config, self.env)
        changes: list[tuple[dict[str, bytes], str]] = []
        committed: list[ArtifactOutcome] = []
        for c, cm in planned:
            o = c.outcome
            changed = edit.put(cm.file, cm.render())
            if self.dry_run:
                o.status, o.diff = "would-promote", unified_diff(changed)
                continue
            o.status = "promoted"
            self.written[o.artifact_id] = cm
            if changed:  # nothing changed: no commit (as `git commit` would refuse an empty one)
                changes.append(({rel: new.encode() for rel, _, new in changed},
                                commit_message(cm, self.env, self.run_id, self.run_link)))
                committed.append(o)
        for o, sha in zip(committed, clone.commit_series(changes), strict=True):  # one commit per artifact
            o.commit = sha
        if planned and not self.dry_run:  # before the push: git must never point at content without a record
            write_content_records(self.store, {(c.outcome.artifact_id, ds, c.outcome.content_hash): data
                                               for c, _ in planned for ds, data in c.signed.items()})
        return bool(planned) and not self.dry_run
