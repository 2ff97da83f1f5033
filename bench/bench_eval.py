"""Eval-stage benchmark: the real eval fan-out (processes, promptfoo, recorded answers) against true floors.

    python bench/bench_eval.py [--quick] [--prompts 8] [--tests 4]

Side by side in one run, each a whole ``submit.py run prompt`` on generated prompts (bench/generate.py),
measured as a process tree (wall, CPU-s of every descendant, peak summed RSS), with the load:

* the run as a user gets it (the runner's default parallelism), and the eval phase inside it
  (first eval node's start to the last one's end, from the run record);
* a TRUE serial run: the same run at ``--parallelism 1`` with ``no-cache`` (measured, not a sum);
* the floor: ONE bare promptfoo process over the same tests and recordings (bench/floor.py);
* an unchanged re-run: how many provider calls it makes (goal 0: the cache serves it) and its CPU-s.

No sleeping provider and no threads standing in for pods: the branches are the stage's real processes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import generate, layout  # noqa: E402
from bench.floor import FloorError, run_floor  # noqa: E402
from bench.measure import Measured, fmt_load, quick, ratio  # noqa: E402
from bench.pipeline_runs import phase_wall, run_pipeline  # noqa: E402


def _show(m: Measured, items: int, phase: tuple[float, int] | None = None) -> None:
    extra = f"; eval phase {phase[0]:.2f} s over {phase[1]} node(s)" if phase else ""
    print(f"   {m.line()}; {m.cpu_s / items:.2f} CPU-s per item{extra}", flush=True)
    if m.returncode != 0:
        raise SystemExit(f"bench_eval: {m.label} exited {m.returncode}")


def calls(log: Path) -> int:
    """Return how many provider calls the recorded provider logged (one line each)."""
    return len(log.read_text().splitlines()) if log.exists() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes (also BENCH_QUICK=1)")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tests", type=int, default=4, help="golden tests per prompt")
    args = ap.parse_args()
    small = quick(args.quick)
    prompts = 2 if small else args.prompts
    fan = layout.fanout(layout.compiled())[0]
    print(f"eval bench{' (quick)' if small else ''}: {prompts} prompts x {args.tests} tests; load {fmt_load()}")
    work = Path(tempfile.mkdtemp(prefix="promptci-bench-eval-"))
    logs = work / "logs"
    try:
        repo = work / "repo"
        items = generate.generate(repo, prompts, tests=args.tests)
        fresh_log = work / "calls-fresh.log"
        default, run_dir = run_pipeline("run, default parallelism", repo, "eval-default", logs=logs,
                                        env={"PROMPTCI_CALL_LOG": str(fresh_log)})
        _show(default, items, phase_wall(run_dir, fan))
        serial, serial_dir = run_pipeline("run, parallelism 1, no-cache", repo, "eval-serial",
                                          {"no-cache": "true"}, parallelism=1, logs=logs)
        _show(serial, items, phase_wall(serial_dir, fan))
        try:
            floor = run_floor(run_dir, repo, work / "floor")
        except FloorError as exc:
            raise SystemExit(f"bench_eval: no floor: {exc}") from exc
        _show(floor.measured, items)
        log = work / "calls.log"
        rerun, _ = run_pipeline("unchanged re-run", repo, "eval-rerun", logs=logs,
                                env={"PROMPTCI_CALL_LOG": str(log)})
        _show(rerun, items)
        made, fresh = calls(log), calls(fresh_log)
        if fresh == 0:  # the call log must reach the provider, or "0 calls on the re-run" proves nothing
            raise SystemExit("bench_eval: the fresh run logged no provider call; PROMPTCI_CALL_LOG did not reach it")
        d_phase, s_phase = phase_wall(run_dir, fan)[0], phase_wall(serial_dir, fan)[0]
        print(f"=> eval phase: default {d_phase:.2f} s vs true serial {s_phase:.2f} s = "
              f"{ratio(d_phase, s_phase):.2f}x; vs one bare promptfoo ({floor.tests} test runs) "
              f"{ratio(d_phase, floor.measured.wall_s):.2f}x")
        print(f"=> whole run vs floor: wall {ratio(default.wall_s, floor.measured.wall_s):.2f}x, "
              f"CPU {ratio(default.cpu_s, floor.measured.cpu_s):.2f}x; serial CPU "
              f"{ratio(serial.cpu_s, default.cpu_s):.2f}x the default's")
        print(f"=> unchanged re-run: {made} provider call(s), fresh run {fresh} (goal 0) "
              f"{'PASS' if made == 0 else 'MISS'}; "
              f"CPU {rerun.cpu_s:.2f} s = {ratio(rerun.cpu_s, default.cpu_s):.2f}x the fresh run's")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load now {fmt_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
