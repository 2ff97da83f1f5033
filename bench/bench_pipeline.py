"""The pipeline bench: the "Done when" figures of issue 16, each against its floor and goal, with the load.

    python bench/bench_pipeline.py [--prompts 200] [--quick] [--json OUT]

Every figure is a whole ``python workflows/submit.py run prompt`` (offline, recorded answers) measured as
a process tree (bench/measure.py: wall, CPU-s of all descendants, peak of the summed RSS), next to its
floor measured in the same run:

1. the sample prompts' run vs ONE bare promptfoo over the same tests (bench/floor.py), median of 3
   interleaved rounds, each a first run on a fresh copy beside its own floor               goal <= 1.5x
2. a full run of N generated prompts (bench/generate.py) vs one bare promptfoo           goal <= 2x, RSS <= 1.5 GB
3. CPU-s per eval item of that run (all CPU of the run / items)                          goal <= 1.5
4. pods a 200-prompt full run would create on Argo, from the compiled template and the real plan
   (the DAG run as far as the fan-out's source)                                          goal <= 8 eval pods + 4
5. a fully cached re-run vs a run with nothing changed (``base-revision`` = HEAD)       goal <= 1.1x
6. each stage's start (its pod command given nothing to do) vs bare ``python -c pass``  (reported)

``--quick`` (or ``BENCH_QUICK=1``): 5 generated prompts, the width for 20, one round: a smoke run that
checks the bench works, not a figure to quote. Repositories are generated under the system temp dir.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import generate, layout  # noqa: E402
from bench.floor import Floor, FloorError, run_floor  # noqa: E402
from bench.measure import QUICK_ENV, Measured, fmt_load, quick, ratio  # noqa: E402
from bench.pipeline_runs import breakdown, fanout_width, fmt_breakdown, run_pipeline, stage_starts  # noqa: E402

GB = 1024.0
FIGURES = ("samples", "cached", "pods", "full", "starts")


class Report:
    """The figures of one bench run: printed as they come, then as a goal table, and as JSON."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, bool | None]] = []
        self.data: dict[str, Any] = {"cores": os.cpu_count()}

    def measured(self, key: str, m: Measured, run_dir: Path | None = None) -> None:
        """Print one measured process tree and keep it; with the run's ``run_dir``, also where its wall went."""
        print("   " + m.line(), flush=True)
        self.data[key] = {"wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2),
                          "peak_rss_mb": round(m.peak_rss_mb), "exit": m.returncode, "load": m.load}
        if run_dir is not None and (run_dir / "run.json").is_file():
            parts = breakdown(run_dir, m)
            print("     where the wall went: " + fmt_breakdown(parts), flush=True)
            self.data[key]["breakdown"] = [{"segment": n, "wall_s": round(w, 2),
                                            "cpu_s": None if c is None else round(c, 2)} for n, w, c in parts]

    def goal(self, name: str, value: str, goal: str, ok: bool | None) -> None:
        """Record one figure against its goal (``ok`` None: reported, no goal)."""
        self.rows.append((name, value, goal, ok))
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"=> {name}: {value} (goal {goal}) {verdict}", flush=True)

    def table(self) -> None:
        """Print every figure with its goal and PASS/MISS, and the load now."""
        print(f"\nsummary (load now {fmt_load()}):")
        width = max(len(r[0]) for r in self.rows)
        for name, value, goal, ok in self.rows:
            verdict = "-" if ok is None else ("PASS" if ok else "MISS")
            print(f"  {verdict:<4}  {name:<{width}}  {value:<34}  goal {goal}")
        self.data["goals"] = [{"figure": n, "value": v, "goal": g, "pass": ok} for n, v, g, ok in self.rows]


def _require_ok(m: Measured, what: str, logs: Path) -> None:
    if m.returncode != 0:
        raise SystemExit(f"bench: {what} exited {m.returncode}; see {logs}")


