"""PlanRecord v2: every changed item plus the shards still to run, signed; anything else is refused."""

from __future__ import annotations

import json

import pytest

from steps.contracts import EvalItem, Shard
from steps.records import PlanRecord, RecordError, decode_plan, encode
from steps.shards import pack

KEY = b"k" * 32


def _item(i: int) -> EvalItem:
    return EvalItem(artifact_id=f"p{i}", artifact_type="prompt", path=f"prompts/p{i}.prompt.yaml",
                    dataset="golden", content_hash=f"sha256:{i:064x}")


def _plan() -> PlanRecord:
    items = [_item(i) for i in range(5)]
    return PlanRecord(run_id="r1", items=items, shards=pack([(it, 3) for it in items[2:]], 2))


def test_a_signed_plan_round_trips_with_its_shards() -> None:
    plan = _plan()
    back = decode_plan(encode(plan, KEY), KEY, "runs/r1/plan.json")
    assert back == plan and back.version == 2
    assert [len(s.items) for s in back.shards] == [2, 1]
    assert back.shard(1).items == plan.shards[1].items
    with pytest.raises(RecordError, match="has no shard 2"):
        back.shard(2)


def test_an_altered_shard_or_an_old_plan_is_refused() -> None:
    data = json.loads(encode(_plan(), KEY))
    data["shards"][0]["items"][0]["content_hash"] = "sha256:" + "f" * 64
    with pytest.raises(RecordError, match="signature"):
        decode_plan(json.dumps(data).encode(), KEY, "runs/r1/plan.json")
    old = {"kind": "promptci.plan", "version": 1, "run_id": "r1", "items": []}
    from steps.signing import sign

    with pytest.raises(RecordError, match="version"):
        decode_plan(sign(old, KEY), KEY, "runs/r1/plan.json")


@pytest.mark.parametrize("shards, message", [
    ([Shard(index=0, items=[_item(9)], tests=1)], "not planned"),
    ([Shard(index=0, items=[_item(1)], tests=1), Shard(index=1, items=[_item(1)], tests=1)], "in two shards"),
    ([Shard(index=1, items=[_item(1)], tests=1)], "has index 1"),
    ([Shard.model_construct(index=0, items=[], tests=0)], "is empty"),
])
def test_shards_must_hold_planned_items_once(shards: list[Shard], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlanRecord(run_id="r1", items=[_item(i) for i in range(3)], shards=shards)
