"""Splitting a shard's promptfoo outputs back per item, as if each item had run alone.

promptfoo writes one ``results.json``, one JUnit XML and one HTML report for the
whole shard (steps/eval_batch.py runs it). Each item gets:

* ``results.json``: promptfoo's document with ``results.results`` and
  ``results.prompts`` filtered to the item's rows and column, ``testIdx``
  renumbered from 0 and the provider label restored (as the item alone would
  have them); ``stats`` recomputed from the item's column metrics;
  ``config.providers``/``config.tests`` filtered to the item;
* ``junit.xml``: the item's ``<testsuite>`` (promptfoo writes one per provider
  column), renamed to the item's own label;
* ``report.html``: a short page that points at promptfoo's HTML report of the
  whole shard, stored ONCE per shard (``shard_report_key``). That report cannot
  be split (its table is rendered by promptfoo's viewer), and its size grows with
  items × tests: a copy per item made a shard of 100 items write ~1 GB.

Each output is parsed once per shard and indexed by item, so splitting is linear
in the shard's size; the shard's parsed documents are never modified.
"""

from __future__ import annotations

import copy
import hashlib
import html
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.eval_results import ResultsError
from steps.eval_spec import Prepared
from steps.promptfoo_order import row_order


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


@dataclass
class ShardDoc:
    """promptfoo's results document of a shard, with its rows, config tests and columns indexed by item.

    Indexed once, so splitting N items reads each row once instead of N times.
    Nothing in ``doc`` is ever modified: each item's document is built from
    new containers around the shared (read-only) values.
    """

    doc: dict[str, Any]
    rows: dict[Any, list[dict[str, Any]]]  # result rows by promptci_item
    tests: dict[Any, list[dict[str, Any]]]  # config tests by promptci_item
    prompts: dict[Any, list[dict[str, Any]]]  # result columns by provider label


def _item_of(case: Any) -> Any:
    """Return the ``promptci_item`` a test case (a config test, or a row's copy of it) carries, else None."""
    meta = case.get("metadata") if isinstance(case, dict) else None
    return meta.get("promptci_item") if isinstance(meta, dict) else None


def index_doc(doc: dict[str, Any]) -> ShardDoc:
    """Return ``doc`` indexed by item; ResultsError when it is not promptfoo's results shape."""
    results = doc.get("results")
    rows = results.get("results") if isinstance(results, dict) else None
    if not isinstance(rows, list):
        raise ResultsError("results.json has no results.results list (not a promptfoo v3 results file)")
    by_item: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        if isinstance(r, dict):
            by_item.setdefault(_item_of(r.get("testCase")), []).append(r)
    config = doc.get("config")
    tests: dict[Any, list[dict[str, Any]]] = {}
    for t in (config.get("tests") or []) if isinstance(config, dict) else []:
        if isinstance(t, dict):
            tests.setdefault(_item_of(t), []).append(t)
    prompts: dict[Any, list[dict[str, Any]]] = {}
    for c in (results.get("prompts") or []) if isinstance(results, dict) else []:
        if isinstance(c, dict):
            prompts.setdefault(c.get("provider"), []).append(c)
    return ShardDoc(doc, by_item, tests, prompts)


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    """Return a copy of ``d`` without ``key`` (order kept)."""
    return {k: v for k, v in d.items() if k != key}


def _own_test_case(case: dict[str, Any], *, merged: bool) -> dict[str, Any]:
    """Return a test case as the item alone has it: no filter, no item number, no per-test repeat.

    ``merged``: a result row's copy, where promptfoo has merged ``defaultTest``'s
    grader into ``options`` (the item's own grader is that); a config test has
    no ``options`` when the item runs alone. ``case`` itself is not modified.
    """
    case = _without(case, "providers")
    if isinstance(case.get("metadata"), dict):
        case["metadata"] = _without(case["metadata"], "promptci_item")
    if not merged:
        case.pop("options", None)
    elif isinstance(case.get("options"), dict):
        case["options"] = _without(case["options"], "repeat")
    return case


def _own_row(r: dict[str, Any], offset: int, column: int, part: Part) -> dict[str, Any]:
    """Return a result row of the item as the item alone has it (``r`` itself is not modified)."""
    r = dict(r)
    r["testIdx"] = r.get("testIdx", 0) - offset
    r["promptIdx"] = r.get("promptIdx", 0) - column
    if isinstance(r.get("provider"), dict):
        r["provider"] = {**r["provider"], "label": part.own_label}
    r["testCase"] = _own_test_case(r.get("testCase") or {}, merged=True)
    if isinstance(r.get("metadata"), dict):
        r["metadata"] = _without(r["metadata"], "promptci_item")
    return r


