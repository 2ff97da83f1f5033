"""Baselines that always agree with git: content records before the push, live pointers after it.

The order is crash-safe. Before the push, the signed record of every promoted artifact ×
dataset is stored under its content hash (``evals/…/{hash}.json``); a crash or an outage
there leaves git untouched. Then git is pushed: from that moment the GitOps commit is
the live pointer, and the regression gate of the next promotion reads the record of
whatever hash git holds. Last, the per-environment copy eval reads
(``baselines/{env}/…``) is written. If that fails (SIGKILL, store outage), the copy lags
git until :func:`reconcile` runs again: every promote (also when nothing changed, and on
Argo's retry of this step) and every rollback repairs it from the content record, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from steps.gitops.configmaps import ArtifactConfigMap
from steps.records import RecordError, content_record_key, decode_record
from steps.stores.store import ArtifactStore, baseline_key


def live_datasets(cm: ArtifactConfigMap) -> list[str]:
    """Return the datasets the live content was evaluated on (from its ConfigMap's eval summary)."""
    datasets = cm.eval_summary.get("datasets")
    return sorted(datasets) if isinstance(datasets, dict) else []


def write_content_records(store: ArtifactStore, records: Mapping[tuple[str, str, str], bytes]) -> None:
    """Store each signed record under (artifact, dataset, content hash) exactly as signed. Raises StoreError."""
    for (aid, ds, chash), data in sorted(records.items()):
        store.put_bytes(content_record_key(aid, ds, chash), data, "application/json")


def _pointer_hash(store: ArtifactStore, key_name: str, key: bytes) -> str | None:
    data = store.get_bytes(key_name)
    if data is None:
        return None
    try:
        return decode_record(data, key, key_name).content_hash
    except RecordError:
        return "unreadable"


def reconcile(store: ArtifactStore, env: str, live: Mapping[str, ArtifactConfigMap], key: bytes, *,
              just_promoted: Iterable[str] = (),
              fallback: Mapping[tuple[str, str, str], bytes] | None = None) -> tuple[list[str], list[str]]:
    """Make ``baselines/{env}/…`` hold the record of what git has live, for the artifacts in ``live``.

    Returns (keys written, notes). A pointer that lags git (or is missing, unsigned or
    altered) is rewritten from the content record; for ``just_promoted`` artifacts that is
    the normal last step and is not noted as a repair. ``fallback``: signed records of
    this run, used (and stored as content records) when the live hash has none yet.
    Raises StoreError.
    """
    written: list[str] = []
    notes: list[str] = []
    fresh = set(just_promoted)
    for aid, cm in sorted(live.items()):
        for ds in live_datasets(cm):
            pointer = baseline_key(env, aid, ds)
            was = _pointer_hash(store, pointer, key)
            if was == cm.content_hash:
                continue
            source_key = content_record_key(aid, ds, cm.content_hash)
            data = store.get_bytes(source_key)
            if data is None and fallback and (aid, ds, cm.content_hash) in fallback:
                data = fallback[(aid, ds, cm.content_hash)]
                store.put_bytes(source_key, data, "application/json")
            if data is None:
                notes.append(f"baseline {pointer}: no eval record of the live content {cm.content_hash[:15]}; "
                             "left as it is (the next promotion of this artifact is refused until one exists)")
                continue
            written.append(store.put_bytes(pointer, data, "application/json"))
            if aid not in fresh:
                notes.append(f"baseline {pointer} repaired: it held {(was or 'nothing')[:15]} but {env} has "
                             f"{cm.content_hash[:15]} live (git is the pointer)")
    return written, notes
