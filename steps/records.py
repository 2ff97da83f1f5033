"""The signed records the pipeline keeps in the artifact store, and where they live.

* ``runs/{run}/plan.json``: plan's eval items and shards (kind ``promptci.plan``, version 2);
* ``runs/{run}/{artifact}/{dataset}/record.json``: one eval branch's record (kind
  ``promptci.eval-record``): its verdict (``BranchResult``) and the full measured
  ``EvalResult`` (every repeat of every test), exactly as eval wrote them;
* ``evals/{artifact}/{dataset}/{content-hash}.json``: the record of content that was
  promoted, keyed by what it measured. Promote writes it *before* pushing, so the
  regression baseline of whatever git holds always exists (the live pointer is the git commit);
* ``baselines/{env}/{artifact}/{dataset}.json``: the record of the content live in ``env``,
  a copy eval reads without cloning the GitOps repo. Written after the push, and repaired
  by every promote and rollback when it differs from what git says is live.

There is one baseline format: the eval record. Every read verifies the signature
(steps/signing.py), so nothing hand-written can pass for an eval result or a baseline.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from steps.contracts import BranchResult, EvalItem, Shard
from steps.eval_results import EvalResult
from steps.signing import SignatureError, sign, verify
from steps.stores.store import ArtifactStore, baseline_key, run_key

RECORD_KIND = "promptci.eval-record"
PLAN_KIND = "promptci.plan"
RECORD_FILE = "record.json"


class RecordError(Exception):
    """A stored record is missing its signature, altered, malformed or of the wrong run/content."""


class EvalRecord(BaseModel):
    """What one eval branch measured and decided, signed by eval."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["promptci.eval-record"] = "promptci.eval-record"
    version: int = 1
    run_id: str
    branch: BranchResult
    result: EvalResult | None = Field(default=None, description="None when nothing was measured (no dataset, "
                                                                "or the branch errored before promptfoo ran)")

    @property
    def content_hash(self) -> str:
        """Return the content hash the branch evaluated."""
        return self.branch.content_hash


class PlanRecord(BaseModel):
    """Plan's eval items for one run and the shards the eval tasks run, signed by plan (validate).

    ``items``: every changed item, cached ones included (promote and summary act on all of
    them); ``shards``: only the items still to run, packed by steps/shards.py. An eval task
    reads its shard here by index, never from a parameter. Version 1 (no shards) is refused.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["promptci.plan"] = "promptci.plan"
    version: Literal[2] = 2
    run_id: str
    items: list[EvalItem]
    shards: list[Shard] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shards_hold_planned_items(self) -> PlanRecord:
        planned = {(i.artifact_id, i.dataset): i for i in self.items}
        seen: set[tuple[str, str]] = set()
        for n, shard in enumerate(self.shards):
            if shard.index != n:
                raise ValueError(f"shard {n} has index {shard.index}")
            if not shard.items:
                raise ValueError(f"shard {n} is empty")
            for it in shard.items:
                key = (it.artifact_id, it.dataset)
                if planned.get(key) != it:
                    raise ValueError(f"shard {n} holds {it.artifact_id}/{it.dataset}, which is not planned as such")
                if key in seen:
                    raise ValueError(f"{it.artifact_id}/{it.dataset} is in two shards")
                seen.add(key)
        return self

    def shard(self, index: int) -> Shard:
        """Return shard ``index``; RecordError when the plan has no such shard."""
        if not 0 <= index < len(self.shards):
            raise RecordError(f"the plan of run {self.run_id} has no shard {index} (it has {len(self.shards)})")
        return self.shards[index]


def plan_key(run_id: str) -> str:
    """Return the store key of a run's signed plan."""
    return f"runs/{run_id}/plan.json"


def record_key(run_id: str, artifact_id: str, dataset: str) -> str:
    """Return the store key of one eval branch's signed record."""
    return run_key(run_id, artifact_id, dataset, RECORD_FILE)


def content_record_key(artifact_id: str, dataset: str, content_hash: str) -> str:
    """Return the key of the record of promoted content (``sha256:ab…`` becomes ``sha256-ab…``)."""
    return f"evals/{artifact_id}/{dataset}/{content_hash.replace(':', '-')}.json"


def encode(record: EvalRecord | PlanRecord, key: bytes) -> bytes:
    """Return the signed JSON bytes of ``record``."""
    return sign(record.model_dump(mode="json"), key)


M = TypeVar("M", EvalRecord, PlanRecord)


def _decode(model: type[M], kind: str, data: bytes, key: bytes, what: str) -> M:
    """Return ``data`` as ``model`` after verifying kind and signature; RecordError otherwise."""
    try:
        return model.model_validate({k: v for k, v in verify(data, key, what, kind).items() if k != "signature"})
    except SignatureError as exc:
        raise RecordError(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise RecordError(f"{what}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None


def decode_record(data: bytes, key: bytes, what: str) -> EvalRecord:
    """Return the EvalRecord in ``data``; raise RecordError when unsigned, altered or malformed."""
    return _decode(EvalRecord, RECORD_KIND, data, key, what)


def decode_plan(data: bytes, key: bytes, what: str) -> PlanRecord:
    """Return the PlanRecord in ``data``; raise RecordError when unsigned, altered or malformed."""
    return _decode(PlanRecord, PLAN_KIND, data, key, what)


def read_plan(store: ArtifactStore, run_id: str, key: bytes) -> PlanRecord:
    """Return run ``run_id``'s verified plan (eval tasks read their shard here, promote its items).

    Raises RecordError when it is absent, unsigned, altered, malformed or of another run
    (nothing it claims can be trusted), StoreError when the store is away.
    """
    name = plan_key(run_id)
    data = store.get_bytes(name)
    if data is None:
        raise RecordError(f"run {run_id} has no plan in the store ({name}); was it planned?")
    plan = decode_plan(data, key, name)
    if plan.run_id != run_id:
        raise RecordError(f"{name} belongs to run {plan.run_id}, not {run_id}")
    return plan


def put_signed(store: ArtifactStore, key_name: str, record: EvalRecord | PlanRecord, key: bytes) -> bytes:
    """Store ``record`` signed at ``key_name``; return the bytes written. Raises StoreError."""
    data = encode(record, key)
    store.put_bytes(key_name, data, "application/json")
    return data


def read_record(store: ArtifactStore, key_name: str, key: bytes) -> tuple[EvalRecord, bytes] | None:
    """Return (verified record, its bytes) at ``key_name``, or None when absent.

    Raises StoreError (store unreachable) or RecordError (unsigned, altered, malformed).
    """
    data = store.get_bytes(key_name)
    if data is None:
        return None
    return decode_record(data, key, key_name), data


def read_baseline(store: ArtifactStore, env: str, artifact_id: str, dataset: str,
                  key: bytes) -> EvalRecord | None:
    """Return the verified record of what is live in ``env`` (the baseline eval compares with), or None."""
    got = read_record(store, baseline_key(env, artifact_id, dataset), key)
    return None if got is None else got[0]


__all__ = ["EvalRecord", "PlanRecord", "RecordError", "plan_key", "record_key", "content_record_key",
           "encode", "decode_record", "decode_plan", "read_plan", "put_signed", "read_record", "read_baseline"]
