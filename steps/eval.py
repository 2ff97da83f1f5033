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

from config.artifacts import GuardrailPolicyArtifact, PromptArtifact, RagConfigArtifact, TestCase
from config.catalog import load_catalog
from config.pipeline import EvalThresholds, PromptPipelineConfig
from config.yamlio import LoadError
from steps import eval_cache, promptfoo
from steps.artifact_files import ArtifactFile, load_artifact
from steps.contracts import BranchResult, EvalItem
from steps.datasets import load_dataset
from steps.eval_results import EvalResult, ResultsError, load_result, parse_results
from steps.eval_types import Spec, SpecError, guardrail_spec, rag_spec
from steps.gates import Verdict, judge
from steps.model_refs import RefError, ResolvedModel, dependents, gated_by, resolve_model, split_dataset
from steps.providers import Mode, ProviderConfigError, effective_mode, local_model, provider_mode
from steps.providers.live import live_provider, provider_hosts
from steps.providers.recordings import (
    JS_PROVIDER,
    params_key,
    recordings_digest,
    recordings_dir,
    write_recording,
)
from steps.records import EvalRecord, RecordError, put_signed, read_record, record_key
from steps.render import MissingVariable, RenderError, render_prompt, resolve_vars
from steps.reports import diff_html, diff_markdown
from steps.signing import SignatureError, signing_key
from steps.stores.store import ArtifactStore, StoreError, baseline_key, run_key

log = logging.getLogger(__name__)

INLINE = "inline"
# A provider that could not be reached (or said "try later"): what promptfoo and Node's fetch report
# then. A branch whose every error is one of these is retried (exit 75); a wrong answer never is.
NETWORK_ERROR = re.compile(r"ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|"
                           r"socket hang up|fetch failed|network error|timed out|"
                           r"\b(?:status|HTTP|code)[: ]*(?:429|502|503|504)\b", re.IGNORECASE)
MODEL_GRADED = frozenset({"llm-rubric", "model-graded-closedqa", "factuality", "answer-relevance",
                          "context-faithfulness", "context-recall", "context-relevance", "similar"})


class BranchError(Exception):
    """Something that makes the branch an error (fail closed); the message is the reason."""


class TransientBranchError(BranchError):
    """An error another attempt may clear (promptfoo hung past its timeout): retried, exit 75."""


@dataclass
class _Branch:
    """What one branch has worked out so far (for building the BranchResult)."""

    item: EvalItem
    reasons: list[str] = field(default_factory=list)
    report_keys: list[str] = field(default_factory=list)
    result: EvalResult | None = None


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
            messages = render_prompt(art, values)
        except MissingVariable as exc:
            raise BranchError(f"{rel_path}: test '{desc}' of dataset '{dataset}' gives no value for "
                              f"variable '{exc.args[0]}'") from exc
        except RenderError as exc:
            raise BranchError(f"{rel_path}: test '{desc}' of dataset '{dataset}': {exc}") from exc
        assertions = [a.model_dump(mode="json", exclude_none=True) for a in t.assert_]
        out.append(promptfoo.PreparedTest(i, desc, dict(t.vars), messages, assertions))
    return out


def _providers(art: PromptArtifact, model: ResolvedModel, mode: Mode, repo_root: Path
               ) -> tuple[str, dict[str, Any], dict[str, Any], list[str]]:
    """Return (canonical model, target provider, grader provider, hosts that bypass the dead proxy)."""
    resolved = load_catalog().resolve(model.model)
    if resolved is None:
        raise BranchError(f"model '{model.model}' is not in the model catalog (config/models.yaml)")
    canonical, entry = resolved
    pkey = params_key(model.parameters)
    if mode == "recorded":
        base = {"recordings_dir": str(recordings_dir(repo_root)), "artifact_id": art.id, "model": canonical,
                "params_key": pkey}
        target = {"id": f"file://{JS_PROVIDER}", "label": f"recorded:{canonical}",
                  "config": {**base, "role": "target"}}
        grader = {"id": f"file://{JS_PROVIDER}", "label": "recorded-grader",
                  "config": {**base, "role": "grader"}}
        return canonical, target, grader, []
    try:
        target = live_provider(canonical, entry, model.parameters)
        grader_model = load_catalog().resolve(_grader_model(canonical))
        if grader_model is None:
            raise BranchError(f"grader model '{_grader_model(canonical)}' is not in the model catalog")
        grader = live_provider(grader_model[0], grader_model[1], type(model.parameters)())
    except ProviderConfigError as exc:
        raise BranchError(str(exc)) from exc
    return canonical, target, grader, provider_hosts(entry) + provider_hosts(grader_model[1])


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


