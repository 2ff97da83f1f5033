"""Publish the local runner's metric emissions as the series Argo's controller publishes (prometheus-client).

The local runner plays the controller: each finished node (and the workflow) *emits* its template's
metrics (:class:`Emission`), and this module keeps them **cumulative across runs**, as the
controller's in-memory counters and histograms are, in a JSON state file updated under a lock
(atomically). What is published is that cumulative state, under the names Argo's exporter uses:
``argo_workflows_<name>``, counters without ``_total``, histograms as ``_bucket``/``_sum``/``_count``.

Where the numbers go:

* ``PUSHGATEWAY_URL`` (or ``pushgateway_url``) set: pushed to the Pushgateway under job ``promptci``
  and grouping key ``instance=<instance or hostname>`` (the label keys a scrape of the controller
  adds, ``job`` and ``instance``, and no other), 3 attempts (tenacity);
* otherwise, or when the push fails: a node_exporter textfile ``<run_dir>/metrics.prom`` (atomic).

One difference Prometheus' text format forces: prometheus-client always names a *counter* family
``<name>_total``, so a counter without that suffix is exposed with TYPE ``untyped``; its name,
labels and values are Argo's, and PromQL (``increase``, ``rate``) treats it the same.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from tenacity import retry, stop_after_attempt, wait_exponential

from steps import metric_names as names
from steps.atomic import atomic_write

log = logging.getLogger("promptci.metrics")

JOB = "promptci"
TEXTFILE = "metrics.prom"
PUSH_TIMEOUT_SECONDS = 5.0
METRIC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


class MetricsError(ValueError):
    """An emission the metrics contract does not allow (bad name, result value or number)."""


@dataclass(frozen=True)
class Emission:
    """One metric a finished node or workflow emits: the template's metric with its variables filled in."""

    name: str  # as declared in the template (without Argo's prefix)
    kind: str  # "counter" or "histogram" (the templates declare no gauges)
    help: str
    labels: tuple[tuple[str, str], ...]
    value: float
    buckets: tuple[float, ...] = ()

    def check(self) -> None:
        """Raise MetricsError for what would create a stray or broken series."""
        if not self.name or not set(self.name) <= METRIC_NAME_CHARS or self.name[0].isdigit():
            raise MetricsError(f"metric name {self.name!r} is not a Prometheus name")
        if self.kind not in ("counter", "histogram"):
            raise MetricsError(f"metric {self.name}: unsupported kind {self.kind!r}")
        result = dict(self.labels).get("result")
        if result is not None and result not in names.RESULTS:
            raise MetricsError(f"metric {self.name}: result {result!r} is not one of {', '.join(names.RESULTS)}")
        if self.value < 0 or (self.kind == "counter" and self.value != int(self.value)):
            raise MetricsError(f"metric {self.name}: value {self.value} is not a valid {self.kind} observation")


def _key(labels: Iterable[tuple[str, str]]) -> str:
    return json.dumps(sorted(labels))


def accumulate(state: dict[str, Any], emissions: Sequence[Emission]) -> dict[str, Any]:
    """Return ``state`` with ``emissions`` added: a counter adds its value, a histogram observes it.

    As in workflow/metrics/metrics_custom.go ``UpsertCustomMetric``: the help and kind of a name are
    fixed by its first emission ("help for metric ... cannot be changed").
    """
    for e in emissions:
        e.check()
        family = state.setdefault(e.name, {"kind": e.kind, "help": e.help, "buckets": list(e.buckets),
                                           "series": {}})
        if family["kind"] != e.kind or family["help"] != e.help:
            raise MetricsError(f"metric {e.name} is already a {family['kind']} with help {family['help']!r}")
        series = family["series"].setdefault(_key(e.labels), {"count": 0, "sum": 0.0,
                                                              "buckets": [0] * len(family["buckets"])})
        series["count"] += 1
        series["sum"] += e.value
        for i, bound in enumerate(family["buckets"]):
            if e.value <= bound:
                series["buckets"][i] += 1
    return state


class _StateCollector:
    """Expose a cumulative state dict as Argo's exporter names the series."""

    def __init__(self, state: dict[str, Any]):
        self.state = state

    def collect(self) -> Iterator[Metric]:
        for name, family in sorted(self.state.items()):
            full = names.ARGO_PREFIX + name
            if family["kind"] == "counter":
                metric = Metric(full, family["help"], "unknown")
                for key, s in sorted(family["series"].items()):
                    metric.add_sample(full, dict(json.loads(key)), s["sum"])
                yield metric
            else:
                keys = [k for k, _ in json.loads(next(iter(family["series"]), "[]"))]
                hist = HistogramMetricFamily(full, family["help"], labels=keys)
                for key, s in sorted(family["series"].items()):
                    values = [v for _, v in json.loads(key)]
                    bounds = [(str(b), c) for b, c in zip(family["buckets"], s["buckets"], strict=True)]
                    hist.add_metric(values, [*bounds, ("+Inf", s["count"])], s["sum"])
                yield hist


def registry_for(state: dict[str, Any]) -> CollectorRegistry:
    """Return a fresh registry holding exactly ``state``'s series (nothing else: no process metrics)."""
    registry = CollectorRegistry()
    registry.register(_StateCollector(state))
    return registry


def update_state(state_path: Path, emissions: Sequence[Emission]) -> dict[str, Any]:
    """Add ``emissions`` to the JSON state at ``state_path`` under an exclusive lock; return the new state.

    Concurrent local runs serialise here, so no emission is lost; the file is replaced atomically.
    """
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with open(state_path.with_name(state_path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        except ValueError:
            log.warning("metrics state %s is unreadable; starting it again", state_path)
            state = {}
        state = accumulate(state, emissions)
        atomic_write(state_path, json.dumps(state, indent=1, sort_keys=True))
    return state


# tenacity: a Pushgateway restart or a brief network blip should not cost a run its metrics.
@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
def _push(url: str, registry: CollectorRegistry, instance: str) -> None:
    push_to_gateway(url, job=JOB, registry=registry, grouping_key={"instance": instance},
                    timeout=PUSH_TIMEOUT_SECONDS)


def publish(emissions: Sequence[Emission], *, run_dir: Path, state_path: Path, instance: str | None = None,
            pushgateway_url: str | None = None) -> str:
    """Add one run's emissions to the cumulative state and publish it; return where it went.

    Pushes when ``pushgateway_url`` or env ``PUSHGATEWAY_URL`` is set; if the push still fails
    after retries the textfile is written instead (logged) so nothing is lost. A metrics outage
    never changes a run's result. Raises MetricsError (before touching the state) for a bad emission.
    """
    for e in emissions:
        e.check()
    registry = registry_for(update_state(state_path, emissions))
    url = pushgateway_url or os.environ.get("PUSHGATEWAY_URL") or None
    if url:
        who = instance or socket.gethostname()
        try:
            _push(url, registry, who)
            return f"{url.rstrip('/')}/metrics/job/{JOB}/instance/{who}"
        except OSError as exc:  # URLError and HTTP errors are OSErrors
            log.warning("cannot push metrics to %s (%s); writing %s instead", url, exc, TEXTFILE)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / TEXTFILE
    write_to_textfile(str(path), registry)  # temp file + rename: node_exporter never reads half a file
    return str(path)
