"""Benchmark the container executor's start overhead per node against the process executor.

    python bench/bench_container.py [--nodes 12]

Runs the same template, a fan-out of N trivial runner steps (``python -P -m hera.workflows.runner``,
each with the ``source`` git artifact, one at a time), once with each executor in the same run,
and prints the median node duration of each and the difference: what running a node as its pod
would costs on top of a subprocess (clone, container create/start/stop, output copy, removal).
Goal: <= 0.6 s extra per node. Needs Podman and the step image (``make image``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.artifacts import ArtifactType  # noqa: E402
from tests.workflows.containers import git_repo  # noqa: E402
from workflows.runner.container import ContainerExecutor  # noqa: E402
from workflows.runner.scheduler import RunResult, run_template  # noqa: E402
from workflows.templates import POLICY_CONFIGMAP, PipelineSettings, build_template  # noqa: E402


def fan_out_lint(nodes: int) -> dict[str, Any]:
    """Return the real lint stage template fanned out over ``nodes`` items, run one at a time."""
    manifest = build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict()
    spec = dict(manifest["spec"])
    lint = next(t for t in spec["templates"] if t["name"] == "lint")
    spec["templates"] = [lint, {"name": "main", "dag": {"tasks": [{
        "name": "lint", "template": "lint", "withItems": list(range(nodes)),
        "arguments": {"parameters": [{"name": "artifact-path", "value": "prompts/summarizer.json"}]}}]}}]
    spec.update(entrypoint="main", parallelism=1)
    for key in ("onExit", "metrics", "activeDeadlineSeconds"):
        spec.pop(key, None)
    return {**manifest, "spec": spec}


def node_seconds(result: RunResult) -> list[float]:
    """Return the duration of every fan-out node of a run that must have succeeded."""
    if not result.ok:
        raise SystemExit(f"bench run {result.run_id} failed: {result.message}")
    return [n.duration for n in result.nodes if n.task == "lint"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=12, help="nodes per executor (>= 10)")
    args = parser.parse_args()
    image = PipelineSettings().image
    if subprocess.run(["podman", "image", "exists", image], check=False,
                      env={**os.environ, "CONTAINERS_CONF": str(ROOT / "image" / "containers.conf")}).returncode:
        print(f"container bench: skipped (image {image} not built: make image)")
        return 0
    manifest = fan_out_lint(max(10, args.nodes))
    with tempfile.TemporaryDirectory(prefix="bench-container-") as tmp:
        work = Path(tmp)
        src = work / "src"
        (src / "prompts").mkdir(parents=True)
        shutil.copy(ROOT / "prompts" / "summarizer.json", src / "prompts")
        shutil.copytree(ROOT / "evals" / "summarizer", src / "evals" / "summarizer")
        git_repo(src, {})
        params = {"repo-url": str(src)}
        # Every stage pod mounts the trusted policy ConfigMap: the process executor takes it as a mapping,
        # the container executor from <configmaps-dir>/<name>/<key> (as `run` gives them).
        policy = (ROOT / "config" / "pipeline.yaml").read_text()
        (work / "cm" / POLICY_CONFIGMAP).mkdir(parents=True)
        (work / "cm" / POLICY_CONFIGMAP / "pipeline.yaml").write_text(policy)
        configmaps = {POLICY_CONFIGMAP: {"pipeline.yaml": policy}}
        load_before = os.getloadavg()
        process = node_seconds(run_template(manifest, params, repo_root=src, runs_dir=work / "runs",
                                            run_id="process", env=dict(os.environ), configmaps=configmaps))
        container = node_seconds(run_template(manifest, params, repo_root=src, runs_dir=work / "runs",
                                              run_id="container", env=dict(os.environ), configmaps=configmaps,
                                              executor=ContainerExecutor(work / "cm", work / "secrets")))
        load_after = os.getloadavg()
    p, c = statistics.median(process), statistics.median(container)
    print(f"nodes: {len(process)} per executor, one at a time; load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f} ({os.cpu_count()} cores)")
    print(f"process executor:   median {p:.2f} s per node (min {min(process):.2f}, max {max(process):.2f})")
    print(f"container executor: median {c:.2f} s per node (min {min(container):.2f}, max {max(container):.2f})")
    print(f"container start overhead: {c - p:+.2f} s per node (goal <= 0.60 s); ratio {c / p:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