@contextlib.contextmanager
def _local_server(target: dict[str, Any], grader: dict[str, Any], work_dir: Path) -> Any:
    """Point the providers served by the bundled model at a ready server for the block.

    The run's server (``$PROMPTCI_LOCAL_BASE_URL``) is used when there is one;
    otherwise this branch starts its own and stops it afterwards. Either way the
    readiness probe answers before promptfoo starts; a server that does not come
    up in time is a transient error (exit 75). One that dies mid-eval leaves
    connection errors in the results, which are retryable too (``NETWORK_ERROR``).
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


def prompt_spec(af: ArtifactFile, art: PromptArtifact, dataset: str, mode: Mode, repo_root: Path,
                model_config: ArtifactFile | None = None) -> Spec:
    """Return the promptfoo run of a prompt's dataset, on the model its ``model:`` resolves to.

    ``model_config`` is the candidate model-config of a model-config branch; the
    resolved config's content hash is part of the cache key, so changing a
    config invalidates exactly the branches of the prompts that use it.
    """
    tests, dataset_bytes = load_tests(af, dataset)
    if not tests:
        raise BranchError(f"{af.rel_path}: dataset '{dataset}' has zero tests")
    prepared = prepare_tests(art, tests, af.rel_path, dataset)
    graded = sorted({a["type"].removeprefix("not-") for t in prepared for a in t.assertions} & MODEL_GRADED)
    try:
        model = resolve_model(art, repo_root, model_config)
    except RefError as exc:
        raise BranchError(f"{af.rel_path}: {exc}") from exc
    entry = load_catalog().resolve(model.model)
    mode = effective_mode(mode, entry[1].provider if entry else "")  # local: live only for the local model
    if graded and mode == "recorded":
        raise BranchError(f"{af.rel_path}: dataset '{dataset}' uses model-graded assertions "
                          f"({', '.join(graded)}); the recorded provider cannot serve grader calls, "
                          "so they would never be checked. Run with PROMPTCI_PROVIDER=live")
    canonical, target, grader, hosts = _providers(art, model, mode, repo_root)
    pkey = params_key(model.parameters)

    via = "local/" if local_model.is_local(target) else ""

    def record(results_path: Path) -> None:
        _record(results_path, prepared, repo_root, art.id, canonical, pkey,
                origin={"model": canonical, "provider": f"{via}{target['id']}"},
                extra={"source": af.rel_path, "dataset": dataset})

    return Spec(prepared, target, grader, canonical, {
        "prompt": af.content_hash,  # a model-config branch's item hash is the config's, not the prompt's
        "dataset": eval_cache.cache_key({"b": dataset_bytes.hex()}), "model": canonical,
        # the local server's port changes every run: the key names its model file instead
        "target": local_model.cache_view(target), "grader": local_model.cache_view(grader),
        "model_config": model.config_hash, "fallbacks": model.fallbacks,
        "recordings": recordings_digest(recordings_dir(repo_root), art.id) if mode == "recorded" else None,
    }, hosts=hosts, record=record, mode=mode)


def _spec(item: EvalItem, af: ArtifactFile, mode: Mode, repo_root: Path, work_dir: Path) -> Spec:
    """Return what this branch runs, by artifact type (every type has golden data: zero tests is an error)."""
    art = af.artifact
    try:
        if isinstance(art, PromptArtifact):
            return prompt_spec(af, art, item.dataset, mode, repo_root)
        if isinstance(art, GuardrailPolicyArtifact):  # no local models there: local mode replays them
            return guardrail_spec(af, item.dataset, effective_mode(mode, ""), repo_root)
        if isinstance(art, RagConfigArtifact):
            return rag_spec(af, item.dataset, effective_mode(mode, ""), repo_root, work_dir)
        prompt_id, dataset = split_dataset(item.dataset)
        users = [p for p in dependents(repo_root, art.id) if p.artifact_id == prompt_id]
        if not users:
            raise BranchError(f"{af.rel_path}: no prompt '{prompt_id}' uses model 'config:{art.id}'")
        prompt = users[0].artifact
        assert isinstance(prompt, PromptArtifact)
        spec = prompt_spec(users[0], prompt, dataset, mode, repo_root, model_config=af)
        spec.judged_against = prompt_id
        return spec
    except (SpecError, RefError) as exc:
        raise BranchError(str(exc)) from exc


def _evaluate(item: EvalItem, spec: Spec, th: EvalThresholds, mode: Mode, *, store: ArtifactStore,
              work_dir: Path, no_cache: bool) -> tuple[EvalResult, dict[str, bytes], bool, str]:
    """Return (result, promptfoo's output files, served from cache, cache key) for one branch."""
    mode = spec.mode or mode  # type: ignore[assignment]  # this branch's mode (local differs per model)
    try:
        version = promptfoo.installed_version()
    except promptfoo.PromptfooMissing as exc:
        raise BranchError(str(exc)) from exc
    key = eval_cache.cache_key({"content": item.content_hash, "type": item.artifact_type,
                                "mode": "live" if mode == "record" else mode, "promptfoo": version,
                                "repeats": th.repeats, **spec.key_inputs})
    if not no_cache and mode != "record":
        hit = eval_cache.lookup(store, item.artifact_id, item.dataset, key)
        if hit is not None:
            try:
                return load_result(hit["result.json"], "cached result"), hit, True, key
            except ResultsError as exc:
                log.warning("ignoring a bad cache entry: %s", exc)
    work_dir.mkdir(parents=True, exist_ok=True)
    if spec.setup is not None:
        spec.setup()
    cfg_path = work_dir / "promptfooconfig.json"
    for name in promptfoo.OUTPUTS.values():
        (work_dir / name).unlink(missing_ok=True)
    env = {**promptfoo.promptfoo_env(work_dir, spec.hosts), **spec.env}
    with _local_server(spec.target, spec.grader, work_dir):
        promptfoo.write_json(cfg_path, promptfoo.build_config(
            description=f"{item.artifact_id} / {item.dataset}", tests=spec.prepared, provider=spec.target,
            grader=spec.grader))
        proc = promptfoo.run_promptfoo(cfg_path, work_dir, jobs=promptfoo.default_jobs(), repeat=th.repeats,
                                       no_cache=no_cache or mode == "record", timeout_s=th.timeout_seconds,
                                       env=env)
    if proc.timed_out:
        raise TransientBranchError(f"promptfoo timed out after {th.timeout_seconds}s; its process group was "
                                   "killed")
    results_path = work_dir / promptfoo.OUTPUTS["results"]
    try:
        result = parse_results(results_path, artifact_id=item.artifact_id, dataset=item.dataset,
                               content_hash=item.content_hash, model=spec.model, provider=str(spec.target["id"]),
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
    if mode == "record" and spec.record is not None:
        spec.record(results_path)
    expected = len(spec.prepared) * th.repeats
    runs = sum(len(t.runs) for t in result.tests)
    if runs == 0:
        raise BranchError(f"promptfoo executed zero tests (exit {proc.returncode}); expected {expected} runs")
    if runs != expected:
        raise BranchError(f"promptfoo executed {runs} test runs, expected {expected} "
                          f"({len(spec.prepared)} tests × {th.repeats} repeats)")
    return result, files, False, key


def run_branch(item: EvalItem, *, repo_root: Path, run_id: str, target_env: str | None,
               config: PromptPipelineConfig, store: ArtifactStore, work_dir: Path,
               no_cache: bool = False) -> BranchResult:
    """Evaluate one (artifact, dataset) and return its verdict; never raises for quality or tool failures.

    Writes ``result.json`` (the measured EvalResult), promptfoo's ``results.json``,
    ``report.html`` and ``junit.xml``, ``diff.md``/``diff.html`` against the baseline of
    ``target_env`` (``dev`` when None), and last the signed ``record.json`` (steps/records.py)
    that promote decides on, to ``run_key(run_id, …)``. A store failure makes the
    branch a retryable error (nothing signed is left half-written).
    """
    b = _Branch(item)
    try:
        key = signing_key(repo_root, create=True)
    except SignatureError as exc:
        return _result(item, "error", reasons=[f"cannot sign the eval record: {exc}"])
    try:
        out = _run(item, b, repo_root=repo_root, run_id=run_id, target_env=target_env, config=config,
                   store=store, work_dir=work_dir, no_cache=no_cache, key=key)
    except BranchError as exc:
        out = _result(item, "error", reasons=[str(exc)], report_keys=b.report_keys,
                      retryable=isinstance(exc, TransientBranchError))
    except StoreError as exc:
        return _store_error(item, store, exc, b)
    except Exception as exc:  # fail closed: a crash in this stage must block promotion, with its reason
        log.exception("eval branch %s/%s crashed", item.artifact_id, item.dataset)
        out = _result(item, "error", reasons=[f"eval stage crashed: {type(exc).__name__}: {exc}"],
                      report_keys=b.report_keys)
    try:
        put_signed(store, record_key(run_id, item.artifact_id, item.dataset),
                   EvalRecord(run_id=run_id, branch=out, result=b.result), key)
    except StoreError as exc:
        return _store_error(item, store, exc, b)
    return out


def _store_error(item: EvalItem, store: ArtifactStore, exc: StoreError, b: _Branch) -> BranchResult:
    return _result(item, "error", reasons=[f"artifact store ({store.describe()}): {exc}"],
                   report_keys=b.report_keys, retryable=True)


def _run(item: EvalItem, b: _Branch, *, repo_root: Path, run_id: str, target_env: str | None,
         config: PromptPipelineConfig, store: ArtifactStore, work_dir: Path, no_cache: bool,
         key: bytes) -> BranchResult:
    try:
        af = load_artifact(repo_root / item.path, repo_root)
    except LoadError as exc:
        raise BranchError("; ".join(p.format() for p in exc.problems)) from exc
    except OSError as exc:
        raise BranchError(f"{item.path}: cannot read the artifact: {exc}") from exc
    if af.content_hash != item.content_hash:
        raise BranchError(f"{item.path} changed since plan "
                          f"({item.content_hash[:19]} → {af.content_hash[:19]})")
    try:
        mode = provider_mode()
    except ProviderConfigError as exc:
        raise BranchError(str(exc)) from exc
    started = time.monotonic()
    spec = _spec(item, af, mode, repo_root, work_dir)
    # A model-config is judged by the gates of each prompt that uses it, against that prompt's baseline
    # (the prompt as promoted, under the currently promoted config).
    base_id, base_ds = item.artifact_id, item.dataset
    if spec.judged_against is not None:
        base_id, base_ds = split_dataset(item.dataset)
    th = config.for_artifact(gated_by(item.artifact_type, item.artifact_id, item.dataset)).thresholds_for(target_env)
    result, files, cached, cache_key = _evaluate(item, spec, th, mode, store=store, work_dir=work_dir,
                                                 no_cache=no_cache)
    b.result = result
    env = target_env or "dev"
    base_key = baseline_key(env, base_id, base_ds)
    try:  # the baseline is the signed eval record promote keeps for what is live in env
        stored = read_record(store, base_key, key)
    except RecordError as exc:
        raise BranchError(f"baseline for {env}: {exc}") from exc
    baseline = stored[0].result if stored is not None else None
    if spec.judged_against is not None:
        result.judged_against = {"baseline": base_key,
                                 "content_hash": baseline.content_hash if baseline else None}
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
        eval_cache.save(store, item.artifact_id, item.dataset, cache_key, files)
    log.info("eval %s/%s: %s in %.1fs", item.artifact_id, item.dataset, status, time.monotonic() - started)
    retryable = bool(errors) and all(NETWORK_ERROR.search(e) for e in errors)
    return _result(item, status, pass_rate=verdict.pass_rate, metric_scores=verdict.metric_scores,
                   retryable=retryable, tests_total=verdict.tests_total, tests_passed=verdict.tests_passed,
                   baseline_pass_rate=verdict.baseline_pass_rate, reasons=reasons, cached=cached,
                   runs_total=sum(len(t.runs) for t in result.tests), authored_runs=result.authored_runs,
                   report_keys=b.report_keys)
