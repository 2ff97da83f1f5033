"""Benchmark: lint and validate a generated repo of 2,000 prompts, as processes, against the raw floor.

Side by side in one run, each a process tree measured for wall and CPU-s (bench/measure.py), with the load:

* lint || validate: the two check CLIs started together, as the DAG runs them (two pods);
* lint then validate: a true serial run of the same two processes;
* the floor: ONE process that parses every prompt and dataset file (libyaml) and tiktoken-encodes each
  distinct rendered text once (as validate does: a system prompt shared by three tests is encoded once).

Goal: the DAG's layout within 2.0x the floor's wall. Then each bad input the issue lists, as a fresh CLI.

Run: python bench/bench_lint.py [--prompts N] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.measure import Measured, fmt_load, quick, ratio, run  # noqa: E402

WORDS = [
    "account", "billing", "refund", "invoice", "password", "login", "latency", "outage", "region", "cluster",
    "deploy", "rollback", "customer", "ticket", "escalate", "summary", "report", "weekly", "priority", "severity",
]


def generate(root: Path, n: int) -> None:
    """Write ``n`` prompts (YAML, JSON, and GitHub Models) with a 3-test dataset each under ``root``."""
    rnd = random.Random(7)
    (root / "prompts").mkdir(parents=True)
    for i in range(n):
        pid = f"prompt-{i:04d}"
        system = " ".join(rnd.choices(WORDS, k=rnd.randint(60, 200)))
        ds_dir = root / "evals" / pid
        ds_dir.mkdir(parents=True)
        tests: list[dict[str, Any]] = [
            {"description": f"case {j}", "vars": {"ticket": " ".join(rnd.choices(WORDS, k=40)), "name": f"user{j}"},
             "assert": [{"type": "icontains", "value": rnd.choice(WORDS)}]} for j in range(3)]
        prompt = {"kind": "prompt", "id": pid, "version": "1.0.0", "description": "generated",
                  "owner": "bench", "model": rnd.choice(["gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1"]),
                  "parameters": {"temperature": 0.2, "max_tokens": 300},
                  "messages": [{"role": "system", "content": system},
                               {"role": "user", "content": "{{name}} wrote: {{ticket}}"}],
                  "variables": {"ticket": {"type": "string"}, "name": {"type": "string"}},
                  "limits": {"max_prompt_tokens": 4000}}
        if i % 3 == 0:
            prompt["evals"] = [{"name": "golden", "path": f"evals/{pid}/golden.json"}]
            (ds_dir / "golden.json").write_text(json.dumps(tests))
            (root / "prompts" / f"{pid}.json").write_text(json.dumps(prompt, indent=1))
        else:
            if i % 3 == 1:
                with (ds_dir / "golden.csv").open("w", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(["description", "ticket", "name", "__expected"])
                    for t in tests:
                        w.writerow([t["description"], t["vars"]["ticket"], t["vars"]["name"],
                                    f"icontains: {t['assert'][0]['value']}"])
                prompt["evals"] = [{"name": "golden", "path": f"evals/{pid}/golden.csv"}]
            else:
                (ds_dir / "golden.yaml").write_text(yaml.safe_dump({"tests": tests}, sort_keys=False))
                prompt["evals"] = [{"name": "golden", "path": f"evals/{pid}/golden.yaml"}]
            (root / "prompts" / f"{pid}.yaml").write_text(yaml.safe_dump(prompt, sort_keys=False))


def floor(root: Path) -> int:
    """Parse every prompt and dataset file and encode each distinct rendered text once; return the texts.

    The least any checker must do (validate counts each distinct text once too): run it as its own
    process (``--floor ROOT``) so it pays an interpreter and its imports, as the stages do.
    """
    from config.artifacts import Message
    from config.catalog import load_catalog
    from steps.render import render_messages, resolve_vars
    from steps.tokens import encoding, seed_tiktoken_cache

    seed_tiktoken_cache()
    catalog = load_catalog()
    seen: set[tuple[str, str]] = set()
    for f in sorted((root / "prompts").iterdir()):
        text = f.read_text()
        data = json.loads(text) if f.suffix == ".json" else yaml.load(text, Loader=yaml.CSafeLoader)
        ds = root / data["evals"][0]["path"]
        if ds.suffix == ".csv":
            with ds.open(newline="") as fh:
                tests = [{"vars": {"ticket": r["ticket"], "name": r["name"]}} for r in csv.DictReader(fh)]
        elif ds.suffix == ".json":
            tests = json.loads(ds.read_text())
        else:
            tests = yaml.load(ds.read_text(), Loader=yaml.CSafeLoader)["tests"]
        name = catalog.resolve(data["model"])[1].encoding  # type: ignore[index]
        msgs = [Message(**m) for m in data["messages"]]
        for t in tests:
            for m in render_messages(msgs, resolve_vars(t["vars"], {})):
                if (name, m["content"]) not in seen:
                    seen.add((name, m["content"]))
                    encoding(name).encode(m["content"], disallowed_special=())
    return len(seen)


@functools.cache
def _root_flag(module: str) -> str:
    """Return the option a check CLI takes the repository root with (``--repo-root`` or the older ``--root``)."""
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT,
                         check=False).stdout
    return "--repo-root" if "--repo-root" in out else "--root"


def check_cmd(stage: str, root: Path) -> str:
    """Return the shell command of one check CLI (``steps.lint`` / ``steps.validate``) over the prompts."""
    module = f"steps.{stage}"
    return shlex.join([sys.executable, "-m", module, str(root / "prompts"), _root_flag(module), str(root)])


def layouts(root: Path) -> list[Measured]:
    """Return lint and validate as the DAG runs them (two processes at once), one after the other, and the floor."""
    lint, validate = check_cmd("lint", root), check_cmd("validate", root)
    both = f"{lint} >/dev/null & a=$!; {validate} >/dev/null & b=$!; wait $a && wait $b"
    cases = [("lint || validate (two processes, as the DAG runs them)", both),
             ("lint then validate (true serial)", f"{lint} >/dev/null && {validate} >/dev/null"),
             ("floor (one process: parse + encode each text once)",
              shlex.join([sys.executable, str(Path(__file__).resolve()), "--floor", str(root)]))]
    return [run(label, ["/bin/sh", "-c", cmd], cwd=ROOT) for label, cmd in cases]


def bad_inputs(root: Path) -> list[tuple[str, str, float]]:
    """Return (case, stage, seconds) for the CLI on each bad input the issue lists (one process each)."""
    good = (ROOT / "prompts" / "ticket-classifier.yaml").read_text()
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    prev = "a"
    for n in "bcdefghi":
        bomb += f"{n}: &{n} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = n
    cases = {
        "bad-yaml": good.replace("description: Classifies", "description: [Classifies"),
        "duplicate-key": good.replace("version: 1.0.0\n", "version: 1.0.0\nversion: 1.0.1\n"),
        "missing-field": good.replace("owner: team-support\n", ""),
        "unknown-field": good + "ownr: x\n",
        "wrong-type": good.replace("max_tokens: 100", "max_tokens: lots"),
        "unknown-model": good.replace("model: gpt-4o-mini", "model: gpt-4o-mnii"),
        "retired-model": good.replace("model: gpt-4o-mini", "model: gpt-3.5-turbo-0613"),
        "over-token-limit": good.replace("evals:", "limits: {max_prompt_tokens: 10}\nevals:"),
        "undeclared-variable": good.replace('content: "{{ticket}}"', 'content: "{{ticket}} {{who}}"'),
        "yaml-bomb": bomb,
    }
    (root / "bad").mkdir()
    results = []
    for case, text in cases.items():
        f = root / "bad" / "ticket-classifier.yaml"
        f.write_text(text)
        for stage in ("lint", "validate"):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", f"steps.{stage}", str(f), _root_flag(f"steps.{stage}"),
                                   str(root)],
                                  capture_output=True, text=True, cwd=ROOT)
            took = time.perf_counter() - t0
            if proc.returncode != 0:
                assert "Traceback" not in proc.stderr, proc.stderr
                results.append((case, stage, took))
    for case, data in (("20MB-file", b"a: " + b"x" * (20 << 20)), ("binary-file", b"\x00\x01\x02"),
                       ("empty-file", b"")):
        f = root / "bad" / "ticket-classifier.yaml"
        f.write_bytes(data)
        t0 = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "steps.lint", str(f)], capture_output=True,
                              cwd=ROOT).returncode
        assert code == 1
        results.append((case, "lint", time.perf_counter() - t0))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="smoke sizes (also BENCH_QUICK=1)")
    ap.add_argument("--floor", type=Path, help=argparse.SUPPRESS)  # the floor's own process
    args = ap.parse_args()
    if args.floor:
        floor(args.floor)
        return
    prompts = min(args.prompts, 100) if quick(args.quick) else args.prompts
    root = Path(tempfile.mkdtemp(prefix="promptci-bench-"))
    try:
        generate(root, prompts)
        print(f"lint bench: {prompts} generated prompts; load {fmt_load()}")
        layouts(root)  # warm the page cache and the tiktoken cache so no side pays for cold reads
        real, serial, raw = layouts(root)
        for m in (real, serial, raw):
            print("   " + m.line())
            if m.returncode != 0:
                raise SystemExit(f"bench_lint: {m.label} exited {m.returncode} (the generated repo must be clean)")
        print(f"=> as the DAG runs them: wall {ratio(real.wall_s, raw.wall_s):.2f}x the floor (goal <= 2.0x), "
              f"CPU {ratio(real.cpu_s, raw.cpu_s):.2f}x; true serial: wall {ratio(serial.wall_s, raw.wall_s):.2f}x, "
              f"CPU {ratio(serial.cpu_s, raw.cpu_s):.2f}x")
        timings = bad_inputs(root)
        worst = max(timings, key=lambda t: t[2])
        print(f"bad inputs: {len(timings)} rejections (each a fresh CLI process, exit 1, no traceback); "
              f"slowest {worst[2]:.2f} s ({worst[0]}, {worst[1]}) (goal < 1 s; load {fmt_load()})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
