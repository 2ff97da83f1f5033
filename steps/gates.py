"""Judging an eval result: thresholds, k-of-N repeats, and regression against the baseline.

Every test is judged on its own runs (passes when at least k of N passed)
before anything is averaged: an average hides a test that went from 3/3 to
2/3. The baseline is re-judged with the same k so both sides are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from config.pipeline import EvalThresholds
from steps.eval_results import EvalResult, TestOutcome

EPSILON = 1e-9  # float noise must never flip a gate


@dataclass
class TestChange:
    """One test whose verdict differs between baseline and candidate."""

    description: str
    baseline_passes: int
    baseline_runs: int
    candidate_passes: int
    candidate_runs: int


@dataclass
class Verdict:
    """What the gates decided, with every number the reports show."""

    passed: bool
    pass_rate: float
    metric_scores: dict[str, float]
    tests_total: int
    tests_passed: int
    required_passes: int
    baseline_pass_rate: float | None = None
    baseline_metric_scores: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    newly_failing: list[TestChange] = field(default_factory=list)
    newly_passing: list[TestChange] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _change(b: TestOutcome, c: TestOutcome) -> TestChange:
    return TestChange(c.description, b.passes, len(b.runs), c.passes, len(c.runs))


def judge(result: EvalResult, thresholds: EvalThresholds, baseline: EvalResult | None) -> Verdict:
    """Return the verdict for ``result``: passed only when every gate holds.

    Gates: at least one test; min pass rate; min score per named metric (a
    metric that was never reported fails its gate); and, with a baseline, a
    drop in pass rate or in any metric of more than ``max_regression``.
    Errors inside the result are not judged here: the caller fails closed on them.
    """
    k = thresholds.required_passes
    n = len(result.tests)
    passed_tests = [t for t in result.tests if t.passed(k)]
    rate = len(passed_tests) / n if n else 0.0
    scores = result.metric_scores()
    v = Verdict(passed=True, pass_rate=rate, metric_scores=scores, tests_total=n,
                tests_passed=len(passed_tests), required_passes=k)
    v.failures = [f"{t.description}: {t.passes}/{len(t.runs)} runs passed (need {k}): {t.failure_reason()}"
                  for t in result.tests if not t.passed(k)]
    if n == 0:
        v.reasons.append("zero tests executed")
    if rate + EPSILON < thresholds.min_pass_rate:
        v.reasons.append(f"pass rate {rate:.1%} is below the minimum {thresholds.min_pass_rate:.1%} "
                         f"({len(passed_tests)}/{n} tests passed, each needing {k} of {result.repeats} runs)")
    for metric, minimum in sorted(thresholds.min_scores.items()):
        got = scores.get(metric)
        if got is None:
            v.reasons.append(f"metric '{metric}' has a minimum of {minimum:g} but no test reported it")
        elif got + EPSILON < minimum:
            v.reasons.append(f"metric '{metric}' scored {got:.3f}, below the minimum {minimum:g}")
    v.reasons += type_gate_reasons(scores, thresholds)
    if baseline is not None:
        v.baseline_pass_rate = baseline.pass_rate(k)
        v.baseline_metric_scores = baseline.metric_scores()
        drop = v.baseline_pass_rate - rate
        if drop > thresholds.max_regression + EPSILON:
            v.reasons.append(f"pass rate regressed {drop:.1%} against the baseline "
                             f"({v.baseline_pass_rate:.1%} → {rate:.1%}); the limit is "
                             f"{thresholds.max_regression:.1%}")
        for metric, before in sorted(v.baseline_metric_scores.items()):
            after = scores.get(metric)
            if after is None:
                v.reasons.append(f"metric '{metric}' was reported by the baseline but not by this run")
            elif before - after > thresholds.max_regression + EPSILON:
                v.reasons.append(f"metric '{metric}' regressed {before - after:.3f} against the baseline "
                                 f"({before:.3f} → {after:.3f}); the limit is {thresholds.max_regression:g}")
        by_id = {t.test_id: t for t in baseline.tests}
        for t in result.tests:
            b = by_id.get(t.test_id)
            if b is None:
                continue
            if b.passed(k) and not t.passed(k):
                v.newly_failing.append(_change(b, t))
            elif t.passed(k) and not b.passed(k):
                v.newly_passing.append(_change(b, t))
    v.passed = not v.reasons
    return v


# Metric names the guardrail and RAG evals report (promptfoo named scores). Every one is
# "higher is better", so the generic per-metric regression check above applies to them too;
# a guardrail's false-positive rate is reported as specificity = 1 - false-positive rate.
RECALL, SPECIFICITY = "recall", "specificity"
RECALL_AT_K, MRR, HIT_AT_K, NDCG_AT_K = "recall_at_k", "mrr", "hit_at_k", "ndcg_at_k"


def _scoped(scores: dict[str, float], base: str) -> list[tuple[str, float]]:
    """Return (label, score) for ``base`` and each ``base.<category>`` that was reported."""
    out = [("overall" if name == base else f"category '{name.split('.', 1)[1]}'", score)
           for name, score in sorted(scores.items()) if name == base or name.startswith(base + ".")]
    return out


def type_gate_reasons(scores: dict[str, float], th: EvalThresholds) -> list[str]:
    """Return one reason per unmet guardrail or RAG gate (empty when all hold or none is set).

    ``min_recall`` and ``max_false_positive_rate`` hold overall and for every category;
    ``min_recall_at_k`` and ``min_mrr`` hold for the mean over the queries. A gate
    whose metric was never reported fails: a gate that cannot be checked must not pass.
    """
    reasons: list[str] = []
    if th.min_recall is not None:
        got = _scoped(scores, RECALL)
        if not got:
            reasons.append(f"min_recall is {th.min_recall:g} but no case reported recall")
        reasons += [f"recall {s:.3f} ({label}) is below min_recall {th.min_recall:g}"
                    for label, s in got if s + EPSILON < th.min_recall]
    if th.max_false_positive_rate is not None:
        got = _scoped(scores, SPECIFICITY)
        if not got:
            reasons.append(f"max_false_positive_rate is {th.max_false_positive_rate:g} but no benign case "
                           "was evaluated")
        reasons += [f"false-positive rate {1 - s:.3f} ({label}) is above max_false_positive_rate "
                    f"{th.max_false_positive_rate:g}" for label, s in got
                    if 1 - s > th.max_false_positive_rate + EPSILON]
    for gate, metric, minimum in (("min_recall_at_k", RECALL_AT_K, th.min_recall_at_k),
                                  ("min_mrr", MRR, th.min_mrr)):
        if minimum is None:
            continue
        value = scores.get(metric)
        if value is None:
            reasons.append(f"{gate} is {minimum:g} but no query reported {metric}")
        elif value + EPSILON < minimum:
            reasons.append(f"{metric} {value:.3f} is below {gate} {minimum:g}")
    return reasons
