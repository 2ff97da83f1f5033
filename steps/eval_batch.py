"""Measuring a shard's items in ONE promptfoo process, and splitting its outputs back per item.

Every item keeps its own target provider, grader, repeats and tests. The
config lists one provider entry per item, under a label unique in the shard
(``#k artifact/dataset``), and every test names its item's provider with
promptfoo's test-level ``providers`` filter and carries the item's grader and
repeats in its ``options`` (see ``tests/steps/test_eval_batch.py`` for where
promptfoo implements both). So promptfoo runs exactly the (test, provider,
repeat) rows the items would run on their own, each row's ``repeatIndex``
counting from 0 per test as it does alone: the recorded provider picks the
same response per repeat.

The outputs are split per item:

* ``results.json``: promptfoo's document with ``results.results`` and
  ``results.prompts`` filtered to the item's rows and column, ``testIdx``
  renumbered from 0 and the provider label restored (as the item alone would
  have them); ``stats`` recomputed from the item's column metrics;
  ``config.providers``/``config.tests`` filtered to the item;
* ``junit.xml``: the item's ``<testsuite>`` (promptfoo writes one per provider
  column), renamed to the item's own label;
* ``report.html``: promptfoo's HTML report of the whole shard (it cannot be
  split: its table is rendered by promptfoo's viewer); each item's column is
  named ``#k artifact/dataset``.

A timed-out shard process writes nothing, so every item it was measuring is
unfinished: each becomes a transient (retryable) error.
"""

from __future__ import annotations

import copy
import json
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps import promptfoo
from steps.eval_results import EvalResult, ResultsError, parse_results
from steps.eval_run import check_runs, local_server, run_promptfoo
from steps.eval_spec import BranchError, Prepared, SpecError, TransientBranchError

log = logging.getLogger(__name__)
PROMPT_LABEL = "promptci"


@dataclass
class Part:
    """One item of a shard process: its prepared run, its column label, and where its files go."""

    prep: Prepared
    label: str  # unique in the shard; promptfoo's test-level filter names it
    work_dir: Path

    @property
    def own_label(self) -> str:
        """Return the provider label the item has when it runs alone."""
        return str(self.prep.spec.target.get("label", ""))


def shard_label(k: int, prep: Prepared) -> str:
    """Return the provider label of the shard's ``k``-th item: unique, and never a prefix of another.

    promptfoo matches a filter reference against a label exactly, as a ``ref:``
    prefix or as a ``ref*`` wildcard; ``#k `` starts exactly one label, and no
    label ends in ``*``.
    """
    return f"#{k} {prep.item.artifact_id}/{prep.item.dataset}".rstrip("*")


def build_shard_config(parts: list[Part]) -> dict[str, Any]:
    """Return the promptfoo config that runs every part's tests on its own provider only.

    The same prompt as ``promptfoo.build_config``; the metadata adds
    ``promptci_item`` (the part's position) to map rows back to their item.
    """
    first = parts[0].prep.spec
    return {
        "description": f"shard of {len(parts)} item(s)",
        "prompts": [{"raw": "{{ promptci_messages }}", "label": PROMPT_LABEL}],
        "providers": [{**p.prep.spec.target, "label": p.label} for p in parts],
        # Every test sets its own grader; the default only keeps promptfoo from probing for one.
        "defaultTest": {"options": {"provider": first.grader}},
        "tests": [{
            "description": t.description,
            "vars": {"promptci_messages": promptfoo.messages_prompt(t.messages)},
            "assert": t.assertions,
            "providers": [p.label],
            "options": {"provider": p.prep.spec.grader, "repeat": p.prep.thresholds.repeats},
            "metadata": {"promptci_index": t.index, "promptci_vars": t.vars, "promptci_item": k},
        } for k, p in enumerate(parts) for t in p.prep.spec.prepared],
        "sharing": False,
    }


def _item_rows(doc: dict[str, Any], k: int) -> list[dict[str, Any]]:
    rows = doc.get("results", {}).get("results") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise ResultsError("results.json has no results.results list (not a promptfoo v3 results file)")
    return [r for r in rows if isinstance(r, dict)
            and ((r.get("testCase") or {}).get("metadata") or {}).get("promptci_item") == k]


def _own_test_case(case: dict[str, Any], *, merged: bool) -> dict[str, Any]:
    """Return a test case as the item alone has it: no filter, no item number, no per-test repeat.

    ``merged``: a result row's copy, where promptfoo has merged ``defaultTest``'s
    grader into ``options`` (the item's own grader is that); a config test has
    no ``options`` when the item runs alone.
    """
    case = copy.deepcopy(case)
    case.pop("providers", None)
    (case.get("metadata") or {}).pop("promptci_item", None)
    if merged:
        (case.get("options") or {}).pop("repeat", None)
    else:
        case.pop("options", None)
    return case


