"""Shard packing: the eval items a run still has to evaluate, spread over at most N eval tasks.

One eval task per shard (the Argo ``withParam`` fan-out), not per item: the fan-out's width
is ``eval.max_shards`` (config/pipeline.py), whatever the number of changed items. The
weight of an item is its test runs (tests × repeats), so shards take about the same time.

Packing is LPT (longest processing time first): items by weight, heaviest first, each to
the shard with the least weight so far. Its greedy rule keeps every shard within one
item's weight of the lightest (max − min ≤ the heaviest item), and needs no solver.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from steps.contracts import EvalItem, Shard


def _item_key(item: EvalItem) -> tuple[str, str, str]:
    """Return the order plan lists items in (path, then dataset); the artifact id breaks the last tie."""
    return item.path, item.dataset, item.artifact_id


def pack(weighted: Sequence[tuple[EvalItem, int]], max_shards: int) -> list[Shard]:
    """Return ``min(len(weighted), max_shards)`` shards holding every item once, balanced by weight.

    Deterministic: the same items give the same shards whatever order they come in (ties
    in weight are broken by path, dataset, artifact id; ties in shard weight by fewer
    items, then the lower index). No shard is empty. Each shard's items are in plan's
    order (path, dataset); ``Shard.tests`` is the sum of its items' weights.
    Raises ValueError for ``max_shards < 1``, a negative weight or an item listed twice.
    """
    if max_shards < 1:
        raise ValueError(f"max_shards must be at least 1, got {max_shards}")
    keys = [_item_key(item) for item, _ in weighted]
    if len(set(keys)) != len(keys):
        raise ValueError("an item is listed twice: " + ", ".join(sorted({f"{k[0]} × {k[1]}" for k in keys
                                                                          if keys.count(k) > 1})))
    for item, weight in weighted:
        if weight < 0:
            raise ValueError(f"{item.path} × {item.dataset}: negative weight {weight}")
    n = min(len(weighted), max_shards)
    if n == 0:
        return []
    order = sorted(weighted, key=lambda iw: (-iw[1], _item_key(iw[0])))
    heap = [(0, 0, i) for i in range(n)]  # (weight so far, items so far, index): the lightest pops first
    members: list[list[tuple[EvalItem, int]]] = [[] for _ in range(n)]
    for item, weight in order:
        load, count, i = heapq.heappop(heap)
        members[i].append((item, weight))
        heapq.heappush(heap, (load + weight, count + 1, i))
    return [Shard(index=i, items=sorted((it for it, _ in m), key=_item_key), tests=sum(w for _, w in m))
            for i, m in enumerate(members)]


__all__ = ["pack"]
