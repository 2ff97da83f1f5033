"""What one promotion did: an outcome per artifact, the errors, and the exit code that follows.

Exit codes (the retry contract, docs/pipelines.md): 0 promoted, unchanged or would be;
1 refused by a gate or a policy (never retried); 75 an infrastructure failure (the store,
the GitOps remote), retried, with nothing half-done left behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from steps.exit_codes import ExitCode, outcome_code

Status = Literal["promoted", "unchanged", "would-promote", "refused", "blocked"]
OK_STATUSES = ("promoted", "unchanged", "would-promote")
EXIT_OK, EXIT_REFUSED, EXIT_TRANSIENT = ExitCode.OK, ExitCode.REJECTED, ExitCode.TRANSIENT


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
    """The result of one promote run. ``ok`` is False whenever anything was refused or failed.

    ``errors`` are refusals that are not one artifact's (unknown environment, no plan);
    ``infra`` are infrastructure failures, which make the exit code 75 (retry).
    """

    env: str
    run_id: str
    dry_run: bool = False
    outcomes: list[ArtifactOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    infra: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    head: str | None = None
    attempts: int = 0
    baseline_keys: list[str] = field(default_factory=list)
    source_revision: str = ""

    @property
    def ok(self) -> bool:
        """Return True only when there was no error and every artifact was promoted, unchanged or would be."""
        return not self.errors and not self.infra and all(o.status in OK_STATUSES for o in self.outcomes)

    @property
    def exit_code(self) -> ExitCode:
        """Return 0 when ok, 75 on an infrastructure failure (retry), else 1 (refused: final)."""
        return outcome_code(ok=self.ok, transient=bool(self.infra))

    @property
    def diff(self) -> str:
        """Return the combined unified diff (dry run: what would be committed)."""
        return "".join(o.diff for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {"env": self.env, "run_id": self.run_id, "dry_run": self.dry_run, "ok": self.ok,
                "exit_code": self.exit_code, "head": self.head, "attempts": self.attempts,
                "errors": self.errors, "infra": self.infra, "notes": self.notes,
                "source_revision": self.source_revision, "baseline_keys": self.baseline_keys,
                "outcomes": [o.as_dict() for o in self.outcomes]}

    def render(self) -> str:
        """Return a human-readable summary for logs (plus the diff on a dry run)."""
        promoted = any(o.status == "promoted" for o in self.outcomes)
        verdict = "OK" if self.ok else "PROMOTED, NOT FINISHED (retry)" if promoted and self.infra \
            else "PROMOTED WITH ERRORS" if promoted else "NOT PROMOTED"
        mode = " (dry run)" if self.dry_run else ""
        lines = [f"promote -> {self.env}{mode}, run {self.run_id}: {verdict}"]
        if not self.outcomes and not self.errors and not self.infra:
            lines.append("  nothing to promote (no planned artifacts)")
        for o in self.outcomes:
            where = f"  commit {o.commit[:12]}" if o.commit else ""
            lines.append(f"  {o.status:<13} {o.artifact_id} {o.version or '?'} {o.content_hash[:15]}{where}")
            lines += [f"      [{r.gate}] {r.reason}" for r in o.refusals]
        lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  infrastructure (exit 75, retried): {e}" for e in self.infra]
        lines += [f"  note: {n}" for n in self.notes]
        if self.head and not self.dry_run:
            lines.append(f"  gitops head: {self.head}")
        if self.dry_run and self.diff:
            lines.append(self.diff.rstrip("\n"))
        return "\n".join(lines)

    def block_rest(self) -> PromotionReport:
        """Mark refused artifacts refused and the others blocked: a run is promoted entirely or not at all."""
        refused = [o.artifact_id for o in self.outcomes if o.refusals]
        for o in self.outcomes:
            o.commit, o.diff = None, ""
            if o.refusals:
                o.status = "refused"
            else:
                o.status = "blocked"
                o.refusals.append(Refusal("run", f"nothing promoted because {', '.join(refused)} was refused"))
        return self
