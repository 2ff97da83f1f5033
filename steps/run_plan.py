"""Plan a run: changed items → cache check → shards → the signed plan, in the validate stage.

The validate stage has read every artifact already, so planning is its second half (one DAG
level fewer than a separate plan task). What this decides, in order:

1. the changed items (``steps.plan.plan``: artifact × dataset, from git) come in;
2. the cache is checked here (:func:`~steps.eval.settle_cached`): a hit is settled on the
   spot (re-judged against today's gates and baseline, every file a cached branch writes,
   written) and never starts an eval task; an item that cannot even be prepared is settled
   as an error (fail closed);
3. the rest are packed into shards (steps/shards.py): at most ``eval.max_shards``, and only one
   per ``eval.min_tests_per_shard`` test runs (:func:`shard_count`);
4. the plan (every item, and the shards) is signed into the store: eval tasks read their
   shard there, promote and summary read the items there, by run id;
5. whether promote has anything to do: nothing when every item's content is what the target
   environment's signed baseline already records and every settled item passed. Then
   ``count`` is 0 and promote is skipped, which keeps a fully cached re-run as cheap as a
   run with nothing changed (issue 16). A pending item that fails still fails its shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from config.pipeline import PromptPipelineConfig
from config.settings import get_settings
from steps.contracts import BranchResult, EvalItem, ShardRef
from steps.eval import settle_cached
from steps.records import PlanRecord, RecordError, plan_key, put_signed, read_record
from steps.shards import pack
from steps.stores.store import ArtifactStore, baseline_key


@dataclass
class RunPlan:
    """What validate decided for one run, and what it prints and outputs."""

    record: PlanRecord
    settled: list[BranchResult] = field(default_factory=list)
    all_live: bool = False
    """Every item's content is already live in the target environment (its signed baseline says so)."""
    count: int = 0
    """Items promote acts on: every planned item, or 0 when promote has nothing to do."""
    needs_approval: bool = False

    @property
    def refs(self) -> list[ShardRef]:
        """Return the eval fan-out list: one small ShardRef per shard (no paths, no text)."""
        return [ShardRef(index=s.index, items=len(s.items), tests=s.tests) for s in self.record.shards]

    def lines(self, env: str) -> list[str]:
        """Return what the stage prints: the cache hits, each shard, and what promote will do."""
        out = [f"plan: {r.path} × {r.dataset}: cached, {r.status}" for r in self.settled if r.cached]
        out += [f"plan: {r.path} × {r.dataset}: settled {r.status} (not run)" for r in self.settled if not r.cached]
        for s in self.record.shards:
            out.append(f"plan: shard {s.index}: {len(s.items)} item(s), {s.tests} test run(s): "
                       + ", ".join(f"{i.artifact_id} × {i.dataset}" for i in s.items))
        items = len(self.record.items)
        out.append(f"plan: {items} item(s): {len(self.settled)} settled here, "
                   f"{items - len(self.settled)} to run in {len(self.record.shards)} shard(s)")
        if items and self.count == 0:
            out.append(f"plan: nothing to promote: every item's content is already live in {env} "
                       "(its signed baseline records it); promote is skipped")
        out.append(f"plan: promote acts on {self.count} item(s); approval needed: "
                   f"{str(self.needs_approval).lower()}")
        return out


def all_live(items: list[EvalItem], store: ArtifactStore, env: str, key: bytes) -> bool:
    """Return True when ``env``'s signed baseline of every item records exactly its content hash.

    Stops at the first item that is not live (one store read for a real change). An
    unsigned or altered baseline counts as not live: promote then runs and deals with it.
    Raises StoreError (the stage retries).
    """
    for item in items:
        try:
            got = read_record(store, baseline_key(env, item.artifact_id, item.dataset), key)
        except RecordError:
            return False
        if got is None or got[0].content_hash != item.content_hash:
            return False
    return bool(items)


def shard_limit(config: PromptPipelineConfig) -> int:
    """Return how many shards this run may use: ``eval.max_shards``, lowered (never raised) by
    ``$PROMPTCI_EVAL_SHARDS_CAP``, which the local runner sets to its parallelism (a shard per step slot:
    more would only start more processes on the same cores). Per-item results do not depend on it."""
    cap = get_settings().eval_shards_cap
    return min(config.eval.max_shards, cap) if cap else config.eval.max_shards


def shard_count(config: PromptPipelineConfig, test_runs: int) -> int:
    """Return how many shards ``test_runs`` pending test runs are packed into (``pack`` also caps it at the items).

    ``min(shard_limit(config), test_runs // eval.min_tests_per_shard)``, at least 1: every shard pays one
    promptfoo start (on a cluster, one pod), which costs about as much CPU as ``eval.min_tests_per_shard``
    recorded test runs, so there is only a shard per that many test runs: on average each shard's tests
    cost at least its start. (Floor, not ceil: ceil would add a shard for any run past a multiple,
    carrying about half a start's worth of work.) With the default 150, the samples' 31 test runs are
    one shard, 600 are 4, and 1200 or more use the cluster's 8.
    """
    return max(1, min(shard_limit(config), test_runs // config.eval.min_tests_per_shard))


def plan_run(items: list[EvalItem], *, repo_root: Path, run_id: str, target_env: str, dry_run: bool,
             config: PromptPipelineConfig, store: ArtifactStore, key: bytes, no_cache: bool = False) -> RunPlan:
    """Return the run's plan after settling cache hits, packing the rest and storing the plan signed.

    ``items`` are plan's changed items (``steps.plan.plan``). Writes, through
    ``settle_cached``, everything a cached branch writes, then ``runs/{run}/plan.json``.
    Raises StoreError when the store is away (the stage exits 75; nothing half-written:
    the plan is written last, in one put).
    """
    settled = settle_cached(items, repo_root=repo_root, run_id=run_id, target_env=target_env, config=config,
                            store=store, no_cache=no_cache)
    runs = sum(weight for _, weight in settled.pending)
    record = PlanRecord(run_id=run_id, items=items, shards=pack(settled.pending, shard_count(config, runs)))
    plan = RunPlan(record=record, settled=list(settled.results))
    every_settled_passed = all(r.status == "passed" for r in plan.settled)
    plan.all_live = every_settled_passed and all_live(items, store, target_env, key)
    plan.count = 0 if plan.all_live else len(items)
    plan.needs_approval = plan.count > 0 and config.promotion.gate(target_env).manual_approval and not dry_run
    put_signed(store, plan_key(run_id), record, key)
    return plan


__all__ = ["RunPlan", "all_live", "plan_run", "shard_count", "shard_limit"]
