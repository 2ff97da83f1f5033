"""A run's candidates: its signed plan and eval records, read from the store, one per artifact.

Promote never takes results from a file or a parameter: it reads what plan and eval
signed, by run id, and checks each record against the planned artifact, dataset and
content hash. Gates here (they need no git): ``results`` and ``content``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from config.yamlio import LoadError, parse_text
from steps import records
from steps.contracts import EvalItem, content_hash
from steps.gitops.configmaps import LayoutError, data_key
from steps.gitops.layout import one_line
from steps.promotion.report import ArtifactOutcome, Refusal
from steps.records import RECORD_FILE, EvalRecord, RecordError, read_record, record_key
from steps.stores.store import ArtifactStore


class PlanMissing(Exception):
    """The run has no readable signed plan: nothing it claims can be trusted (a refusal)."""


@dataclass
class Candidate:
    """One artifact of the run: its outcome so far, its verified records, and its bytes on disk."""

    outcome: ArtifactOutcome
    records: list[EvalRecord] = field(default_factory=list)
    signed: dict[str, bytes] = field(default_factory=dict)  # dataset -> the record exactly as eval signed it
    raw: bytes = b""

    def refuse(self, gate: str, reason: str) -> None:
        """Record a failed gate."""
        self.outcome.refusals.append(Refusal(gate, reason[:500]))


def read_plan(store: ArtifactStore, run_id: str, key: bytes) -> list[EvalItem]:
    """Return the run's planned eval items. Raises PlanMissing (absent, unsigned, altered) or StoreError."""
    try:
        return records.read_plan(store, run_id, key).items
    except RecordError as exc:
        raise PlanMissing(str(exc)) from None


def _check_record(c: Candidate, item: EvalItem, rec: EvalRecord, run_id: str) -> None:
    """Refuse unless ``rec`` is this run's passed verdict on exactly the planned content."""
    where = f"branch {item.artifact_id}/{item.dataset}"
    b = rec.branch
    if rec.run_id != run_id or (b.artifact_id, b.dataset) != (item.artifact_id, item.dataset):
        c.refuse("results", f"{where}: the stored record is of {rec.run_id} {b.artifact_id}/{b.dataset}")
    if b.content_hash != item.content_hash or (rec.result and rec.result.content_hash != item.content_hash):
        c.refuse("results", f"{where} evaluated {b.content_hash[:15]} but {item.content_hash[:15]} was planned")
    if b.status != "passed":
        why = "; ".join(one_line(x) for x in b.reasons[:3]) or "no reason given"
        c.refuse("results", f"{where} {b.status}: {why}")
    elif rec.result is None:  # every artifact type is evaluated on golden data: nothing measured, no pass
        c.refuse("results", f"{where}: passed but recorded no measured result")


def gather(store: ArtifactStore, run_id: str, key: bytes) -> dict[str, Candidate]:
    """Return one candidate per planned artifact, with ``results`` refusals recorded.

    Raises PlanMissing or StoreError (the caller maps the latter to exit 75).
    """
    items = read_plan(store, run_id, key)
    cands: dict[str, Candidate] = {}
    for item in items:
        c = cands.setdefault(item.artifact_id, Candidate(ArtifactOutcome(
            item.artifact_id, item.artifact_type, item.path, item.content_hash)))
        if item.dataset not in c.outcome.datasets:
            c.outcome.datasets.append(item.dataset)
        if (item.path, item.content_hash) != (c.outcome.path, c.outcome.content_hash):
            c.refuse("results", f"branch {item.artifact_id}/{item.dataset} was planned for a different file "
                     "or content than its siblings")
        name = record_key(run_id, item.artifact_id, item.dataset)
        try:
            got = read_record(store, name, key)
        except RecordError as exc:
            c.refuse("results", f"branch {item.artifact_id}/{item.dataset}: {exc}")
            continue
        if got is None:
            c.refuse("results", f"branch {item.artifact_id}/{item.dataset}: no result (branch missing, crashed "
                     "or timed out)")
            continue
        rec, data = got
        _check_record(c, item, rec, run_id)
        c.records.append(rec)
        c.signed[item.dataset] = data
    planned = {record_key(run_id, i.artifact_id, i.dataset) for i in items}
    for k in store.list_keys(f"runs/{run_id}/"):
        if k.endswith("/" + RECORD_FILE) and k not in planned:
            extra = cands.get(k.split("/")[2])
            if extra is not None:
                extra.refuse("results", f"{k}: a record this run did not plan")
    return cands


def _version_of(raw: bytes, path: str) -> str:
    """Return the ``version`` field of an artifact file ("unversioned" when it has none)."""
    try:
        data = parse_text(raw.decode("utf-8-sig"), path, is_json=path.endswith(".json")).data
    except (LoadError, UnicodeDecodeError):
        return "unversioned"
    v = data.get("version") if isinstance(data, dict) else None
    return one_line(str(v)) if v is not None else "unversioned"


def check_content(c: Candidate, repo_root: Path) -> None:
    """Refuse unless the file on disk is byte-for-byte what was evaluated (gate ``content``)."""
    o = c.outcome
    path = (repo_root / o.path).resolve()
    if repo_root.resolve() not in path.parents:
        c.refuse("content", f"{o.path} is outside the repository")
        return
    try:
        c.raw = path.read_bytes()
    except OSError as exc:
        c.refuse("content", f"cannot read {o.path}: {exc.strerror}")
        return
    o.version = _version_of(c.raw, o.path)
    got = content_hash(c.raw)
    if got != o.content_hash:
        c.refuse("content", f"{o.path} is {got[:15]} on disk but {o.content_hash[:15]} was evaluated; what is "
                 "promoted must be what was evaluated")
    try:
        data_key(o.path)
    except LayoutError as exc:
        c.refuse("content", str(exc))
    try:
        c.raw.decode("utf-8")
    except UnicodeDecodeError:
        c.refuse("content", f"{o.path} is not UTF-8 text")
