"""Local-model benchmark: ``python bench/bench_local_model.py``.

Measures the bundled small model (SmolLM2-135M, steps/providers/local_model.py) through the
real path an eval takes: promptfoo's ``openai:chat`` provider over HTTP to the Node server.
Side by side in one run, with 1 server thread and with 2 (``--threads``):

* server start to ready (model load + readiness probe);
* speed: completion tokens, and prompt + completion tokens, per second of the server's time on
  each request (prompt evaluation included, queueing excluded), from its request log;
* per-test latency as promptfoo measured it (``latencyMs``), and the branch wall time;

with the machine's load average (``os.getloadavg()``) before and after each configuration,
since on a shared 2-core machine threads compete with everything else that runs.
Needs ``make setup-local-model`` (skipped, exit 0, without it); ``BENCH_QUICK=1`` measures 1 thread only.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import quick  # noqa: E402
from config.pipeline import PromptPipelineConfig  # noqa: E402
from steps.artifact_files import load_artifact  # noqa: E402
from steps.contracts import EvalItem  # noqa: E402
from steps.eval import run_branch  # noqa: E402
from steps.providers import local_model  # noqa: E402
from steps.stores.store import LocalStore, get_json, run_key  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLES = ("order-lookup", "contact-extractor")
ROUNDS = 1  # each sample's golden set, this many times per configuration


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def measure(threads: int, root: Path) -> dict[str, Any]:
    """Return the figures of one server configuration (``threads``) over ROUNDS × the samples."""
    log = root / f"requests-{threads}.jsonl"
    os.environ["PROMPTCI_LOCAL_REQUEST_LOG"] = str(log)
    store = LocalStore(root / f"store-{threads}")
    items = []
    for name in SAMPLES:
        af = load_artifact(REPO / "prompts" / f"{name}.yaml", REPO)
        items.append(EvalItem(artifact_id=af.artifact_id, artifact_type="prompt", path=af.rel_path,
                              dataset="golden", content_hash=af.content_hash))
    load_before = _load()
    server = local_model.LocalServer(threads=threads, log_path=root / f"server-{threads}.log")
    t0 = time.monotonic()
    os.environ[local_model.URL_ENV] = server.start()
    ready_s = time.monotonic() - t0
    walls: list[float] = []
    latencies: list[float] = []
    try:
        for r in range(ROUNDS):
            for item in items:
                run_id = f"t{threads}-r{r}"
                start = time.monotonic()
                res = run_branch(item, repo_root=REPO, run_id=run_id, target_env=None,
                                 config=PromptPipelineConfig(), store=store,
                                 work_dir=root / "work" / run_id / item.artifact_id, no_cache=True)
                walls.append(time.monotonic() - start)
                if res.status == "error":
                    raise SystemExit(f"benchmark branch errored: {res.reasons}")
                doc = get_json(store, run_key(run_id, item.artifact_id, item.dataset, "result.json"))
                assert doc is not None
                latencies += [run["latency_ms"] for t in doc["tests"] for run in t["runs"]]
    finally:
        server.stop()
        os.environ.pop(local_model.URL_ENV, None)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    tokens = sum(c["usage"]["completion_tokens"] for c in calls)
    gen_ms = sum(c["gen_ms"] for c in calls)  # generation only: requests queue for the one context
    processed = sum(c["usage"]["total_tokens"] for c in calls)
    return {"threads": threads, "ready_s": ready_s, "calls": len(calls), "completion_tokens": tokens,
            "tokens_per_s": tokens / (gen_ms / 1000) if gen_ms else 0.0,
            "prompt_and_completion_tokens_per_s": processed / (gen_ms / 1000) if gen_ms else 0.0,
            "latency_ms_median": statistics.median(latencies), "latency_ms_max": max(latencies),
            "branch_wall_s_median": statistics.median(walls), "load_before": load_before, "load_after": _load()}


def main() -> None:
    try:
        local_model.model_path()
    except local_model.LocalModelError as exc:
        print(f"local-model bench: skipped ({exc}; make setup-local-model)")
        return
    os.environ.update({"PROMPTCI_PROVIDER": "local"})
    os.environ.pop("PROMPTCI_RECORD", None)
    with tempfile.TemporaryDirectory(prefix="promptci-bench-local-") as tmp:
        try:
            one = measure(1, Path(tmp))
        except local_model.LocalModelError as exc:  # the model is there but not its server (node-llama-cpp)
            print(f"local-model bench: skipped ({exc})")
            return
        if quick():  # smoke: one configuration proves the bench still runs
            print(json.dumps({"one_thread": one, "cpus": os.cpu_count(), "quick": True}))
            return
        two = measure(2, Path(tmp))
    rows = [("", "1 thread", "2 threads", "2 vs 1")]
    for key, fmt in (("ready_s", "{:.1f} s"), ("calls", "{}"), ("completion_tokens", "{}"),
                     ("tokens_per_s", "{:.1f} tok/s"), ("prompt_and_completion_tokens_per_s", "{:.1f} tok/s"),
                     ("latency_ms_median", "{:.0f} ms"),
                     ("latency_ms_max", "{:.0f} ms"), ("branch_wall_s_median", "{:.1f} s"),
                     ("load_before", "{}"), ("load_after", "{}")):
        a, b = one[key], two[key]
        ratio = f"{b / a:.2f}x" if isinstance(a, float) and a else ""
        rows.append((key, fmt.format(a), fmt.format(b), ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(json.dumps({"one_thread": one, "two_threads": two, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
