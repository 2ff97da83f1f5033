"""The eval stage: one branch = one (artifact, dataset), run with promptfoo and judged by the gates.

``run_branch`` never raises for a quality or tool problem. It returns a
``BranchResult`` whose status is ``passed`` (the only status that lets promote
run), ``failed`` (a gate was not met) or ``error`` (promptfoo crashed, wrote no
or non-JSON results, timed out, ran zero tests, a provider errored, a recording
is missing, the store failed...). Fail closed: anything unexpected is an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.artifacts import PromptArtifact, TestCase
from config.catalog import load_catalog
from config.pipeline import EvalThresholds, PromptPipelineConfig
from config.yamlio import LoadError
from steps import eval_cache, promptfoo
from steps.artifact_files import ArtifactFile, load_artifact
from steps.contracts import NO_DATASET, BranchResult, EvalItem
from steps.datasets import load_dataset
from steps.eval_results import EvalResult, ResultsError, load_result, parse_results
from steps.gates import Verdict, judge
from steps.providers import Mode, ProviderConfigError, answered_live, local_model, provider_mode, recording
from steps.providers.live import live_provider, provider_hosts
from steps.providers.recordings import (
    JS_PROVIDER,
    params_key,
    recordings_digest,
    recordings_dir,
    write_recording,
)
from steps.render import MissingVariable, render_messages, resolve_vars
from steps.reports import diff_html, diff_markdown
from steps.stores.store import ArtifactStore, StoreError, baseline_key, run_key

log = logging.getLogger(__name__)

INLINE = "inline"
MODEL_GRADED = frozenset({"llm-rubric", "model-graded-closedqa", "factuality", "answer-relevance",
                          "context-faithfulness", "context-recall", "context-relevance", "similar"})


# A live call that never reached the model (the server was down or went away): worth another attempt.
CONNECTION_FAILURE = re.compile(r"ECONNREFUSED|ECONNRESET|EPIPE|socket hang up|other side closed|fetch failed")


class BranchError(Exception):
    """Something that makes the branch an error (fail closed); the message is the reason."""


class TransientBranchError(BranchError):
    """An error another attempt may clear (the local model server restarting): the step exits 75."""


@dataclass
class _Branch:
    """What one branch has worked out so far (for building the BranchResult)."""

    item: EvalItem
    reasons: list[str] = field(default_factory=list)
    report_keys: list[str] = field(default_factory=list)


def _result(item: EvalItem, status: str, **kw: Any) -> BranchResult:
    return BranchResult(artifact_id=item.artifact_id, artifact_type=item.artifact_type, path=item.path,
                        dataset=item.dataset, content_hash=item.content_hash, status=status,  # type: ignore[arg-type]
                        **kw)


def load_tests(af: ArtifactFile, dataset: str) -> tuple[list[TestCase], bytes]:
    """Return the dataset's tests and the bytes that identify them (for the cache key)."""
    art = af.artifact
    assert isinstance(art, PromptArtifact)
    if dataset == INLINE:
        return list(art.tests), json.dumps([t.model_dump(mode="json", by_alias=True) for t in art.tests],
                                           sort_keys=True).encode()
    path = af.dataset_path(dataset)
    if path is None:
        known = ", ".join(af.datasets) or "none"
        raise BranchError(f"{af.rel_path}: no dataset named '{dataset}' (the artifact has: {known})")
    try:
        return load_dataset(path, display=str(path.relative_to(af.root) if path.is_relative_to(af.root)
                                              else path)), path.read_bytes()
    except LoadError as exc:
        raise BranchError("; ".join(p.format() for p in exc.problems)) from exc


def prepare_tests(art: PromptArtifact, tests: list[TestCase], rel_path: str, dataset: str
             ) -> list[promptfoo.PreparedTest]:
    """Return the tests with rendered messages; a model-graded or unrenderable test is an error."""
    out = []
    for i, t in enumerate(tests):
        desc = t.description or f"{dataset} test {i + 1}"
        values = resolve_vars(t.vars, art.variables)
        try:
            messages = render_messages(art.messages, values)
        except MissingVariable as exc:
            raise BranchError(f"{rel_path}: test '{desc}' of dataset '{dataset}' gives no value for "
                              f"variable '{exc.args[0]}'") from exc
        assertions = [a.model_dump(mode="json", exclude_none=True) for a in t.assert_]
        out.append(promptfoo.PreparedTest(i, desc, dict(t.vars), messages, assertions))
    return out


