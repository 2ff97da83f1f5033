"""Reports: the per-branch diff (baseline vs candidate) in Markdown and HTML, and the run summary.

The HTML side-by-side output diff is difflib.HtmlDiff; everything user
controlled is escaped (``html.escape`` for HTML; ``|``, backticks and newlines
for Markdown tables), so a prompt's text can never inject markup.
"""

from __future__ import annotations

import difflib
import html

from steps.contracts import BranchResult
from steps.eval_results import EvalResult, TestOutcome
from steps.gates import HIT_AT_K, MRR, NDCG_AT_K, RECALL, RECALL_AT_K, SPECIFICITY, Verdict
from steps.stores.store import ArtifactStore

MAX_OUTPUT = 600


class _PageDiff(difflib.HtmlDiff):
    """difflib.HtmlDiff whose tables are numbered per page, so the same diff gives the same bytes.

    HtmlDiff numbers its tables' anchors (``difflib_chg_to<n>__top``) with a counter shared by the
    whole process (``HtmlDiff._default_prefix``), so an item's page depended on how many diffs the
    process had made before it, and on the order items were written in (they are written side by
    side on S3, steps.stores.store.each_item); that counter's ``+=`` is not atomic across threads either.
    """

    def __init__(self, wrapcolumn: int):
        super().__init__(wrapcolumn=wrapcolumn)
        self._tables = 0

    def _make_prefix(self) -> None:
        """Name this table's anchors ``from<n>_``/``to<n>_``, n counting the page's own tables (what
        difflib's own method does with its process-wide counter)."""
        self._prefix = [f"from{self._tables}_", f"to{self._tables}_"]
        self._tables += 1


def _md(text: str, limit: int = MAX_OUTPUT) -> str:
    text = text if len(text) <= limit else text[:limit] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("\r", "") \
        .replace("\n", "<br>").replace("<", "&lt;").replace(">", "&gt;").replace("&lt;br&gt;", "<br>")


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


def _delta(before: float | None, after: float | None, pct: bool = True) -> str:
    if before is None or after is None:
        return "—"
    d = after - before
    return f"{d:+.1%}" if pct else f"{d:+.3f}"


def _first_output(t: TestOutcome | None) -> str:
    return t.runs[0].output if t and t.runs else ""


def _pairs(candidate: EvalResult, baseline: EvalResult | None
           ) -> list[tuple[TestOutcome, TestOutcome | None]]:
    by_id = {t.test_id: t for t in baseline.tests} if baseline else {}
    return [(t, by_id.get(t.test_id)) for t in candidate.tests]