def split_results(doc: dict[str, Any], k: int, part: Part) -> dict[str, Any]:
    """Return promptfoo's results document reduced to the ``k``-th item, as if it had run alone."""
    rows = sorted(_item_rows(doc, k), key=lambda r: r.get("testIdx", 0))
    offset = min((r.get("testIdx", 0) for r in rows), default=0)
    column = min((r.get("promptIdx", 0) for r in rows), default=0)
    out = copy.deepcopy({key: v for key, v in doc.items() if key not in ("results", "config")})
    own_rows = []
    for r in rows:
        r = copy.deepcopy(r)
        r["testIdx"] = r.get("testIdx", 0) - offset
        r["promptIdx"] = r.get("promptIdx", 0) - column
        if isinstance(r.get("provider"), dict):
            r["provider"]["label"] = part.own_label
        r["testCase"] = _own_test_case(r.get("testCase") or {}, merged=True)
        meta = r.get("metadata")
        if isinstance(meta, dict):
            meta.pop("promptci_item", None)
        own_rows.append(r)
    results = doc.get("results") or {}
    prompts = [copy.deepcopy(p) for p in results.get("prompts") or [] if p.get("provider") == part.label]
    for p in prompts:
        p["provider"] = part.own_label
    metrics = prompts[0].get("metrics", {}) if prompts else {}
    stats = {**copy.deepcopy(results.get("stats") or {}),
             "successes": metrics.get("testPassCount", 0), "failures": metrics.get("testFailCount", 0),
             "errors": metrics.get("testErrorCount", 0), "tokenUsage": copy.deepcopy(metrics.get("tokenUsage", {}))}
    out["results"] = {**{key: v for key, v in results.items() if key not in ("prompts", "results", "stats")},
                      "prompts": prompts, "results": own_rows, "stats": stats}
    config = copy.deepcopy(doc.get("config") or {})
    if config:
        config["providers"] = [{**p, "label": part.own_label} for p in config.get("providers") or []
                               if isinstance(p, dict) and p.get("label") == part.label]
        tests = [t for t in config.get("tests") or []
                 if isinstance(t, dict) and (t.get("metadata") or {}).get("promptci_item") == k]
        config["tests"] = [_own_test_case(t, merged=False) for t in tests]
        config["description"] = f"{part.prep.item.artifact_id} / {part.prep.item.dataset}"
        # Alone, the item's grader is the default test's: promptfoo's echo of it is on the item's tests.
        grader = ((tests[0].get("options") or {}).get("provider") if tests else None) or part.prep.spec.grader
        default: dict[str, Any] = config["defaultTest"] if isinstance(config.get("defaultTest"), dict) else {}
        config["defaultTest"] = {**default, "options": {**(default.get("options") or {}), "provider": grader}}
        out["config"] = config
    if isinstance(out.get("runtimeOptions"), dict):
        out["runtimeOptions"]["repeat"] = part.prep.thresholds.repeats  # the shard passes repeats per test
    return out


def split_junit(data: bytes, part: Part) -> bytes | None:
    """Return promptfoo's JUnit XML reduced to the item's ``<testsuite>``, named as the item alone names it.

    Returns None when the item has no suite (promptfoo wrote none for it).
    """
    root = ET.fromstring(data)
    prefix = f"[{part.label}] "
    suites = [s for s in root.findall("testsuite") if (s.get("name") or "").startswith(prefix)]
    if not suites:
        return None
    for s in root.findall("testsuite"):
        if s not in suites:
            root.remove(s)
    own = f"[{part.own_label}] "
    number = 0
    for s in suites:
        s.set("name", own + (s.get("name") or "")[len(prefix):])
        for case in s.findall("testcase"):
            number += 1
            case.set("classname", own + (case.get("classname") or "")[len(prefix):])
            name = case.get("name") or ""
            if name.startswith("test ") and ":" in name:  # promptfoo numbers cases by testIdx + 1
                case.set("name", f"test {number}:" + name.split(":", 1)[1])
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr) or 0) for s in suites)))
    root.set("time", f"{sum(float(s.get('time') or 0) for s in suites):.3f}")
    ET.indent(root, space="  ")  # as promptfoo lays it out
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="unicode", short_empty_elements=False) + "\n").encode()


