"""One dashboard for both paths.

The Argo side is derived here from the compiled templates by the rules of Argo's exporter
(argo-workflows v4.1.2, cited at each rule), independently of ``workflows/runner/metrics.py``. The
local side is what the real scheduler publishes for the same templates; the pods are scripted (each
attempt's phase and outputs chosen by the test) so a run takes a second, retries and failures included.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config.artifacts import ArtifactType
from steps import metric_names
from tests.workflows.test_safe_path import policy_configmaps
from workflows.runner.executors import StepRequest, StepResult
from workflows.runner.scheduler import run_template
from workflows.templates import PipelineSettings, build_template

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "promptci-dashboard.json"
Series = tuple[str, frozenset[tuple[str, str]]]
# operator.go / steps.go prepareMetricScope: {{status}} is the phase of a *fulfilled* node; a Skipped or
# Omitted node is marked by the DAG without executeTemplate and never reaches computeMetrics.
NODE_PHASES = ("Succeeded", "Failed", "Error")
WORKFLOW_PHASES = ("Succeeded", "Failed", "Error")  # operator.go operate: workflowStatus when fulfilled
# exporter_prometheus.go prometheus.WithNamespace, with controller.go metrics.New(..., "argo_workflows", ...)
PREFIX = "argo_workflows_"


def _fill(value: str, status: str, workflow_status: str) -> str:
    return value.replace("{{status}}", status).replace("{{workflow.status}}", workflow_status)


def argo_series(manifests: list[dict[str, Any]]) -> set[Series]:
    """Every series Argo's exporter can publish for these templates (one per reachable label value).

    Counters keep their name (``otlptranslator.UnderscoreEscapingWithoutSuffixes``: no ``_total``);
    a histogram is ``_bucket`` (with ``le``), ``_sum`` and ``_count``.
    """
    out: set[Series] = set()
    for m in manifests:
        declared = [(metric, True) for t in m["spec"]["templates"] for metric in
                    (t.get("metrics") or {}).get("prometheus") or []]
        declared += [(metric, False) for metric in (m["spec"].get("metrics") or {}).get("prometheus") or []]
        for metric, node_level in declared:
            for phase in NODE_PHASES if node_level else WORKFLOW_PHASES:
                labels = frozenset((lab["key"], _fill(lab["value"], phase, phase)) for lab in metric["labels"])
                name = PREFIX + metric["name"]
                if "counter" in metric:
                    out.add((name, labels))
                else:
                    bounds = [*(str(float(b)) for b in metric["histogram"]["buckets"]), "+Inf"]
                    out |= {(f"{name}_bucket", labels | {("le", b)}) for b in bounds}
                    out |= {(f"{name}_sum", labels), (f"{name}_count", labels)}
    return out


class ScriptedPods:
    """An executor whose pods do nothing: each attempt ends in the phase the test scripted for its node
    (``eval(0)``) or task (``eval``); unscripted attempts succeed."""

    def __init__(self, phases: dict[str, list[str]], eval_branches: int, count: int | None = None):
        self.phases = {task: list(p) for task, p in phases.items()}
        self.shards = json.dumps([{"index": i, "items": 1, "tests": 3} for i in range(eval_branches)])
        self.count = str(eval_branches if count is None else count)

    def run(self, request: StepRequest) -> StepResult:
        task = request.node.split("(")[0]
        queue = self.phases.get(request.node, self.phases.get(task, []))
        phase = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else "Succeeded")
        outputs = {"validate": {"shards": self.shards, "count": self.count, "needs-approval": "false"}
                   }.get(task, {}) if phase == "Succeeded" else {}
        request.attempt_dir.mkdir(parents=True, exist_ok=True)
        out, err = request.attempt_dir / "stdout.txt", request.attempt_dir / "stderr.txt"
        out.write_text("")
        err.write_text("")
        now = time.time()
        return StepResult(phase=phase, message="" if phase == "Succeeded" else "scripted",
                          exit_code={"Succeeded": 0, "Failed": 1}.get(phase), outputs=outputs,
                          result="{}" if request.capture_result else None,
                          stdout_path=out, stderr_path=err, started=now, finished=now)

    def cancel(self) -> None:
        pass


def _local_run(tmp_path: Path, artifact_type: ArtifactType, phases: dict[str, list[str]], run_id: str,
               monkeypatch: pytest.MonkeyPatch, branches: int = 2) -> Any:
    monkeypatch.delenv("PUSHGATEWAY_URL", raising=False)
    manifest = build_template(artifact_type, PipelineSettings(backoff="0s")).to_dict()
    result = run_template(manifest, {"repo-url": str(REPO)}, repo_root=REPO, run_id=run_id,
                          runs_dir=tmp_path / "runs", executor=ScriptedPods(phases, eval_branches=branches),
                          configmaps=policy_configmaps())
    from workflows.runner.metrics import record_metrics

    assert record_metrics(manifest, result) is None
    return result


def _published(run_dir: Path) -> dict[Series, float]:
    text = (run_dir / "metrics.prom").read_text()
    def norm(k: str, v: str) -> str:
        return str(float(v)) if k == "le" and v != "+Inf" else v

    return {(s.name, frozenset((k, norm(k, v)) for k, v in s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Series, float]]:
    """Three local runs publishing into one cumulative state: prompt ok (two eval branches, one retried
    after an Error), prompt failing (its one eval branch fails), model-config ok. Returns the last
    exposition."""
    tmp = tmp_path_factory.mktemp("metrics")
    with pytest.MonkeyPatch.context() as mp:
        first = _local_run(tmp, ArtifactType.PROMPT, {"eval(0)": ["Error", "Succeeded"]}, "ok", mp)
        assert first.status == "Succeeded", first.message
        second = _local_run(tmp, ArtifactType.PROMPT, {"eval": ["Failed"]}, "bad", mp, branches=1)
        assert second.status == "Failed"
        third = _local_run(tmp, ArtifactType.MODEL_CONFIG, {}, "mc", mp)
        assert third.status == "Succeeded", third.message
        yield _published(third.run_dir)


def _stage(artifact_type: str, stage: str, result: str) -> Series:
    return (metric_names.RESULT_SERIES, frozenset({("artifact_type", artifact_type), ("stage", stage),
                                                   ("result", result)}))


def test_local_runs_publish_the_series_argo_would_with_argos_counts(local: dict[Series, float]) -> None:
    """Retried attempts count (operator.go executeTemplate emits for the last finished child of a retry
    node), skipped nodes emit nothing (approval is skipped: no series), counters accumulate across runs
    (metrics_custom.go UpsertCustomMetric), and nothing local is a series Argo could not publish."""
    argo = argo_series([build_template(t, PipelineSettings()).to_dict() for t in ArtifactType])
    assert set(local) <= argo, sorted(set(local) - argo)
    counts = {k: v for k, v in local.items() if k[0] == metric_names.RESULT_SERIES}
    # run "ok": 2 branches, one retried after an Error; run "bad": its branch fails once (exit 1 is not
    # retried by the template's expression)
    assert counts[_stage("prompt", "eval", "Succeeded")] == 2
    assert counts[_stage("prompt", "eval", "Error")] == 1
    assert counts[_stage("prompt", "eval", "Failed")] == 1
    assert counts[_stage("prompt", "lint", "Succeeded")] == 2
    assert counts[_stage("prompt", "summary", "Succeeded")] == 2
    assert counts[_stage("prompt", "promote", "Succeeded")] == 1  # omitted in the failing run: no emission
    assert counts[_stage("model-config", "validate", "Succeeded")] == 1
    assert not [k for k in counts if dict(k[1])["stage"] == "approval"]
    runs = {dict(k[1])["result"]: v for k, v in local.items()
            if k[0] == metric_names.DURATION_SERIES + "_count" and dict(k[1])["artifact_type"] == "prompt"}
    assert runs == {"Succeeded": 1, "Failed": 1}


def _selectors(expr: Any) -> Iterator[Any]:
    if isinstance(expr, promql_parser.VectorSelector):
        yield expr
        return
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(expr, attr, None)
        if child is not None:
            yield from _selectors(child)
    for child in getattr(expr, "args", None) or []:
        yield from _selectors(child)


def _matches(series: Series, selector: Any) -> bool:
    if series[0] != selector.name:
        return False
    labels = dict(series[1])
    for m in selector.matchers.matchers:
        value, op = labels.get(m.name, ""), str(m.op).rsplit(".", 1)[-1]
        ok = {"Equal": value == m.value, "NotEqual": value != m.value,
              "Re": re.fullmatch(m.value, value) is not None,
              "NotRe": re.fullmatch(m.value, value) is None}[op]
        if not ok:
            return False
    return True


def _queries() -> Iterator[tuple[str, str, list[str]]]:
    """Yield (where, PromQL, labels the panel shows) for every query of the dashboard."""
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel["targets"]:
            shown = re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", ""))
            yield panel["title"], target["expr"], shown
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            name, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"]).groups()
            yield f"variable {var['name']}", name, [label]


@pytest.mark.parametrize("artifact_type", [".*", "prompt"])
def test_every_dashboard_query_selects_the_same_series_on_both_paths(local: dict[Series, float],
                                                                    artifact_type: str) -> None:
    argo = argo_series([build_template(t, PipelineSettings()).to_dict() for t in ArtifactType])
    queries = list(_queries())
    assert len(queries) >= 5
    for where, promql, shown in queries:
        expr = promql_parser.parse(promql.replace("$window", "1d").replace("$artifact_type", artifact_type))
        selectors = list(_selectors(expr))
        assert selectors, where
        for sel in selectors:
            on_argo = {s for s in argo if _matches(s, sel)}
            on_local = {s for s in local if _matches(s, sel)}
            assert on_argo, f"{where}: {sel} selects nothing Argo exports"
            assert on_local, f"{where}: {sel} selects nothing a local run publishes"
            keys = {frozenset(k for k, _ in s[1]) for s in on_argo | on_local}
            assert len(keys) == 1, f"{where}: label keys differ between the paths: {keys}"
            (key_set,) = keys
            grouped = set(re.findall(r"by \(([^)]*)\)", promql))
            used = {k.strip() for g in grouped for k in g.split(",")} | set(shown)
            assert used <= key_set, f"{where}: uses {used - key_set}, not a label of {sel.name}"
            assert {v for s in on_local for k, v in s[1] if k == "result"} <= set(metric_names.RESULTS)


def test_argo_side_is_what_the_templates_declare() -> None:
    """The mission's names, as Argo exports them (docs/metrics.md lists exactly these)."""
    argo = argo_series([build_template(ArtifactType.PROMPT, PipelineSettings()).to_dict()])
    names = Counter(s[0] for s in argo)
    assert set(names) == {"argo_workflows_prompt_pipeline_result",
                          "argo_workflows_prompt_pipeline_duration_seconds_bucket",
                          "argo_workflows_prompt_pipeline_duration_seconds_sum",
                          "argo_workflows_prompt_pipeline_duration_seconds_count"}
    docs = (REPO / "docs" / "metrics.md").read_text()
    for name in ("prompt_pipeline_duration_seconds", "prompt_pipeline_result{stage,result}", *names):
        assert name in docs, name
