"""A sharded run end to end through the local runner, with the real steps: validate plans and shards,
one eval task per shard, and the empty fan-outs (every item cached, or nothing changed).

Real everything, as in test_pipeline_e2e.py: the compiled template, promptfoo on recordings, the
local store, a bare GitOps repo. The trusted policy narrows the fan-out to 2 shards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from config.pipeline import DEFAULT_CONFIG
from workflows.runner.records import NodeRecord, RunResult
from workflows.runner.scheduler import run_pipeline

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ("summarizer.json", "ticket-classifier.yaml", "sql-generator.yaml", "contact-extractor.yaml")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=dev", "-c", "user.email=dev@example.test", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Return a git checkout holding four sample prompts, their golden sets and recordings."""
    src = tmp_path / "src"
    for name in ("model-configs", "evals", "recordings"):
        shutil.copytree(REPO / name, src / name)
    (src / "prompts").mkdir()
    for name in PROMPTS:
        shutil.copy(REPO / "prompts" / name, src / "prompts" / name)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", ".")
    git(src, "commit", "-qm", "samples")
    return src


@pytest.fixture
def trusted(tmp_path: Path) -> Path:
    """Return the trusted policy: the shipped one, with eval.max_shards 2 and a shard allowed per test run
    (the shipped eval.min_tests_per_shard would make the samples one shard)."""
    text = DEFAULT_CONFIG.read_text()
    assert "  max_shards: 8" in text and "  min_tests_per_shard: 150" in text
    path = tmp_path / "trusted.yaml"
    path.write_text(text.replace("  max_shards: 8", "  max_shards: 2").replace("  min_tests_per_shard: 150",
                                                                               "  min_tests_per_shard: 1"))
    return path


def _run(source: Path, trusted: Path, run_id: str, **params: str) -> RunResult:
    return run_pipeline("prompt", {"artifact-path": "prompts", **params}, run_id, repo_root=source,
                        config_path=str(trusted))


def _node(result: RunResult, name: str) -> NodeRecord:
    return next(n for n in result.nodes if n.name == name)


def _stdout(node: NodeRecord) -> str:
    return (Path(node.dir) / "stdout.txt").read_text()


def _summary_rows(source: Path, run_id: str) -> list[str]:
    text = (source / ".promptci" / "store" / "runs" / run_id / "summary.md").read_text()
    return [line for line in text.splitlines() if line.startswith("| ") and " | `" in line]  # one per item


@pytest.mark.slow
def test_shards_then_cached_runs_start_no_eval_task(source: Path, trusted: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)

    # 1. A dry run evaluates everything: 2 shard tasks (the trusted max_shards), every item in one of them.
    dry = _run(source, trusted, "dry", **{"dry-run": "true"})
    assert dry.ok, dry.message
    plan = json.loads((source / ".promptci/store/runs/dry/plan.json").read_text())
    items = {(i["artifact_id"], i["dataset"]) for i in plan["items"]}
    assert len(items) >= len(PROMPTS) and plan["version"] == 2
    shards = [n for n in dry.nodes if n.task == "eval"]
    assert sorted(n.name for n in shards) == ["eval(0)", "eval(1)"]
    refs = [json.loads(json.loads((Path(n.dir) / "inputs.json").read_text())["shard"]) for n in shards]
    assert sum(r["items"] for r in refs) == len(items)
    out = _node(dry, "validate").outputs  # validate's outputs: the fan-out list, what promote acts on, approval
    assert sorted(json.loads(out["shards"]), key=lambda r: r["index"]) == sorted(refs, key=lambda r: r["index"])
    assert (out["count"], out["needs-approval"]) == (str(len(items)), "false")
    ran = {(i["artifact_id"], i["dataset"]) for s in plan["shards"] for i in s["items"]}
    assert ran == items  # nothing was cached yet
    assert all(f"eval: {aid} × {ds}: passed" in "".join(_stdout(n) for n in shards) for aid, ds in items)
    assert len(_summary_rows(source, "dry")) == len(items)  # the summary lists every item
    assert dry.tasks["promote"] == "Succeeded"  # dry run: it reports would-promote

    # 2. The same content again, for real: every item is a cache hit, settled in validate; no eval task
    #    starts (empty withParam: Skipped), and promote still runs, since nothing is live in dev yet.
    real = _run(source, trusted, "real")
    assert real.ok, real.message
    assert real.tasks["eval"] == "Skipped" and _node(real, "eval").message == "Skipped, empty params"
    assert not [n for n in real.nodes if n.name.startswith("eval(")]
    assert real.tasks["promote"] == "Succeeded"
    assert "promoted" in _stdout(_node(real, "promote"))
    rows = _summary_rows(source, "real")
    assert len(rows) == len(items) and all("| yes |" in r for r in rows)  # listed, and served by the cache

    # 3. Again: cached, and every item's content is live in dev already: promote has nothing to do.
    again = _run(source, trusted, "again")
    assert again.ok, again.message
    assert again.tasks["eval"] == "Skipped" and again.tasks["promote"] == "Skipped"
    assert "plan: nothing to promote" in _stdout(_node(again, "validate"))
    out = _node(again, "validate").outputs
    assert (out["shards"], out["count"], out["needs-approval"]) == ("[]", "0", "false")
    assert len(_summary_rows(source, "again")) == len(items)

    # 4. Nothing changed between base and revision: no item, no eval task, no promote.
    head = git(source, "rev-parse", "HEAD")
    nothing = _run(source, trusted, "nothing", **{"base-revision": head, "git-revision": head})
    assert nothing.ok, nothing.message
    assert nothing.tasks["eval"] == "Skipped" and nothing.tasks["promote"] == "Skipped"
    assert "plan: 0 item(s)" in _stdout(_node(nothing, "validate"))