def _providers(art: PromptArtifact, mode: Mode, repo_root: Path) -> tuple[str, dict[str, Any],
                                                                         dict[str, Any], list[str]]:
    """Return (canonical model, target provider, grader provider, hosts that bypass the dead proxy)."""
    resolved = load_catalog().resolve(art.model)
    if resolved is None:
        raise BranchError(f"model '{art.model}' is not in the model catalog (config/models.yaml)")
    canonical, entry = resolved
    pkey = params_key(art.parameters)
    if not answered_live(mode, entry.provider):
        base = {"recordings_dir": str(recordings_dir(repo_root)), "artifact_id": art.id, "model": canonical,
                "params_key": pkey}
        target = {"id": f"file://{JS_PROVIDER}", "label": f"recorded:{canonical}",
                  "config": {**base, "role": "target"}}
        grader = {"id": f"file://{JS_PROVIDER}", "label": "recorded-grader",
                  "config": {**base, "role": "grader"}}
        return canonical, target, grader, []
    try:
        target = live_provider(canonical, entry, art.parameters)
        grader_model = load_catalog().resolve(_grader_model(canonical))
        if grader_model is None:
            raise BranchError(f"grader model '{_grader_model(canonical)}' is not in the model catalog")
        grader = live_provider(grader_model[0], grader_model[1], type(art.parameters)())
    except ProviderConfigError as exc:
        raise BranchError(str(exc)) from exc
    return canonical, target, grader, provider_hosts(entry) + provider_hosts(grader_model[1])


@contextlib.contextmanager
def _local_server(target: dict[str, Any], grader: dict[str, Any], work_dir: Path) -> Any:
    """Point the providers served by the bundled model at a ready server for the block.

    The run's server (``$PROMPTCI_LOCAL_BASE_URL``) is used when there is one;
    otherwise this branch starts its own and stops it afterwards. Either way the
    readiness probe answers before promptfoo starts; a server that does not come
    up in time is a transient error (exit 75), as is one that dies mid-eval.
    """
    served = [p for p in (target, grader) if local_model.is_local(p)]
    if not served:
        yield
        return
    env = dict(os.environ)
    try:
        with local_model.serving(env, log_path=work_dir / "local-model.log"):
            url = env[local_model.URL_ENV]
            if not local_model.wait_ready(url, local_model.ready_timeout()):
                raise TransientBranchError(f"the local model server at {url} is not answering /v1/models")
            for p in served:
                p["config"]["apiBaseUrl"] = url
            yield
    except local_model.LocalModelError as exc:
        raise BranchError(str(exc)) from exc


def _grader_model(canonical: str) -> str:
    """Return the grader model for live runs: ``$PROMPTCI_GRADER_MODEL`` or the prompt's own model."""
    return os.environ.get("PROMPTCI_GRADER_MODEL") or canonical


def _put(store: ArtifactStore, key: str, data: bytes, ctype: str, b: _Branch) -> None:
    store.put_bytes(key, data, ctype)
    b.report_keys.append(key)


