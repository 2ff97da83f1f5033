"""promptfoo's output files put in test order, so the same eval always writes the same files.

promptci runs promptfoo with ``--no-write`` (steps/promptfoo.py): it keeps no eval in its database,
which nobody reads and which cost ~0.4 s of a 31-test eval. Without the database, promptfoo writes its
rows as they finished. promptfoo 0.123.1, ``dist/src/eval-*.js``: ``Eval.toEvaluateSummary`` lists
``this.results``, which a persisted eval loads back from its database (``loadResults`` ->
``EvalResult.findManyByEvalId``) and an in-memory one (``--no-write``) holds in the order each result
was added. The JUnit XML groups them in that order too. With ``-j 8`` that order changes from run to
run. :func:`put_in_test_order` restores the order the database gave: rows by
``(testIdx, promptIdx)``, JUnit suites and cases by test number (promptfoo names a case
``test N: <description>``, N = testIdx + 1). Only the order changes; a file already in order is not
touched, and a file that does not parse is left for the caller to report (steps/eval_batch.py).
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from steps.atomic import atomic_write

CASE = re.compile(r"test (\d+):")


def put_in_test_order(results: Path, junit: Path) -> None:
    """Rewrite ``results`` (promptfoo's results.json) and ``junit`` (its JUnit XML) in test order, when
    they exist, parse and are not in that order already."""
    _order_results(results)
    _order_junit(junit)


def row_order(row: Any) -> tuple[int, int]:
    """Return where a result row sorts: by test, then by prompt (the order promptfoo's database gave)."""
    if not isinstance(row, dict):
        return sys.maxsize, sys.maxsize
    test, prompt = row.get("testIdx"), row.get("promptIdx")
    return (test if isinstance(test, int) else sys.maxsize, prompt if isinstance(prompt, int) else sys.maxsize)


def _order_results(path: Path) -> None:
    try:
        doc = json.loads(path.read_bytes())
        rows = doc["results"]["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not isinstance(rows, list):
        return
    ordered = sorted(rows, key=row_order)
    if ordered == rows:
        return
    doc["results"]["results"] = ordered
    try:  # as promptfoo writes it (JSON.stringify(doc, null, 2)): UTF-8, no ASCII escapes
        text = json.dumps(doc, indent=2, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: only an escape can say it
        text = json.dumps(doc, indent=2).encode()
    atomic_write(path, text)


def _case_number(case: ET.Element) -> int:
    """Return a ``<testcase>``'s test number (its name's ``test N:``); unnumbered cases sort last."""
    match = CASE.match(case.get("name") or "")
    return int(match.group(1)) if match else sys.maxsize


def _sorted_children(parent: ET.Element, key: Any) -> bool:
    """Sort ``parent``'s children by ``key`` (stable), keeping each position's tail (the indentation);
    return whether the order changed."""
    children = list(parent)
    ordered = sorted(children, key=key)
    if ordered == children:
        return False
    tails = [c.tail for c in children]
    for child in children:
        parent.remove(child)
    for child, tail in zip(ordered, tails, strict=True):
        child.tail = tail
        parent.append(child)
    return True


def _order_junit(path: Path) -> None:
    try:
        root = ET.fromstring(path.read_bytes())
    except (OSError, ET.ParseError):
        return
    suites = list(root)
    if not all(s.tag == "testsuite" and all(c.tag == "testcase" for c in s) for s in suites):
        return  # not the shape promptfoo writes: left as it is
    changed = False
    for suite in suites:
        changed |= _sorted_children(suite, _case_number)
    changed |= _sorted_children(root, lambda s: min((_case_number(c) for c in s), default=sys.maxsize))
    if changed:
        atomic_write(path, '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
