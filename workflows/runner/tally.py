"""The numbers behind the progress view and the final table, computed from a run's node records.

Pure functions of :class:`~workflows.runner.records.NodeRecord` lists and a clock value, so
the live view, the plain CI lines and the final table all say the same thing.

Where each number comes from:

* **Shards.** An eval fan-out child carries its shard as the input parameter ``shard``: a
  ShardRef ``{"index": i, "items": n, "tests": t}`` (steps/contracts.py; plan writes the list
  in validate's ``shards`` output, ``tests`` being test runs, tests × repeats). The scheduler
  reports every child of a fan-out, with its arguments, as soon as the fan-out expands, so
  the totals (n shards, their items and tests) are known while the parallelism limit still
  holds most children back. A node without a ``shard`` input (lint, validate, promote, a
  per-item ``item`` branch) has no counts and shows as it always did.
* **Done.** A shard is done when its node reaches a final phase (Succeeded, Failed, Error,
  ...); its items and tests count then, not while it runs: promptfoo reports nothing
  before it ends. A shard waiting out a retry backoff is still running.
* **Rates.** Items (tests) of the done shards / seconds from the first shard's start to now
  (or to the last shard's end, once all are done): the fan-out's observed throughput, its
  parallelism included.
* **ETA.** Tests not yet done / observed tests per second. Unknown ("ETA ?") until the
  first shard ends, since there is nothing observed to divide by.
* **Item outcomes.** Each node's ``result`` output parameter: a BranchResult, or a JSON
  list of them (``status`` passed|failed|error, ``cached``). A shard without one is judged
  by its phase, which is its exit code (steps/exit_codes.py): Succeeded means every item
  passed; Failed or Error means at least one did not, and its items are counted "in failed
  shards" (its log names them: the totals do not guess). Items that plan settled
  without a run (cache hits, items that could not be prepared) appear in no shard: they are
  validate's ``count`` output minus the items of its ``shards`` output (all of them when the
  list is empty and eval is Skipped), when ``count`` is not 0 (0: all changed items are live
  already, and nothing says how many there were).
* **CPU-s.** ``NodeRecord.cpu_seconds``: the ``wait4`` usage of each attempt (the process
  executor; the container executor does not measure it and its nodes show none).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from steps.contracts import ShardRef
from workflows.runner.records import TERMINAL, NodeRecord

SHARD_INPUT = "shard"
"""The eval task's input parameter holding its ShardRef (seam-16.md)."""
SHARD_LIST: TypeAdapter[list[ShardRef]] = TypeAdapter(list[ShardRef])
"""validate's ``shards`` output: the JSON list of ShardRefs the eval fan-out expands."""
RESULT_OUTPUT = "result"
PLAN_OUTPUTS = ("shards", "count")
"""validate's outputs: the ShardRef list and the number of items promote acts on (cached ones included)."""


def shard_counts(node: NodeRecord) -> ShardRef | None:
    """Return the ShardRef in ``node``'s ``shard`` input, or None when it has none.

    An input that is not a valid ShardRef (steps/contracts.py) is no shard either: the view
    shows the node as any other, and the step itself rejects the input.
    """
    text = node.inputs.get(SHARD_INPUT)
    if text is None:
        return None
    try:
        return ShardRef.model_validate_json(text)
    except ValidationError:
        return None


def _is_done(node: NodeRecord) -> bool:
    return node.status in TERMINAL


@dataclass(frozen=True)
class Throughput:
    """The fan-out's progress: shards, items and tests done out of their totals, rates, ETA."""

    shards_done: int
    shards_total: int
    items_done: int
    items_total: int
    tests_done: int
    tests_total: int
    items_per_second: float | None
    tests_per_second: float | None
    eta_seconds: float | None
    """Seconds until the last test is expected to finish; 0 when every shard is done; None when unknown."""

    def line(self) -> str:
        """Return the one-line summary: ``shards 3/8 · items 12/40 (2.1/s) · tests 36/120 (6.3/s) · ETA 13s``."""
        return (f"shards {self.shards_done}/{self.shards_total} · "
                f"items {self.items_done}/{self.items_total} ({rate_text(self.items_per_second)}) · "
                f"tests {self.tests_done}/{self.tests_total} ({rate_text(self.tests_per_second)}) · "
                f"ETA {_eta(self.eta_seconds)}")


