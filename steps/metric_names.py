"""The metrics contract (docs/metrics.md): names, help texts, buckets and label values, shared by the
Argo-native metrics in the templates and the local runner, which emits exactly the series Argo does.

The templates declare ``prompt_pipeline_duration_seconds`` and ``prompt_pipeline_result``; Argo's
Prometheus exporter publishes them as ``argo_workflows_<name>`` (argo-workflows
util/telemetry/exporter_prometheus.go: ``prometheus.WithNamespace`` with the controller's
``argo_workflows`` from workflow/controller/controller.go ``metrics.New``) and without suffixes
(``otlptranslator.UnderscoreEscapingWithoutSuffixes``: a counter gets no ``_total``).
"""

ARGO_PREFIX = "argo_workflows_"
DURATION = "prompt_pipeline_duration_seconds"
DURATION_HELP = "Wall-clock duration of one promptci pipeline run, in seconds"
RESULT = "prompt_pipeline_result"
RESULT_HELP = "Outcome of one promptci pipeline stage (stage, result)"
DURATION_SERIES = ARGO_PREFIX + DURATION  # a histogram: _bucket{le}, _sum, _count
RESULT_SERIES = ARGO_PREFIX + RESULT  # a counter, exposed without _total
# ``{{status}}`` / ``{{workflow.status}}`` of a finished node or workflow (wfv1.NodePhase values).
# Skipped and Omitted nodes never reach computeMetrics, so they never appear.
RESULTS = ("Succeeded", "Failed", "Error")
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0)
