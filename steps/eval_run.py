"""Measuring one prepared item: the eval cache, or one promptfoo process over its tests.

``measure`` returns the typed ``EvalResult`` and promptfoo's output files, or
raises ``BranchError`` (``TransientBranchError`` for a timeout or a local model
server that does not come up: worth another attempt).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from config.settings import get_settings
from steps import eval_cache, promptfoo
from steps.eval_results import EvalResult, ResultsError, load_result, parse_results
from steps.eval_spec import BranchError, Prepared, TransientBranchError
from steps.providers import local_model
from steps.stores.store import ArtifactStore

log = logging.getLogger(__name__)


def cached(prep: Prepared, store: ArtifactStore, no_cache: bool) -> tuple[EvalResult, dict[str, bytes]] | None:
    """Return (result, files) of a passing run with the same inputs, or None (a miss, or caching is off).

    Record mode never reads the cache: it exists to call the providers. A bad
    entry is ignored (and overwritten when this run passes). Raises StoreError.
    """
    if no_cache or prep.mode == "record":
        return None
    hit = eval_cache.lookup(store, prep.item.artifact_id, prep.item.dataset, prep.cache_key)
    if hit is None:
        return None
    try:
        return load_result(hit["result.json"], "cached result"), hit
    except ResultsError as exc:
        log.warning("ignoring a bad cache entry: %s", exc)
        return None


@contextlib.contextmanager
def local_server(providers: list[dict[str, Any]], work_dir: Path) -> Any:
    """Point the providers served by the bundled model at a ready server for the block.

    The run's server (``$PROMPTCI_LOCAL_BASE_URL``) is used when there is one;
    otherwise this block starts its own and stops it afterwards. Either way the
    readiness probe answers before promptfoo starts; a server that does not come
    up in time is a transient error (exit 75). One that dies mid-eval leaves
    connection errors in the results, which are retryable too (``NETWORK_ERROR``).
    """
    served = [p for p in providers if local_model.is_local(p)]
    if not served:
        yield
        return
    env = dict(os.environ)
    try:
        with local_model.serving(env, log_path=work_dir / "local-model.log"):
            url = get_settings(env).local_base_url  # serving() set it: the run's server, or this branch's
            if not url or not local_model.wait_ready(url, local_model.ready_timeout()):
                raise TransientBranchError(f"the local model server at {url} is not answering /v1/models")
            for p in served:
                p["config"]["apiBaseUrl"] = url
            yield
    except local_model.LocalModelError as exc:
        raise BranchError(str(exc)) from exc


def output_files(work_dir: Path) -> dict[str, bytes]:
    """Return promptfoo's outputs in ``work_dir`` under the names a branch stores them by."""
    files = {"results.json": (work_dir / promptfoo.OUTPUTS["results"]).read_bytes()}
    for out, name in (("html", "report.html"), ("junit", "junit.xml")):
        p = work_dir / promptfoo.OUTPUTS[out]
        if p.exists():
            files[name] = p.read_bytes()
    return files


def check_runs(prep: Prepared, result: EvalResult, returncode: int | None) -> None:
    """Raise BranchError unless promptfoo ran every test of ``prep`` as many times as its repeats say."""
    expected = prep.runs
    runs = sum(len(t.runs) for t in result.tests)
    if runs == 0:
        raise BranchError(f"promptfoo executed zero tests (exit {returncode}); expected {expected} runs")
    if runs != expected:
        raise BranchError(f"promptfoo executed {runs} test runs, expected {expected} "
                          f"({len(prep.spec.prepared)} tests × {prep.thresholds.repeats} repeats)")


def run_promptfoo(cfg_path: Path, work_dir: Path, *, repeat: int, no_cache: bool, timeout_s: float,
                  env: dict[str, str]) -> promptfoo.ProcessResult:
    """Return how ``promptfoo.run_promptfoo`` ended, with the default ``-j``; no usable Node or promptfoo
    entry is a BranchError (the items' one-line error, with the fix), never a crash. Both measuring paths
    (``measure`` and ``steps.eval_batch``) start promptfoo through here."""
    try:
        return promptfoo.run_promptfoo(cfg_path, work_dir, jobs=promptfoo.default_jobs(), repeat=repeat,
                                       no_cache=no_cache, timeout_s=timeout_s, env=env)
    except promptfoo.PromptfooMissing as exc:
        raise BranchError(str(exc)) from exc


def measure(prep: Prepared, work_dir: Path, no_cache: bool) -> tuple[EvalResult, dict[str, bytes]]:
    """Run promptfoo once over ``prep``'s tests in ``work_dir``; return (result, output files)."""
    item, spec, th = prep.item, prep.spec, prep.thresholds
    work_dir.mkdir(parents=True, exist_ok=True)
    if spec.setup is not None:
        spec.setup()
    cfg_path = work_dir / "promptfooconfig.json"
    for name in promptfoo.OUTPUTS.values():
        (work_dir / name).unlink(missing_ok=True)
    env = {**promptfoo.promptfoo_env(work_dir, spec.hosts), **spec.env}
    with local_server([spec.target, spec.grader], work_dir):
        promptfoo.write_json(cfg_path, promptfoo.build_config(
            description=f"{item.artifact_id} / {item.dataset}", tests=spec.prepared, provider=spec.target,
            grader=spec.grader))
        proc = run_promptfoo(cfg_path, work_dir, repeat=th.repeats, no_cache=no_cache or prep.mode == "record",
                             timeout_s=th.timeout_seconds, env=env)
    if proc.timed_out:
        raise TransientBranchError(f"promptfoo timed out after {th.timeout_seconds}s; its process group was "
                                   "killed")
    results_path = work_dir / promptfoo.OUTPUTS["results"]
    try:
        result = parse_results(results_path, artifact_id=item.artifact_id, dataset=item.dataset,
                               content_hash=item.content_hash, model=spec.model, provider=str(spec.target["id"]),
                               promptfoo_version=prep.version, repeats=th.repeats)
    except ResultsError as exc:
        tail = (proc.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        raise BranchError(f"promptfoo exited {proc.returncode}: {exc}; last stderr line: {tail}") from exc
    result.duration_s = proc.duration_s
    files = output_files(work_dir)
    if prep.mode == "record" and spec.record is not None:
        spec.record(results_path)
    check_runs(prep, result, proc.returncode)
    return result, files
