"""Benchmark: lint + validate a generated repo of 2,000 prompts against the raw floor.

The floor is the least any checker must do: parse every prompt and dataset
file (libyaml) and tiktoken-encode every rendered test prompt, in one process.
promptci's figure is lint then validate, in one process, through the public
functions. Prints both and their ratio (goal: ≤ 2.0×).

Run: python bench/bench_lint.py [--prompts N]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from steps.lint import lint_paths  # noqa: E402
from steps.render import render_messages, resolve_vars  # noqa: E402
from steps.tokens import encoding, seed_tiktoken_cache  # noqa: E402
from steps.validate import validate_paths  # noqa: E402

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
        tests = [{"description": f"case {j}", "vars": {"ticket": " ".join(rnd.choices(WORDS, k=40)),
                                                      "name": f"user{j}"},
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


def floor(root: Path) -> float:
    """Return seconds to parse every file and encode every rendered test prompt (the raw floor)."""
    from config.artifacts import Message
    from config.catalog import load_catalog

    catalog = load_catalog()
    t0 = time.perf_counter()
    for f in sorted((root / "prompts").iterdir()):
        text = f.read_text()
        data = json.loads(text) if f.suffix == ".json" else yaml.load(text, Loader=yaml.CSafeLoader)
        ds = root / data["evals"][0]["path"]
        if ds.suffix == ".csv":
            rows = list(csv.DictReader(ds.open()))
            tests = [{"vars": {"ticket": r["ticket"], "name": r["name"]}} for r in rows]
        elif ds.suffix == ".json":
            tests = json.loads(ds.read_text())
        else:
            tests = yaml.load(ds.read_text(), Loader=yaml.CSafeLoader)["tests"]
        enc = encoding(catalog.resolve(data["model"])[1].encoding)  # type: ignore[index]
        msgs = [Message(**m) for m in data["messages"]]
        for t in tests:
            for m in render_messages(msgs, resolve_vars(t["vars"], {})):
                enc.encode(m["content"], disallowed_special=())
    return time.perf_counter() - t0


def clear_caches() -> None:
    """Forget every parsed file and token count, as a fresh process would."""
    from steps import artifact_files, datasets, validate

    artifact_files.load_artifact.cache_clear()  # type: ignore[attr-defined]
    datasets._read_dataset.cache_clear()  # type: ignore[attr-defined]
    validate._tokens.cache_clear()


def promptci(root: Path, *, separate: bool) -> tuple[float, int]:
    """Return (seconds, errors) for lint then validate; ``separate`` = no shared parse cache (two pods)."""
    clear_caches()
    t0 = time.perf_counter()
    problems = lint_paths([root / "prompts"], root=root)
    if separate:
        clear_caches()
    problems += validate_paths([root / "prompts"], root=root)
    return time.perf_counter() - t0, len([p for p in problems if p.severity == "error"])


def bad_inputs(root: Path) -> list[tuple[str, str, float]]:
    """Return (case, stage, seconds) for the CLI on each bad input the issue lists (one process each)."""
    import subprocess

    good = (Path(__file__).resolve().parents[1] / "prompts" / "ticket-classifier.yaml").read_text()
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
            proc = subprocess.run([sys.executable, "-m", f"steps.{stage}", str(f), "--root", str(root)],
                                  capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            took = time.perf_counter() - t0
            if proc.returncode != 0:
                assert "Traceback" not in proc.stderr, proc.stderr
                results.append((case, stage, took))
    for case, data in (("20MB-file", b"a: " + b"x" * (20 << 20)), ("binary-file", b"\x00\x01\x02"),
                       ("empty-file", b"")):
        f = root / "bad" / "ticket-classifier.yaml"
        f.write_bytes(data)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "steps.lint", str(f)], capture_output=True,
                              cwd=Path(__file__).resolve().parents[1])
        assert proc.returncode == 1
        results.append((case, "lint", time.perf_counter() - t0))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=2000)
    args = ap.parse_args()
    seed_tiktoken_cache()
    for name in ("cl100k_base", "o200k_base"):
        encoding(name)  # load encodings outside both timings
    root = Path(tempfile.mkdtemp(prefix="promptci-bench-"))
    try:
        generate(root, args.prompts)
        floor(root)  # warm the OS page cache so neither side pays for cold reads
        raw = min(floor(root) for _ in range(2))
        ours, errors = min(promptci(root, separate=False) for _ in range(2))
        apart, _ = min(promptci(root, separate=True) for _ in range(2))
        assert errors == 0, f"generated repo should be clean, got {errors} errors"
        print(f"raw floor (parse + tiktoken encode, one process): {raw:.2f} s")
        print(f"lint+validate {args.prompts} prompts, one process:   {ours:.2f} s  "
              f"ratio {ours / raw:.2f}x (goal <= 2.0x)")
        print(f"lint then validate, no shared parse (two pods):  {apart:.2f} s  "
              f"ratio {apart / raw:.2f}x (in the pipeline they run in parallel)")
        timings = bad_inputs(root)
        worst = max(timings, key=lambda t: t[2])
        print(f"bad inputs: {len(timings)} rejections (each a fresh CLI process, exit 1, no traceback); "
              f"slowest {worst[2]:.2f} s ({worst[0]}, {worst[1]}) (goal < 1 s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