def rate_text(per_second: float | None, unit: str = "") -> str:
    """Return ``2.1/s`` (``0.05 items/s`` with a unit; two decimals below 1), or ``?/s`` before anything ran."""
    value = "?" if per_second is None else f"{per_second:.1f}" if per_second >= 1 else f"{per_second:.2f}"
    return f"{value} {unit}/s" if unit else f"{value}/s"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def throughput(nodes: Iterable[NodeRecord], now: float) -> Throughput | None:
    """Return the progress of every node with a shard input at time ``now``; None when no node has one."""
    shards = [(n, c) for n in nodes if (c := shard_counts(n)) is not None]
    if not shards:
        return None
    done = [(n, c) for n, c in shards if _is_done(n)]
    items_done, tests_done = sum(c.items for _, c in done), sum(c.tests for _, c in done)
    items_total, tests_total = sum(c.items for _, c in shards), sum(c.tests for _, c in shards)
    starts = [n.started for n, _ in shards if n.started is not None]
    ends = [n.finished for n, _ in done if n.finished is not None]
    end = max(ends) if len(done) == len(shards) and ends else now
    elapsed = end - min(starts) if starts else 0.0
    items_rate = items_done / elapsed if done and elapsed > 0 else None
    tests_rate = tests_done / elapsed if done and elapsed > 0 else None
    if len(done) == len(shards):
        eta: float | None = 0.0
    else:
        eta = (tests_total - tests_done) / tests_rate if tests_rate else None
    return Throughput(shards_done=len(done), shards_total=len(shards), items_done=items_done,
                      items_total=items_total, tests_done=tests_done, tests_total=tests_total,
                      items_per_second=items_rate, tests_per_second=tests_rate, eta_seconds=eta)


@dataclass(frozen=True)
class Outcomes:
    """Per-item verdicts the eval nodes reported, and the items plan settled without a run."""

    passed: int = 0
    failed: int = 0
    errored: int = 0
    cached: int = 0
    """Of the reported items, those whose result came from the cache."""
    settled_in_plan: int | None = None
    """validate's ``count`` minus the items of its ``shards``; None without those outputs."""
    in_failed_shards: int = 0
    """Items of shards that ended Failed or Error without per-item verdicts: their logs say which failed."""

    @property
    def reported(self) -> int:
        return self.passed + self.failed + self.errored + self.in_failed_shards


def _results(node: NodeRecord) -> list[dict[str, Any]]:
    """Return the BranchResult dicts in ``node``'s ``result`` output (one object or a list); [] otherwise."""
    text = node.outputs.get(RESULT_OUTPUT)
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return []
    found = data if isinstance(data, list) else [data]
    return [r for r in found if isinstance(r, dict) and r.get("status") in {"passed", "failed", "error"}]


def outcomes(nodes: Sequence[NodeRecord]) -> Outcomes:
    """Return the item verdicts of a run's nodes (see the module docstring for the sources)."""
    results = [r for n in nodes for r in _results(n)]
    count = {s: sum(1 for r in results if r["status"] == s) for s in ("passed", "failed", "error")}
    silent = [(n, ref) for n in nodes if (ref := shard_counts(n)) is not None and not _results(n)]
    return Outcomes(passed=count["passed"] + sum(ref.items for n, ref in silent if n.status == "Succeeded"),
                    failed=count["failed"], errored=count["error"],
                    cached=sum(1 for r in results if r.get("cached") is True),
                    settled_in_plan=settled_in_plan(nodes),
                    in_failed_shards=sum(ref.items for n, ref in silent if n.status in {"Failed", "Error"}))


def settled_in_plan(nodes: Sequence[NodeRecord]) -> int | None:
    """Return validate's ``count`` minus the items of its ``shards``: the items plan settled without a run.

    None when no node has both outputs (a template without shards), they are not what plan writes,
    or ``count`` is 0: plan writes 0 when every changed item is already live (steps/run_plan.py),
    so the number of items it settled is not in its outputs then.
    """
    planner = next((n for n in nodes if all(k in n.outputs for k in PLAN_OUTPUTS)), None)
    if planner is None or not planner.outputs["count"].strip().isdigit() or int(planner.outputs["count"]) == 0:
        return None
    try:
        refs = SHARD_LIST.validate_json(planner.outputs["shards"])
    except ValidationError:
        return None
    return max(0, int(planner.outputs["count"]) - sum(r.items for r in refs))


def cpu_seconds(nodes: Iterable[NodeRecord]) -> float | None:
    """Return the CPU seconds of every measured node, or None when no node was measured."""
    measured = [n.cpu_seconds for n in nodes if n.cpu_seconds is not None]
    return sum(measured) if measured else None
