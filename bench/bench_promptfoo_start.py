"""promptfoo per call: via ``npx`` (before) against ``node <entry>`` (now). ``python bench/bench_promptfoo_start.py``.

Side by side in one run, alternating so both see the same load: each round runs
``promptfoo --version`` (start only) and a 2-test eval with promptfoo's ``echo`` provider (start
+ eval, as a branch runs it: ``steps.promptfoo.run_promptfoo``'s arguments and environment) once
per way. Prints the median wall and CPU-s (user + system of the child and its children, from
``getrusage``) per way, their ratio, and the load average before and after.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from steps.promptfoo import (  # noqa: E402
    PreparedTest,
    build_config,
    default_command,
    promptfoo_env,
    promptfoo_home,
    state_dir,
    write_json,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Return (wall s, CPU s of the child tree) of running ``args``; exit if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 100):
        sys.exit(f"{' '.join(args[:3])}... exited {out.returncode}: {out.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    """Run the rounds and print the table."""
    node = default_command()
    home = promptfoo_home()
    npx = ["npx", "--prefix", str(home), "--no-install", "promptfoo"]
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg = work / "promptfooconfig.json"
        tests = [PreparedTest(i, f"t{i}", {}, [{"role": "user", "content": f"hello {i}"}],
                              [{"type": "icontains", "value": "hello"}]) for i in range(2)]
        write_json(cfg, build_config(description="bench", tests=tests, provider={"id": "echo"},
                                     grader={"id": "echo"}))
        env = promptfoo_env(work)
        # both ways find the same Node 22 first on PATH (npx's own node, and promptfoo's shebang)
        env["PATH"] = f"{Path(node[0]).parent}{os.pathsep}{env.get('PATH', '')}"
        evals = ["eval", "-c", str(cfg), "-o", str(work / "results.json"), "-j", "2", "--repeat", "1",
                 "--no-table", "--no-progress-bar", "--no-share", "--no-cache"]
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
        try:
            timed([*node, "--version"], work, env)  # warm the page cache for both
            timed([*npx, "--version"], work, env)
            for _ in range(ROUNDS):
                for what, extra in (("--version", ["--version"]), ("eval 2 tests", evals)):
                    for way, cmd in (("npx", npx), ("node direct", node)):
                        runs.setdefault((what, way), []).append(timed([*cmd, *extra], work, env))
        finally:
            shutil.rmtree(state_dir(work), ignore_errors=True)  # promptfoo's state, as run_promptfoo removes it
    load1 = os.getloadavg()
    print(f"promptfoo per call, {ROUNDS} rounds alternating; load {load0[0]:.2f} -> {load1[0]:.2f} (1-min avg)")
    print(f"{'call':<14}{'way':<13}{'wall s (median)':>17}{'CPU s (median)':>16}")
    for what in ("--version", "eval 2 tests"):
        med = {}
        for way in ("npx", "node direct"):
            walls, cpus = zip(*runs[(what, way)], strict=True)
            med[way] = (statistics.median(walls), statistics.median(cpus))
            print(f"{what:<14}{way:<13}{med[way][0]:>17.2f}{med[way][1]:>16.2f}")
        print(f"{what:<14}{'npx / node':<13}{med['npx'][0] / med['node direct'][0]:>16.2f}x"
              f"{med['npx'][1] / med['node direct'][1]:>15.2f}x   (saved per call: "
              f"{med['npx'][0] - med['node direct'][0]:.2f} s wall, {med['npx'][1] - med['node direct'][1]:.2f} CPU-s)")


if __name__ == "__main__":
    main()
