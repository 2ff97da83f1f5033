"""Metric names and help texts, shared by the Argo-native metrics in the templates
and the prometheus-client metrics of the local runner, so both read the same."""

DURATION = "prompt_pipeline_duration_seconds"
DURATION_HELP = "Wall-clock duration of one promptci pipeline run, in seconds"
RESULT = "prompt_pipeline_result"
RESULT_HELP = "Outcome of one promptci pipeline stage (stage, result)"
# The local runner's result label values; Argo's {{status}} gives Succeeded/Failed/Error/Skipped.
RESULTS = ("succeeded", "failed", "skipped", "error")
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0)
