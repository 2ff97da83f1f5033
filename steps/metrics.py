"""Prometheus metrics of one local pipeline run (prometheus-client).

The same names, help texts and buckets as the Argo-native template metrics
(``steps/metric_names.py``). Each run gets its own ``CollectorRegistry`` so
nothing leaks between runs in one process. Where the numbers go:

* ``PUSHGATEWAY_URL`` (or ``pushgateway_url``) set: pushed to the Pushgateway
  under job ``promptci`` with grouping key ``pipeline=promptci,
  instance=<instance or hostname>``; a push replaces that group's previous values;
* otherwise, or when the push fails after retries: a node_exporter textfile
  ``<run_dir>/metrics.prom``, written atomically (temp file + rename).

Counters are exposed with Prometheus' ``_total`` suffix:
``prompt_pipeline_result_total{stage,result}``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, push_to_gateway, write_to_textfile
from tenacity import retry, stop_after_attempt, wait_exponential

from steps import metric_names as names

log = logging.getLogger("promptci.metrics")

JOB = "promptci"
PIPELINE = "promptci"
TEXTFILE = "metrics.prom"
PUSH_TIMEOUT_SECONDS = 5.0


class MetricsError(ValueError):
    """A label value is not one the metrics contract allows."""


def build_registry(*, artifact_type: str, result: str, duration_seconds: float,
                   stage_results: dict[str, str]) -> CollectorRegistry:
    """Return a fresh registry holding this run's duration histogram and per-stage result counters.

    Raises MetricsError for a result outside succeeded/failed/skipped/error or a
    negative duration, so a typo never creates a stray series.
    """
    bad = sorted({r for r in (result, *stage_results.values()) if r not in names.RESULTS})
    if bad:
        raise MetricsError(f"result {', '.join(map(repr, bad))} is not one of {', '.join(names.RESULTS)}")
    if duration_seconds < 0:
        raise MetricsError(f"duration_seconds is negative ({duration_seconds})")
    registry = CollectorRegistry()
    duration = Histogram(names.DURATION, names.DURATION_HELP, ["artifact_type", "result"],
                         buckets=names.DURATION_BUCKETS, registry=registry)
    duration.labels(artifact_type=artifact_type, result=result).observe(duration_seconds)
    outcome = Counter(names.RESULT, names.RESULT_HELP, ["stage", "result"], registry=registry)
    for stage, stage_result in stage_results.items():
        outcome.labels(stage=stage, result=stage_result).inc()
    return registry


# tenacity: a Pushgateway restart or a brief network blip should not cost a run its metrics.
@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
def _push(url: str, registry: CollectorRegistry, instance: str) -> None:
    push_to_gateway(url, job=JOB, registry=registry, grouping_key={"pipeline": PIPELINE, "instance": instance},
                    timeout=PUSH_TIMEOUT_SECONDS)


def record_pipeline_run(*, artifact_type: str, result: str, duration_seconds: float,
                        stage_results: dict[str, str], run_dir: Path, instance: str | None = None,
                        pushgateway_url: str | None = None) -> str:
    """Record one finished run; return where the metrics went (the Pushgateway URL or the textfile path).

    Pushes when ``pushgateway_url`` or env ``PUSHGATEWAY_URL`` is set. If the
    push still fails after retries the metrics are written to the textfile
    instead (logged as a warning) so they are not lost; a metrics outage never
    changes a run's result. Raises MetricsError for invalid label values.
    """
    registry = build_registry(artifact_type=artifact_type, result=result, duration_seconds=duration_seconds,
                              stage_results=stage_results)
    url = pushgateway_url or os.environ.get("PUSHGATEWAY_URL") or None
    if url:
        who = instance or socket.gethostname()
        try:
            _push(url, registry, who)
            return f"{url.rstrip('/')}/metrics/job/{JOB}/pipeline/{PIPELINE}/instance/{who}"
        except OSError as exc:  # URLError and HTTP errors are OSErrors
            log.warning("cannot push metrics to %s (%s); writing %s instead", url, exc, TEXTFILE)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / TEXTFILE
    write_to_textfile(str(path), registry)  # temp file + rename: node_exporter never reads half a file
    return str(path)
