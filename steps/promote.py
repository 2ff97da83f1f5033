"""The promote stage: publish evaluated artifacts to a GitOps repo as ConfigMaps.

Fail closed, all or nothing per run. Gates, in the order they are reported:

``results``     every planned eval branch has a result and every result passed;
``content``     the artifact file on disk hashes to what was evaluated;
``thresholds``  the environment's thresholds (pass rate, metric scores, regression);
``approval``    manual approval where the environment requires it;
``order``       the previous environment in the chain holds the same content hash;
``newer-source`` the environment does not already hold this artifact from a
                newer source revision (the rule that makes concurrent promotions
                of one artifact deterministic, see docs/promote.md).

If any artifact of the run is refused, nothing is committed: the others are
reported as ``blocked``. Otherwise one commit per changed artifact is made on
the newest remote head and all are pushed at once (a push is atomic), retrying
on non-fast-forward. Baselines are written only after the push succeeded.
"""

from __future__ import annotations

import difflib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from config.pipeline import PromptPipelineConfig
from config.yamlio import LoadError, parse_text
from steps.contracts import BranchResult, EvalItem, content_hash
from steps.eval_results import ResultsError, load_result
from steps.gates import type_gate_reasons
from steps.gitops.configmaps import (
    KUSTOMIZATION,
    ArtifactConfigMap,
    LayoutError,
    configmap_name,
    data_key,
    parse_configmap,
    render_kustomization,
)
from steps.gitops.gitops import (
    Author,
    Clone,
    GitEnv,
    GitError,
    PushRejected,
    open_clone,
    publish,
    redact,
    source_info,
)
from steps.stores.store import ArtifactStore, StoreError, baseline_key, get_json, run_key

Status = Literal["promoted", "unchanged", "would-promote", "refused", "blocked"]
OK_STATUSES = ("promoted", "unchanged", "would-promote")
EPS = 1e-9


@dataclass(frozen=True)
class Refusal:
    """One failed gate: which gate and why, in words a reviewer can act on."""

    gate: str
    reason: str