def _record(result_path: Path, prepared: list[promptfoo.PreparedTest], repo_root: Path, artifact_id: str,
            model: str, pkey: str, origin: dict[str, str], extra: dict[str, str]) -> int:
    """Write a recording per test from a live run's results.json; return how many were written.

    Each carries its ``origin`` (model, provider, when) and the token usage the provider reported.
    """
    doc = json.loads(result_path.read_text())
    rows = sorted(doc["results"]["results"], key=lambda r: r.get("testIdx", 0))
    by_test: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        idx = r["testCase"]["metadata"]["promptci_index"]
        resp = r.get("response") or {}
        by_test.setdefault(idx, []).append(
            {"error": resp["error"]} if resp.get("error") else
            {"output": resp.get("output", ""), "tokenUsage": _usage(resp.get("tokenUsage") or {}),
             "cost": r.get("cost", 0)})
    stamp = {**origin, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for t in prepared:
        write_recording(recordings_dir(repo_root), artifact_id, model=model, params=pkey,
                        prompt=promptfoo.messages_prompt(t.messages), messages=t.messages,
                        responses=by_test.get(t.index, []), test=t.description, origin=stamp, extra=extra)
    return len(prepared)


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    """Return promptfoo's token usage reduced to what a recording replays (prompt, completion, total)."""
    return {k: int(usage.get(k) or 0) for k in ("prompt", "completion", "total")}


def _evaluate(item: EvalItem, af: ArtifactFile, art: PromptArtifact, th: EvalThresholds, *, repo_root: Path,
              store: ArtifactStore, work_dir: Path, no_cache: bool
              ) -> tuple[EvalResult, dict[str, bytes], bool, str]:
    """Return (result, promptfoo's output files, served from cache, cache key) for a prompt branch."""
    tests, dataset_bytes = load_tests(af, item.dataset)
    if not tests:
        raise BranchError(f"{af.rel_path}: dataset '{item.dataset}' has zero tests")
    prepared = prepare_tests(art, tests, af.rel_path, item.dataset)
    try:
        mode = provider_mode()
    except ProviderConfigError as exc:
        raise BranchError(str(exc)) from exc
    canonical, target, grader, hosts = _providers(art, mode, repo_root)
    live = not str(target["id"]).startswith("file://")
    record = live and recording()
    graded = sorted({a["type"].removeprefix("not-") for t in prepared for a in t.assertions} & MODEL_GRADED)
    if graded and not live:
        raise BranchError(f"{af.rel_path}: dataset '{item.dataset}' uses model-graded assertions "
                          f"({', '.join(graded)}); the recorded provider cannot serve grader calls, "
                          "so they would never be checked. Run with PROMPTCI_PROVIDER=live")
    try:
        version = promptfoo.installed_version()
    except promptfoo.PromptfooMissing as exc:
        raise BranchError(str(exc)) from exc
    key = eval_cache.cache_key({
        "content": item.content_hash, "dataset": eval_cache.cache_key({"b": dataset_bytes.hex()}),
        "model": canonical, "mode": "live" if live else "recorded", "target": local_model.cache_view(target),
        "grader": local_model.cache_view(grader), "promptfoo": version, "repeats": th.repeats,
        "recordings": None if live else recordings_digest(recordings_dir(repo_root), art.id),
    })
    if not no_cache and not record:
        hit = eval_cache.lookup(store, item.artifact_id, item.dataset, key)
        if hit is not None:
            try:
                return load_result(hit["result.json"], "cached result"), hit, True, key
            except ResultsError as exc:
                log.warning("ignoring a bad cache entry: %s", exc)
    work_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = work_dir / "promptfooconfig.json"
    for name in promptfoo.OUTPUTS.values():
        (work_dir / name).unlink(missing_ok=True)
    with _local_server(target, grader, work_dir):
        promptfoo.write_json(cfg_path, promptfoo.build_config(
            description=f"{item.artifact_id} / {item.dataset}", tests=prepared, provider=target, grader=grader))
        proc = promptfoo.run_promptfoo(cfg_path, work_dir, jobs=promptfoo.default_jobs(), repeat=th.repeats,
                                       no_cache=no_cache or record, timeout_s=th.timeout_seconds,
                                       env=promptfoo.promptfoo_env(work_dir, hosts))
    if proc.timed_out:
        raise BranchError(f"promptfoo timed out after {th.timeout_seconds}s; its process group was killed")
    results_path = work_dir / promptfoo.OUTPUTS["results"]
    try:
        result = parse_results(results_path, artifact_id=item.artifact_id, dataset=item.dataset,
                               content_hash=item.content_hash, model=canonical, provider=str(target["id"]),
                               promptfoo_version=version, repeats=th.repeats)
    except ResultsError as exc:
        tail = (proc.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        raise BranchError(f"promptfoo exited {proc.returncode}: {exc}; last stderr line: {tail}") from exc
    result.duration_s = proc.duration_s
    files = {"results.json": results_path.read_bytes()}
    for out, name in (("html", "report.html"), ("junit", "junit.xml")):
        p = work_dir / promptfoo.OUTPUTS[out]
        if p.exists():
            files[name] = p.read_bytes()
    lost = [e for e in result.errors if live and CONNECTION_FAILURE.search(e)]
    if lost:
        raise TransientBranchError(f"the model could not be reached ({len(lost)} call(s)): {lost[0]}")
    if record:
        via = "local/" if local_model.is_local(target) else ""
        _record(results_path, prepared, repo_root, art.id, canonical, params_key(art.parameters),
                origin={"model": canonical, "provider": f"{via}{target['id']}"},
                extra={"source": af.rel_path, "dataset": item.dataset})
    expected = len(prepared) * th.repeats
    runs = sum(len(t.runs) for t in result.tests)
    if runs == 0:
        raise BranchError(f"promptfoo executed zero tests (exit {proc.returncode}); expected {expected} runs")
    if runs != expected:
        raise BranchError(f"promptfoo executed {runs} test runs, expected {expected} "
                          f"({len(prepared)} tests × {th.repeats} repeats)")
    return result, files, False, key


def run_branch(item: EvalItem, *, repo_root: Path, run_id: str, target_env: str | None,
               config: PromptPipelineConfig, store: ArtifactStore, work_dir: Path,
               no_cache: bool = False) -> BranchResult:
    """Evaluate one (artifact, dataset) and return its verdict; never raises for quality or tool failures.

    Writes ``result.json`` (the baseline format), promptfoo's ``results.json``,
    ``report.html`` and ``junit.xml``, and ``diff.md``/``diff.html`` against the
    baseline of ``target_env`` (``dev`` when None) to ``run_key(run_id, …)``.
    """
    b = _Branch(item)
    try:
        return _run(item, b, repo_root=repo_root, run_id=run_id, target_env=target_env, config=config,
                    store=store, work_dir=work_dir, no_cache=no_cache)
    except TransientBranchError as exc:
        return _result(item, "error", reasons=[str(exc)], report_keys=b.report_keys, retryable=True)
    except BranchError as exc:
        return _result(item, "error", reasons=[str(exc)], report_keys=b.report_keys)
    except StoreError as exc:
        return _result(item, "error", reasons=[f"artifact store ({store.describe()}): {exc}"],
                       report_keys=b.report_keys, retryable=True)
    except Exception as exc:  # fail closed: a crash in this stage must block promotion, with its reason
        log.exception("eval branch %s/%s crashed", item.artifact_id, item.dataset)
        return _result(item, "error", reasons=[f"eval stage crashed: {type(exc).__name__}: {exc}"],
                       report_keys=b.report_keys)


def _run(item: EvalItem, b: _Branch, *, repo_root: Path, run_id: str, target_env: str | None,
         config: PromptPipelineConfig, store: ArtifactStore, work_dir: Path, no_cache: bool) -> BranchResult:
    th = config.for_artifact(item.artifact_id).thresholds_for(target_env)
    try:
        af = load_artifact(repo_root / item.path, repo_root)
    except LoadError as exc:
        raise BranchError("; ".join(p.format() for p in exc.problems)) from exc
    except OSError as exc:
        raise BranchError(f"{item.path}: cannot read the artifact: {exc}") from exc
    if af.content_hash != item.content_hash:
        raise BranchError(f"{item.path} changed since plan "
                          f"({item.content_hash[:19]} → {af.content_hash[:19]})")
    art = af.artifact
    if item.dataset == NO_DATASET:
        if isinstance(art, PromptArtifact):
            raise BranchError(f"{af.rel_path}: a prompt needs golden data (a dataset under evals: or inline "
                              "tests); without it nothing shows the prompt works")
        return _result(item, "passed", tests_total=0)
    if not isinstance(art, PromptArtifact):
        raise BranchError(f"{af.rel_path}: {af.artifact_type.value} artifacts have no eval datasets "
                          f"(got dataset '{item.dataset}')")
    started = time.monotonic()
    result, files, cached, key = _evaluate(item, af, art, th, repo_root=repo_root, store=store,
                                           work_dir=work_dir, no_cache=no_cache)
    env = target_env or "dev"
    raw_baseline = store.get_bytes(baseline_key(env, item.artifact_id, item.dataset))
    try:
        baseline = None if raw_baseline is None else load_result(raw_baseline, f"baseline for {env}")
    except ResultsError as exc:
        raise BranchError(str(exc)) from exc
    verdict: Verdict = judge(result, th, baseline)
    errors = result.errors
    status = "error" if errors else ("passed" if verdict.passed else "failed")
    reasons = [*errors, *verdict.reasons] if errors else verdict.reasons
    result_json = result.model_dump_json(indent=2).encode()
    files["result.json"] = result_json
    for name, ctype in (("result.json", "application/json"), ("results.json", "application/json"),
                        ("report.html", "text/html"), ("junit.xml", "application/xml")):
        if name in files:
            _put(store, run_key(run_id, item.artifact_id, item.dataset, name), files[name], ctype, b)
    _put(store, run_key(run_id, item.artifact_id, item.dataset, "diff.md"),
         diff_markdown(result, baseline, verdict, status).encode(), "text/markdown", b)
    _put(store, run_key(run_id, item.artifact_id, item.dataset, "diff.html"),
         diff_html(result, baseline, verdict, status).encode(), "text/html", b)
    if status == "passed" and not cached:
        eval_cache.save(store, item.artifact_id, item.dataset, key, files)
    log.info("eval %s/%s: %s in %.1fs", item.artifact_id, item.dataset, status, time.monotonic() - started)
    return _result(item, status, pass_rate=verdict.pass_rate, metric_scores=verdict.metric_scores,
                   tests_total=verdict.tests_total, tests_passed=verdict.tests_passed,
                   baseline_pass_rate=verdict.baseline_pass_rate, reasons=reasons, cached=cached,
                   runs_total=sum(len(t.runs) for t in result.tests), authored_runs=result.authored_runs,
                   report_keys=b.report_keys)
