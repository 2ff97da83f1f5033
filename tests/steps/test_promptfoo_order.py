"""steps/promptfoo_order.py: promptfoo's files in test order, whatever order its rows finished in.

promptci runs promptfoo with ``--no-write`` (no eval in its database), and then promptfoo lists its rows as
they finished (``-j 8``). What a user would notice without this: the same eval writing its results and
JUnit report in a different order each run, and an item's ``test N`` names moving between its cases.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from steps.promptfoo_order import put_in_test_order

JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="promptfoo" tests="4">
  <testsuite name="[#1 b/golden] prompt 1" tests="2">
    <testcase classname="[#1 b/golden] prompt 1" name="test 4: b two" time="0.004"></testcase>
    <testcase classname="[#1 b/golden] prompt 1" name="test 3: b one" time="0.005"><failure message="no"/></testcase>
  </testsuite>
  <testsuite name="[#0 a/golden] prompt 1" tests="2">
    <testcase classname="[#0 a/golden] prompt 1" name="test 2: a \u00e9 &amp; two" time="0.003"></testcase>
    <testcase classname="[#0 a/golden] prompt 1" name="test 1: a one" time="0.002"></testcase>
  </testsuite>
</testsuites>
"""


def _row(test: int, prompt: int, text: str) -> dict[str, object]:
    return {"testIdx": test, "promptIdx": prompt, "response": {"output": text}}


def test_rows_and_junit_cases_come_back_in_test_order(tmp_path: Path) -> None:
    results, junit = tmp_path / "results.json", tmp_path / "results.junit.xml"
    finished = [_row(3, 1, "d"), _row(0, 0, "a \u2028 \U0001f600"), _row(2, 1, "c"), _row(1, 0, "b")]
    results.write_text(json.dumps({"evalId": "e", "results": {"version": 3, "results": finished}}, indent=2))
    junit.write_text(JUNIT)

    put_in_test_order(results, junit)

    doc = json.loads(results.read_text())
    assert [r["response"]["output"] for r in doc["results"]["results"]] == ["a \u2028 \U0001f600", "b", "c", "d"]
    assert doc["evalId"] == "e" and results.read_text().startswith('{\n  "evalId": "e"')  # promptfoo's layout
    root = ET.fromstring(junit.read_bytes())
    assert [s.get("name") for s in root] == ["[#0 a/golden] prompt 1", "[#1 b/golden] prompt 1"]
    assert [c.get("name") for s in root for c in s] == ["test 1: a one", "test 2: a \u00e9 & two",
                                                        "test 3: b one", "test 4: b two"]
    assert root[1][0].find("failure") is not None  # each case keeps what it holds
    assert junit.read_text().splitlines()[2] == '  <testsuite name="[#0 a/golden] prompt 1" tests="2">'


def test_files_already_in_order_or_not_promptfoos_are_left_as_they_are(tmp_path: Path) -> None:
    results, junit = tmp_path / "results.json", tmp_path / "results.junit.xml"
    in_order = json.dumps({"results": {"results": [_row(0, 0, "a"), _row(1, 0, "b")]}})  # not promptfoo's indent
    results.write_text(in_order)
    junit.write_text("<testsuites><testsuite><testcase name='test 2: x'/><property/></testsuite></testsuites>")
    put_in_test_order(results, junit)
    assert results.read_text() == in_order
    assert junit.read_text().startswith("<testsuites><testsuite><testcase name='test 2: x'/>")

    for broken in ("{not json", json.dumps({"results": {"results": "not a list"}})):
        results.write_text(broken)
        junit.write_text("<testsuites><unclosed>")
        put_in_test_order(results, junit)  # the caller reports a broken file; this leaves it alone
        assert results.read_text() == broken and junit.read_text() == "<testsuites><unclosed>"
    put_in_test_order(tmp_path / "missing.json", tmp_path / "missing.xml")
