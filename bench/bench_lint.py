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

    artifact_files._memo_artifact.cache_clear()
    datasets._memo_dataset.cache_clear()
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
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
