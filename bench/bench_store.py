"""Store bench: a shard's store writes for N items, one item after another vs side by side, on S3 and on disk.

    python bench/bench_store.py [--quick] [--items 100] [--delay-ms 20]

The shard is N generated prompts (bench/generate.py, 3 tests each) measured ONCE by one real promptfoo
process; then the same outcomes are written by ``steps.eval.write_measured`` (what ``run_shard`` calls
after promptfoo: every item's files, cache entry, signed record and ``branch.json``, ~12 PUTs and a
baseline GET per item) to fresh stores, side by side in one run:

* S3 = moto's server over real HTTP on 127.0.0.1 (tests/s3server.py, as the tests start it): once as
  plain loopback (0 ms), once behind the fault proxy of tests/faults/proxy.py holding every request
  ``--delay-ms`` before forwarding it (a round trip to a real S3 region is 20-50 ms; the proxy's own
  hop adds ~5 ms per request here);
* a local directory (``LocalStore``), the default store of a local run;

each with one writer (``PROMPTCI_S3_WRITERS=1``, the old serial path) and with the default writers.
moto and the proxies run in this process; the writes run in a child process (``--child``), which times
each write phase itself: wall, and CPU-s of the child (every thread of it; promptfoo's CPU is its own
child's, not counted). The child is measured as a whole too (bench/measure.py). Printed with the load.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import generate  # noqa: E402
from bench.measure import fmt_load, quick, ratio, run  # noqa: E402

LOCAL = "local disk"


def _self_cpu() -> float:
    """Return CPU-s used so far by this process, every thread (not its children: promptfoo is one)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def child(repo: Path, work: Path, endpoints: dict[str, str], side: int) -> int:
    """Measure the repo's prompts in one promptfoo process, then write the outcomes to each store in turn;
    print one JSON line per write phase: label, wall, CPU-s, item statuses."""
    from config.pipeline import PromptPipelineConfig
    from steps.contracts import EvalItem, content_hash
    from steps.eval import write_measured
    from steps.eval_batch import Part, measure_batch, shard_label
    from steps.eval_spec import prepare
    from steps.eval_verdict import Branch
    from steps.signing import signing_key
    from steps.stores.s3store import S3Store
    from steps.stores.store import ArtifactStore, LocalStore

    config = PromptPipelineConfig.model_validate({"defaults": {"eval": {"min_pass_rate": 1.0}}})
    parts = []
    for k, path in enumerate(sorted((repo / "prompts").glob("*.yaml"))):
        item = EvalItem(artifact_id=path.stem, artifact_type="prompt", path=f"prompts/{path.name}",
                        dataset="golden", content_hash=content_hash(path.read_bytes()))
        item_dir = work / item.artifact_id / item.dataset
        prep = prepare(item, repo_root=repo, config=config, target_env=None, work_dir=item_dir)
        parts.append(Part(prep, shard_label(k, prep), item_dir))
    measured, report = measure_batch(parts, work, no_cache=False)
    bad = [o for o in measured if isinstance(o, Exception)]
    if bad:
        print(f"bench_store: promptfoo did not measure {len(bad)} item(s): {bad[0]}", file=sys.stderr)
        return 1
    key = signing_key(repo, create=True)

    def phase(name: str, writers: int, store: ArtifactStore) -> None:
        t0, c0 = time.perf_counter(), _self_cpu()
        verdicts = write_measured(0, [(p, Branch(p.prep.item)) for p in parts], measured, report, store=store,
                                  run_id="bench", target_env=None, key=key)
        wall, cpu = time.perf_counter() - t0, _self_cpu() - c0
        statuses = sorted({v.status for v in verdicts})
        print(json.dumps({"store": name, "writers": writers, "wall": wall, "cpu": cpu, "statuses": statuses,
                          "load": os.getloadavg()[0]}), flush=True)

    for name, url in endpoints.items():
        for writers in (1, side):
            phase(name, writers, S3Store("bench", _prefix(name, writers), endpoint_url=url, region="us-east-1",
                                         writers=writers))
    for writers in (1, side):
        local = LocalStore(work / f"local-w{writers}")
        local.writers = writers  # a local store writes one item at a time; the bench measures the other way too
        phase(LOCAL, writers, local)
    return 0


def _prefix(name: str, writers: int) -> str:
    """Return the key prefix a write phase uses on S3 (a fresh one each: nothing cached, no baseline)."""
    return f"{name.replace(' ', '').replace('+', 'plus')}-w{writers}"


