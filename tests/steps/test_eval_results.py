"""Parsing promptfoo's results.json into the typed result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steps.eval_results import ResultsError, load_result, parse_results

META = dict(artifact_id="a", dataset="d", content_hash="h", model="m", provider="p",
            promptfoo_version="0.121.20", repeats=2)


def _row(test_idx: int, index: int, success: bool, output: str, **kw):
    row = {"testIdx": test_idx, "promptIdx": 0, "success": success, "score": 1.0 if success else 0.0,
           "failureReason": 0 if success else 1, "latencyMs": 10, "cost": 0.001,
           "namedScores": {"acc": 1.0 if success else 0.0},
           "response": {"output": output, "tokenUsage": {"prompt": 5, "completion": 2, "total": 7}},
           "gradingResult": {"pass": success, "reason": "ok" if success else "Expected output to contain x"},
           "testCase": {"description": f"t{index}", "metadata": {"promptci_index": index,
                                                                 "promptci_vars": {"n": index}}}}
    row.update(kw)
    return row


def _write(tmp_path: Path, rows) -> Path:
    p = tmp_path / "results.json"
    p.write_text(json.dumps({"results": {"version": 3, "results": rows}}))
    return p


def test_rows_are_sorted_by_test_idx_and_grouped_per_test_with_repeats(tmp_path):
    rows = [_row(3, 1, False, "b2"), _row(0, 0, True, "a1"), _row(2, 1, True, "b1"), _row(1, 0, True, "a2")]
    r = parse_results(_write(tmp_path, rows), **META)
    assert [t.description for t in r.tests] == ["t0", "t1"]
    assert [[x.output for x in t.runs] for t in r.tests] == [["a1", "a2"], ["b1", "b2"]]
    assert r.tests[1].passes == 1 and r.tests[1].failure_reason() == "Expected output to contain x"
    assert r.token_usage.total == 28 and r.cost == pytest.approx(0.004)
    assert r.metric_scores() == {"acc": 0.75}
    assert r.pass_rate(2) == 0.5 and r.pass_rate(1) == 1.0
    assert r.errors == []


def test_provider_errors_are_errors_not_quality_failures(tmp_path):
    rows = [_row(0, 0, False, "", failureReason=2, response={"error": "boom"})]
    r = parse_results(_write(tmp_path, rows), **META)
    assert r.errors == ["test 't0' run 1: boom"]


@pytest.mark.parametrize("content, message", [
    (None, "promptfoo wrote no results.json"),
    ("not json", "results.json is not JSON"),
    ('{"results": {}}', "no results.results list"),
    ('{"results": {"results": [{"testIdx": 0, "testCase": {}}]}}', "lacks promptci_index"),
])
def test_unusable_output_raises(tmp_path, content, message):
    p = tmp_path / "results.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises(ResultsError, match=message):
        parse_results(p, **META)


def test_result_round_trips_and_a_bad_baseline_is_reported(tmp_path):
    r = parse_results(_write(tmp_path, [_row(0, 0, True, "x")]), **META)
    assert load_result(r.model_dump_json().encode(), "x") == r
    with pytest.raises(ResultsError, match="baseline for prod is not a valid eval result: dataset: Field required"):
        load_result(b'{"artifact_id": "a"}', "baseline for prod")