@dataclass
class ArtifactOutcome:
    """What happened to one artifact in one promotion."""

    artifact_id: str
    artifact_type: str
    path: str
    content_hash: str
    version: str = ""
    status: Status = "blocked"
    refusals: list[Refusal] = field(default_factory=list)
    commit: str | None = None
    diff: str = ""
    datasets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data."""
        return {"artifact_id": self.artifact_id, "artifact_type": self.artifact_type, "path": self.path,
                "version": self.version, "content_hash": self.content_hash, "status": self.status,
                "refusals": [{"gate": r.gate, "reason": r.reason} for r in self.refusals],
                "commit": self.commit, "datasets": self.datasets}


@dataclass
class PromotionReport:
    """The result of one promote run. ``ok`` is False whenever anything was refused or failed."""

    env: str
    run_id: str
    dry_run: bool = False
    outcomes: list[ArtifactOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    head: str | None = None
    attempts: int = 0
    baseline_keys: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True only when there was no error and every artifact was promoted, unchanged or would be."""
        return not self.errors and all(o.status in OK_STATUSES for o in self.outcomes)

    @property
    def diff(self) -> str:
        """Return the combined unified diff (dry run: what would be committed)."""
        return "".join(o.diff for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {"env": self.env, "run_id": self.run_id, "dry_run": self.dry_run, "ok": self.ok,
                "head": self.head, "attempts": self.attempts, "errors": self.errors,
                "baseline_keys": self.baseline_keys, "outcomes": [o.as_dict() for o in self.outcomes]}

    def render(self) -> str:
        """Return a human-readable summary for logs (plus the diff on a dry run)."""
        verdict = "OK" if self.ok else "NOT PROMOTED" if not any(
            o.status == "promoted" for o in self.outcomes) else "PROMOTED WITH ERRORS"
        mode = " (dry run)" if self.dry_run else ""
        lines = [f"promote -> {self.env}{mode}, run {self.run_id}: {verdict}"]
        if not self.outcomes:
            lines.append("  nothing to promote (no planned artifacts)")
        for o in self.outcomes:
            where = f"  commit {o.commit[:12]}" if o.commit else ""
            lines.append(f"  {o.status:<13} {o.artifact_id} {o.version or '?'} {o.content_hash[:15]}{where}")
            lines += [f"      [{r.gate}] {r.reason}" for r in o.refusals]
        lines += [f"  error: {e}" for e in self.errors]
        if self.head and not self.dry_run:
            lines.append(f"  gitops head: {self.head}")
        if self.dry_run and self.diff:
            lines.append(self.diff.rstrip("\n"))
        return "\n".join(lines)


# ------------------------------------------------------------------ the GitOps layout on a clone


def env_dir(config: PromptPipelineConfig, env: str) -> str:
    """Return the repo-relative directory of ``env`` (``environments/prod``)."""
    return f"{config.gitops.path.strip('/')}/{env}" if config.gitops.path.strip("/") else env


def read_environment(clone: Clone, config: PromptPipelineConfig, env: str) -> dict[str, ArtifactConfigMap]:
    """Return the promptci ConfigMaps live in ``env`` on the clone's tree, by artifact id.

    Raises LayoutError for a file promptci cannot read (fail closed: a
    corrupted environment never gets promoted over blindly).
    """
    d = clone.dir / env_dir(config, env)
    out: dict[str, ArtifactConfigMap] = {}
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.yaml")):
        if f.name == KUSTOMIZATION:
            continue
        cm = parse_configmap(f.read_text(), f"{env_dir(config, env)}/{f.name}")
        out[cm.artifact_id] = cm
    return out


def write_environment_file(clone: Clone, config: PromptPipelineConfig, env: str, name: str,
                           text: str) -> tuple[list[str], str]:
    """Write one ConfigMap file and regenerate the kustomization; return (changed paths, diff).

    The kustomization lists exactly the ConfigMap files present, sorted, so
    concurrent promoters re-applying on a new head never drop each other's entries.
    """
    rel = env_dir(config, env)
    d = clone.dir / rel
    d.mkdir(parents=True, exist_ok=True)
    diff = _write(d / name, f"{rel}/{name}", text)
    files = sorted(f.name for f in d.glob("*.yaml") if f.name != KUSTOMIZATION)
    diff += _write(d / KUSTOMIZATION, f"{rel}/{KUSTOMIZATION}",
                   render_kustomization(files, env, config.gitops.namespace))
    return [f"{rel}/{name}", f"{rel}/{KUSTOMIZATION}"], diff


def _write(path: Path, rel: str, text: str) -> str:
    """Write ``text`` to ``path`` and return the unified diff (difflib) against what was there."""
    old = path.read_text() if path.exists() else None
    if old == text:
        return ""
    path.write_text(text)
    return "".join(difflib.unified_diff(
        (old or "").splitlines(keepends=True), text.splitlines(keepends=True),
        fromfile=f"a/{rel}" if old is not None else "/dev/null", tofile=f"b/{rel}"))


@contextmanager
def gitops_clone(config: PromptPipelineConfig, repo_root: Path, workdir: Path | None,
                 genv: GitEnv) -> Iterator[Clone]:
    """Yield a fresh clone of the GitOps branch in ``workdir`` (default: a temp dir removed afterwards)."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield open_clone(config.gitops.repo_url, config.gitops.branch, repo_root,
                         Path(tempfile.mkdtemp(prefix="gitops-", dir=workdir)), genv)
        return
    with tempfile.TemporaryDirectory(prefix="promptci-gitops-") as tmp:
        yield open_clone(config.gitops.repo_url, config.gitops.branch, repo_root, Path(tmp) / "gitops", genv)


def author_of(config: PromptPipelineConfig) -> Author:
    """Return the commit author configured for the GitOps repo."""
    return Author(config.gitops.author_name, config.gitops.author_email)


def one_line(text: str) -> str:
    """Return ``text`` on one line, so user-controlled values cannot forge commit trailers."""
    return " ".join(str(text).split())


# ------------------------------------------------------------------ gates that need no git


@dataclass
class _Candidate:
    outcome: ArtifactOutcome
    results: list[BranchResult]
    raw: bytes = b""


def _version_of(raw: bytes, path: str) -> str:
    """Return the ``version`` field of an artifact file ("unversioned" when it has none)."""
    try:
        data = parse_text(raw.decode("utf-8-sig"), path, is_json=path.endswith(".json")).data
    except (LoadError, UnicodeDecodeError):
        return "unversioned"
    v = data.get("version") if isinstance(data, dict) else None
    return one_line(str(v)) if v is not None else "unversioned"


def _group(results: list[BranchResult], planned: list[EvalItem]) -> dict[str, _Candidate]:
    """Return one candidate per artifact, with ``results`` gate refusals already recorded."""
    cands: dict[str, _Candidate] = {}

    def cand(aid: str, atype: str, path: str, chash: str) -> _Candidate:
        if aid not in cands:
            cands[aid] = _Candidate(ArtifactOutcome(aid, atype, path, chash), [])
        return cands[aid]

    by_key: dict[tuple[str, str], list[BranchResult]] = {}
    for r in results:
        by_key.setdefault((r.artifact_id, r.dataset), []).append(r)
    planned_keys = set()
    for item in planned:
        key = (item.artifact_id, item.dataset)
        planned_keys.add(key)
        c = cand(item.artifact_id, item.artifact_type, item.path, item.content_hash)
        if item.dataset not in c.outcome.datasets:
            c.outcome.datasets.append(item.dataset)
        if (item.path, item.content_hash) != (c.outcome.path, c.outcome.content_hash):
            c.outcome.refusals.append(Refusal("results", f"branch {item.artifact_id}/{item.dataset} was "
                                              "planned for a different file or content than its siblings"))
        got = by_key.get(key, [])
        if not got:
            c.outcome.refusals.append(Refusal("results", f"branch {item.artifact_id}/{item.dataset}: no "
                                              "result (branch missing, crashed or timed out)"))
            continue
        if len({g.model_dump_json() for g in got}) > 1:
            c.outcome.refusals.append(Refusal("results", f"branch {item.artifact_id}/{item.dataset}: "
                                              f"{len(got)} conflicting results"))
        for r in got:
            c.results.append(r)
            if r.status != "passed":
                why = "; ".join(one_line(x) for x in r.reasons[:3]) or "no reason given"
                c.outcome.refusals.append(Refusal("results", f"branch {r.artifact_id}/{r.dataset} "
                                                  f"{r.status}: {why}"[:500]))
            if r.content_hash != item.content_hash:
                c.outcome.refusals.append(Refusal("results", f"branch {r.artifact_id}/{r.dataset} evaluated "
                                                  f"{r.content_hash[:15]} but {item.content_hash[:15]} was "
                                                  "planned"))
    for (aid, ds), got in sorted(by_key.items()):
        if (aid, ds) not in planned_keys:
            c = cand(aid, got[0].artifact_type, got[0].path, got[0].content_hash)
            c.outcome.refusals.append(Refusal("results", f"branch {aid}/{ds}: result was not planned by "
                                              "this run"))
    return cands


def _check_content(c: _Candidate, repo_root: Path) -> None:
    """Refuse unless the file on disk is byte-for-byte what was evaluated."""
    o = c.outcome
    path = (repo_root / o.path).resolve()
    if repo_root.resolve() not in path.parents:
        o.refusals.append(Refusal("content", f"{o.path} is outside the repository"))
        return
    try:
        c.raw = path.read_bytes()
    except OSError as exc:
        o.refusals.append(Refusal("content", f"cannot read {o.path}: {exc.strerror}"))
        return
    o.version = _version_of(c.raw, o.path)
    got = content_hash(c.raw)
    if got != o.content_hash:
        o.refusals.append(Refusal("content", f"{o.path} is {got[:15]} on disk but {o.content_hash[:15]} was "
                                  "evaluated; what is promoted must be what was evaluated"))
    try:
        data_key(o.path)
    except LayoutError as exc:
        o.refusals.append(Refusal("content", str(exc)))
    try:
        c.raw.decode("utf-8")
    except UnicodeDecodeError:
        o.refusals.append(Refusal("content", f"{o.path} is not UTF-8 text"))


def _check_thresholds(c: _Candidate, env: str, config: PromptPipelineConfig, store: ArtifactStore) -> None:
    """Refuse when any dataset misses ``env``'s thresholds or regresses against a baseline."""
    th = config.for_artifact(c.outcome.artifact_id).thresholds_for(env)
    add = c.outcome.refusals.append
    for r in c.results:
        where = f"{r.artifact_id}/{r.dataset}"
        if r.pass_rate is None:
            add(Refusal("thresholds", f"{where}: no pass rate recorded"))
            continue
        if r.pass_rate + EPS < th.min_pass_rate:
            add(Refusal("thresholds", f"{where}: pass rate {r.pass_rate:.3f} < {th.min_pass_rate:.3f} "
                        f"required for {env}"))
        for metric, minimum in sorted(th.min_scores.items()):
            score = r.metric_scores.get(metric)
            if score is None:
                add(Refusal("thresholds", f"{where}: metric '{metric}' has no score (needs ≥ {minimum:.3f})"))
            elif score + EPS < minimum:
                add(Refusal("thresholds", f"{where}: metric '{metric}' {score:.3f} < {minimum:.3f} "
                            f"required for {env}"))
        for reason in type_gate_reasons(r.metric_scores, th):  # guardrail and RAG gates of this env
            add(Refusal("thresholds", f"{where}: {reason} (required for {env})"))
        baselines: list[tuple[str, float | None, dict[str, Any]]] = [
            ("baseline", r.baseline_pass_rate, {})]
        try:
            stored = get_json(store, baseline_key(env, r.artifact_id, r.dataset))
        except (StoreError, ValueError) as exc:
            add(Refusal("thresholds", f"{where}: cannot read the {env} baseline: {exc}"))
            continue
        if isinstance(stored, dict) and "tests" in stored:  # an EvalResult, as the eval stage stores it
            key = baseline_key(env, r.artifact_id, r.dataset)
            try:
                base = load_result(json.dumps(stored).encode(), key)
            except ResultsError as exc:
                add(Refusal("thresholds", f"{where}: unreadable {env} baseline: {exc}"))
                continue
            baselines.append((f"{env} baseline", base.pass_rate(th.required_passes), base.metric_scores()))
        elif isinstance(stored, dict):  # a BranchResult written when the run's result.json was missing
            scores = stored.get("metric_scores")
            baselines.append((f"{env} baseline", stored.get("pass_rate"),
                              scores if isinstance(scores, dict) else {}))
        for label, base_rate, base_scores in baselines:
            if isinstance(base_rate, int | float) and r.pass_rate + th.max_regression + EPS < base_rate:
                add(Refusal("thresholds", f"{where}: pass rate {r.pass_rate:.3f} regressed from {label} "
                            f"{base_rate:.3f} by more than {th.max_regression:.3f}"))
            for metric, base in sorted(base_scores.items()):
                now = r.metric_scores.get(metric)
                if isinstance(base, int | float) and now is not None and now + th.max_regression + EPS < base:
                    add(Refusal("thresholds", f"{where}: metric '{metric}' {now:.3f} regressed from {label} "
                                f"{base:.3f} by more than {th.max_regression:.3f}"))


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


def _source_key(cm: ArtifactConfigMap) -> tuple[int, str]:
    """Return the order of source revisions: commit time first, then revision string (ties)."""
    return (cm.source_timestamp if cm.source_timestamp is not None else -1, cm.source_revision)


def _when(ts: int | None) -> str:
    return "unknown time" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ the stage


def promote_run(results: list[BranchResult], planned: list[EvalItem], *, env: str, repo_root: Path,
                run_id: str, config: PromptPipelineConfig, store: ArtifactStore,
                approved: bool = False, dry_run: bool = False, source_revision: str = "",
                source_timestamp: int | None = None, run_link: str | None = None,
                workdir: Path | None = None) -> PromotionReport:
    """Return the PromotionReport of promoting this run's artifacts into ``env``.

    Commits and pushes only when every gate passes for every artifact; writes
    baselines only after the push. Never raises for a refused gate or a git
    failure: those are in the report, whose ``ok`` is then False.
    """
    report = PromotionReport(env=env, run_id=run_id, dry_run=dry_run)
    if env not in config.promotion.chain:
        report.errors.append(f"unknown environment '{env}'; the chain is {', '.join(config.promotion.chain)}")
        return report
    cands = _group(results, planned)
    report.outcomes = [c.outcome for c in cands.values()]
    if any(r.gate == "results" for c in cands.values() for r in c.outcome.refusals):
        return _block_rest(report)
    gate = config.promotion.gate(env)
    for c in cands.values():
        _check_content(c, repo_root)
        _check_thresholds(c, env, config, store)
        if gate.manual_approval and not approved:
            c.outcome.refusals.append(Refusal("approval", f"{env} requires manual approval (Argo: the "
                                              "approval step; locally: --approve)"))
    if not cands:
        return report
    if not source_revision or source_timestamp is None:
        rev, ts = source_info(repo_root, source_revision)
        source_revision = source_revision or rev
        source_timestamp = ts if source_timestamp is None else source_timestamp

    with GitEnv(author_of(config)) as genv:
        try:
            with gitops_clone(config, repo_root, workdir, genv) as clone:
                state = _Attempt(cands, env, run_id, run_link, config, source_revision, source_timestamp,
                                 dry_run)
                report.attempts = publish(clone, config.gitops.max_push_attempts, state.apply)
                report.head = clone.head()
        except PushRejected as exc:
            report.errors.append(f"push still rejected after {config.gitops.max_push_attempts} attempts "
                                 f"(the branch keeps moving): {exc}")
        except (GitError, LayoutError, OSError) as exc:
            report.errors.append(redact(str(exc)))
    if report.errors:
        for o in report.outcomes:
            if o.status in ("promoted", "would-promote"):
                o.status, o.commit = "blocked", None
        return report
    if any(o.refusals for o in report.outcomes):
        return _block_rest(report)
    if not dry_run:
        _write_baselines(report, cands, env, run_id, store)
    return report


def _block_rest(report: PromotionReport) -> PromotionReport:
    """Mark refused artifacts refused and the others blocked: a run is promoted entirely or not at all."""
    refused = [o.artifact_id for o in report.outcomes if o.refusals]
    for o in report.outcomes:
        o.commit, o.diff = None, ""
        if o.refusals:
            o.status = "refused"
        else:
            o.status = "blocked"
            o.refusals.append(Refusal("run", f"nothing promoted because {', '.join(refused)} was refused"))
    return report


@dataclass
class _Attempt:
    """One promotion's re-appliable change: gates that read the GitOps tree, then the commits."""

    cands: dict[str, _Candidate]
    env: str
    run_id: str
    run_link: str | None
    config: PromptPipelineConfig
    source_revision: str
    source_timestamp: int | None
    dry_run: bool

    def apply(self, clone: Clone) -> bool:
        """Re-check the git-dependent gates on this head and commit; return True when there is a push."""
        live = read_environment(clone, self.config, self.env)
        prev_env = self.config.promotion.previous(self.env)
        prev = read_environment(clone, self.config, prev_env) if prev_env else {}
        planned: list[tuple[_Candidate, ArtifactConfigMap]] = []
        for c in self.cands.values():
            o = c.outcome
            o.refusals = [r for r in o.refusals if r.gate not in ("order", "newer-source")]
            o.commit, o.diff = None, ""
            cm = ArtifactConfigMap(
                artifact_id=o.artifact_id, artifact_type=o.artifact_type, file_name=o.path,
                content=c.raw.decode("utf-8", errors="replace"), version=o.version,
                content_hash=o.content_hash, source_revision=self.source_revision,
                source_timestamp=self.source_timestamp,
                eval_summary=eval_summary(c.results, self.run_id), namespace=self.config.gitops.namespace)
            current = live.get(o.artifact_id)
            if current is not None and current.content_hash == o.content_hash:
                o.status = "unchanged"  # already live: idempotent, whatever the chain looks like now
                continue
            if prev_env is not None:
                held = prev.get(o.artifact_id)
                if held is None or held.content_hash != o.content_hash:
                    now = f"it holds {held.content_hash[:15]}" if held else "it does not hold the artifact"
                    o.refusals.append(Refusal("order", f"{o.artifact_id} {o.content_hash[:15]} must be live "
                                              f"in {prev_env} before {self.env}, but {now}"))
            if current is not None and _source_key(current) > _source_key(cm):
                o.refusals.append(Refusal("newer-source", (
                    f"{self.env} already holds {o.artifact_id} from source revision "
                    f"{current.source_revision[:12] or '?'} ({_when(current.source_timestamp)}), newer than "
                    f"this run's {cm.source_revision[:12] or '?'} ({_when(cm.source_timestamp)}); the newer "
                    "source revision wins — use `rollback` to restore older content")))
            planned.append((c, cm))
        if any(c.outcome.refusals for c in self.cands.values()):
            return False
        for c, cm in planned:
            o = c.outcome
            paths, o.diff = write_environment_file(clone, self.config, self.env, cm.file, cm.render())
            if self.dry_run:
                o.status = "would-promote"
                continue
            o.commit = clone.commit_paths(paths, commit_message(cm, self.env, self.run_id, self.run_link))
            o.status = "promoted"
        return bool(planned) and not self.dry_run


def _write_baselines(report: PromotionReport, cands: dict[str, _Candidate], env: str, run_id: str,
                     store: ArtifactStore) -> None:
    """Copy each promoted artifact × dataset's eval result to its ``env`` baseline (after the push)."""
    for c in cands.values():
        if c.outcome.status != "promoted":
            continue
        for r in c.results:
            key = baseline_key(env, r.artifact_id, r.dataset)
            try:
                data = store.get_bytes(run_key(run_id, r.artifact_id, r.dataset, "result.json"))
                if data is None:
                    data = r.model_dump_json(indent=2).encode()
                report.baseline_keys.append(store.put_bytes(key, data, "application/json"))
            except StoreError as exc:
                report.errors.append(f"promoted, but the {env} baseline {key} was not updated: {exc}")


__all__ = ["ArtifactOutcome", "PromotionReport", "Refusal", "promote_run", "configmap_name",
           "read_environment", "write_environment_file", "commit_message", "eval_summary"]