def _outcome(part: Part, k: int, doc: dict[str, Any], work_dir: Path, proc: promptfoo.ProcessResult,
             ) -> tuple[EvalResult, dict[str, bytes]]:
    """Return one item's (result, files) from the shard's outputs; raise BranchError when they are not whole."""
    prep, item = part.prep, part.prep.item
    part.work_dir.mkdir(parents=True, exist_ok=True)
    own = split_results(doc, k, part)
    path = part.work_dir / promptfoo.OUTPUTS["results"]
    promptfoo.write_json(path, own)
    try:
        result = parse_results(path, artifact_id=item.artifact_id, dataset=item.dataset,
                               content_hash=item.content_hash, model=prep.spec.model,
                               provider=str(prep.spec.target["id"]), promptfoo_version=prep.version,
                               repeats=prep.thresholds.repeats)
    except ResultsError as exc:
        raise BranchError(f"promptfoo exited {proc.returncode}: {exc}") from exc
    result.duration_s = proc.duration_s
    files = {"results.json": path.read_bytes()}
    html = work_dir / promptfoo.OUTPUTS["html"]
    if html.exists():
        files["report.html"] = html.read_bytes()
    junit = work_dir / promptfoo.OUTPUTS["junit"]
    if junit.exists():
        try:
            own_junit = split_junit(junit.read_bytes(), part)
        except ET.ParseError as exc:
            raise BranchError(f"promptfoo's {junit.name} is not XML: {exc}") from exc
        if own_junit is not None:
            files["junit.xml"] = own_junit
    if prep.mode == "record" and prep.spec.record is not None:
        prep.spec.record(path)
    check_runs(prep, result, proc.returncode)
    return result, files


def measure_batch(parts: list[Part], work_dir: Path, no_cache: bool
                  ) -> list[tuple[EvalResult, dict[str, bytes]] | BranchError]:
    """Run ONE promptfoo process over every part; return each part's (result, files) or its error.

    A part whose setup fails (a RAG index that cannot be built) is an error
    and the rest still run. A problem of the process itself (it timed out, wrote
    no results) is every remaining part's error; a timeout is transient.
    The process's timeout is the sum of the items' ``timeout_seconds`` (what they
    would get one after the other).
    """
    out: list[tuple[EvalResult, dict[str, bytes]] | BranchError | None] = [None] * len(parts)
    ready: list[int] = []
    for k, part in enumerate(parts):
        try:
            if part.prep.spec.setup is not None:
                part.prep.spec.setup()
            ready.append(k)
        except (BranchError, SpecError) as exc:
            out[k] = exc if isinstance(exc, BranchError) else BranchError(str(exc))
        except Exception as exc:  # fail closed, this item only
            out[k] = _crash(exc)
    if ready:
        _run_ready([parts[k] for k in ready], ready, out, work_dir, no_cache)
    return [o if o is not None else BranchError("promptfoo produced no result for this item") for o in out]


def _run_ready(parts: list[Part], where: list[int], out: list[Any], work_dir: Path, no_cache: bool) -> None:
    """Run promptfoo over ``parts`` and store each one's outcome at its position ``where[i]`` in ``out``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    specs = [p.prep.spec for p in parts]
    hosts = sorted({h for s in specs for h in s.hosts})
    extra_env: dict[str, str] = {}
    for s in specs:
        extra_env.update(s.env)
    env = {**promptfoo.promptfoo_env(work_dir, hosts), **extra_env}
    timeout = sum(p.prep.thresholds.timeout_seconds for p in parts)
    record = any(p.prep.mode == "record" for p in parts)
    cfg_path = work_dir / "promptfooconfig.json"
    for name in promptfoo.OUTPUTS.values():
        (work_dir / name).unlink(missing_ok=True)
    try:
        # The bundled model server starts once for the shard; it points the local providers at itself.
        with local_server([p for s in specs for p in (s.target, s.grader)], work_dir):
            promptfoo.write_json(cfg_path, build_shard_config(parts))
            proc = run_promptfoo(cfg_path, work_dir, repeat=1, no_cache=no_cache or record, timeout_s=timeout,
                                 env=env)
    except BranchError as exc:
        for k in where:
            out[k] = exc
        return
    if proc.timed_out:
        for k in where:
            out[k] = TransientBranchError(f"the shard's promptfoo timed out after {timeout}s (the sum of its "
                                          "items' timeout_seconds) before this item finished; its process "
                                          "group was killed")
        return
    results_path = work_dir / promptfoo.OUTPUTS["results"]
    try:
        doc = json.loads(results_path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        tail = (proc.stderr_tail.strip().splitlines() or ["(no stderr)"])[-1]
        why = "wrote no results.json" if isinstance(exc, FileNotFoundError) else f"results.json: {exc}"
        for k in where:
            out[k] = BranchError(f"promptfoo exited {proc.returncode}: {why}; last stderr line: {tail}")
        return
    for part, k, pos in zip(parts, range(len(parts)), where, strict=True):
        try:
            out[pos] = _outcome(part, k, doc, work_dir, proc)
        except BranchError as exc:
            out[pos] = exc
        except Exception as exc:  # fail closed, this item only
            out[pos] = _crash(exc)


def _crash(exc: Exception) -> BranchError:
    """Return the error of an item whose setup or split crashed (logged with its traceback)."""
    log.exception("an item of the shard crashed")
    return BranchError(f"eval stage crashed: {type(exc).__name__}: {exc}")
