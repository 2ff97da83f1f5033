"""Running the real pipeline for the benches: ``submit.py run`` as a user runs it, measured as a process tree.

Also the two figures that need the runner itself rather than a whole run:
* :func:`fanout_width`: run the DAG only up to the task the eval fan-out reads (lint, validate and
  whatever plans), and return how wide the fan-out would be, so the pods a run would create on
  Argo are counted from the compiled template and the real plan;
* :func:`stage_starts`: each stage's pod command, exactly as compiled, run by the local runner on
  input that gives it nothing to do, against a node whose script is ``pass`` and a bare ``python -c pass``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import layout  # noqa: E402
from bench.measure import Measured, cpu_now, run  # noqa: E402

SUBMIT = ROOT / "workflows" / "submit.py"
TASK_REF = layout.TASK_OUTPUT


def _repo_flag() -> str:
    """Return the option ``submit.py run`` takes the repository with (``--repo-root``, or the older ``--repo``)."""
    out = subprocess.run([sys.executable, str(SUBMIT), "run", "--help"], capture_output=True, text=True,
                         check=False, cwd=ROOT).stdout
    return "--repo-root" if "--repo-root" in out else "--repo"


def run_pipeline(label: str, repo: Path, run_id: str, params: Mapping[str, str] | None = None, *,
                 parallelism: int | None = None, logs: Path,
                 env: Mapping[str, str] | None = None) -> tuple[Measured, Path]:
    """Measure ``submit.py run prompt`` on ``repo`` (offline, recorded answers); return it and its run dir.

    The run gets this environment without any ``PROMPTCI_*`` variable, plus ``env``.
    """
    cmd = [sys.executable, str(SUBMIT), "run", "prompt", _repo_flag(), str(repo), "--run-id", run_id]
    for key, value in (params or {}).items():
        cmd += ["-p", f"{key}={value}"]
    if parallelism:
        cmd += ["--parallelism", str(parallelism)]
    full = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCI_")}
    full.update({"PROMPTCI_PROVIDER": "recorded", **(env or {})})
    logs.mkdir(parents=True, exist_ok=True)
    measured = run(label, cmd, cwd=repo, env=full, log=logs / f"{run_id}.log")
    return measured, repo / ".promptci" / "runs" / run_id


def fanout_width(repo: Path, logs: Path, run_id: str = "bench-width") -> tuple[dict[str, int], dict[str, int]]:
    """Return (pods per task, fan-out width per task) a full run of ``repo`` would create on Argo.

    Runs the compiled template's DAG only as far as the task whose output the fan-out reads,
    then counts that output's list. Raises RuntimeError when that part of the run fails.
    """
    from workflows.runner.scheduler import run_template

    manifest = layout.compiled()
    fan, source, output = layout.fanout(manifest)
    part = layout.truncated(manifest, layout.upstream(manifest, source))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCI_")}
    result = run_template(part, {"repo-url": str(repo)}, repo_root=repo, run_id=run_id, env=env,
                          runs_dir=logs / "runs", configmaps=_policy(repo))
    node = next((n for n in result.nodes if n.task == source), None)
    if node is None or output not in node.outputs:
        raise RuntimeError(f"{source} wrote no {output} ({result.status}: {result.message}); see {result.run_dir}")
    widths = {fan: len(json.loads(node.outputs[output]))}
    return layout.pods(manifest, widths), widths


def _policy(repo: Path) -> dict[str, dict[str, str]]:
    """Return the policy ConfigMap ``run`` mounts for ``repo`` (its pipeline.yaml at ``main``)."""
    from config.policy import trusted_policy_text
    from workflows.templates import POLICY_CONFIGMAP

    return {POLICY_CONFIGMAP: {"pipeline.yaml": trusted_policy_text(repo)[0]}}


def _nothing_to_do(manifest: Mapping[str, Any], stage: str, tpl: dict[str, Any]) -> dict[str, Any]:
    """Return a one-task manifest running template ``stage`` once, on input that leaves it nothing to do.

    Its task arguments are the DAG's, except that another task's output is empty and a fan-out's
    ``{{item}}`` is ``{}``; ``artifact-path`` names an empty directory. Retries are off. A stage
    refuses such input (exit 1 or 2) or finds nothing to do: either way what it paid is its start.
    """
    # The exit handler's {{workflow.status}} exists only once the DAG ended: say it succeeded.
    tpl = json.loads(json.dumps(tpl).replace("{{workflow.status}}", "Succeeded"))
    tpl.pop("retryStrategy", None)
    tpl.pop("metrics", None)
    task = next((t for t in layout.entry_tasks(manifest).values() if t["template"] == stage), None)
    params = []
    for p in ((task or {}).get("arguments") or {}).get("parameters", []):
        value = TASK_REF.sub("", str(p.get("value", ""))).replace("{{item}}", "{}")
        params.append({"name": p["name"], "value": value})
    spec = json.loads(json.dumps(manifest["spec"]))
    for key in ("onExit", "metrics"):
        spec.pop(key, None)
    spec["templates"] = [tpl, {"name": "bench-main", "dag": {"tasks": [
        {"name": stage, "template": stage, "arguments": {"parameters": params}}]}}]
    spec["entrypoint"] = "bench-main"
    return {**manifest, "spec": spec}


def _pass_template(tpl: dict[str, Any]) -> dict[str, Any]:
    """Return ``tpl`` with its script replaced by ``pass`` under ``python`` (the node floor)."""
    floor = json.loads(json.dumps(tpl))
    floor["name"] = "pass"
    floor["script"].update(command=["python"], args=[], source="pass")
    floor["inputs"] = {k: v for k, v in (tpl.get("inputs") or {}).items() if k == "artifacts"}  # the checkout
    floor.pop("outputs", None)
    return floor


def stage_starts(repo: Path, logs: Path, rounds: int = 3, *,
                 executor: Callable[[], Any] | None = None) -> dict[str, tuple[float, float]]:
    """Return the median (wall s, CPU-s) of every stage's node given nothing to do, plus two references.

    Keys: each stage template's name, ``node running pass`` (the runner's own cost per node with a
    script that does nothing) and ``python -c pass`` (a bare interpreter, no runner). Without
    ``executor`` each step is its pod command in a new process (ProcessExecutor, the cluster's start), and
    CPU-s counts the step's process tree and the runner's threads while the node ran. With ``executor``
    (a factory, e.g. a ForkExecutor of one shared fork server) CPU-s is what the executor measured of the
    step (wait4): a forked step is its zygote's child, not this process's.
    """
    from workflows.runner.executors import ProcessExecutor
    from workflows.runner.scheduler import run_template

    manifest = layout.compiled()
    tpls = layout.templates(manifest)
    (repo / "bench-empty").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCI_")}
    params = {"repo-url": str(repo), "artifact-path": "bench-empty"}
    cases = {name: _nothing_to_do(manifest, name, tpls[name]) for name in layout.stage_templates(manifest)}
    first = tpls[layout.stage_templates(manifest)[0]]
    cases["node running pass"] = _nothing_to_do(manifest, "pass", _pass_template(first))
    policy = _policy(repo)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in [*cases, "python -c pass"]}
    for r in range(rounds):  # interleaved, so each stage sees the same load
        for name, m in cases.items():
            cpu = cpu_now()
            result = run_template(m, params, repo_root=repo, run_id=f"start-{r}-" + name.replace(" ", "-"),
                                  env=env, runs_dir=logs / "runs", configmaps=policy,
                                  executor=executor() if executor else ProcessExecutor())
            used = sum(n.cpu_seconds or 0.0 for n in result.nodes) if executor else cpu_now() - cpu
            figures[name].append((max(n.duration for n in result.nodes), used))
        cpu, t0 = cpu_now(), time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        figures["python -c pass"].append((time.perf_counter() - t0, cpu_now() - cpu))
    return {name: (statistics.median(w for w, _ in f), statistics.median(c for _, c in f))
            for name, f in figures.items()}


def phase_wall(run_dir: Path, task: str) -> tuple[float, int]:
    """Return (seconds from the first node of ``task`` starting to the last finishing, its nodes) of a run."""
    nodes = [n for n in json.loads((run_dir / "run.json").read_text())["nodes"]
             if n["task"] == task and n.get("started") and n.get("finished")]
    if not nodes:
        return 0.0, 0
    return max(n["finished"] for n in nodes) - min(n["started"] for n in nodes), len(nodes)


def breakdown(run_dir: Path, m: Measured) -> list[tuple[str, float, float | None]]:
    """Return where a measured run's wall went: ``(segment, seconds, CPU-s or None)`` in order.

    The segments are the CLI before the first stage started, each task from its first node's start to its
    last node's finish (with its nodes' CPU-s, from run.json), and the CLI after the last stage. It exists
    so a figure that misses its goal says which part to work on.
    """
    nodes = [n for n in json.loads((run_dir / "run.json").read_text())["nodes"]
             if n.get("started") and n.get("finished")]
    if not nodes:
        return [("whole run", m.wall_s, m.cpu_s)]
    tasks: dict[str, list[dict[str, Any]]] = {}
    for n in sorted(nodes, key=lambda n: n["started"]):
        tasks.setdefault(n["task"], []).append(n)
    first, last = min(n["started"] for n in nodes), max(n["finished"] for n in nodes)
    parts: list[tuple[str, float, float | None]] = [("before the first stage", first - m.started_at, None)]
    for task, group in tasks.items():
        wall = max(n["finished"] for n in group) - min(n["started"] for n in group)
        cpu = sum(n.get("cpu_seconds") or 0.0 for n in group)
        parts.append((task if len(group) == 1 else f"{task} ×{len(group)}", wall, cpu))
    parts.append(("after the last stage", m.started_at + m.wall_s - last, None))
    return parts


def fmt_breakdown(parts: list[tuple[str, float, float | None]]) -> str:
    """Return :func:`breakdown` as one line (tasks that ran side by side overlap, so they need not add up)."""
    return " · ".join(f"{name} {wall:.2f} s" + (f" ({cpu:.2f} CPU-s)" if cpu is not None else "")
                      for name, wall, cpu in parts)
