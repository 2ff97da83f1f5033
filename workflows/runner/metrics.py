"""Which metrics a finished local run emits: what Argo's controller would emit for the same nodes.

The rules, each from argo-workflows v4.1.2:

* a node emits its template's ``metrics.prometheus`` when it finishes, with ``{{status}}`` its
  phase (``workflow/controller/steps.go prepareMetricScope``) — Succeeded, Failed or Error;
* a node with a ``retryStrategy`` also emits once for each attempt that finished and was retried,
  with that attempt's phase (``operator.go executeTemplate``: "If retry node has not completed and
  last child node has completed, emit metrics for the last child node"), then once for the retry
  node's final phase;
* a Skipped or Omitted node emits nothing: the DAG marks it without running ``executeTemplate``,
  where ``computeMetrics`` is called;
* the workflow's ``spec.metrics`` are emitted once it is fulfilled, with ``{{workflow.status}}``
  and ``{{workflow.duration}}`` (``operator.go operate``);
* a counter adds its value, a histogram observes it (``workflow/metrics/metrics_custom.go
  UpsertCustomMetric``); a metric whose variables do not resolve is not emitted
  (``computeMetrics``: "unable to substitute parameters for metric").

:func:`emissions` applies them to a :class:`RunResult`; :func:`record_metrics` publishes them
through :mod:`steps.metrics` (cumulative, under Argo's names).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflows.runner.expr import ExpressionError, UnresolvedVariable, substitute
from workflows.runner.records import NodeRecord, RunResult

log = logging.getLogger("promptci.metrics")
FINISHED = ("Succeeded", "Failed", "Error")
STATE_FILE = Path("metrics") / "state.json"  # beside runs/: .promptci/metrics/state.json


def _emission(metric: Mapping[str, Any], scope: Mapping[str, str]) -> Any:
    from steps.metrics import Emission

    kind = "counter" if "counter" in metric else "histogram" if "histogram" in metric else next(
        (k for k in ("gauge",) if k in metric), "unknown")
    spec = metric.get(kind) or {}
    labels = tuple((lab["key"], substitute(str(lab["value"]), scope)) for lab in metric.get("labels") or [])
    return Emission(name=substitute(metric["name"], scope), kind=kind, help=substitute(metric.get("help", ""), scope),
                    labels=labels, value=float(substitute(str(spec.get("value", "")), scope)),
                    buckets=tuple(float(b) for b in spec.get("buckets") or ()))


def _node_phases(node: NodeRecord) -> list[str]:
    """Return the phases a node emits with: each retried attempt's, then the node's final one."""
    if node.status not in FINISHED:
        return []
    return [*node.attempt_phases[:-1], node.status]


def emissions(manifest: Mapping[str, Any], result: RunResult, global_scope: Mapping[str, str] | None = None) -> list:
    """Return the run's emissions, in the order Argo's controller would make them (nodes, then workflow).

    ``global_scope`` holds the workflow variables the metrics may use besides the metric ones.
    """
    spec = manifest.get("spec") or {}
    templates = {t.get("name"): t for t in spec.get("templates") or []}
    wf_scope = {**(global_scope or {}), "workflow.status": result.status,
                "workflow.duration": f"{result.duration_seconds:f}"}
    out = []
    for node in result.nodes:
        metrics = ((templates.get(node.template) or {}).get("metrics") or {}).get("prometheus") or []
        for phase in _node_phases(node) if metrics else []:
            scope = {**wf_scope, "status": phase, "duration": f"{node.duration:f}",
                     "exitCode": "" if node.exit_code is None else str(node.exit_code)}
            out += _resolved(metrics, scope, node.name)
    return out + _resolved((spec.get("metrics") or {}).get("prometheus") or [], wf_scope, "workflow")


def _resolved(metrics: list[Mapping[str, Any]], scope: Mapping[str, str], where: str) -> list:
    out = []
    for metric in metrics:
        try:
            out.append(_emission(metric, scope))
        except (UnresolvedVariable, ExpressionError, ValueError) as exc:
            log.warning("%s: metric %s not emitted: %s", where, metric.get("name"), exc)
    return out


def record_metrics(manifest: Mapping[str, Any], result: RunResult) -> str | None:
    """Publish the run's emissions; return a note when they could not be recorded (never raises).

    The cumulative state lives beside the runs directory (``.promptci/metrics/state.json``), so
    every local run on this checkout adds to the same counters, as runs on one controller do.
    """
    from steps.metrics import MetricsError, publish

    try:
        found = emissions(manifest, result, {"workflow.name": result.run_id})
        publish(found, run_dir=result.run_dir, state_path=result.run_dir.parent.parent / STATE_FILE,
                pushgateway_url=os.environ.get("PUSHGATEWAY_URL"))
    except (MetricsError, OSError) as exc:
        return f"metrics not recorded: {exc}"
    return None
