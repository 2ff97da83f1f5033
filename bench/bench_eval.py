"""Eval-stage benchmark: ``python bench/bench_eval.py``.

Measures, in one run and side by side:
* 8 branches against a provider that takes 200 ms per call: wall time in parallel
  (a thread pool of branches, as the Argo fan-out runs them) against serial;
* an unchanged re-run: how many provider calls it makes (goal 0: the cache serves it);
* promptfoo's fixed start cost per branch (one test, no provider latency; goal ≤ 2 s).

Uses real promptfoo and the recorded provider (``PROMPTCI_RECORDED_DELAY_MS``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from config.artifacts import Message, ModelParameters  # noqa: E402
from config.pipeline import PromptPipelineConfig  # noqa: E402
from steps.contracts import BranchResult, EvalItem, content_hash  # noqa: E402
from steps.eval import run_branch  # noqa: E402
from steps.promptfoo import messages_prompt  # noqa: E402
from steps.providers.recordings import params_key, write_recording  # noqa: E402
from steps.render import render_messages  # noqa: E402
from steps.stores.store import LocalStore, get_json, run_key  # noqa: E402

BRANCHES = 8
TESTS_PER_BRANCH = 4
DELAY_MS = 200
MESSAGES: list[dict[str, Any]] = [{"role": "system", "content": "You are bench assistant {{n}}."},
            {"role": "user", "content": "Say hello to {{name}}."}]


def make_branch(root: Path, n: int, tests: int) -> EvalItem:
    """Write prompt ``bench-<n>`` with ``tests`` golden tests and their recordings; return its EvalItem."""
    aid = f"bench-{n}"
    prompt = {"kind": "prompt", "id": aid, "version": "1.0.0", "description": "bench", "owner": "bench",
              "model": "gpt-4o-mini", "messages": MESSAGES,
              "variables": {"n": {"type": "string", "default": str(n)}, "name": {"type": "string"}},
              "evals": [{"name": "golden", "path": f"evals/{aid}.yaml"}]}
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "evals").mkdir(parents=True, exist_ok=True)
    path = root / "prompts" / f"{aid}.yaml"
    path.write_text(yaml.safe_dump(prompt))
    names = [f"user{i}" for i in range(tests)]
    (root / "evals" / f"{aid}.yaml").write_text(yaml.safe_dump(
        [{"description": f"hello {x}", "vars": {"name": x}, "assert": [{"type": "contains", "value": x}]}
         for x in names]))
    for x in names:
        msgs = render_messages([Message(**m) for m in MESSAGES], {"n": str(n), "name": x})
        write_recording(root / "recordings", aid, model="gpt-4o-mini", params=params_key(ModelParameters()),
                        prompt=messages_prompt(msgs), messages=msgs, responses=[{"output": f"Hello {x}!"}],
                        origin="authored")
    return EvalItem(artifact_id=aid, artifact_type="prompt", path=f"prompts/{aid}.yaml", dataset="golden",
                    content_hash=content_hash(path.read_bytes()))


def run_all(items: list[EvalItem], root: Path, store: LocalStore, run_id: str, *, parallel: bool,
            no_cache: bool) -> tuple[float, list[BranchResult]]:
    """Return (wall seconds, results) of running every branch."""
    cfg = PromptPipelineConfig()

    def one(item: EvalItem) -> BranchResult:
        return run_branch(item, repo_root=root, run_id=run_id, target_env=None, config=cfg, store=store,
                          work_dir=root / "work" / run_id / item.artifact_id, no_cache=no_cache)

    start = time.monotonic()
    if parallel:
        with ThreadPoolExecutor(len(items)) as pool:
            results = list(pool.map(one, items))
    else:
        results = [one(i) for i in items]
    wall = time.monotonic() - start
    bad = [r for r in results if r.status != "passed"]
    if bad:
        raise SystemExit(f"benchmark branch did not pass: {bad[0].artifact_id}: {bad[0].reasons}")
    return wall, results


def calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="promptci-bench-") as tmp:
        root = Path(tmp)
        log = root / "calls.log"
        os.environ.update({"PROMPTCI_CALL_LOG": str(log), "PROMPTCI_PROVIDER": "recorded",
                           "PROMPTCI_RECORDINGS_DIR": str(root / "recordings")})
        os.environ.pop("PROMPTCI_RECORD", None)
        items = [make_branch(root, n, TESTS_PER_BRANCH) for n in range(BRANCHES)]
        start_item = make_branch(root, 99, 1)
        store = LocalStore(root / "store")

        os.environ["PROMPTCI_RECORDED_DELAY_MS"] = "0"
        starts = []
        for i in range(3):
            _, (r,) = run_all([start_item], root, store, f"start{i}", parallel=False, no_cache=True)
            doc = get_json(store, run_key(f"start{i}", r.artifact_id, r.dataset, "result.json"))
            assert doc is not None
            starts.append(float(doc["duration_s"]))

        os.environ["PROMPTCI_RECORDED_DELAY_MS"] = str(DELAY_MS)
        serial, _ = run_all(items, root, store, "serial", parallel=False, no_cache=True)
        before = calls(log)
        parallel, _ = run_all(items, root, store, "parallel", parallel=True, no_cache=True)
        fresh_calls = calls(log) - before
        before = calls(log)
        rerun, results = run_all(items, root, store, "rerun", parallel=True, no_cache=False)
        rerun_calls = calls(log) - before

    start_cost = statistics.median(starts)
    rows = [
        ("branches x tests, provider latency", f"{BRANCHES} x {TESTS_PER_BRANCH}, {DELAY_MS} ms/call", ""),
        ("serial wall time", f"{serial:.2f} s", "1.00x"),
        ("parallel wall time (8 threads)", f"{parallel:.2f} s", f"{serial / parallel:.2f}x faster"),
        ("provider calls, fresh run", str(fresh_calls), f"expected {BRANCHES * TESTS_PER_BRANCH}"),
        ("unchanged re-run wall time", f"{rerun:.2f} s", f"{serial / max(rerun, 1e-6):.0f}x faster than serial"),
        ("unchanged re-run provider calls", str(rerun_calls), "goal 0"
         + (" ✓" if rerun_calls == 0 else " ✗")),
        ("branches served from cache", f"{sum(r.cached for r in results)}/{BRANCHES}", ""),
        ("promptfoo start cost per branch", f"{start_cost:.2f} s (median of 3: "
         + ", ".join(f"{s:.2f}" for s in starts) + ")", "goal ≤ 2 s" + (" ✓" if start_cost <= 2 else " ✗")),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<34} {note}")
    print(json.dumps({"serial_s": round(serial, 3), "parallel_s": round(parallel, 3),
                      "speedup": round(serial / parallel, 2), "rerun_s": round(rerun, 3),
                      "rerun_provider_calls": rerun_calls, "start_cost_s": round(start_cost, 3)}))


if __name__ == "__main__":
    main()
