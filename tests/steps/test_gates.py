"""Gates: thresholds, per-metric minimums, k-of-N per test, regression against a baseline."""

from __future__ import annotations

from config.pipeline import EvalThresholds
from steps.eval_results import EvalResult, RunOutcome, TestOutcome
from steps.gates import judge


def _result(runs: dict[str, list[bool]], scores: dict[str, float] | None = None) -> EvalResult:
    tests = [TestOutcome(index=i, test_id=name, description=name, runs=[
        RunOutcome(repeat=r, passed=p, score=float(p), named_scores=scores or {}) for r, p in enumerate(rs)])
        for i, (name, rs) in enumerate(runs.items())]
    return EvalResult(artifact_id="a", dataset="d", content_hash="h", model="m", provider="p",
                      promptfoo_version="v", repeats=max(len(r) for r in runs.values()) if runs else 1,
                      tests=tests)


def test_pass_rate_at_the_threshold_passes_and_below_fails():
    r = _result({"a": [True], "b": [True], "c": [True], "d": [False]})
    assert judge(r, EvalThresholds(min_pass_rate=0.75), None).passed
    v = judge(r, EvalThresholds(min_pass_rate=0.8), None)
    assert not v.passed and "pass rate 75.0% is below the minimum 80.0%" in v.reasons[0]
    assert v.failures and v.failures[0].startswith("d: 0/1 runs passed")


def test_min_score_per_metric_and_a_metric_never_reported():
    r = _result({"a": [True]}, scores={"tone": 0.6})
    v = judge(r, EvalThresholds(min_pass_rate=0, min_scores={"tone": 0.7, "safety": 0.5}), None)
    assert not v.passed
    assert any("metric 'tone' scored 0.600, below the minimum 0.7" in x for x in v.reasons)
    assert any("metric 'safety' has a minimum of 0.5 but no test reported it" in x for x in v.reasons)


def test_k_of_n_is_judged_per_test_not_on_averages():
    # 2/3 on one test: an average of 8/9 runs would look fine; per test it fails with k=3.
    r = _result({"a": [True] * 3, "b": [True, False, True], "c": [True] * 3})
    strict = judge(r, EvalThresholds(min_pass_rate=1.0, repeats=3, k_of_n=3), None)
    assert not strict.passed and strict.tests_passed == 2
    assert judge(r, EvalThresholds(min_pass_rate=1.0, repeats=3, k_of_n=2), None).passed


def test_regression_beyond_the_limit_fails_and_lists_newly_failing_tests():
    base = _result({"a": [True] * 3, "b": [True] * 3, "c": [True] * 3})
    cand = _result({"a": [True] * 3, "b": [True, True, False], "c": [True] * 3})
    th = EvalThresholds(min_pass_rate=0.5, max_regression=0.2, repeats=3)
    v = judge(cand, th, base)
    assert not v.passed and v.baseline_pass_rate == 1.0
    assert "regressed 33.3% against the baseline" in v.reasons[0]
    assert [(c.description, c.baseline_passes, c.candidate_passes) for c in v.newly_failing] == [("b", 3, 2)]
    assert judge(cand, th.model_copy(update={"max_regression": 0.4}), base).passed


def test_metric_regression_and_no_baseline_means_absolute_only():
    base = _result({"a": [True]}, scores={"tone": 0.9})
    cand = _result({"a": [True]}, scores={"tone": 0.7})
    th = EvalThresholds(min_pass_rate=1.0, max_regression=0.1)
    v = judge(cand, th, base)
    assert not v.passed and "metric 'tone' regressed 0.200" in v.reasons[0]
    assert judge(cand, th, None).passed


def test_zero_tests_never_pass():
    v = judge(_result({}), EvalThresholds(min_pass_rate=0.0), None)
    assert not v.passed and "zero tests executed" in v.reasons