def diff_markdown(candidate: EvalResult, baseline: EvalResult | None, verdict: Verdict, status: str) -> str:
    """Return the Markdown diff report: verdict, pass rate and metric deltas, changed tests, outputs."""
    k = verdict.required_passes
    lines = [f"# {candidate.artifact_id} / {candidate.dataset}: {status.upper()}", "",
             f"Model `{candidate.model}` via {candidate.provider}, {candidate.repeats} run(s) per test, "
             f"a test passes with {k} passing run(s). Baseline: "
             + ("none (judged on absolute thresholds only)" if baseline is None
                else f"`{baseline.content_hash[:19]}`") + ".", ""]
    if verdict.reasons:
        lines += ["## Why it did not pass", "", *(f"- {_md(r)}" for r in verdict.reasons), ""]
    lines += ["## Scores", "", "| | baseline | candidate | delta |", "|---|---|---|---|",
              f"| pass rate | {_pct(verdict.baseline_pass_rate)} | {_pct(verdict.pass_rate)} | "
              f"{_delta(verdict.baseline_pass_rate, verdict.pass_rate)} |"]
    for m in sorted(set(verdict.metric_scores) | set(verdict.baseline_metric_scores)):
        b, c = verdict.baseline_metric_scores.get(m), verdict.metric_scores.get(m)
        lines.append(f"| metric `{_md(m)}` | {'—' if b is None else f'{b:.3f}'} | "
                     f"{'—' if c is None else f'{c:.3f}'} | {_delta(b, c, pct=False)} |")
    lines += ["", f"Tokens: {candidate.token_usage.total} (prompt {candidate.token_usage.prompt}, completion "
              f"{candidate.token_usage.completion}); cost ${candidate.cost:.4f}; "
              f"average latency {candidate.latency_ms_avg:.0f} ms.", "", _answers_line(
                  candidate.authored_runs, sum(len(t.runs) for t in candidate.tests)), ""]
    for title, changes in (("Newly failing", verdict.newly_failing),
                           ("Newly passing", verdict.newly_passing)):
        if changes:
            lines += [f"## {title}", ""]
            lines += [f"- {_md(c.description)}: {c.baseline_passes}/{c.baseline_runs} → "
                      f"{c.candidate_passes}/{c.candidate_runs} runs passed" for c in changes]
            lines.append("")
    if verdict.failures:
        lines += ["## Failing tests", "", *(f"- {_md(f)}" for f in verdict.failures), ""]
    changed = [(cand, base) for cand, base in _pairs(candidate, baseline)
               if base is None or _first_output(base) != _first_output(cand)]
    if changed:
        lines += ["## Outputs", "", "| test | baseline output | candidate output |", "|---|---|---|"]
        for cand, base in changed:
            mark = "✅" if cand.passed(k) else "❌"
            lines.append(f"| {mark} {_md(cand.description, 120)} | {_md(_first_output(base)) if base else '—'} | "
                         f"{_md(_first_output(cand))} |")
        lines.append("")
    return "\n".join(lines)


