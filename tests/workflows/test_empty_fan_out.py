"""The real compiled DAG with scripted pods: an empty shard list, the count that decides promote, and the
pods a 200-prompt run starts. The pods do nothing (each attempt succeeds with the outputs validate would
write), so these take a second; tests/workflows/test_sharded_run.py runs the real steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.artifacts import ArtifactType
from config.pipeline import load_pipeline_config
from steps.contracts import EvalItem, ShardRef, to_wire
from steps.run_plan import shard_count
from steps.shards import pack
from tests.workflows.test_metrics_parity import ScriptedPods
from tests.workflows.test_safe_path import policy_configmaps
from workflows.runner.records import NodeRecord, RunResult
from workflows.runner.scheduler import run_template
from workflows.templates import PipelineSettings, build_template

REPO = Path(__file__).resolve().parents[2]


class ValidatePods(ScriptedPods):
    """Scripted pods whose validate writes ``shards`` exactly as given."""

    def __init__(self, shards: list[ShardRef], count: int):
        super().__init__({}, eval_branches=0, count=count)
        self.shards = to_wire(list(shards)) if shards else "[]"


def _run(tmp_path: Path, pods: ScriptedPods, run_id: str, monkeypatch: pytest.MonkeyPatch) -> RunResult:
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    manifest = build_template(ArtifactType.PROMPT, PipelineSettings(backoff="0s")).to_dict()
    return run_template(manifest, {"repo-url": str(REPO)}, repo_root=REPO, run_id=run_id,
                        runs_dir=tmp_path / "runs", executor=pods, configmaps=policy_configmaps())


def _node(result: RunResult, name: str) -> NodeRecord:
    return next(n for n in result.nodes if n.name == name)


def test_an_empty_shard_list_skips_eval_and_promote_runs_when_cached_items_need_promoting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argo (v4.1.2) ``workflow/controller/dag.go`` ``executeDAGTask``: a task whose ``withParam``
    expands to no items (``expandTask`` returns an empty list) gets one node of type Skipped, phase
    Skipped, message "Skipped, empty params"; no TaskGroup, no child. ``workflow/common/ancestry.go``
    ``expandDependency``: promote's bare ``depends: eval`` means ``eval.Succeeded || eval.Skipped ||
    eval.Daemoned``, so a Skipped eval lets promote be decided by its ``when`` (``count > 0``) alone."""
    cached = _run(tmp_path, ValidatePods([], count=3), "all-cached", monkeypatch)
    assert cached.status == "Succeeded", cached.message
    assert cached.tasks["eval"] == "Skipped"
    assert _node(cached, "eval").message == "Skipped, empty params"
    assert not [n for n in cached.nodes if n.name.startswith("eval(")]
    assert cached.tasks["promote"] == "Succeeded"  # 3 cached items to promote: promote ran
    assert cached.tasks["summary"] == "Succeeded"


def test_nothing_to_promote_skips_promote_and_the_run_succeeds(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing changed, or every item is live already (count 0): ``when '0 > 0'`` is false, promote is
    Skipped (``dag.go`` ``executeDAGTask``: "when '…' evaluated false"), and a Skipped leaf inherits its
    branch's Succeeded (``dag.go`` ``assessDAGPhase``): the run succeeds with lint, validate and summary only."""
    nothing = _run(tmp_path, ValidatePods([], count=0), "nothing", monkeypatch)
    assert nothing.status == "Succeeded", nothing.message
    assert nothing.tasks["eval"] == "Skipped" and nothing.tasks["promote"] == "Skipped"
    assert _node(nothing, "promote").message == "when '0 > 0' evaluated false"
    started = sorted(n.name for n in nothing.nodes if n.started is not None and n.template != "approval")
    assert started == ["lint", "summary", "validate"]


def test_a_200_prompt_full_run_starts_at_most_8_eval_pods_plus_4(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The fan-out's width is at most eval.max_shards of the shipped policy, whatever the item count: 200
    changed prompts (3 tests each, 600 test runs) make 600 // eval.min_tests_per_shard (150) = 4 shards
    (``shard_count``: a fifth would carry less work than its own promptfoo start), so lint, validate,
    4 evals, promote and summary, within 8 eval pods plus 4. A run of 2000 prompts uses all 8."""
    items = [(EvalItem(artifact_id=f"p{i:03d}", artifact_type="prompt", path=f"prompts/p{i:03d}.yaml",
                       dataset="golden", content_hash=f"sha256:{i:064x}"), 3) for i in range(200)]
    monkeypatch.delenv("PROMPTCI_EVAL_SHARDS_CAP", raising=False)  # the cluster's plan: no local cap
    policy = load_pipeline_config()
    max_shards = policy.eval.max_shards
    shards = pack(items, shard_count(policy, sum(w for _, w in items)))
    refs = [ShardRef(index=s.index, items=len(s.items), tests=s.tests) for s in shards]
    full = _run(tmp_path, ValidatePods(refs, count=200), "full", monkeypatch)
    assert full.status == "Succeeded", full.message
    pods = [n for n in full.nodes if n.started is not None and n.template != "approval"]
    evals = [n for n in pods if n.task == "eval"]
    assert len(evals) == 4 < max_shards == 8 and len(pods) == 4 + 4
    assert sorted(json.loads(json.loads((Path(n.dir) / "inputs.json").read_text())["shard"])["items"]
                  for n in evals) == [50] * 4
    assert shard_count(policy, 2000 * 3) == max_shards