def split_results(shard: ShardDoc, k: int, part: Part) -> dict[str, Any]:
    """Return promptfoo's results document reduced to the ``k``-th item, as if it had run alone.

    The returned document shares the values it does not change with ``shard.doc``
    (read-only): serialise it, never modify it.
    """
    doc = shard.doc
    rows = sorted(shard.rows.get(k, []), key=row_order)
    offset = min((r.get("testIdx", 0) for r in rows), default=0)
    column = min((r.get("promptIdx", 0) for r in rows), default=0)
    out = {key: v for key, v in doc.items() if key not in ("results", "config")}
    results = doc.get("results") or {}
    prompts = [{**p, "provider": part.own_label} for p in shard.prompts.get(part.label, [])]
    metrics = prompts[0].get("metrics", {}) if prompts else {}
    stats = {**(results.get("stats") or {}),
             "successes": metrics.get("testPassCount", 0), "failures": metrics.get("testFailCount", 0),
             "errors": metrics.get("testErrorCount", 0), "tokenUsage": metrics.get("tokenUsage", {})}
    out["results"] = {**{key: v for key, v in results.items() if key not in ("prompts", "results", "stats")},
                      "prompts": prompts, "results": [_own_row(r, offset, column, part) for r in rows],
                      "stats": stats}
    config = doc.get("config") or {}
    if config:
        config = dict(config)
        config["providers"] = [{**p, "label": part.own_label} for p in config.get("providers") or []
                               if isinstance(p, dict) and p.get("label") == part.label]
        tests = shard.tests.get(k, [])
        config["tests"] = [_own_test_case(t, merged=False) for t in tests]
        config["description"] = f"{part.prep.item.artifact_id} / {part.prep.item.dataset}"
        # Alone, the item's grader is the default test's: promptfoo's echo of it is on the item's tests.
        grader = ((tests[0].get("options") or {}).get("provider") if tests else None) or part.prep.spec.grader
        default: dict[str, Any] = config["defaultTest"] if isinstance(config.get("defaultTest"), dict) else {}
        config["defaultTest"] = {**default, "options": {**(default.get("options") or {}), "provider": grader}}
        out["config"] = config
    if isinstance(out.get("runtimeOptions"), dict):  # the shard passes repeats per test
        out["runtimeOptions"] = {**out["runtimeOptions"], "repeat": part.prep.thresholds.repeats}
    return out


def split_junit(root: ET.Element, part: Part) -> bytes | None:
    """Return promptfoo's JUnit XML (parsed once per shard: ``root``) reduced to the item's ``<testsuite>``,
    named as the item alone names it.

    Returns None when the item has no suite (promptfoo wrote none for it). ``root`` is not modified.
    """
    prefix = f"[{part.label}] "
    own_root = ET.Element(root.tag, dict(root.attrib))
    own_root.text = root.text
    suites = []
    for child in root:
        if child.tag != "testsuite":
            own_root.append(copy.deepcopy(child))
        elif (child.get("name") or "").startswith(prefix):
            suites.append(copy.deepcopy(child))
            own_root.append(suites[-1])
    if not suites:
        return None
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
        own_root.set(attr, str(sum(int(s.get(attr) or 0) for s in suites)))
    own_root.set("time", f"{sum(float(s.get('time') or 0) for s in suites):.3f}")
    ET.indent(own_root, space="  ")  # as promptfoo lays it out
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(own_root, encoding="unicode", short_empty_elements=False) + "\n").encode()


def shard_report_key(run_id: str, shard_index: int, report: bytes) -> str:
    """Return the store key of a shard's promptfoo HTML report: one per shard and attempt.

    The digest of the report tells attempts apart: a retried shard measures only
    the items left, and must not replace the report the earlier items point at.
    """
    return f"runs/{run_id}/shards/{shard_index}/report-{hashlib.sha256(report).hexdigest()[:12]}.html"


def report_stub(shard_key: str, part: Part, items: int) -> bytes:
    """Return an item's ``report.html``: a page that links to its shard's promptfoo report.

    The link is relative to ``runs/{run}/{artifact}/{dataset}/`` and names the run,
    so it still leads to the report that measured the item when a cache hit copies
    the page into a later run's item.
    """
    rel = "../../../" + shard_key.removeprefix("runs/")
    label, own = html.escape(part.label), html.escape(f"{part.prep.item.artifact_id} / {part.prep.item.dataset}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{own}: promptfoo report</title>"
            f"<meta http-equiv='refresh' content='0; url={html.escape(rel)}'></head><body>"
            f"<p>{own} was measured in one promptfoo run with {items} item(s). promptfoo's HTML report of "
            f"that run is <a href='{html.escape(rel)}'>{html.escape(shard_key)}</a> in the artifact store; "
            f"this item's column there is <code>{label}</code>. This item's own diff report is "
            f"<a href='diff.html'>diff.html</a>.</p></body></html>\n").encode()
