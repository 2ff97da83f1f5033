"""Benchmark the local runner: orchestration overhead and fan-out speed-up.

    python bench/bench_runner.py [--no-samples]

1. Overhead = wall time of a local run minus the critical-path sum of step durations (goal <= 1.0 s);
   measured on a trivial test template and, when promptfoo is installed, on the real samples (a temp
   copy of the repo, so nothing is promoted anywhere shared).
2. Fan-out: 4 eval-like branches each sleeping 2 s; wall time of the group against the serial sum
   (goal <= 0.6x).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIRS = {"config", "prompts", "evals", "model-configs", "rag-configs", "guardrails", "recordings"}
sys.path.insert(0, str(ROOT))

from tests.workflows.pipeline_fixtures import pipeline_template  # noqa: E402
from workflows.runner.expr import depends_names  # noqa: E402
from workflows.runner.scheduler import RunResult, run_template  # noqa: E402


def critical_path(manifest: dict[str, Any], result: RunResult) -> float:
    """Return the longest dependency chain of step durations (a fan-out counts as its longest branch)."""
    entry = next(t for t in manifest["spec"]["templates"] if t["name"] == manifest["spec"]["entrypoint"])
    tasks = {t["name"]: t for t in entry["dag"]["tasks"]}
    own = {name: max((n.duration for n in result.nodes if n.task == name), default=0.0) for name in tasks}
    memo: dict[str, float] = {}

    def finish(name: str) -> float:
        if name not in memo:
            t = tasks[name]
            deps = depends_names(t["depends"]) if "depends" in t else t.get("dependencies", [])
            memo[name] = own[name] + max((finish(d) for d in deps), default=0.0)
        return memo[name]

    # The exit handler runs after the whole DAG, so it extends the critical path.
    exit_handler = manifest["spec"].get("onExit")
    after = max((n.duration for n in result.nodes if exit_handler and n.template == exit_handler), default=0.0)
    return max(finish(n) for n in tasks) + after


def overhead(manifest: dict[str, Any], params: dict[str, str], repo: Path, runs: Path,
             approve: bool = False, configmaps: dict[str, dict[str, str]] | None = None
             ) -> tuple[RunResult, float, float]:
    result = run_template(manifest, params, repo_root=repo, runs_dir=runs, approve=approve, configmaps=configmaps)
    cp = critical_path(manifest, result)
    return result, result.duration_seconds, cp


def samples_overhead(runs: Path) -> str:
    if not (ROOT / "node_modules" / "promptfoo").exists():
        return "samples: skipped (promptfoo not installed: npm ci --omit=optional)"
    from config.artifacts import ArtifactType
    from config.policy import trusted_policy_text
    from workflows.templates import POLICY_CONFIGMAP, PipelineSettings, build_template

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], check=True, capture_output=True,
                                 text=True).stdout.splitlines()
        for rel in tracked:  # the samples with their datasets and recordings, as committed
            src = ROOT / rel
            if src.is_file() and rel.split("/")[0] in SAMPLE_DIRS:
                (repo / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, repo / rel)
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                        "commit", "-q", "-m", "samples"], check=True)
        manifest = build_template(ArtifactType.PROMPT, PipelineSettings.load()).to_dict()
        policy = {POLICY_CONFIGMAP: {"pipeline.yaml": trusted_policy_text(repo)[0]}}  # what `run` mounts
        result, wall, cp = overhead(manifest, {"repo-url": str(repo)}, repo, runs, configmaps=policy)
        return (f"samples (prompt pipeline, {sum(1 for n in result.nodes if n.task == 'eval')} eval branches, "
                f"{result.status}): wall {wall:.2f}s, critical path {cp:.2f}s, overhead {wall - cp:.2f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-samples", action="store_true", help="skip the run on the real samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = pipeline_template(seconds=0.0, branches=2, out=str(work / "out.json"))
        _, wall, cp = overhead(manifest, {}, work, work / "runs")
        print(f"1. orchestration overhead (trivial template, 6 steps): wall {wall:.2f}s, critical path "
              f"{cp:.2f}s, overhead {wall - cp:.2f}s (goal <= 1.0s)")
        if not args.no_samples:
            print("   " + samples_overhead(work / "runs"))
        fan = pipeline_template(seconds=0.0, branches=4, branch_seconds=2.0, out=str(work / "fan.json"),
                                parallelism=4)
        result = run_template(fan, {}, repo_root=work, runs_dir=work / "runs")
        branches = [n for n in result.nodes if n.task == "eval"]
        assert len(branches) == 4 and all(n.started and n.finished for n in branches)
        group = max(n.finished or 0 for n in branches) - min(n.started or 0 for n in branches)
        serial = sum(n.duration for n in branches)
        print(f"2. fan-out (4 branches x 2s sleep): wall {group:.2f}s vs serial {serial:.2f}s = "
              f"{group / serial:.2f}x (goal <= 0.6x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