def _requests(lines: list[str], prefix: str) -> str:
    """Return how many PUTs and GETs under ``prefix`` the proxy forwarded, as text."""
    mine = [line for line in lines if line.split(" ", 1)[1].startswith(f"/bench/{prefix}/")]
    return f"{sum(x.startswith('PUT') for x in mine)} PUT + {sum(x.startswith('GET') for x in mine)} GET"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke sizes (also BENCH_QUICK=1)")
    ap.add_argument("--items", type=int, default=100, help="items in the shard (one generated prompt each)")
    ap.add_argument("--delay-ms", type=int, default=20, help="added to every S3 request by the proxy")
    ap.add_argument("--writers", type=int, default=None, help="writers of the side-by-side phases "
                    "(default: PROMPTCI_S3_WRITERS's default)")
    ap.add_argument("--child", nargs=4, metavar=("REPO", "WORK", "ENDPOINTS_JSON", "WRITERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child[0]), Path(args.child[1]), json.loads(args.child[2]), int(args.child[3]))

    from config.settings import Settings
    from tests.faults.proxy import FaultProxy
    from tests.s3server import moto_s3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    items = 5 if quick(args.quick) else args.items
    print(f"store bench{' (quick)' if quick(args.quick) else ''}: a shard of {items} items, 3 tests each; "
          f"load {fmt_load()}", flush=True)
    tmp = tempfile.TemporaryDirectory(prefix="promptci-bench-store-")  # removed when the bench ends
    work = Path(tmp.name)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for var in ("AWS_ENDPOINT_URL", "PROMPTCI_S3_BUCKET", "PROMPTCI_S3_PREFIX", "PROMPTCI_STORE_KIND",
                "PROMPTCI_S3_WRITERS", "PROMPTCI_PROVIDER", "PROMPTCI_RECORD"):
        env.pop(var, None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    with tmp:
        repo = work / "repo"
        generate.generate(repo, items, tests=3)
        with moto_s3("bench") as url:
            slow = FaultProxy(url)
            slow.delay_s = args.delay_ms / 1000
            endpoints = {"0 ms": url, f"+{args.delay_ms} ms": slow.url}  # 0 ms: plain loopback, no proxy
            out = work / "child.out"
            writers = args.writers or Settings.model_fields["s3_writers"].default
            servers = _self_cpu()
            whole = run("the child (promptfoo once, then every write phase)",
                        [sys.executable, __file__, "--child", str(repo), str(work / "shard"), json.dumps(endpoints),
                         str(writers)], env=env, log=out)
            servers = _self_cpu() - servers
            requests = {f"+{args.delay_ms} ms": slow.requests}
            slow.close()
        text = out.read_text()
        phases = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        if whole.returncode != 0 or not phases:
            raise SystemExit(f"bench_store: the child exited {whole.returncode}:\n{text[-2000:]}")
        print(f"   {whole.line()}")
        print(f"   moto's server and the proxy (this process) meanwhile: CPU {servers:.2f} s: on 2 cores, the "
              "0 ms phases are bound by it")
        by_store: dict[str, list[dict[str, Any]]] = {}
        for p in phases:
            by_store.setdefault(p["store"], []).append(p)
            where = "local disk" if p["store"] == LOCAL else f"S3 {p['store']}"
            counted = (f"; {_requests(requests[p['store']], _prefix(p['store'], p['writers']))}"
                       if p["store"] in requests else "")
            print(f"   {where}, {p['writers']} writer(s): wall {p['wall']:.2f} s, CPU {p['cpu']:.2f} s, items "
                  f"{'/'.join(p['statuses'])}{counted}; load {p['load']:.2f}")
        for store, (serial, side) in by_store.items():
            print(f"=> {store}: {side['writers']} writers vs 1: wall {side['wall']:.2f} s vs {serial['wall']:.2f} s "
                  f"= {ratio(side['wall'], serial['wall']):.2f}x; CPU {side['cpu']:.2f} s vs {serial['cpu']:.2f} s "
                  f"= {ratio(side['cpu'], serial['cpu']):.2f}x; one writer: {serial['wall'] / items * 1000:.0f} ms "
                  "per item")
    print(f"load now {fmt_load()}")
    return 0  # every phase ran and printed its figure


if __name__ == "__main__":
    sys.exit(main())
