"""The artifact store: where eval results, reports and promoted baselines live.

One small interface, two implementations (Dagster-style): ``LocalStore`` (a
directory, the default) and ``S3Store`` (boto3; MinIO via ``endpoint_url``).

Key layout:
* ``runs/{run-id}/{artifact}/{dataset}/…`` — per-branch results and reports;
* ``baselines/{env}/{artifact}/{dataset}.json`` — the eval result that was
  current when the artifact was last promoted to ``env``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from steps.atomic import atomic_write

T = TypeVar("T")


class StoreError(Exception):
    """A read or write against the store failed (after any retries)."""


class ArtifactStore(Protocol):
    # How many items' writes may go out at once (``each_item``): the store decides, as only it knows
    # what a write costs. S3: PROMPTCI_S3_WRITERS; a local directory: 1.
    writers: int

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store ``data`` at ``key``; return the key. Raises StoreError on failure."""
        ...

    def get_bytes(self, key: str) -> bytes | None:
        """Return the bytes at ``key``, or None when absent. Raises StoreError on other failures."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Return all keys under ``prefix``, sorted."""
        ...

    def describe(self) -> str:
        """Return a human-readable location, e.g. ``s3://bucket/prefix`` or a directory."""
        ...


def baseline_key(env: str, artifact_id: str, dataset: str) -> str:
    """Return the key of the promoted baseline for one artifact × dataset in ``env``."""
    return f"baselines/{env}/{artifact_id}/{dataset}.json"


def run_key(run_id: str, artifact_id: str, dataset: str, name: str) -> str:
    """Return the key of one file a run's eval branch wrote."""
    return f"runs/{run_id}/{artifact_id}/{dataset}/{name}"


def put_json(store: ArtifactStore, key: str, obj: Any) -> str:
    """Store ``obj`` as pretty JSON at ``key``; return the key."""
    return store.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True).encode(), "application/json")


def get_json(store: ArtifactStore, key: str) -> Any | None:
    """Return the JSON document at ``key``, or None when absent."""
    data = store.get_bytes(key)
    return None if data is None else json.loads(data)


def each_item(store: ArtifactStore, jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Return ``[job() for job in jobs]``, running up to ``store.writers`` jobs at once (in threads).

    Why: on S3 every write is a round trip (20-50 ms), and an eval item writes ~12 objects, so a
    shard of 100 items writing one after another waits 25-60 s on the network alone.

    A job is the writes of ONE item, made in their order by the job itself: what an item's readers
    rely on (an object that says "complete" is written only after everything it vouches for; see
    steps/eval_verdict.py) is each job's own program order, whatever other items' jobs run beside
    it. Jobs of different items write different keys. With one writer (a local store, or
    PROMPTCI_S3_WRITERS=1) the jobs run here, one after another, exactly as a loop would.
    Should a job raise, the jobs already started still finish; then the first exception in job
    order is raised.
    """
    workers = min(store.writers, len(jobs))
    if workers <= 1:
        return [job() for job in jobs]
    from concurrent.futures import ThreadPoolExecutor  # here: a stage that never writes to S3 does not pay for it

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store-writer") as pool:
        futures = [pool.submit(job) for job in jobs]
    return [f.result() for f in futures]


class LocalStore:
    """A directory on disk. Writes are atomic (temp file + rename): no half-written files."""

    # Measured (bench/bench_store.py): threads do not make a local disk's writes faster, they only
    # cost CPU, so a local store's items are written one after another.
    writers = 1

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        """Return the file of ``key``: a relative path of plain names (no ``..``, ``.`` or empty name).

        Checked on the key's text, without resolving the path on disk (a system call per
        directory level, for every one of the thousands of files a shard writes): no key
        can name anything outside ``root`` unless ``root``'s own tree holds a symlink out.
        """
        names = key.rstrip("/").split("/")
        if key.startswith("/") or any(n in ("", ".", "..") for n in names):
            raise StoreError(f"key escapes the store: {key!r}")
        return self.root.joinpath(*names)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise StoreError(f"cannot write {key} to {self.root}: {exc}") from exc
        return key

    def get_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {key} from {self.root}: {exc}") from exc

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def describe(self) -> str:
        return str(self.root)