def diff_html(candidate: EvalResult, baseline: EvalResult | None, verdict: Verdict, status: str) -> str:
    """Return the HTML diff report: the same content, with outputs diffed side by side line by line."""
    esc = html.escape
    k = verdict.required_passes
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(candidate.artifact_id)} / "
             f"{esc(candidate.dataset)}</title><style>body{{font-family:sans-serif}}table{{border-collapse:"
             "collapse}}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
             ".diff_add{background:#cfc}.diff_chg{background:#ffc}.diff_sub{background:#fcc}</style>"
             "</head><body>",
             f"<h1>{esc(candidate.artifact_id)} / {esc(candidate.dataset)}: {esc(status.upper())}</h1>"]
    if verdict.reasons:
        parts.append("<h2>Why it did not pass</h2><ul>"
                     + "".join(f"<li>{esc(r)}</li>" for r in verdict.reasons) + "</ul>")
    rows = [("pass rate", _pct(verdict.baseline_pass_rate), _pct(verdict.pass_rate),
             _delta(verdict.baseline_pass_rate, verdict.pass_rate))]
    for m in sorted(set(verdict.metric_scores) | set(verdict.baseline_metric_scores)):
        b, c = verdict.baseline_metric_scores.get(m), verdict.metric_scores.get(m)
        rows.append((f"metric {m}", "—" if b is None else f"{b:.3f}", "—" if c is None else f"{c:.3f}",
                     _delta(b, c, pct=False)))
    parts.append("<h2>Scores</h2><table><tr><th></th><th>baseline</th><th>candidate</th><th>delta</th></tr>"
                 + "".join("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in r) + "</tr>" for r in rows)
                 + "</table>")
    for title, changes in (("Newly failing", verdict.newly_failing),
                           ("Newly passing", verdict.newly_passing)):
        if changes:
            parts.append(f"<h2>{title}</h2><ul>" + "".join(
                f"<li>{esc(c.description)}: {c.baseline_passes}/{c.baseline_runs} → "
                f"{c.candidate_passes}/{c.candidate_runs}</li>" for c in changes) + "</ul>")
    parts.append("<h2>Outputs</h2>")
    differ = _PageDiff(wrapcolumn=70)
    for cand, base in _pairs(candidate, baseline):
        verdict_txt = "passed" if cand.passed(k) else f"FAILED: {cand.failure_reason()}"
        parts.append(f"<h3>{esc(cand.description)} ({cand.passes}/{len(cand.runs)} runs passed; "
                     f"{esc(verdict_txt)})</h3>")
        before = _first_output(base).splitlines() if base else []
        parts.append(differ.make_table(before, _first_output(cand).splitlines(),
                                       "baseline" if base else "no baseline", "candidate"))
    parts.append("</body></html>")
    return "\n".join(parts)


def _answers_line(authored: int, total: int) -> str:
    """Return the sentence that says how many results were judged on hand-written answers."""
    if not authored:
        return f"Answers: all {total} result(s) came from a model (live, or recorded from one)."
    return (f"Answers: {authored} of {total} result(s) came from authored (hand-written) recordings, "
            "not from a model.")


def type_metrics(r: BranchResult) -> str:
    """Return the headline metrics of a branch's type, for the summary (``—`` when it has none).

    Guardrails: recall and false-positive rate overall, then per category;
    RAG: recall@k, MRR, nDCG@k and hit@k; prompts and model-configs: their named metrics.
    """
    s = r.metric_scores
    if r.artifact_type == "guardrail-policy":
        parts = [f"recall {s[k]:.2f}" if k == RECALL else f"recall[{k.split('.', 1)[1]}] {s[k]:.2f}"
                 for k in sorted(s) if k == RECALL or k.startswith(RECALL + ".")]
        parts += [f"FPR {1 - s[k]:.2f}" if k == SPECIFICITY else f"FPR[{k.split('.', 1)[1]}] {1 - s[k]:.2f}"
                  for k in sorted(s) if k == SPECIFICITY or k.startswith(SPECIFICITY + ".")]
    elif r.artifact_type == "rag-config":
        names = {RECALL_AT_K: "recall@k", MRR: "MRR", NDCG_AT_K: "nDCG@k", HIT_AT_K: "hit@k"}
        parts = [f"{label} {s[k]:.2f}" for k, label in names.items() if k in s]
    else:
        parts = [f"{k} {v:.2f}" for k, v in sorted(s.items())]
    return ", ".join(parts) or "—"


def summary_markdown(results: list[BranchResult]) -> str:
    """Return the run summary across branches, written to be posted as a PR comment."""
    blocked = [r for r in results if r.status != "passed"]
    head = ("✅ All eval branches passed." if results and not blocked else
            f"❌ {len(blocked)} of {len(results)} eval branch(es) did not pass; promotion is blocked."
            if results else "❌ No eval branch reported a result; promotion is blocked.")
    icon = {"passed": "✅", "failed": "❌", "error": "⚠️"}
    lines = ["## promptci eval", "", head, "",
             "| | artifact | type | dataset | pass rate | baseline | tests | metrics | cached | authored answers |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r.status == "passed", r.artifact_id, r.dataset)):
        lines.append(f"| {icon[r.status]} {r.status} | `{_md(r.artifact_id)}` | {r.artifact_type} | "
                     f"{_md(r.dataset)} | {_pct(r.pass_rate)} | {_pct(r.baseline_pass_rate)} | "
                     f"{r.tests_passed}/{r.tests_total} | {_md(type_metrics(r), 300)} | "
                     f"{'yes' if r.cached else 'no'} | {r.authored_runs}/{r.runs_total} |")
    lines += ["", _answers_line(sum(r.authored_runs for r in results), sum(r.runs_total for r in results))]
    for r in blocked:
        lines += ["", f"**{_md(r.artifact_id)} / {_md(r.dataset)}** ({r.status})"]
        lines += [f"- {_md(reason, 400)}" for reason in r.reasons or ["no reason recorded"]]
        diff = next((k for k in r.report_keys if k.endswith("diff.md")), None)
        if diff:
            lines.append(f"- diff report: `{diff}`")
    return "\n".join(lines) + "\n"


def write_run_summary(results: list[BranchResult], store: ArtifactStore, run_id: str) -> str:
    """Write the summary to ``runs/{run_id}/summary.md`` in ``store`` and return its Markdown."""
    text = summary_markdown(results)
    store.put_bytes(f"runs/{run_id}/summary.md", text.encode(), "text/markdown")
    return text
