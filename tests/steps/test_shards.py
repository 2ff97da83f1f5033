"""steps/shards.py ``pack``: the eval fan-out's shards, deterministic, balanced, never empty."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steps.contracts import EvalItem
from steps.shards import pack


def _item(i: int, dataset: str = "golden") -> EvalItem:
    return EvalItem(artifact_id=f"p{i:03d}", artifact_type="prompt", path=f"prompts/p{i:03d}.prompt.yaml",
                    dataset=dataset, content_hash=f"sha256:{i:064x}")


def _weighted(weights: list[int]) -> list[tuple[EvalItem, int]]:
    return [(_item(i), w) for i, w in enumerate(weights)]


def _wire(shards: list) -> list[str]:
    return [s.model_dump_json() for s in shards]


def test_the_same_items_in_any_order_give_the_same_shards() -> None:
    weighted = _weighted([3, 3, 3, 5, 1, 1, 2, 8, 3, 3, 1, 4])
    first = _wire(pack(weighted, 4))
    rng = random.Random(7)
    for _ in range(20):
        shuffled = list(weighted)
        rng.shuffle(shuffled)
        assert _wire(pack(shuffled, 4)) == first


def test_width_is_min_of_items_and_max_shards_and_every_item_is_in_exactly_one_shard() -> None:
    weighted = _weighted([2] * 5)
    assert len(pack(weighted, 8)) == 5  # fewer items than shards: one item each
    shards = pack(_weighted([1] * 200), 8)
    assert len(shards) == 8
    placed = [it.artifact_id for s in shards for it in s.items]
    assert sorted(placed) == sorted(f"p{i:03d}" for i in range(200))
    assert [s.index for s in shards] == list(range(8))
    assert {len(s.items) for s in shards} == {25}
    assert pack([], 8) == []


def test_shards_are_balanced_by_test_runs_not_by_item_count() -> None:
    # One heavy item (40 runs) and many light ones: the heavy one gets a shard to itself.
    weighted = _weighted([40] + [4] * 20)
    shards = pack(weighted, 3)
    tests = sorted(s.tests for s in shards)
    assert tests == [40, 40, 40]
    heavy = next(s for s in shards if s.tests == 40 and len(s.items) == 1)
    assert heavy.items[0].artifact_id == "p000"


def test_a_shard_lists_its_items_in_plan_order_and_sums_their_weights() -> None:
    weighted = [(_item(3, "b"), 1), (_item(1, "z"), 5), (_item(3, "a"), 2), (_item(2), 1)]
    (only,) = pack(weighted, 1)
    assert [(i.path, i.dataset) for i in only.items] == sorted((i.path, i.dataset) for i, _ in weighted)
    assert only.tests == 9


@pytest.mark.parametrize("bad, message", [
    (lambda: pack(_weighted([1]), 0), "max_shards must be at least 1"),
    (lambda: pack(_weighted([1, -1]), 2), "negative weight"),
    (lambda: pack([(_item(1), 1), (_item(1), 2)], 2), "listed twice"),
])
def test_bad_input_is_refused(bad, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bad()


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(min_value=0, max_value=60), max_size=80),
       max_shards=st.integers(min_value=1, max_value=64), seed=st.integers(min_value=0, max_value=2**16))
def test_pack_properties(weights: list[int], max_shards: int, seed: int) -> None:
    weighted = _weighted(weights)
    shards = pack(weighted, max_shards)
    assert len(shards) == min(len(weights), max_shards)
    assert all(s.items for s in shards), "no shard is empty"
    assert sum(s.tests for s in shards) == sum(weights)
    if shards:  # LPT: every shard within one item's weight of the lightest
        assert max(s.tests for s in shards) - min(s.tests for s in shards) <= max(weights)
    shuffled = list(weighted)
    random.Random(seed).shuffle(shuffled)
    assert _wire(pack(shuffled, max_shards)) == _wire(shards)
