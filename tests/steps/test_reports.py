"""Diff reports and the run summary (PR comment)."""

from __future__ import annotations

from config.pipeline import EvalThresholds
from steps.contracts import BranchResult
from steps.eval_results import EvalResult, RunOutcome, TestOutcome
from steps.gates import judge
from steps.reports import diff_html, diff_markdown, write_run_summary
from steps.stores.store import LocalStore


def _result(outputs: dict[str, tuple[bool, str]]) -> EvalResult:
    tests = [TestOutcome(index=i, test_id=name, description=name,
                         runs=[RunOutcome(repeat=0, passed=ok, score=float(ok), output=out,
                                          reason="" if ok else "Expected output to contain 'x'")])
             for i, (name, (ok, out)) in enumerate(outputs.items())]
    return EvalResult(artifact_id="greeter", dataset="golden", content_hash="sha256:" + "0" * 64, model="m",
                      provider="p", promptfoo_version="v", repeats=1, tests=tests)


BASE = _result({"a": (True, "Hello Ada"), "b": (True, "Hello Bob")})
CAND = _result({"a": (True, "Hello Ada"), "b": (False, "Go away | <script>alert(1)</script>\nbye")})


def test_markdown_diff_shows_deltas_newly_failing_tests_and_outputs_side_by_side():
    v = judge(CAND, EvalThresholds(min_pass_rate=1.0, max_regression=0.0), BASE)
    md = diff_markdown(CAND, BASE, v, "failed")
    assert md.startswith("# greeter / golden: FAILED")
    assert "| pass rate | 100.0% | 50.0% | -50.0% |" in md
    assert "## Newly failing\n\n- b: 1/1 → 0/1 runs passed" in md
    # user text cannot break the table or inject HTML
    assert "| ❌ b | Hello Bob | Go away \\| &lt;script&gt;alert(1)&lt;/script&gt;<br>bye |" in md
    assert "Hello Ada |" not in md.split("## Outputs")[1]  # unchanged outputs are not repeated


def test_html_diff_escapes_outputs():
    v = judge(CAND, EvalThresholds(), BASE)
    page = diff_html(CAND, BASE, v, "failed")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "FAILED: Expected output to contain &#x27;x&#x27;" in page


def test_summary_lists_blocked_branches_first_with_reasons(tmp_path):
    def br(aid: str, status: str, reasons: list[str]) -> BranchResult:
        return BranchResult(artifact_id=aid, artifact_type="prompt", path=f"prompts/{aid}.yaml", dataset="golden",
                            content_hash="h", status=status, pass_rate=1.0 if status == "passed" else 0.5,  # type: ignore[arg-type]
                            tests_total=2, tests_passed=2 if status == "passed" else 1, reasons=reasons,
                            report_keys=[f"runs/r/{aid}/golden/diff.md"])
    store = LocalStore(tmp_path)
    text = write_run_summary([br("ok", "passed", []), br("bad", "failed", ["pass rate 50.0% is below"]),
                              br("boom", "error", ["promptfoo timed out after 3s"])], store, "r")
    assert (tmp_path / "runs" / "r" / "summary.md").read_text() == text
    assert "❌ 2 of 3 eval branch(es) did not pass; promotion is blocked." in text
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert [r.split("`")[1] for r in rows] == ["bad", "boom", "ok"]
    assert "- promptfoo timed out after 3s" in text and "diff report: `runs/r/bad/golden/diff.md`" in text
    assert "promotion is blocked" in write_run_summary([], store, "empty")


def test_summary_shows_each_types_metrics(tmp_path):
    def br(aid: str, atype: str, scores: dict[str, float]) -> BranchResult:
        return BranchResult(artifact_id=aid, artifact_type=atype, path=f"x/{aid}.yaml", dataset="golden",
                            content_hash="sha256:0", status="passed", pass_rate=1.0, metric_scores=scores,
                            tests_total=3, tests_passed=3)

    text = write_run_summary([
        br("g", "guardrail-policy", {"recall": 0.9, "recall.pii": 0.8, "specificity": 0.95}),
        br("k", "rag-config", {"recall_at_k": 0.75, "mrr": 0.5, "ndcg_at_k": 0.6, "hit_at_k": 1.0}),
    ], LocalStore(tmp_path), "r")
    assert "recall 0.90, recall[pii] 0.80, FPR 0.05" in text
    assert "recall@k 0.75, MRR 0.50, nDCG@k 0.60, hit@k 1.00" in text
    assert "| guardrail-policy |" in text and "| rag-config |" in text
