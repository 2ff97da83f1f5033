"""Benchmark the local runner: what a step costs it, and what its fan-out buys, against true floors.

    python bench/bench_runner.py [--quick] [--branches 4] [--seconds 2]

Each figure is wall and CPU-s (this process's threads plus every step process), with the load.

1. A zero-work template (lint || validate -> plan -> eval x2 -> promote, every step returns at once),
   run by the runner, against its floor: its critical path in processes (4 levels) times a bare
   ``python -c pass``, the least any process-per-step runner pays. The per-step start (the step's
   own command: interpreter, hera runner, module import) is shown against ``python -c pass``, and is
   counted as overhead, not as work.
2. A fan-out of N branches that each sleep S seconds: the runner at parallelism N against a TRUE serial
   run (the same template at parallelism 1, measured, not a sum of branches that overlapped) and
   against the floor (N bare ``python -c "sleep(S)"`` processes started together). The branches sleep,
   so this measures orchestration only; for CPU-bound eval branches see bench_eval and bench_pipeline.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import cpu_now, fmt_load, quick, ratio  # noqa: E402
from tests.workflows.pipeline_fixtures import pipeline_template  # noqa: E402
from workflows.runner.expr import depends_names  # noqa: E402
from workflows.runner.scheduler import RunResult, run_template  # noqa: E402


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Return (fn's result, wall s, CPU-s of this process and its step processes) of one call."""
    cpu, t0 = cpu_now(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, cpu_now() - cpu


def depth(manifest: dict[str, Any]) -> int:
    """Return the number of DAG levels (processes on the critical path) of the entrypoint."""
    entry = next(t for t in manifest["spec"]["templates"] if t["name"] == manifest["spec"]["entrypoint"])
    tasks = {t["name"]: t for t in entry["dag"]["tasks"]}
    memo: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in memo:
            t = tasks[name]
            deps = depends_names(t["depends"]) if "depends" in t else t.get("dependencies", [])
            memo[name] = 1 + max((level(d) for d in deps), default=0)
        return memo[name]

    return max(level(n) for n in tasks)


def bare(code: str, copies: int = 1) -> tuple[float, float]:
    """Return (wall s, CPU-s) of ``copies`` bare ``python -c code`` processes started together."""
    def go() -> None:
        procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(copies)]
        for p in procs:
            p.wait()

    _, wall, cpu = timed(go)
    return wall, cpu


def zero_work(work: Path, rounds: int) -> None:
    """Figure 1: a zero-work template against its process floor."""
    manifest = pipeline_template(seconds=0.0, branches=2, out=str(work / "out.json"))
    levels = depth(manifest)
    runs: list[tuple[RunResult, float, float]] = []
    passes: list[float] = []
    for i in range(rounds):
        runs.append(timed(functools.partial(run_template, manifest, {}, repo_root=work, runs_dir=work / "runs",
                                            run_id=f"zero-{i}")))
        passes.append(bare("pass")[0])
    result, wall, cpu = min(runs, key=lambda r: r[1])
    if not result.ok:
        raise SystemExit(f"zero-work run failed: {result.message}")
    py = min(passes)
    floor = levels * py
    step = statistics.median(n.duration for n in result.nodes)
    print(f"1. zero-work template ({len(result.nodes)} steps, {levels} levels), best of {rounds}:")
    print(f"   runner: wall {wall:.2f} s, CPU {cpu:.2f} s")
    print(f"   floor:  {levels} levels x python -c pass ({py:.3f} s) = {floor:.2f} s")
    print(f"   => overhead {wall - floor:.2f} s, {ratio(wall, floor):.1f}x the floor; a step's own start "
          f"(median step process, no work) {step:.2f} s = {ratio(step, py):.1f}x python -c pass")


def fan_out(work: Path, branches: int, seconds: float) -> None:
    """Figure 2: the fan-out at parallelism N against a true serial run and the bare floor."""
    def run(parallelism: int, rid: str) -> tuple[RunResult, float, float]:
        manifest = pipeline_template(seconds=0.0, branches=branches, branch_seconds=seconds,
                                     out=str(work / f"{rid}.json"), parallelism=parallelism)
        out = timed(lambda: run_template(manifest, {}, repo_root=work, runs_dir=work / "runs", run_id=rid))
        if not out[0].ok:
            raise SystemExit(f"fan-out run {rid} failed: {out[0].message}")
        return out

    par, p_wall, p_cpu = run(branches, "fan-parallel")
    ser, s_wall, s_cpu = run(1, "fan-serial")
    f_wall, f_cpu = bare(f"import time; time.sleep({seconds})", branches)

    def group(result: RunResult) -> float:
        evals = [n for n in result.nodes if n.task == "eval"]
        return max(n.finished or 0 for n in evals) - min(n.started or 0 for n in evals)

    print(f"2. fan-out of {branches} branches x {seconds:.1f} s sleep (load {fmt_load()}):")
    print(f"   parallelism {branches}: whole run {p_wall:.2f} s (fan-out {group(par):.2f} s), CPU {p_cpu:.2f} s")
    print(f"   parallelism 1:  whole run {s_wall:.2f} s (fan-out {group(ser):.2f} s), CPU {s_cpu:.2f} s")
    print(f"   floor: {branches} bare python sleeping together {f_wall:.2f} s, CPU {f_cpu:.2f} s")
    print(f"   => fan-out {ratio(group(par), group(ser)):.2f}x the serial fan-out (ideal {1 / branches:.2f}x), "
          f"{ratio(group(par), f_wall):.2f}x the floor")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (also BENCH_QUICK=1)")
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="sleep of each fan-out branch")
    args = parser.parse_args()
    small = quick(args.quick)
    print(f"runner bench{' (quick)' if small else ''}; load {fmt_load()}")
    with tempfile.TemporaryDirectory(prefix="promptci-bench-runner-") as tmp:
        zero_work(Path(tmp), 1 if small else 3)
        fan_out(Path(tmp), 2 if small else args.branches, 0.5 if small else args.seconds)
    print(f"load now {fmt_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