def best_floor(rep: Report, key: str, run_dir: Path, repo: Path, work: Path, rounds: int) -> Floor:
    """Return the fastest of ``rounds`` floors over the run's tests (each printed): the floor is cheap, so
    on a loaded machine its best is the fairer reference."""
    floors = [run_floor(run_dir, repo, work / f"{key}-{i}") for i in range(rounds)]
    for i, f in enumerate(floors):
        rep.measured(f"{key}_{i}", f.measured)
    best = min(floors, key=lambda f: f.measured.wall_s)
    rep.data[key] = rep.data[f"{key}_{floors.index(best)}"]
    return best


def samples_vs_floor(rep: Report, work: Path, logs: Path, rounds: int) -> Path:
    """Figure 1: the sample prompts' run against one bare promptfoo, ``rounds`` times; return the first repo.

    Each round is a run on a fresh copy of the samples (its first run: every eval measured, every artifact
    promoted into a new GitOps repo, as a user's first push) followed at once by one bare promptfoo over its
    tests, so each round's ratio is measured side by side at one load. The figure is the median of the
    rounds' ratios. The floor runs promptfoo as a user would by hand (its defaults, so it writes its
    database); a second floor with ``--no-write`` (how promptci runs it) is printed beside it, no goal.
    """
    template = work / "samples-template"
    template.mkdir()
    generate.copy_samples(template)
    print(f"1. sample prompts: run vs one bare promptfoo, {rounds} rounds (load {fmt_load()})", flush=True)
    walls: list[float] = []
    cpus: list[float] = []
    first: Path | None = None
    floor: Floor | None = None
    for i in range(rounds):
        repo = work / f"samples-{i}"
        shutil.copytree(template, repo, symlinks=True)
        first = first or repo
        m, run_dir = run_pipeline(f"submit.py run prompt (samples, round {i + 1})", repo, "bench-samples",
                                  logs=logs / f"samples-{i}")
        rep.measured(f"samples_run_{i}", m, run_dir)
        _require_ok(m, "the samples run", logs)
        try:
            floor = run_floor(run_dir, repo, work / f"samples_floor-{i}")
        except FloorError as exc:
            rep.goal("samples run vs one promptfoo", f"no floor: {exc}", "<= 1.5x", False)
            return repo
        rep.measured(f"samples_floor_{i}", floor.measured)
        walls.append(ratio(m.wall_s, floor.measured.wall_s))
        cpus.append(ratio(m.cpu_s, floor.measured.cpu_s))
        print(f"   round {i + 1}: {walls[-1]:.2f}x wall, {cpus[-1]:.2f}x CPU", flush=True)
    assert first is not None and floor is not None
    with contextlib.suppress(FloorError):
        quiet = run_floor(first / ".promptci" / "runs" / "bench-samples", first, work / "samples_floor-no-write",
                          label="one bare promptfoo --no-write (as promptci runs it; no goal)",
                          extra_args=["--no-write"])
        rep.measured("samples_floor_no_write", quiet.measured)
    r = statistics.median(walls)
    rep.data["samples_tests"] = floor.tests
    rep.data["samples_ratios"] = [round(w, 3) for w in walls]
    rep.goal(f"samples run vs one promptfoo ({floor.tests} test runs), wall, median of {rounds}",
             f"{r:.2f}x (CPU {statistics.median(cpus):.2f}x; rounds {', '.join(f'{w:.2f}' for w in walls)})",
             "<= 1.5x", r <= 1.5)
    return first


