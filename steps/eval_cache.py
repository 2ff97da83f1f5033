"""The eval cache: reuse a passing branch's result when none of its inputs changed.

Entries live in the artifact store (``cache/eval/{artifact}/{dataset}/{key}/``)
so every pod of a run, and later runs, share them. The key covers what can
change the *measurement*: prompt file content, dataset content, canonical
model, provider config (mode, provider id and options, and the recordings when
recorded), promptfoo version, assertions (inside the prompt/dataset content)
and repeats. Thresholds, k-of-N and the baseline are deliberately not in the
key: the cached measurement is re-judged against the current ones on every run.
Only results of passing runs are cached, so an error or failure is always retried.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from steps.stores.store import ArtifactStore

CACHED_FILES = ("result.json", "results.json", "report.html", "junit.xml")


def cache_key(inputs: dict[str, Any]) -> str:
    """Return the sha256 of the canonical JSON of ``inputs``."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_prefix(artifact_id: str, dataset: str, key: str) -> str:
    """Return the store prefix of one cache entry."""
    return f"cache/eval/{artifact_id}/{dataset}/{key}/"


def lookup(store: ArtifactStore, artifact_id: str, dataset: str, key: str) -> dict[str, bytes] | None:
    """Return the cached files of a passing run with these inputs, or None (a miss)."""
    prefix = cache_prefix(artifact_id, dataset, key)
    result = store.get_bytes(prefix + "result.json")
    if result is None:
        return None
    files = {"result.json": result}
    for name in CACHED_FILES[1:]:
        data = store.get_bytes(prefix + name)
        if data is not None:
            files[name] = data
    return files


def save(store: ArtifactStore, artifact_id: str, dataset: str, key: str, files: dict[str, bytes]) -> None:
    """Store a passing run's files under its cache key; ``result.json`` last, as the commit marker."""
    prefix = cache_prefix(artifact_id, dataset, key)
    for name in CACHED_FILES[1:]:
        if name in files:
            store.put_bytes(prefix + name, files[name])
    store.put_bytes(prefix + "result.json", files["result.json"], "application/json")