def cached_vs_unchanged(rep: Report, repo: Path, logs: Path, rounds: int) -> None:
    """Figure 5: a fully cached re-run against a run with nothing changed, interleaved ``rounds`` times."""
    head = generate.git(repo, "rev-parse", "HEAD")
    print(f"5. fully cached re-run vs nothing changed (load {fmt_load()})", flush=True)
    cached: list[Measured] = []
    unchanged: list[Measured] = []
    for i in range(rounds):
        c, _ = run_pipeline("cached re-run", repo, f"bench-cached-{i}", logs=logs)
        u, _ = run_pipeline("nothing changed", repo, f"bench-unchanged-{i}", {"base-revision": head}, logs=logs)
        for m in (c, u):
            rep.measured(f"{m.label.replace(' ', '_')}_{i}", m)
            _require_ok(m, m.label, logs)
        cached.append(c)
        unchanged.append(u)
    best_c, best_u = min(x.wall_s for x in cached), min(x.wall_s for x in unchanged)
    cpu_c, cpu_u = min(x.cpu_s for x in cached), min(x.cpu_s for x in unchanged)
    r, rc = ratio(best_c, best_u), ratio(cpu_c, cpu_u)
    # "Costs no more": on a loaded machine wall alone can hide work, so CPU-s must hold the goal too.
    rep.goal("fully cached re-run vs nothing changed (best of each), wall and CPU",
             f"{r:.2f}x wall, {rc:.2f}x CPU ({best_c:.1f} s vs {best_u:.1f} s)", "<= 1.1x", max(r, rc) <= 1.1)


def generated_vs_floor(rep: Report, work: Path, logs: Path, prompts: int, rounds: int) -> None:
    """Figures 2 and 3: a full run of ``prompts`` generated prompts against one bare promptfoo."""
    repo = work / f"gen-{prompts}"
    items = generate.generate(repo, prompts)
    print(f"2. {prompts} generated prompts: full run vs one bare promptfoo (load {fmt_load()})", flush=True)
    m, run_dir = run_pipeline(f"submit.py run prompt ({prompts} prompts)", repo, "bench-full", logs=logs)
    rep.measured("generated_run", m, run_dir)
    _require_ok(m, "the generated run", logs)
    per_item = m.cpu_s / items
    rep.data["cpu_s_per_item"] = round(per_item, 3)
    rep.goal(f"{prompts}-prompt full run, peak RSS (tree)", f"{m.peak_rss_mb / GB:.2f} GB", "<= 1.5 GB",
             m.peak_rss_mb <= 1.5 * GB)
    rep.goal("CPU-s per eval item", f"{per_item:.2f} ({items} items)", "<= 1.5", per_item <= 1.5)
    try:
        floor = best_floor(rep, "generated_floor", run_dir, repo, work, rounds)
    except FloorError as exc:
        rep.goal(f"{prompts}-prompt full run vs one promptfoo", f"no floor: {exc}", "<= 2x", False)
        return
    r = ratio(m.wall_s, floor.measured.wall_s)
    rep.goal(f"{prompts}-prompt full run vs one promptfoo ({floor.tests} test runs), wall", f"{r:.2f}x (CPU "
             f"{ratio(m.cpu_s, floor.measured.cpu_s):.2f}x; floor {floor.measured.cpu_s / items:.2f} CPU-s per item, "
             f"{floor.measured.peak_rss_mb / GB:.2f} GB)", "<= 2x", r <= 2)


def pods_for(rep: Report, work: Path, logs: Path, prompts: int) -> None:
    """Figure 4: the pods a full run of ``prompts`` generated prompts would create on Argo."""
    repo = work / f"width-{prompts}"
    generate.generate(repo, prompts)
    print(f"4. pods of a {prompts}-prompt full run on Argo (compiled template + real plan; load {fmt_load()})",
          flush=True)
    pods, widths = fanout_width(repo, logs)
    fan = layout.fanout(layout.compiled())[0]
    eval_pods, other = pods[fan], sum(v for k, v in pods.items() if k != fan)
    rep.data["pods"] = pods
    print("   pods per task: " + ", ".join(f"{k} {v}" for k, v in pods.items()), flush=True)
    rep.goal(f"pods of a {prompts}-prompt run on Argo", f"{eval_pods + other} ({eval_pods} {fan} + {other} other)",
             "<= 8 eval + 4", eval_pods <= 8 and other <= 4)


def starts(rep: Report, repo: Path, logs: Path, rounds: int) -> None:
    """Figure 6: each stage's start against bare ``python -c pass`` (and a runner node running ``pass``): as a
    pod starts it (its pod command, a new process), and as a local run starts it (forked from the zygote)."""
    from workflows.runner.forking import ForkExecutor, fork_server

    print(f"6. stage start: each stage given nothing to do, median of {rounds} (load {fmt_load()})", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCI_")}
    with fork_server(env, repo) as server:
        server.imports_read()  # the zygote's imports are paid once per `promptci run`: reported on their own
        zygote = server.take_cpu_seconds() or 0.0
        kinds = {"pod command": stage_starts(repo, logs / "pod", rounds),
                 "local fork": stage_starts(repo, logs / "fork", rounds, executor=lambda: ForkExecutor(server))}
    rep.data["stage_start"] = {kind: {k: {"wall_s": round(w, 3), "cpu_s": round(c, 3)} for k, (w, c) in f.items()}
                               for kind, f in kinds.items()}
    rep.data["zygote_imports_cpu_s"] = round(zygote, 2)
    print(f"   the local run's zygote imported the stages once: {zygote:.2f} CPU-s", flush=True)
    for kind, figures in kinds.items():
        bare_wall, bare_cpu = figures["python -c pass"]
        for name, (wall, cpu) in figures.items():
            if name != "python -c pass":
                rep.goal(f"start of {name} ({kind})", f"{wall:.2f} s = {ratio(wall, bare_wall):.1f}x, CPU "
                         f"{cpu:.2f} s = {ratio(cpu, bare_cpu):.1f}x python -c pass ({bare_wall:.3f} s, "
                         f"{bare_cpu:.3f} CPU-s)", "as low as it goes", None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=200, help="generated prompts of the full run (figures 2, 3)")
    ap.add_argument("--pods-prompts", type=int, default=200, help="generated prompts the pods are counted for")
    ap.add_argument("--quick", action="store_true", help=f"smoke size (also {QUICK_ENV}=1)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the generated repositories and logs")
    ap.add_argument("--figures", default=",".join(FIGURES),
                    help=f"comma-separated subset of {','.join(FIGURES)} (default: all)")
    args = ap.parse_args()
    quick_run = quick(args.quick)
    prompts, pods_prompts, rounds = (5, 20, 1) if quick_run else (args.prompts, args.pods_prompts, 2)
    rep = Report()
    rep.data.update(quick=quick_run, prompts=prompts, pods_prompts=pods_prompts)
    print(f"pipeline bench{' (quick: smoke sizes, not figures to quote)' if quick_run else ''}; "
          f"load {fmt_load()}", flush=True)
    # As `make setup` does: with PYTHONDONTWRITEBYTECODE set (it is on these machines) a module without a .pyc is
    # compiled anew in every process, which a user's Python, writing bytecode on first import, pays once.
    for package in ("steps", "workflows", "config"):
        compileall.compile_dir(str(ROOT / package), quiet=1)
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set; the project's bytecode was compiled first (make setup does)",
              flush=True)
    work = Path(tempfile.mkdtemp(prefix="promptci-bench-pipeline-"))
    logs = work / "logs"
    try:
        wanted = set(args.figures.split(","))
        wants_samples = wanted & {"samples", "cached", "starts"}
        samples = samples_vs_floor(rep, work, logs, 1 if quick_run else 3) if wants_samples else work
        if "cached" in wanted:
            cached_vs_unchanged(rep, samples, logs, rounds)
        if "pods" in wanted:
            pods_for(rep, work, logs, pods_prompts)
        if "full" in wanted:
            generated_vs_floor(rep, work, logs, prompts, rounds)
        if "starts" in wanted:
            starts(rep, samples, logs, rounds if quick_run else 3)
        rep.table()
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rep.data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
